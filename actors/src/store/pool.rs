//! [`Store`]: the connection to either backend, and the migrations.
//!
//! PostgreSQL is reached through diesel-async and a deadpool pool. SQLite is
//! written through plain sync diesel on one connection behind a mutex, used
//! only from blocking threads: diesel-async cannot batch-insert on SQLite, and
//! a dropped in-flight SQLite future panics.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::AsyncPgConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::{BatchRow, DatabaseSettings};

const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");

/// Everything that can go wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database url {0:?} is not sqlite:// or postgres://")]
    BadUrl(String),
    #[error("cannot open the database: {0}")]
    Connect(String),
    #[error("query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("migrations failed: {0}")]
    Migrate(String),
    #[error("database worker thread died")]
    Worker,
}

/// Which backend a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub enum Store {
    Postgres(PgStore),
    Sqlite(SqliteStore),
}

/// PostgreSQL through a deadpool pool of diesel-async connections.
#[derive(Clone)]
pub struct PgStore {
    url: String,
    pool: Pool<AsyncPgConnection>,
}

/// SQLite: one writer connection and one reader connection (WAL lets them
/// work side by side), each used from blocking threads only.
#[derive(Clone)]
pub struct SqliteStore {
    path: PathBuf,
    writer: Arc<Mutex<SqliteConnection>>,
    reader: Arc<Mutex<SqliteConnection>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Store::Postgres(pg) => write!(f, "Store::Postgres({})", redact_url(&pg.url)),
            Store::Sqlite(s) => write!(f, "Store::Sqlite({})", s.path.display()),
        }
    }
}

/// The url with any password replaced by `***`, for logs and `config check`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((auth, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

impl Store {
    /// Opens the database named by `settings.url`. A relative SQLite path is
    /// taken relative to `base_dir` (the config file's folder).
    pub async fn connect(
        settings: &DatabaseSettings,
        base_dir: &Path,
    ) -> Result<Store, StoreError> {
        let url = settings.url.as_str();
        if let Some(path) = url.strip_prefix("sqlite://") {
            let path = base_dir.join(path);
            let busy = settings.sqlite_busy_timeout_ms;
            let open_path = path.clone();
            let (writer, reader) = blocking(move || {
                Ok::<_, StoreError>((
                    open_sqlite(&open_path, busy)?,
                    open_sqlite(&open_path, busy)?,
                ))
            })
            .await??;
            Ok(Store::Sqlite(SqliteStore {
                path,
                writer: Arc::new(Mutex::new(writer)),
                reader: Arc::new(Mutex::new(reader)),
            }))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url);
            let timeout = settings.connect_timeout();
            let pool = Pool::builder(manager)
                .max_size(settings.pool_size)
                .runtime(deadpool::Runtime::Tokio1)
                .wait_timeout(Some(timeout))
                .create_timeout(Some(timeout))
                .recycle_timeout(Some(timeout))
                .build()
                .map_err(|e| StoreError::Connect(e.to_string()))?;
            Ok(Store::Postgres(PgStore {
                url: url.to_owned(),
                pool,
            }))
        } else {
            Err(StoreError::BadUrl(url.to_owned()))
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Store::Postgres(_) => Backend::Postgres,
            Store::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Applies every pending embedded migration; returns the versions applied.
    pub async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Postgres(pg) => {
                let url = pg.url.clone();
                // The sync harness blocks on its own runtime: give it a thread
                // of its own rather than an actix arbiter.
                blocking_thread(move || {
                    let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(&url)
                        .map_err(|e| StoreError::Connect(e.to_string()))?;
                    run_migrations(&mut conn, PG_MIGRATIONS)
                })
                .await?
            }
            Store::Sqlite(s) => {
                let writer = s.writer.clone();
                blocking(move || {
                    let mut conn = writer.lock().map_err(|_| StoreError::Worker)?;
                    run_migrations(&mut *conn, SQLITE_MIGRATIONS)
                })
                .await?
            }
        }
    }

    /// A cheap round trip, for `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Postgres(_) => {
                let mut conn = self.pg().await?;
                diesel_async::SimpleAsyncConnection::batch_execute(&mut *conn, "SELECT 1").await?;
                Ok(())
            }
            Store::Sqlite(_) => self.read_sqlite(|c| Ok(c.batch_execute("SELECT 1")?)).await,
        }
    }

    /// A pooled PostgreSQL connection.
    pub async fn pg(&self) -> Result<Object<AsyncPgConnection>, StoreError> {
        match self {
            Store::Postgres(pg) => pg
                .pool
                .get()
                .await
                .map_err(|e| StoreError::Connect(e.to_string())),
            Store::Sqlite(_) => Err(StoreError::Connect("not a postgres store".to_owned())),
        }
    }

    /// Runs `f` on the SQLite reader connection in a blocking thread.
    pub async fn read_sqlite<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut SqliteConnection) -> Result<T, StoreError> + Send + 'static,
    {
        self.on_sqlite(f, false).await
    }

    /// Runs `f` on the SQLite writer connection in a blocking thread.
    pub async fn write_sqlite<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut SqliteConnection) -> Result<T, StoreError> + Send + 'static,
    {
        self.on_sqlite(f, true).await
    }

    async fn on_sqlite<T, F>(&self, f: F, write: bool) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut SqliteConnection) -> Result<T, StoreError> + Send + 'static,
    {
        let Store::Sqlite(s) = self else {
            return Err(StoreError::Connect("not a sqlite store".to_owned()));
        };
        let conn = if write {
            s.writer.clone()
        } else {
            s.reader.clone()
        };
        blocking(move || {
            let mut conn = conn.lock().map_err(|_| StoreError::Worker)?;
            f(&mut conn)
        })
        .await?
    }

    /// Inserts `rows` in one transaction of multi-row
    /// `INSERT … ON CONFLICT DO NOTHING` statements (one per chunk that fits
    /// the backend's bind-parameter limit). Returns the rows actually new.
    pub async fn insert_batch<R: BatchRow>(&self, rows: Arc<Vec<R>>) -> Result<usize, StoreError> {
        match self {
            Store::Postgres(_) => {
                use diesel_async::AsyncConnection;
                let mut conn = self.pg().await?;
                let chunk = R::rows_per_statement(65_535);
                let inserted = conn
                    .transaction(async |conn| {
                        let mut n = 0;
                        for part in rows.chunks(chunk) {
                            n += R::insert_pg(conn, part).await?;
                        }
                        Ok::<usize, diesel::result::Error>(n)
                    })
                    .await?;
                Ok(inserted)
            }
            Store::Sqlite(_) => {
                self.write_sqlite(move |conn| {
                    let chunk = R::rows_per_statement(32_766);
                    let n = conn.immediate_transaction(|conn| {
                        let mut n = 0;
                        for part in rows.chunks(chunk) {
                            n += R::insert_sqlite(conn, part)?;
                        }
                        Ok::<_, diesel::result::Error>(n)
                    })?;
                    Ok(n)
                })
                .await
            }
        }
    }
}

fn open_sqlite(path: &Path, busy_timeout_ms: u64) -> Result<SqliteConnection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Connect(format!("{}: {e}", dir.display())))?;
    }
    let url = path.to_string_lossy();
    let mut conn =
        SqliteConnection::establish(&url).map_err(|e| StoreError::Connect(e.to_string()))?;
    conn.batch_execute(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = {busy_timeout_ms}; PRAGMA foreign_keys = ON;"
    ))?;
    Ok(conn)
}

fn run_migrations<C>(
    conn: &mut C,
    migrations: EmbeddedMigrations,
) -> Result<Vec<String>, StoreError>
where
    C: MigrationHarness<C::Backend> + diesel::Connection,
{
    let applied = conn
        .run_pending_migrations(migrations)
        .map_err(|e| StoreError::Migrate(e.to_string()))?;
    Ok(applied.iter().map(|v| v.to_string()).collect())
}

/// Runs `f` on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| StoreError::Worker)
}

/// Runs `f` on a fresh OS thread with no tokio runtime around it.
async fn blocking_thread<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StoreError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("tasklet-migrate".to_owned())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|_| StoreError::Worker)?;
    rx.await.map_err(|_| StoreError::Worker)
}

/// Waits up to `timeout` for the store to answer a ping.
pub async fn wait_ready(store: &Store, timeout: Duration) -> Result<(), StoreError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match store.ping().await {
            Ok(()) => return Ok(()),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://tasklet.db"), "sqlite://tasklet.db");
    }
}
