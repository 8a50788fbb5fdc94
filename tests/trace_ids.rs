//! One id follows each item through the log of every actor on its path:
//! `request_id` for watermark and beard (HTTP handler → actors), `game` for
//! odds (Fetcher → Parser → Differ → Cache → Persister), `tx` and `id` for
//! notify (AmqpConsumer → ViberSender → NotificationLog).
//!
//! The log is the daemon's own: `telemetry::init` with `log.dir`, JSON
//! lines, installed once for this test binary. Each actor logs `handled`
//! (at debug) inside a span named after it that carries the item's id.

mod beard_support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use tasklet::config::{LogFormat, LogSettings};
use tasklet::sim::bookmaker::{Bookmaker, BookmakerArgs, Format};
use tasklet::telemetry::TelemetryGuard;

/// The folder of the JSON log all tests of this binary write to.
fn log_dir() -> &'static Path {
    static LOGS: OnceLock<(PathBuf, TelemetryGuard)> = OnceLock::new();
    &LOGS
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap().keep();
            let guard = tasklet::telemetry::init(&LogSettings {
                level: "warn,tasklet=debug,tasklet_actors=debug".to_owned(),
                format: LogFormat::Json,
                dir: dir.display().to_string(),
            })
            .unwrap();
            (dir, guard)
        })
        .0
}

/// Every JSON line logged so far.
fn lines() -> Vec<Value> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(log_dir()).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        out.extend(text.lines().filter_map(|l| serde_json::from_str(l).ok()));
    }
    out
}

/// Whether `line` is `actor`'s `handled` event, logged in its own span
/// whose `field` is `id`.
fn handled_by(line: &Value, actor: &str, field: &str, id: &str) -> bool {
    line["fields"]["message"] == "handled"
        && line["fields"]["actor"] == actor
        && line["span"]["name"] == actor
        && line["span"][field] == id
}

/// Waits (up to 30 s) until each of `actors` logged handling an item whose
/// `field` is `id`; panics naming the actors without such a line.
async fn assert_path(field: &str, id: &str, actors: &[&str]) {
    let mut missing = Vec::new();
    for _ in 0..300 {
        let lines = lines();
        missing = actors
            .iter()
            .filter(|a| !lines.iter().any(|l| handled_by(l, a, field, id)))
            .copied()
            .collect();
        if missing.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no `handled` line with {field}={id} from {missing:?}");
}

/// Waits until the HTTP handler logged `message` with `request_id`.
async fn assert_http_line(message: &str, request_id: &str) {
    for _ in 0..300 {
        if lines()
            .iter()
            .any(|l| l["fields"]["message"] == message && l["fields"]["request_id"] == request_id)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {message:?} line with request_id={request_id}");
}

#[actix_rt::test]
async fn a_request_id_follows_watermark_and_beard_requests() {
    log_dir();
    let repo = beard_support::repo();
    let s = beard_support::start(1, |c| c.watermark.enabled = true).await;
    let addr = s.daemon.addr;
    let stamped = s
        .client
        .post(format!("http://{addr}/v1/watermark"))
        .header("content-type", "image/jpeg")
        .header("x-request-id", "trace-wm-1")
        .body(std::fs::read(repo.join("tests/data/pier_1980x1280.jpg")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(stamped.status(), 200);
    assert_eq!(stamped.headers()["x-request-id"], "trace-wm-1");
    let dressed = s
        .client
        .post(format!("http://{addr}/v1/beard?style=full"))
        .header("content-type", "image/png")
        .header("x-request-id", "trace-bd-1")
        .body(beard_support::face("astronaut_512.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(dressed.status(), 200);
    assert_eq!(dressed.headers()["x-request-id"], "trace-bd-1");
    // Without the header, the daemon makes an id and answers it.
    let anonymous = s.dress("full").await;
    let made = anonymous.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(made.starts_with("bd-"), "{made}");

    assert_http_line("stamped", "trace-wm-1").await;
    assert_path("request_id", "trace-wm-1", &["Compositor"]).await;
    assert_http_line("beard placed", "trace-bd-1").await;
    assert_path("request_id", "trace-bd-1", &["BeardCatalog", "Compositor"]).await;
    assert_path("request_id", &made, &["BeardCatalog", "Compositor"]).await;
    s.stop().await;
}

#[actix_rt::test]
async fn a_game_id_follows_each_poll_through_the_odds_actors() {
    log_dir();
    let sim = Bookmaker::start(BookmakerArgs {
        games: 2,
        format: Format::Html,
        addr: "127.0.0.1:0".to_owned(),
        change_every_ms: 500,
        game_length_s: 3_600,
        prematch_ms: 0,
        finished_ms: 3_000,
        seed: 11,
        workers: 1,
    })
    .await
    .unwrap();
    let games: Value = reqwest::get(format!("http://{}/games", sim.addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let game = games["games"][0].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let mut config = tasklet::config::Config {
        base_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    config.server.addr = "127.0.0.1:0".to_owned();
    config.database.url = "sqlite://odds.db".to_owned();
    config.odds.enabled = true;
    config.odds.discovery_interval_ms = 1_000;
    config.odds.poll_interval_ms = 500;
    config.odds.sites = vec![tasklet_actors::odds::SiteSettings {
        name: "traced".to_owned(),
        kind: tasklet_actors::odds::SiteKind::Html,
        base_url: sim.site_url(),
        ..Default::default()
    }];
    config.validate().unwrap();
    let daemon = tasklet::daemon::Daemon::start(config, Default::default())
        .await
        .unwrap();
    assert_path(
        "game",
        &game,
        &["Fetcher", "Parser", "Differ", "Cache", "Persister"],
    )
    .await;
    daemon.shutdown().await.unwrap();
    sim.stop().await;
}

#[actix_rt::test]
#[ignore = "needs RabbitMQ and PostgreSQL on 127.0.0.1"]
async fn a_transaction_id_follows_each_message_through_the_notify_actors() {
    use tasklet::bench::notify::{daemon_config, TOKEN};
    use tasklet::sim::transactions::{self, TransactionsArgs};
    use tasklet::sim::viber::{Mode, ViberSim};
    use tasklet::testing::{amqp_url, unique_name, TempPgDb};

    log_dir();
    let db = TempPgDb::create().await.unwrap();
    let viber = ViberSim::start("127.0.0.1:0", Some(TOKEN.to_owned()), Mode::default())
        .await
        .unwrap();
    let queue = unique_name("traced");
    let text = daemon_config(&db.url, &amqp_url(), &queue, &viber.base_url());
    let config = tasklet::config::Config::parse(&text, "test", Vec::new()).unwrap();
    let secrets = tasklet::config::Secrets {
        viber_auth_token: Some(TOKEN.to_owned()),
        debug_token: None,
    };
    let daemon = tasklet::daemon::Daemon::start(config, secrets)
        .await
        .unwrap();
    let prefix = unique_name("m");
    let args = TransactionsArgs::new(&amqp_url(), &queue, 0.0, 3, &prefix);
    transactions::publish(&args).await.unwrap();
    // The three messages share one transaction; each keeps its own id.
    let tx = transactions::contract_message(&prefix, 0).transaction_id;
    let actors = ["AmqpConsumer", "ViberSender", "NotificationLog"];
    assert_path("tx", &tx, &actors).await;
    for i in 0..3 {
        assert_path("id", &format!("{prefix}-{i}"), &actors).await;
    }
    daemon.shutdown().await.unwrap();
    transactions::delete_queues(&amqp_url(), &queue)
        .await
        .unwrap();
}
