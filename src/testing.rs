//! Helpers for tests that use the real services on the machine: a
//! throw-away PostgreSQL database per test, unique names.
//! (Public so that integration tests in `tests/` can use it.)

use std::sync::atomic::{AtomicU32, Ordering};

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

/// The PostgreSQL server tests use: `TASKLET_TEST_PG_URL`, by default the
/// machine's `postgres://postgres@127.0.0.1:5432/test`.
pub fn pg_admin_url() -> String {
    std::env::var("TASKLET_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The RabbitMQ broker tests use: `TASKLET_TEST_AMQP_URL`, by default
/// `amqp://guest:guest@127.0.0.1:5672/%2f`.
pub fn amqp_url() -> String {
    std::env::var("TASKLET_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// A name no other test (or test run) uses: `prefix_pid_n_nanos`.
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A PostgreSQL database created for one test and dropped (forcibly) when
/// this value is dropped.
pub struct TempPgDb {
    pub name: String,
    pub url: String,
    admin: String,
}

impl TempPgDb {
    pub async fn create() -> anyhow::Result<TempPgDb> {
        let admin = pg_admin_url();
        let name = unique_name("tasklet_t");
        let mut conn = AsyncPgConnection::establish(&admin).await?;
        conn.batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        Ok(TempPgDb {
            url: format!("{base}/{name}"),
            name,
            admin,
        })
    }
}

impl Drop for TempPgDb {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop may run inside a runtime: use a thread with one of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async move {
                    if let Ok(mut conn) = AsyncPgConnection::establish(&admin).await {
                        let _ = conn.batch_execute(&sql).await;
                    }
                });
            }
        })
        .join();
    }
}
