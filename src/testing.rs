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

impl TempPgDb {
    /// The server's address, from the URL (`host:port`, port 5432 if absent).
    pub async fn server_addr(&self) -> anyhow::Result<std::net::SocketAddr> {
        let after_at = self
            .url
            .rsplit_once('@')
            .map(|(_, h)| h)
            .unwrap_or(&self.url);
        let after_at = after_at.strip_prefix("postgres://").unwrap_or(after_at);
        let host_port = after_at.split('/').next().unwrap_or_default();
        let host_port = if host_port.contains(':') {
            host_port.to_owned()
        } else {
            format!("{host_port}:5432")
        };
        let found = tokio::net::lookup_host(&host_port).await?.next();
        found.ok_or_else(|| anyhow::anyhow!("{host_port} does not resolve"))
    }

    /// This database's URL, reached through `addr` (e.g. a [`TcpProxy`]).
    pub fn url_via(&self, addr: std::net::SocketAddr) -> String {
        let user = self
            .url
            .strip_prefix("postgres://")
            .and_then(|r| r.rsplit_once('@'))
            .map(|(u, _)| format!("{u}@"))
            .unwrap_or_default();
        format!("postgres://{user}{addr}/{}", self.name)
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

/// A TCP proxy on 127.0.0.1:0 that can be cut (every connection dropped,
/// new ones refused) and restored: "the database went away".
pub struct TcpProxy {
    pub addr: std::net::SocketAddr,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    generation: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
    _task: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Starts forwarding to `target` (call inside a tokio runtime).
    pub async fn start(target: std::net::SocketAddr) -> std::io::Result<TcpProxy> {
        use std::sync::atomic::AtomicBool;
        use std::sync::Arc;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let up = Arc::new(AtomicBool::new(true));
        let (tx, _) = tokio::sync::watch::channel(0u64);
        let generation = Arc::new(tx);
        let (up2, gen2) = (up.clone(), generation.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut cut = gen2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Ok(TcpProxy {
            addr,
            up,
            generation,
            _task: task,
        })
    }

    /// Drops every open connection and refuses new ones until [`restore`](Self::restore).
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// A notification row as the log writes it after a successful send:
/// `message_id` as given, transaction `tx-{n}`, Viber message token `n`.
/// Tests and the store benchmarks write these by the thousand.
pub fn sent_notification(
    message_id: String,
    n: usize,
) -> tasklet_actors::store::models::NewNotification {
    let now = tasklet_actors::store::models::now_us();
    tasklet_actors::store::models::NewNotification {
        message_id,
        transaction_id: format!("tx-{n}"),
        receiver: "user".to_owned(),
        status: "completed".to_owned(),
        state: "sent".to_owned(),
        viber_status: Some(0),
        message_token: Some(n as i64),
        attempts: 1,
        error: None,
        enqueued_at_us: now,
        sent_at_us: Some(now),
        logged_at_us: now,
    }
}
