//! `/metrics` and `/debug/profile` on an in-process daemon: after known
//! traffic on each pipeline, its counters (and those of every actor on the
//! way) moved by the right amounts.
//!
//! The metrics recorder is global to the test process and the tests run in
//! parallel, so every check is a difference between two scrapes, on series
//! no other test of this file moves (the compositor pool is shared by the
//! watermark and beard pipelines, so one test drives both).

mod beard_support;
mod odds_support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use tasklet::config::{Config, Secrets};
use tasklet::daemon::Daemon;
use tasklet::sim::bookmaker::{Bookmaker, BookmakerArgs, Format};
use tasklet_actors::store::models::NewNotification;
use tasklet_actors::store::{BatchWriter, Flush, Insert};

fn config(dir: &std::path::Path) -> Config {
    let mut config = Config::default();
    config.server.addr = "127.0.0.1:0".into();
    config.base_dir = dir.to_path_buf();
    config
}

fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// `GET /metrics` as text.
async fn scrape(addr: std::net::SocketAddr) -> String {
    let response = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// How much `series` grew from `before` to `after` (absent counts as 0).
fn delta(before: &str, after: &str, series: &str) -> f64 {
    metric(after, series).unwrap_or(0.0) - metric(before, series).unwrap_or(0.0)
}

fn actor(name: &str) -> String {
    format!("tasklet_actor_messages_total{{actor=\"{name}\"}}")
}

fn depth(name: &str) -> String {
    format!("tasklet_actor_mailbox_depth{{actor=\"{name}\"}}")
}

#[actix_rt::test]
async fn watermark_and_beard_requests_move_their_counters() {
    let repo = beard_support::repo();
    let s = beard_support::start(2, |c| c.watermark.enabled = true).await;
    let addr = s.daemon.addr;
    let before = scrape(addr).await;

    // Two JPEGs and a PNG: the path each took is in X-Tasklet-Path.
    let uploads = [
        (
            "image/jpeg",
            std::fs::read(repo.join("tests/data/pier_1980x1280.jpg")).unwrap(),
        ),
        (
            "image/jpeg",
            std::fs::read(repo.join("tests/data/boats_1980x1280.jpg")).unwrap(),
        ),
        ("image/png", beard_support::face("astronaut_512.png")),
    ];
    let mut paths: HashMap<String, f64> = HashMap::new();
    for (content_type, body) in uploads.iter().cloned() {
        let response = s
            .client
            .post(format!("http://{addr}/v1/watermark"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let path = response.headers()["x-tasklet-path"]
            .to_str()
            .unwrap()
            .to_owned();
        *paths.entry(path).or_default() += 1.0;
    }
    let dressed = 2;
    for _ in 0..dressed {
        let response = s.dress("full").await;
        assert_eq!(response.status(), 200);
    }

    let after = scrape(addr).await;
    for (path, n) in &paths {
        let series = format!("tasklet_watermark_images_total{{path=\"{path}\"}}");
        assert_eq!(delta(&before, &after, &series), *n, "{series}\n{after}");
        let latency = format!("tasklet_watermark_stamp_seconds_count{{path=\"{path}\"}}");
        assert_eq!(delta(&before, &after, &latency), *n, "{latency}");
    }
    let stamps = uploads.len() as f64;
    let dressed = dressed as f64;
    assert_eq!(
        delta(
            &before,
            &after,
            "tasklet_watermark_stamps_total{outcome=\"ok\"}"
        ),
        stamps
    );
    assert_eq!(
        delta(
            &before,
            &after,
            "tasklet_beard_requests_total{outcome=\"ok\"}"
        ),
        dressed
    );
    assert_eq!(
        delta(&before, &after, "tasklet_beard_dress_total{outcome=\"ok\"}"),
        dressed
    );
    // One pool stamps and dresses; the catalog answers one GetBeard per dress.
    assert_eq!(
        delta(&before, &after, &actor("Compositor")),
        stamps + dressed,
        "{after}"
    );
    assert_eq!(
        delta(
            &before,
            &after,
            "tasklet_actor_handle_seconds_count{actor=\"Compositor\"}"
        ),
        stamps + dressed
    );
    assert_eq!(delta(&before, &after, &actor("BeardCatalog")), dressed);
    // Everything sent was answered: nothing waits.
    assert_eq!(metric(&after, &depth("Compositor")), Some(0.0), "{after}");
    assert_eq!(metric(&after, &depth("BeardCatalog")), Some(0.0), "{after}");
    s.stop().await;
}

#[actix_rt::test]
async fn odds_counters_match_the_simulator_and_the_database() {
    // Long games: none finishes or vanishes during the test, so every poll
    // delivers a snapshot.
    let sim = Bookmaker::start(BookmakerArgs {
        games: 3,
        format: Format::Html,
        addr: "127.0.0.1:0".to_owned(),
        change_every_ms: 500,
        game_length_s: 3_600,
        prematch_ms: 0,
        finished_ms: 3_000,
        seed: 8,
        workers: 1,
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let site = "observed";
    let config = odds_support::config(dir.path(), None, vec![odds_support::site_for(site, &sim)]);
    let daemon = odds_support::start_daemon(config).await;
    let addr = daemon.addr;
    let store = daemon.store.clone();
    let before = scrape(addr).await;
    let polls = format!("tasklet_odds_polls_total{{site=\"{site}\",outcome=\"ok\"}}");
    // At least two polls of each game, so that the Differ compares.
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if delta(&before, &scrape(addr).await, &polls) >= 9.0 {
            break;
        }
    }
    let during = scrape(addr).await;
    assert!(delta(&before, &during, &polls) >= 9.0, "{during}");
    assert!(delta(&before, &during, &actor("Fetcher")) > 0.0);

    // Stopped, every poll has ended and every change is committed: the
    // counters are final and the same text `/metrics` serves.
    daemon.shutdown().await.unwrap();
    let after = tasklet::telemetry::render_metrics();
    let served: usize = odds_support::polls(&sim).await.values().map(Vec::len).sum();
    let ok = delta(&before, &after, &polls);
    assert_eq!(ok, served as f64, "polls the simulator served\n{after}");
    for outcome in ["gone", "failed"] {
        let series = format!("tasklet_odds_polls_total{{site=\"{site}\",outcome=\"{outcome}\"}}");
        assert_eq!(delta(&before, &after, &series), 0.0, "{series}");
    }
    // Each poll: one Fetcher step, one page parsed, one snapshot diffed
    // and swapped into the Cache.
    for name in ["Parser", "Differ", "Cache"] {
        assert_eq!(delta(&before, &after, &actor(name)), ok, "{name}\n{after}");
    }
    // And each of the three Fetchers handled StopWatching at shutdown.
    assert_eq!(delta(&before, &after, &actor("Fetcher")), ok + 3.0);
    // The Persister gets the first snapshot of each game and every poll
    // that changed something; one message more at shutdown (PersistAll).
    let persisted = delta(&before, &after, &actor("Persister"));
    assert!(
        persisted >= 3.0 + 1.0 && persisted <= ok + 1.0,
        "{persisted}"
    );
    let changes = delta(&before, &after, "tasklet_odds_changes_total");
    let rows = tasklet_actors::odds::queries::changes(
        &store,
        tasklet_actors::odds::queries::ChangeFilter {
            site: Some(site.to_owned()),
            event: None,
            since_us: None,
            after_id: None,
            limit: 1_000_000,
        },
    )
    .await
    .unwrap()
    .len();
    assert_eq!(changes, rows as f64, "changes counted = rows stored");
    for name in ["Parser", "Differ", "Cache", "Persister", "BatchWriter"] {
        assert_eq!(metric(&after, &depth(name)), Some(0.0), "{name}");
    }
    sim.stop().await;
}

#[actix_rt::test]
#[ignore = "needs RabbitMQ and PostgreSQL on 127.0.0.1"]
async fn notify_messages_move_their_counters() {
    use tasklet::bench::notify::{daemon_config, TOKEN};
    use tasklet::sim::transactions::{self, TransactionsArgs};
    use tasklet::sim::viber::{Mode, ViberSim};
    use tasklet::testing::{amqp_url, unique_name, TempPgDb};

    let db = TempPgDb::create().await.unwrap();
    let viber = ViberSim::start("127.0.0.1:0", Some(TOKEN.to_owned()), Mode::default())
        .await
        .unwrap();
    let queue = unique_name("observe");
    let text = daemon_config(&db.url, &amqp_url(), &queue, &viber.base_url());
    let secrets = Secrets {
        viber_auth_token: Some(TOKEN.to_owned()),
        debug_token: None,
    };
    let daemon = Daemon::start(Config::parse(&text, "test", Vec::new()).unwrap(), secrets)
        .await
        .unwrap();
    let addr = daemon.addr;
    let before = scrape(addr).await;

    let n = 20;
    let args = TransactionsArgs::new(&amqp_url(), &queue, 0.0, n, &unique_name("m"));
    transactions::publish(&args).await.unwrap();
    let mut after = String::new();
    for _ in 0..600 {
        after = scrape(addr).await;
        // Scraped, not asked: a GetLogStats would count as a message.
        if delta(&before, &after, "tasklet_notify_acked_total") >= n as f64
            && delta(&before, &after, &actor("ViberSender")) >= n as f64
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let n = n as f64;
    for series in [
        "tasklet_notify_received_total",
        "tasklet_notify_sent_total",
        "tasklet_notify_acked_total",
        "tasklet_notify_viber_replies_total{status=\"ok\"}",
        "tasklet_notify_viber_attempts_total{result=\"sent\"}",
        "tasklet_notify_log_lag_seconds_count",
    ] {
        assert_eq!(delta(&before, &after, series), n, "{series}\n{after}");
    }
    assert_eq!(delta(&before, &after, &actor("ViberSender")), n);
    assert_eq!(delta(&before, &after, &actor("NotificationLog")), n);
    // One message per delivery, and at least one Ack.
    assert!(delta(&before, &after, &actor("AmqpConsumer")) > n);
    assert_eq!(metric(&after, "tasklet_notify_unacked"), Some(0.0));
    for name in ["ViberSender", "NotificationLog", "AmqpConsumer"] {
        assert_eq!(metric(&after, &depth(name)), Some(0.0), "{name}");
    }
    daemon.shutdown().await.unwrap();
    transactions::delete_queues(&amqp_url(), &queue)
        .await
        .unwrap();
}

#[actix_rt::test]
async fn metrics_move_by_the_rows_written() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(config(dir.path()), Secrets::default())
        .await
        .unwrap();
    let url = format!("http://{}", daemon.addr);
    let client = reqwest::Client::new();
    let before = client
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let rows_before =
        metric(&before, "tasklet_db_rows_total{table=\"notifications\"}").unwrap_or(0.0);

    let writer =
        BatchWriter::<NewNotification>::new(daemon.store.clone(), Default::default()).start();
    let rows: Vec<_> = (0..25)
        .map(|i| tasklet::testing::sent_notification(format!("metrics-{i}"), i))
        .collect();
    let receipt = writer.send(Insert(rows)).await.unwrap();
    writer.send(Flush).await.unwrap().await.unwrap();
    receipt.await.unwrap();

    let response = client.get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let after = response.text().await.unwrap();
    let rows_after = metric(&after, "tasklet_db_rows_total{table=\"notifications\"}").unwrap();
    assert_eq!(rows_after - rows_before, 25.0, "{after}");
    let flushes = "tasklet_db_flush_total{table=\"notifications\",trigger=\"shutdown\"}";
    assert_eq!(
        metric(&after, flushes).unwrap_or(0.0) - metric(&before, flushes).unwrap_or(0.0),
        1.0,
        "{after}"
    );
    assert!(
        after.contains("tasklet_db_commit_seconds_bucket"),
        "commit time is a histogram"
    );
    assert!(
        after.contains("process_cpu_seconds_total"),
        "process CPU is exported"
    );
    assert!(
        after.contains("process_resident_memory_bytes"),
        "process memory is exported"
    );
    daemon.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn profile_needs_the_token_and_returns_a_flamegraph_naming_tasklet() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = Secrets {
        debug_token: Some("let-me-see".into()),
        ..Secrets::default()
    };
    let daemon = Daemon::start(config(dir.path()), secrets).await.unwrap();
    let url = format!("http://{}", daemon.addr);
    let client = reqwest::Client::new();

    let anonymous = client
        .get(format!("{url}/debug/profile?seconds=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = client
        .get(format!("{url}/debug/profile?seconds=1"))
        .bearer_auth("guess")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let too_long = client
        .get(format!("{url}/debug/profile?seconds=100000"))
        .bearer_auth("let-me-see")
        .send()
        .await
        .unwrap();
    assert_eq!(too_long.status(), 400);

    // Load: a thread rendering metrics in a loop, so tasklet code is on CPU.
    let stop = Arc::new(AtomicBool::new(false));
    let burner = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::hint::black_box(tasklet::telemetry::render_metrics());
            }
        })
    };
    let response = client
        .get(format!("{url}/debug/profile?seconds=2"))
        .bearer_auth("let-me-see")
        .send()
        .await
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    burner.join().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/svg+xml");
    let svg = response.text().await.unwrap();
    assert!(
        svg.starts_with("<?xml") && svg.contains("<svg"),
        "an SVG document"
    );
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(
        svg.contains("tasklet::telemetry::render_metrics"),
        "the flamegraph names tasklet's functions"
    );
    daemon.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn profile_is_off_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(config(dir.path()), Secrets::default())
        .await
        .unwrap();
    let response = reqwest::get(format!("http://{}/debug/profile?seconds=1", daemon.addr))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("TASKLET_DEBUG_TOKEN"));
    daemon.shutdown().await.unwrap();
}
