//! `/metrics` and `/debug/profile` on an in-process daemon.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix::Actor;
use tasklet::config::{Config, Secrets};
use tasklet::daemon::Daemon;
use tasklet_actors::store::models::{now_us, NewNotification};
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
    let now = now_us();
    let rows: Vec<_> = (0..25)
        .map(|i| NewNotification {
            message_id: format!("metrics-{i}"),
            transaction_id: "t".into(),
            receiver: "r".into(),
            status: "completed".into(),
            state: "sent".into(),
            viber_status: Some(0),
            message_token: None,
            attempts: 1,
            error: None,
            enqueued_at_us: now,
            sent_at_us: Some(now),
            logged_at_us: now,
        })
        .collect();
    let receipt = writer.send(Insert(rows)).await.unwrap();
    writer.send(Flush).await.unwrap().await.unwrap();
    receipt.await.unwrap();

    let response = client.get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let after = response.text().await.unwrap();
    let rows_after = metric(&after, "tasklet_db_rows_total{table=\"notifications\"}").unwrap();
    assert_eq!(rows_after - rows_before, 25.0, "{after}");
    assert_eq!(
        metric(
            &after,
            "tasklet_db_flush_total{table=\"notifications\",trigger=\"shutdown\"}"
        ),
        Some(1.0),
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
