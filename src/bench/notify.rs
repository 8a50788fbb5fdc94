//! `tasklet bench notify`: the notify pipeline against the real RabbitMQ and
//! PostgreSQL, beside an asyncio baseline (aio-pika + aiohttp + asyncpg).
//!
//! Each consumer runs as a child process (so that its CPU time can be read
//! from `/proc/PID/stat` alone); the Viber simulator, the publisher and a
//! database poller run in this process. Two phases per consumer, each on a
//! fresh database and queue:
//! - **latency**: `--count` messages published at `--rate`; publish → Viber
//!   is the simulator's arrival time minus the publish time stamped in the
//!   message header; log lag is when the poller (every `--poll-ms`) first
//!   saw the row committed minus the publish time.
//! - **drain**: `--drain-count` messages published first, then the consumer
//!   starts and empties the queue: msg/s from the first send to the last
//!   row committed, and the consumer's CPU per message.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use clap::Args;
use diesel::prelude::*;
use indicatif::ProgressBar;
use serde::Serialize;
use tasklet_actors::notify::quantile;
use tasklet_actors::store::schema::notifications::dsl as n;
use tasklet_actors::store::{DatabaseSettings, Store};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::report::{print, progress, Summary};
use crate::config::Config;
use crate::sim::transactions::{self, TransactionsArgs};
use crate::sim::viber::{Mode, ViberSim};
use crate::testing::{amqp_url, unique_name, TempPgDb};

/// The token the bench and tests give both sides.
pub const TOKEN: &str = "bench-token";

#[derive(Debug, Args)]
pub struct NotifyBench {
    /// Messages in the latency phase.
    #[arg(long, default_value_t = 10_000)]
    pub count: usize,
    /// Publish rate of the latency phase (msg/s).
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Messages in the drain (throughput) phase.
    #[arg(long, default_value_t = 20_000)]
    pub drain_count: usize,
    /// How often the poller looks for newly committed rows.
    #[arg(long, default_value_t = 20)]
    pub poll_ms: u64,
    /// The asyncio baseline script; empty (`--python ''`) to run tasklet alone.
    #[arg(long, default_value = "bench/python/notify_consumer.py")]
    pub python: String,
    /// Prefetch of the baseline (the original design used 100).
    #[arg(long, default_value_t = 100)]
    pub python_prefetch: u16,
    /// Print the result as JSON on stdout instead of a table (no progress bar).
    #[arg(long)]
    pub json: bool,
}

/// One measured phase: `completed` counts the messages logged (row
/// committed), `errors` those never logged plus duplicate sends, and the
/// percentiles time publish → Viber.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    #[serde(flatten)]
    pub summary: Summary,
    pub consumer: String,
    pub phase: String,
    pub messages: usize,
    pub sent_once: usize,
    pub duplicates: usize,
    pub logged: usize,
    pub log_lag_p50_ms: f64,
    pub log_lag_p99_ms: f64,
    pub cpu_ms_per_msg: f64,
}

/// The config file the bench and the tests run `tasklet run` with.
pub fn daemon_config(database_url: &str, amqp: &str, queue: &str, viber_url: &str) -> String {
    format!(
        r#"[server]
addr = "127.0.0.1:0"
workers = 1
shutdown_grace_ms = 20000

[database]
url = "{database_url}"

[log]
level = "warn"

[notify]
enabled = true
amqp_url = "{amqp}"
queue = "{queue}"
dead_letter_exchange = "{queue}.dlx"
dead_letter_queue = "{queue}.dead"
viber_base_url = "{viber_url}"
reconnect_max_ms = 1000
"#
    )
}

/// Starts `tasklet run` with `config` (a file written in `dir`); returns
/// once it printed its address.
pub async fn spawn_daemon(
    binary: &std::path::Path,
    dir: &std::path::Path,
    config: &str,
) -> anyhow::Result<(Child, String)> {
    let path = dir.join(format!("{}.toml", unique_name("notify")));
    std::fs::write(&path, config)?;
    let mut child = Command::new(binary)
        .arg("--config")
        .arg(&path)
        .arg("run")
        .env("VIBER_AUTH_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let addr = wait_for_line(&mut child, "tasklet listening on http://").await?;
    Ok((child, addr))
}

/// Reads the child's stdout until a line starting with `prefix`; returns
/// the rest of it, and keeps draining stdout in the background.
pub async fn wait_for_line(child: &mut Child, prefix: &str) -> anyhow::Result<String> {
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.strip_prefix(prefix) {
                return Ok::<_, anyhow::Error>(rest.trim().to_owned());
            }
        }
        anyhow::bail!("the child exited before printing {prefix:?}")
    })
    .await??;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(found)
}

/// User + system CPU time of a process so far.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields overall, in clock ticks (100 per second on Linux).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Sends SIGTERM and waits for the child to exit.
pub async fn terminate(child: &mut Child) -> anyhow::Result<std::process::ExitStatus> {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
    }
    Ok(tokio::time::timeout(Duration::from_secs(60), child.wait()).await??)
}

/// Polls the notification table for rows it has not seen; records when
/// each message id was first seen committed.
pub struct Poller {
    store: Store,
    last_id: i64,
    pub seen: HashMap<String, i64>,
}

impl Poller {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            last_id: 0,
            seen: HashMap::new(),
        }
    }

    pub async fn poll(&mut self) -> anyhow::Result<()> {
        let mut conn = self.store.pg().await?;
        let rows: Vec<(i64, String)> = diesel_async::RunQueryDsl::load(
            n::notifications
                .filter(n::id.gt(self.last_id))
                .select((n::id, n::message_id))
                .order(n::id.asc())
                .limit(20_000),
            &mut *conn,
        )
        .await?;
        let now = tasklet_actors::store::models::now_us();
        for (id, message) in rows {
            self.last_id = self.last_id.max(id);
            self.seen.entry(message).or_insert(now);
        }
        Ok(())
    }
}

enum Consumer {
    Tasklet(PathBuf),
    Python(String, u16),
}

impl Consumer {
    fn name(&self) -> &'static str {
        match self {
            Consumer::Tasklet(_) => "tasklet",
            Consumer::Python(..) => "asyncio (aio-pika+aiohttp+asyncpg)",
        }
    }

    async fn spawn(
        &self,
        dir: &std::path::Path,
        db: &str,
        queue: &str,
        viber: &str,
    ) -> anyhow::Result<Child> {
        match self {
            Consumer::Tasklet(bin) => {
                let config = daemon_config(db, &amqp_url(), queue, viber);
                Ok(spawn_daemon(bin, dir, &config).await?.0)
            }
            Consumer::Python(script, prefetch) => {
                let mut child = Command::new("python3")
                    .arg(script)
                    .args(["--amqp-url", &amqp_url(), "--queue", queue, "--dsn", db])
                    .args(["--viber-url", viber, "--token", TOKEN])
                    .args(["--prefetch", &prefetch.to_string()])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .kill_on_drop(true)
                    .spawn()?;
                wait_for_line(&mut child, "ready").await?;
                Ok(child)
            }
        }
    }
}

async fn fresh_db() -> anyhow::Result<(TempPgDb, Store)> {
    let db = TempPgDb::create().await?;
    let settings = DatabaseSettings {
        url: db.url.clone(),
        ..DatabaseSettings::default()
    };
    let store = Store::connect(&settings, std::path::Path::new(".")).await?;
    store.migrate().await?;
    Ok((db, store))
}

async fn delete_queue(queue: &str) {
    let _ = transactions::delete_queues(&amqp_url(), queue).await;
}

fn ms(us: Option<i64>) -> f64 {
    us.map(|v| v as f64 / 1000.0).unwrap_or(f64::NAN)
}

#[allow(clippy::too_many_arguments)]
async fn run_phase(
    consumer: &Consumer,
    sim: &ViberSim,
    dir: &std::path::Path,
    phase: &str,
    count: usize,
    rate: f64,
    prefill: bool,
    poll_ms: u64,
    bar: &ProgressBar,
) -> anyhow::Result<Phase> {
    let base = bar.position();
    bar.set_message(format!("{}: {phase}", consumer.name()));
    let (db, store) = fresh_db().await?;
    let queue = unique_name("bench_notify");
    let prefix = unique_name("b");
    let before = sim.received().len();
    let args = TransactionsArgs::new(&amqp_url(), &queue, rate, count, &prefix);
    let mut poller = Poller::new(store.clone());

    let (mut child, report, started, cpu0) = if prefill {
        let report = transactions::publish(&args).await?;
        let child = consumer
            .spawn(dir, &db.url, &queue, &sim.base_url())
            .await?;
        let cpu0 = child.id().and_then(cpu_time).unwrap_or_default();
        (child, report, Instant::now(), cpu0)
    } else {
        // Declare the queue before the consumer so that both agree on it.
        transactions::publish(&TransactionsArgs::new(&amqp_url(), &queue, 0.0, 0, "x")).await?;
        let child = consumer
            .spawn(dir, &db.url, &queue, &sim.base_url())
            .await?;
        let cpu0 = child.id().and_then(cpu_time).unwrap_or_default();
        let started = Instant::now();
        let publishing = tokio::spawn({
            let args = args.clone();
            async move {
                transactions::publish(&args)
                    .await
                    .map_err(|e| e.to_string())
            }
        });
        while !publishing.is_finished() {
            poller.poll().await?;
            bar.set_position(base + poller.seen.len() as u64);
            tokio::time::sleep(Duration::from_millis(poll_ms)).await;
        }
        let report = publishing.await?.map_err(|e| anyhow::anyhow!(e))?;
        (child, report, started, cpu0)
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    while poller.seen.len() < count && Instant::now() < deadline {
        poller.poll().await?;
        bar.set_position(base + poller.seen.len() as u64);
        tokio::time::sleep(Duration::from_millis(poll_ms)).await;
    }
    let elapsed = started.elapsed();
    let cpu1 = child.id().and_then(cpu_time).unwrap_or_default();
    terminate(&mut child).await?;
    delete_queue(&queue).await;

    let published: HashMap<&str, i64> = report
        .published
        .iter()
        .map(|(id, at)| (id.as_str(), *at))
        .collect();
    let got: Vec<_> = sim.received().into_iter().skip(before).collect();
    let mut per_id: HashMap<&str, usize> = HashMap::new();
    let mut lat = Vec::new();
    let mut first_send = i64::MAX;
    for r in got.iter().filter(|r| r.status == 0) {
        if let Some(at) = published.get(r.tracking_data.as_str()) {
            *per_id.entry(r.tracking_data.as_str()).or_default() += 1;
            lat.push(r.received_at_us - at);
            first_send = first_send.min(r.received_at_us);
        }
    }
    let mut lags: Vec<i64> = poller
        .seen
        .iter()
        .filter_map(|(id, seen)| published.get(id.as_str()).map(|at| seen - at))
        .collect();
    lags.sort_unstable();
    let last_logged = poller.seen.values().copied().max().unwrap_or(0);
    let window_s = if prefill && first_send < i64::MAX {
        (last_logged - first_send) as f64 / 1e6
    } else {
        elapsed.as_secs_f64()
    };
    let cpu = cpu1.saturating_sub(cpu0);
    drop(db);
    let logged = poller.seen.len();
    let duplicates: usize = per_id.values().map(|&n| n.saturating_sub(1)).sum();
    Ok(Phase {
        summary: Summary::new(
            format!("{}: {phase}", consumer.name()),
            "messages",
            "publish → Viber",
            lat.iter().map(|&us| us as f64 / 1000.0).collect(),
            logged as u64,
            (count.saturating_sub(logged) + duplicates) as u64,
            window_s,
        ),
        consumer: consumer.name().to_owned(),
        phase: phase.to_owned(),
        messages: count,
        sent_once: per_id.values().filter(|&&n| n == 1).count(),
        duplicates,
        logged,
        log_lag_p50_ms: ms(quantile(&lags, 0.5)),
        log_lag_p99_ms: ms(quantile(&lags, 0.99)),
        cpu_ms_per_msg: cpu.as_secs_f64() * 1000.0 / count.max(1) as f64,
    })
}

pub async fn run(args: NotifyBench, _config: &Config) -> anyhow::Result<()> {
    let sim = ViberSim::start("127.0.0.1:0", Some(TOKEN.to_owned()), Mode::default()).await?;
    let dir = tempfile_dir()?;
    let mut consumers = vec![Consumer::Tasklet(std::env::current_exe()?)];
    if !args.python.is_empty() {
        consumers.push(Consumer::Python(args.python.clone(), args.python_prefetch));
    }
    let total = (args.count + args.drain_count) * consumers.len();
    let bar = progress(total as u64, "messages", args.json);
    let mut phases = Vec::new();
    for consumer in &consumers {
        let name = format!("{} msg/s", args.rate);
        phases.push(
            run_phase(
                consumer,
                &sim,
                &dir,
                &name,
                args.count,
                args.rate,
                false,
                args.poll_ms,
                &bar,
            )
            .await?,
        );
        phases.push(
            run_phase(
                consumer,
                &sim,
                &dir,
                "drain a full queue",
                args.drain_count,
                0.0,
                true,
                args.poll_ms,
                &bar,
            )
            .await?,
        );
    }
    bar.finish_and_clear();
    sim.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    if !args.json {
        println!(
            "{:<48} {:>9} {:>6} {:>7} {:>22} {:>10}",
            "phase", "sent once", "dups", "logged", "log lag p50 / p99 ms", "CPU ms/msg"
        );
        for p in &phases {
            println!(
                "{:<48} {:>9} {:>6} {:>7} {:>10.0} / {:>9.0} {:>10.3}",
                p.summary.label,
                p.sent_once,
                p.duplicates,
                p.logged,
                p.log_lag_p50_ms,
                p.log_lag_p99_ms,
                p.cpu_ms_per_msg
            );
        }
    }
    let summaries: Vec<&Summary> = phases.iter().map(|p| &p.summary).collect();
    print("notify", &phases, &summaries, args.json)
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(unique_name("tasklet-bench-notify"));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
