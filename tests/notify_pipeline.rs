//! The notify pipeline end to end against the machine's real RabbitMQ and
//! PostgreSQL: volume runs, faults (broker restart, database cut, Viber
//! errors, SIGKILL, SIGTERM) and poison messages.
//!
//! Every test takes [`BROKER`] first: one of them restarts the broker, which
//! would disturb any other running at that moment. Each uses its own queue
//! (deleted after) and a throw-away database.
//!
//! Sizes: the full-speed run publishes 10,000 messages; the 100 msg/s run
//! publishes `TASKLET_NOTIFY_RATE_COUNT` (default 2,000, i.e. 20 s; set it
//! to 10000 for the full 100 s run).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tasklet::bench::notify::{daemon_config, spawn_daemon, terminate, TOKEN};
use tasklet::config::{Config, Secrets};
use tasklet::daemon::Daemon;
use tasklet::sim::transactions::{
    self, delete_queues, publish_raw, ready_count, PublishReport, TransactionsArgs,
};
use tasklet::sim::viber::{Mode, ViberSim};
use tasklet::testing::{amqp_url, unique_name, TcpProxy, TempPgDb};
use tasklet_actors::notify::quantile;
use tasklet_actors::store::{DatabaseSettings, Store};

/// Serialises the tests of this binary (see the module doc).
static BROKER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One test's surroundings: database, queue, Viber simulator.
struct Rig {
    db: TempPgDb,
    store: Store,
    queue: String,
    sim: ViberSim,
    dir: tempfile::TempDir,
}

impl Rig {
    async fn new() -> Rig {
        wait_for_broker().await;
        let db = TempPgDb::create().await.unwrap();
        let store = Store::connect(
            &DatabaseSettings {
                url: db.url.clone(),
                ..DatabaseSettings::default()
            },
            std::path::Path::new("."),
        )
        .await
        .unwrap();
        store.migrate().await.unwrap();
        let sim = ViberSim::start("127.0.0.1:0", Some(TOKEN.to_owned()), Mode::default())
            .await
            .unwrap();
        Rig {
            db,
            store,
            queue: unique_name("notify_t"),
            sim,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn config_text(&self, database_url: &str) -> String {
        daemon_config(database_url, &amqp_url(), &self.queue, &self.sim.base_url())
    }

    fn config(&self, database_url: &str) -> Config {
        Config::parse(&self.config_text(database_url), "test", Vec::new()).unwrap()
    }

    async fn daemon(&self) -> Daemon {
        Daemon::start(self.config(&self.db.url), secrets())
            .await
            .unwrap()
    }

    fn publisher(&self, rate: f64, count: usize) -> TransactionsArgs {
        TransactionsArgs::new(&amqp_url(), &self.queue, rate, count, &unique_name("m"))
    }

    /// Declares the queue (as the consumer does) so that publishing before
    /// a consumer exists loses nothing.
    async fn declare(&self) {
        transactions::publish(&self.publisher(0.0, 0))
            .await
            .unwrap();
    }

    /// Accepted sends per message id of `report`.
    fn sends(&self, report: &PublishReport) -> HashMap<String, usize> {
        let ids: std::collections::HashSet<&str> =
            report.published.iter().map(|(id, _)| id.as_str()).collect();
        let mut sends = HashMap::new();
        for r in self.sim.received() {
            if r.status == 0 && ids.contains(r.tracking_data.as_str()) {
                *sends.entry(r.tracking_data).or_insert(0) += 1;
            }
        }
        sends
    }

    async fn logged(&self) -> i64 {
        use diesel::prelude::*;
        use tasklet_actors::store::schema::notifications::dsl as n;
        let mut conn = self.store.pg().await.unwrap();
        diesel_async::RunQueryDsl::get_result(n::notifications.count(), &mut *conn)
            .await
            .unwrap()
    }

    /// Waits until every message of `report` reached the simulator and is
    /// logged.
    async fn wait_done(&self, report: &PublishReport, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let n = report.published.len();
        loop {
            let sent = self.sends(report).len();
            let logged = self.logged().await as usize;
            if sent == n && logged == n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out: {sent} of {n} sent, {logged} logged"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sent at least once each, logged once each; returns the duplicates.
    async fn check_all(&self, report: &PublishReport) -> usize {
        let sends = self.sends(report);
        let n = report.published.len();
        assert_eq!(sends.len(), n, "every message reaches Viber");
        assert_eq!(self.logged().await as usize, n, "one row per message");
        sends.values().map(|c| c - 1).sum()
    }

    async fn queue_is_empty(&self) {
        let ready = ready_count(&amqp_url(), &self.queue).await.unwrap();
        assert_eq!(ready, 0, "the queue ends empty");
    }

    /// publish → Viber p50/p99 in ms.
    fn latency(&self, report: &PublishReport) -> (f64, f64) {
        let at: HashMap<&str, i64> = report
            .published
            .iter()
            .map(|(id, t)| (id.as_str(), *t))
            .collect();
        let mut lat: Vec<i64> = self
            .sim
            .received()
            .iter()
            .filter(|r| r.status == 0)
            .filter_map(|r| {
                at.get(r.tracking_data.as_str())
                    .map(|t| r.received_at_us - t)
            })
            .collect();
        lat.sort_unstable();
        let ms = |q| quantile(&lat, q).unwrap_or(0) as f64 / 1000.0;
        (ms(0.5), ms(0.99))
    }

    async fn cleanup(self) {
        self.sim.stop().await;
        delete_queues(&amqp_url(), &self.queue).await.unwrap();
    }
}

fn secrets() -> Secrets {
    Secrets {
        viber_auth_token: Some(TOKEN.to_owned()),
        debug_token: None,
    }
}

/// Waits until the broker accepts connections (after another test restarted it).
async fn wait_for_broker() {
    let deadline = Instant::now() + Duration::from_secs(60);
    while lapin::Connection::connect(&amqp_url(), Default::default())
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "RabbitMQ unreachable");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn rabbitmqctl(arg: &str) {
    let status = tokio::process::Command::new("rabbitmqctl")
        .arg(arg)
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(status.success(), "rabbitmqctl {arg}");
}

/// When the messages are published: while the daemon consumes, or all of
/// them before it starts (it then drains a full queue).
#[derive(PartialEq)]
enum Publish {
    WhileConsuming,
    BeforeStart,
}

async fn volume(rate: f64, count: usize, when: Publish) {
    let _broker = BROKER.lock().await;
    let rig = Rig::new().await;
    let (daemon, report) = if when == Publish::BeforeStart {
        rig.declare().await;
        let report = transactions::publish(&rig.publisher(rate, count))
            .await
            .unwrap();
        (rig.daemon().await, report)
    } else {
        let daemon = rig.daemon().await;
        let report = transactions::publish(&rig.publisher(rate, count))
            .await
            .unwrap();
        (daemon, report)
    };
    rig.wait_done(&report, Duration::from_secs(300)).await;
    let notify = daemon_stats(&daemon).await;
    let consumer = consumer_stats(&daemon).await;
    daemon.shutdown().await.unwrap();
    // Acks of many commits overlap when the queue is full; out of order, a
    // single ack after a `multiple` one covering it closes the channel.
    assert_eq!(consumer.connects, 1, "one channel throughout: {consumer:?}");
    assert_eq!(consumer.stale_acks, 0, "no ack refused: {consumer:?}");
    let dups = rig.check_all(&report).await;
    assert_eq!(dups, 0, "sent exactly once each");
    rig.queue_is_empty().await;
    let (p50, p99) = rig.latency(&report);
    eprintln!(
        "notify volume: {count} messages at {} msg/s: publish→Viber p50 {p50:.2} ms p99 {p99:.2} ms; log lag p50 {:.0} ms p99 {:.0} ms; published in {:.1} s",
        if rate > 0.0 { rate.to_string() } else { "full speed".into() },
        notify.0, notify.1,
        report.elapsed.as_secs_f64()
    );
    rig.cleanup().await;
}

/// Log lag (publish → commit) p50/p99 in ms from the daemon's notification log.
async fn daemon_stats(daemon: &Daemon) -> (f64, f64) {
    let stats = notify(daemon).log_stats().await.unwrap();
    let ms = |q| stats.lag_quantile_us(q).unwrap_or(0) as f64 / 1000.0;
    (ms(0.5), ms(0.99))
}

fn notify(daemon: &Daemon) -> &tasklet::pipelines::notify::NotifyHandle {
    daemon.handles().notify.as_ref().expect("notify is enabled")
}

async fn consumer_stats(daemon: &Daemon) -> tasklet_actors::notify::ConsumerStats {
    notify(daemon).consumer_stats().await.unwrap()
}

#[actix_rt::test]
#[ignore = "needs RabbitMQ and PostgreSQL"]
async fn ten_thousand_at_full_speed_each_sent_and_logged_once() {
    volume(0.0, 10_000, Publish::WhileConsuming).await;
}

#[actix_rt::test]
#[ignore = "needs RabbitMQ and PostgreSQL"]
async fn a_full_queue_of_ten_thousand_drains_on_one_channel() {
    volume(0.0, 10_000, Publish::BeforeStart).await;
}

#[actix_rt::test]
#[ignore = "needs RabbitMQ and PostgreSQL"]
async fn at_100_per_second_each_sent_and_logged_once() {
    let count = std::env::var("TASKLET_NOTIFY_RATE_COUNT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    volume(100.0, count, Publish::WhileConsuming).await;
}

#[actix_rt::test]
#[ignore = "needs RabbitMQ and PostgreSQL"]
async fn poison_messages_go_to_the_dead_letter_queue_with_a_reason() {
    let _broker = BROKER.lock().await;
    let rig = Rig::new().await;
    rig.declare().await;
    publish_raw(&amqp_url(), &rig.queue, b"\xffnot json")
        .await
        .unwrap();
    let mut broken = serde_json::to_value(transactions::contract_message("p", 1)).unwrap();
    broken["amount"] = serde_json::json!("lots");
    publish_raw(&amqp_url(), &rig.queue, broken.to_string().as_bytes())
        .await
        .unwrap();
    let daemon = rig.daemon().await;
    let report = transactions::publish(&rig.publisher(0.0, 10))
        .await
        .unwrap();
    rig.wait_done(&report, Duration::from_secs(60)).await;
    daemon.shutdown().await.unwrap();
    assert_eq!(rig.check_all(&report).await, 0);
    rig.queue_is_empty().await;

    // Both poison messages wait in the dead-letter queue with their reason.
    let conn = lapin::Connection::connect(&amqp_url(), Default::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let mut reasons = Vec::new();
    for _ in 0..2 {
        let got = ch
            .basic_get(
                format!("{}.dead", rig.queue).as_str().into(),
                lapin::options::BasicGetOptions { no_ack: true },
            )
            .await
            .unwrap()
            .expect("a dead-lettered message");
        let headers = got.delivery.properties.headers().clone().unwrap();
        let reason = match headers.inner().get("x-tasklet-reason") {
            Some(lapin::types::AMQPValue::LongString(s)) => s.to_string(),
            other => panic!("no reason header: {other:?}"),
        };
        reasons.push(reason);
    }
    assert!(reasons[0].contains("not valid JSON"), "{reasons:?}");
    assert!(reasons[1].contains("field amount"), "{reasons:?}");
    let _ = conn.close(200, "bye".into()).await;
    rig.cleanup().await;
}

#[actix_rt::test]
#[ignore = "needs RabbitMQ and PostgreSQL"]
async fn broker_restart_mid_stream_loses_nothing() {
    let _broker = BROKER.lock().await;
    let rig = Rig::new().await;
    let daemon = rig.daemon().await;
    let publishing = tokio::spawn({
        let args = rig.publisher(200.0, 3_000);
        async move {
            transactions::publish(&args)
                .await
                .map_err(|e| e.to_string())
        }
    });
    tokio::time::sleep(Duration::from_secs(4)).await;
    rabbitmqctl("stop_app").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    rabbitmqctl("start_app").await;
    let report = publishing.await.unwrap().unwrap();
    rig.wait_done(&report, Duration::from_secs(180)).await;
    let stats = consumer_stats(&daemon).await;
    daemon.shutdown().await.unwrap();
    let dups = rig.check_all(&report).await;
    rig.queue_is_empty().await;
    eprintln!(
        "broker restart: {} messages ({} published again), {dups} duplicate sends, consumer connected {} times",
        report.published.len(),
        report.republished,
        stats.connects
    );
    assert!(stats.connects >= 2, "the consumer reconnected");
    assert_eq!(dups, 0, "no duplicate sends");
    rig.cleanup().await;
}

#[actix_rt::test]
#[ignore = "needs RabbitMQ and PostgreSQL"]
async fn database_unreachable_for_10_s_acks_nothing_and_loses_nothing() {
    let _broker = BROKER.lock().await;
    let rig = Rig::new().await;
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap())
        .await
        .unwrap();
    let via_proxy = rig
        .db
        .url
        .replace("127.0.0.1:5432", &proxy.addr.to_string());
    assert_ne!(
        via_proxy, rig.db.url,
        "the test database is on 127.0.0.1:5432"
    );
    let daemon = Daemon::start(rig.config(&via_proxy), secrets())
        .await
        .unwrap();
    let publishing = tokio::spawn({
        let args = rig.publisher(200.0, 3_000);
        async move {
            transactions::publish(&args)
                .await
                .map_err(|e| e.to_string())
        }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.cut();
    // A commit already on the wire may still land: let it settle first.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let acked_at_cut = consumer_stats(&daemon).await.acked;
    tokio::time::sleep(Duration::from_secs(9)).await;
    let acked_before_restore = consumer_stats(&daemon).await.acked;
    proxy.restore();
    assert_eq!(
        acked_at_cut, acked_before_restore,
        "nothing is acked while the database is away"
    );
    let report = publishing.await.unwrap().unwrap();
    rig.wait_done(&report, Duration::from_secs(180)).await;
    daemon.shutdown().await.unwrap();
    assert_eq!(rig.check_all(&report).await, 0, "no duplicate sends");
    rig.queue_is_empty().await;
    rig.cleanup().await;
}

#[actix_rt::test]
#[ignore = "needs RabbitMQ and PostgreSQL"]
async fn viber_5xx_then_status_12_for_a_while_is_retried_through() {
    let _broker = BROKER.lock().await;
    let rig = Rig::new().await;
    let daemon = rig.daemon().await;
    rig.sim.set_mode(Mode {
        fail_for_ms: 2_000,
        fail_with: "http5xx".into(),
        ..Mode::default()
    });
    let publishing = tokio::spawn({
        let args = rig.publisher(200.0, 1_500);
        async move {
            transactions::publish(&args)
                .await
                .map_err(|e| e.to_string())
        }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    rig.sim.set_mode(Mode {
        fail_for_ms: 2_000,
        fail_with: "status12".into(),
        ..Mode::default()
    });
    let report = publishing.await.unwrap().unwrap();
    rig.wait_done(&report, Duration::from_secs(120)).await;
    daemon.shutdown().await.unwrap();
    assert_eq!(rig.check_all(&report).await, 0, "no duplicate sends");
    let refused: Vec<i64> = rig
        .sim
        .received()
        .iter()
        .map(|r| r.status)
        .filter(|s| *s != 0)
        .collect();
    assert!(refused.contains(&-1), "some requests got HTTP 503");
    assert!(refused.contains(&12), "some requests got status 12");
    let retried = tasklet_actors::notify::actions::list(
        &rig.store,
        tasklet_actors::notify::actions::ListFilter {
            state: Some("sent".into()),
            limit: 1000,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .iter()
    .filter(|r| r.attempts > 1)
    .count();
    assert!(retried > 0, "the log records the attempts");
    rig.queue_is_empty().await;
    rig.cleanup().await;
}

/// Publishes 3,000 messages at 500/s to a daemon that `stop` ends three
/// seconds in (its exit status checked by `stopped`), then lets a second
/// daemon take over until every message is sent; returns how many messages
/// were published and how many of them were sent twice.
async fn restart_mid_stream(
    stop: impl AsyncFnOnce(&mut tokio::process::Child) -> std::process::ExitStatus,
    stopped: impl FnOnce(std::process::ExitStatus),
) -> (usize, usize) {
    let _broker = BROKER.lock().await;
    let rig = Rig::new().await;
    rig.declare().await;
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_tasklet"));
    let config = rig.config_text(&rig.db.url);
    let (mut child, _) = spawn_daemon(bin, rig.dir.path(), &config).await.unwrap();
    let publishing = tokio::spawn({
        let args = rig.publisher(500.0, 3_000);
        async move {
            transactions::publish(&args)
                .await
                .map_err(|e| e.to_string())
        }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    stopped(stop(&mut child).await);
    let (mut second, _) = spawn_daemon(bin, rig.dir.path(), &config).await.unwrap();
    let report = publishing.await.unwrap().unwrap();
    rig.wait_done(&report, Duration::from_secs(120)).await;
    assert!(terminate(&mut second).await.unwrap().success());
    let dups = rig.check_all(&report).await;
    rig.queue_is_empty().await;
    rig.cleanup().await;
    (report.published.len(), dups)
}

#[actix_rt::test]
#[ignore = "needs RabbitMQ and PostgreSQL"]
async fn sigterm_mid_stream_stops_cleanly_with_zero_duplicates() {
    let (_, dups) = restart_mid_stream(
        async |child| terminate(child).await.unwrap(),
        |status| assert!(status.success(), "SIGTERM exits 0: {status:?}"),
    )
    .await;
    assert_eq!(dups, 0, "zero duplicates");
}

#[actix_rt::test]
#[ignore = "needs RabbitMQ and PostgreSQL"]
async fn sigkill_mid_stream_then_restart_sends_everything() {
    let (published, dups) = restart_mid_stream(
        async |child| {
            child.start_kill().unwrap();
            child.wait().await.unwrap()
        },
        |status| assert!(!status.success(), "SIGKILL: {status:?}"),
    )
    .await;
    eprintln!(
        "SIGKILL: {published} messages, {dups} sent twice (sent to Viber, killed before the row committed)"
    );
    assert!(
        dups <= 256,
        "duplicates are bounded by the prefetch window: {dups}"
    );
}

#[actix_rt::test]
#[ignore = "needs RabbitMQ and PostgreSQL"]
async fn a_permanent_viber_status_is_logged_as_failed_without_retries() {
    let _broker = BROKER.lock().await;
    let rig = Rig::new().await;
    rig.sim.set_mode(Mode {
        permanent: 1.0,
        ..Mode::default()
    });
    let daemon = rig.daemon().await;
    let report = transactions::publish(&rig.publisher(0.0, 20))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while rig.logged().await < 20 {
        assert!(Instant::now() < deadline, "not all logged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    daemon.shutdown().await.unwrap();
    let rows = tasklet_actors::notify::actions::list(
        &rig.store,
        tasklet_actors::notify::actions::ListFilter {
            limit: 100,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(rows.len(), report.published.len());
    for r in &rows {
        assert_eq!(r.state, "failed");
        assert_eq!(r.viber_status, Some(6));
        assert_eq!(r.attempts, 1, "a permanent status is not retried");
        assert!(
            r.error
                .as_deref()
                .is_some_and(|e| e.starts_with("6 receiverNotSubscribed")),
            "{:?}",
            r.error
        );
    }
    // One request per message: nothing retried.
    assert_eq!(rig.sim.received().len(), 20);
    rig.queue_is_empty().await;
    rig.cleanup().await;
}
