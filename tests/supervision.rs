//! Supervision, shown by fault injection: in each pipeline one actor is
//! made to panic mid-stream, and the test checks that it restarted (its
//! `tasklet_actor_restarts_total` moved by one, the reason is in the log)
//! and that the pipeline went on and lost nothing: watermark and beard
//! serve the requests after the panicked one, odds records every change
//! the simulator made, notify sends and logs every message exactly once.
//!
//! The panics come from `tasklet_actors::supervise::inject_panics`, which
//! exists only in builds with debug assertions (what `cargo test` builds),
//! hence the `cfg` below. Each test arms its own fault point, so the tests
//! of this binary may run in parallel; every metric check is a difference
//! between two scrapes on the series of the actor the test made panic.
#![cfg(debug_assertions)]

mod beard_support;
mod odds_support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use tasklet::config::{Config, LogFormat, LogSettings, Secrets};
use tasklet::daemon::Daemon;
use tasklet::sim::bookmaker::Format;
use tasklet::telemetry::TelemetryGuard;
use tasklet_actors::store::models::now_us;
use tasklet_actors::supervise::inject_panics;

/// The folder of the JSON log every test of this binary writes to.
fn log_dir() -> &'static Path {
    static LOGS: OnceLock<(PathBuf, TelemetryGuard)> = OnceLock::new();
    &LOGS
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap().keep();
            let guard = tasklet::telemetry::init(&LogSettings {
                level: "warn,tasklet=info,tasklet_actors=info".to_owned(),
                format: LogFormat::Json,
                dir: dir.display().to_string(),
            })
            .unwrap();
            (dir, guard)
        })
        .0
}

/// The `reason` of every "actor panicked" line `actor` logged so far.
fn panics_logged(actor: &str) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(log_dir()).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        for line in text.lines() {
            let Ok(line) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let f = &line["fields"];
            let message = f["message"].as_str().unwrap_or("");
            if message.contains("panicked") && f["actor"] == actor {
                out.push(f["reason"].as_str().unwrap_or("").to_owned());
            }
        }
    }
    out
}

/// Asserts that `actor` logged one panic, for the fault injected at `site`.
fn assert_panic_logged(actor: &str, site: &str) {
    let reasons = panics_logged(actor);
    assert_eq!(
        reasons,
        vec![format!("injected fault at {site}")],
        "the restart of {actor} and its reason are logged"
    );
}

async fn scrape(addr: SocketAddr) -> String {
    let response = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// `tasklet_actor_restarts_total{actor}` in a scrape (absent counts as 0).
fn restarts(scrape: &str, actor: &str) -> f64 {
    let series = format!("tasklet_actor_restarts_total{{actor=\"{actor}\"}} ");
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

// ---------------------------------------------------------------- watermark

#[actix_rt::test]
async fn watermark_compositor_panics_and_the_next_images_are_stamped() {
    log_dir();
    let repo = beard_support::repo();
    let photo = std::fs::read(repo.join("tests/data/pier_1980x1280.jpg")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.server.addr = "127.0.0.1:0".into();
    config.base_dir = dir.path().to_path_buf();
    config.database.url = format!("sqlite://{}", dir.path().join("t.db").display());
    config.watermark.enabled = true;
    // One worker: unsupervised, its panic would leave no pool at all.
    config.pools.compositor = 1;
    let daemon = Daemon::start(config, Secrets::default()).await.unwrap();
    let client = reqwest::Client::new();
    let stamp = || async {
        client
            .post(format!("http://{}/v1/watermark", daemon.addr))
            .header("content-type", "image/jpeg")
            .body(photo.clone())
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    let before = scrape(daemon.addr).await;
    assert_eq!(stamp().await, 200);
    inject_panics("Compositor.Stamp", 1);
    assert_eq!(stamp().await, 500, "the image being stamped gets an error");
    for _ in 0..3 {
        assert_eq!(stamp().await, 200, "the images after it are stamped");
    }
    let after = scrape(daemon.addr).await;
    assert_eq!(
        restarts(&after, "Compositor") - restarts(&before, "Compositor"),
        1.0
    );
    assert_panic_logged("Compositor", "Compositor.Stamp");
    daemon.shutdown().await.unwrap();
}

// -------------------------------------------------------------------- beard

#[actix_rt::test]
async fn beard_catalog_panics_and_the_next_requests_are_dressed() {
    log_dir();
    let s = beard_support::start(2, |_| {}).await;
    let before = scrape(s.daemon.addr).await;
    assert_eq!(s.dress("full").await.status(), 200);
    inject_panics("BeardCatalog.GetBeard", 1);
    assert_eq!(
        s.dress("full").await.status(),
        500,
        "the request the catalog panicked with gets an error"
    );
    for _ in 0..3 {
        assert_eq!(s.dress("full").await.status(), 200, "the next are served");
    }
    let after = scrape(s.daemon.addr).await;
    assert_eq!(
        restarts(&after, "BeardCatalog") - restarts(&before, "BeardCatalog"),
        1.0
    );
    assert_panic_logged("BeardCatalog", "BeardCatalog.GetBeard");
    s.stop().await;
}

// --------------------------------------------------------------------- odds

#[actix_rt::test]
async fn odds_differ_panics_mid_stream_and_every_change_is_recorded() {
    use odds_support::*;
    log_dir();
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim(Format::Favbet, 10, 21).await;
    let config = config(dir.path(), None, vec![site_for("favbet", &sim)]);
    let daemon = start_daemon(config).await;
    let before = scrape(daemon.addr).await;
    let started = now_us();
    let (db, db_task) = follow_db(daemon.store.clone());
    // Mid-stream: once the games are watched and changes flow.
    tokio::time::sleep(Duration::from_secs(6)).await;
    inject_panics("Differ.Snapshot", 2);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let ended = now_us();
    // Let the last polls reach the database.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    db_task.abort();
    let after = scrape(daemon.addr).await;
    let rows = db.lock().unwrap().rows.clone();
    let s = score(
        "favbet",
        &truth(&sim).await,
        &polls(&sim).await,
        &rows,
        started + 3_000_000,
        ended - 2 * POLL_MS * 1_000,
    );
    eprintln!("{}", s.report());
    for m in &s.misses {
        eprintln!("  missed: {m}");
    }
    for r in &s.false_rows {
        eprintln!("  not made by the simulator: {r}");
    }
    assert!(s.visible > 10, "too few changes to judge: {}", s.visible);
    assert_eq!(s.recall_visible(), 1.0, "every change a poll saw is stored");
    assert_eq!(s.precision(), 1.0, "and nothing else");
    assert_eq!(
        restarts(&after, "Differ") - restarts(&before, "Differ"),
        2.0
    );
    let reasons = panics_logged("Differ");
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons
        .iter()
        .all(|r| r == "injected fault at Differ.Snapshot"));
    daemon.shutdown().await.unwrap();
    sim.stop().await;
}

// ------------------------------------------------------------------- notify

#[actix_rt::test]
#[ignore = "needs RabbitMQ and PostgreSQL"]
async fn notify_log_panics_mid_stream_and_every_message_is_sent_and_logged_once() {
    use tasklet::bench::notify::{daemon_config, TOKEN};
    use tasklet::sim::transactions::{self, delete_queues, ready_count, TransactionsArgs};
    use tasklet::sim::viber::{Mode, ViberSim};
    use tasklet::testing::{amqp_url, unique_name, TempPgDb};
    use tasklet_actors::store::{DatabaseSettings, Store};

    log_dir();
    let db = TempPgDb::create().await.unwrap();
    let store = Store::connect(
        &DatabaseSettings {
            url: db.url.clone(),
            ..DatabaseSettings::default()
        },
        Path::new("."),
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    let sim = ViberSim::start("127.0.0.1:0", Some(TOKEN.to_owned()), Mode::default())
        .await
        .unwrap();
    let queue = unique_name("notify_sup");
    let text = daemon_config(&db.url, &amqp_url(), &queue, &sim.base_url());
    let config = Config::parse(&text, "test", Vec::new()).unwrap();
    let secrets = Secrets {
        viber_auth_token: Some(TOKEN.to_owned()),
        ..Secrets::default()
    };
    let daemon = Daemon::start(config, secrets).await.unwrap();
    let before = scrape(daemon.addr).await;
    let logged = || async {
        use diesel::prelude::*;
        use tasklet_actors::store::schema::notifications::dsl as n;
        let mut conn = store.pg().await.unwrap();
        let count: i64 =
            diesel_async::RunQueryDsl::get_result(n::notifications.count(), &mut *conn)
                .await
                .unwrap();
        count as usize
    };

    // 400 messages at 200/s; the log panics once a few dozen are logged.
    let n = 400;
    let args = TransactionsArgs::new(&amqp_url(), &queue, 200.0, n, &unique_name("m"));
    let publisher = tokio::spawn(async move { transactions::publish(&args).await.unwrap() });
    let deadline = Instant::now() + Duration::from_secs(60);
    while logged().await < 40 {
        assert!(
            Instant::now() < deadline,
            "the first messages were not logged"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    inject_panics("NotificationLog.Outcome", 1);
    let report = publisher.await.unwrap();
    assert_eq!(report.published.len(), n);

    let ids: std::collections::HashSet<&str> =
        report.published.iter().map(|(id, _)| id.as_str()).collect();
    let sends = || {
        let mut sends: HashMap<String, usize> = HashMap::new();
        for r in sim.received() {
            if r.status == 0 && ids.contains(r.tracking_data.as_str()) {
                *sends.entry(r.tracking_data).or_default() += 1;
            }
        }
        sends
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (sent, logged) = (sends().len(), logged().await);
        if sent == n && logged == n {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "timed out: {sent} of {n} sent, {logged} logged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = scrape(daemon.addr).await;
    daemon.shutdown().await.expect("the stop is clean");

    let sends = sends();
    assert_eq!(sends.len(), n, "every message reaches Viber");
    let dups: usize = sends.values().map(|c| c - 1).sum();
    assert_eq!(dups, 0, "each is sent once");
    assert_eq!(logged().await, n, "and logged once");
    let ready = ready_count(&amqp_url(), &queue).await.unwrap();
    assert_eq!(ready, 0, "the queue ends empty: every delivery acked");
    assert_eq!(
        restarts(&after, "NotificationLog") - restarts(&before, "NotificationLog"),
        1.0
    );
    assert_panic_logged("NotificationLog", "NotificationLog.Outcome");
    sim.stop().await;
    delete_queues(&amqp_url(), &queue).await.unwrap();
}
