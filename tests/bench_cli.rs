//! `tasklet bench <watermark|beard|odds|notify>` through the real binary,
//! each for a few seconds against the simulators (or a daemon) on
//! 127.0.0.1:0, reading the `--json` result from stdout: one document
//! naming the bench, whose runs did some work, without errors, with
//! ordered percentiles. No figure is compared with a threshold.

mod beard_support;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use tasklet::config::{Config, Secrets};
use tasklet::daemon::Daemon;

const BIN: &str = env!("CARGO_BIN_EXE_tasklet");

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// `tasklet bench ARGS… --json` in an empty folder (so that no config file
/// is picked up), waited for without blocking the test's runtime.
async fn bench(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    tokio::process::Command::new(BIN)
        .arg("bench")
        .args(args)
        .arg("--json")
        .current_dir(dir.path())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap()
}

/// The result's runs, once the common checks hold for each of them.
fn checked(out: &Output, name: &str) -> Vec<Value> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tasklet bench {name} failed: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {stdout}"));
    assert_eq!(result["bench"], name, "{result}");
    let runs = result["runs"].as_array().cloned().unwrap_or_default();
    assert!(!runs.is_empty(), "no runs: {result}");
    for run in &runs {
        let figure = |key: &str| {
            run[key]
                .as_f64()
                .unwrap_or_else(|| panic!("{key} missing in {run}"))
        };
        assert!(figure("completed") > 0.0, "no work done: {run}");
        assert_eq!(figure("errors"), 0.0, "errors: {run}");
        assert!(figure("seconds") > 0.0, "{run}");
        assert!(figure("per_s") > 0.0, "{run}");
        let p = ["p50_ms", "p95_ms", "p99_ms", "max_ms"].map(figure);
        assert!(
            0.0 < p[0] && p[0] <= p[1] && p[1] <= p[2] && p[2] <= p[3],
            "percentiles out of order: {run}"
        );
        assert!(run["label"].is_string() && run["unit"].is_string(), "{run}");
    }
    runs
}

#[actix_rt::test]
async fn watermark_loads_a_daemon_for_two_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.server.addr = "127.0.0.1:0".into();
    config.server.workers = 1;
    config.database.url = format!("sqlite://{}", dir.path().join("t.db").display());
    config.base_dir = env!("CARGO_MANIFEST_DIR").into();
    config.watermark.enabled = true;
    let daemon = Daemon::start(config, Secrets::default()).await.unwrap();
    let url = format!("http://{}/v1/watermark", daemon.addr);
    let image = repo("tests/data/pier_1980x1280.jpg");
    let out = bench(&[
        "watermark",
        "--url",
        &url,
        "--image",
        image.to_str().unwrap(),
        "--concurrency",
        "2",
        "--duration",
        "2s",
    ])
    .await;
    daemon.shutdown().await.unwrap();
    let runs = checked(&out, "watermark");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["unit"], "images");
    assert_eq!(runs[0]["url"], url.as_str());
    assert_eq!(runs[0]["statuses"], serde_json::json!({}));
    assert_eq!(runs[0]["transport_errors"], 0);
}

#[actix_rt::test]
async fn beard_times_each_step_in_process() {
    let image = repo("tests/data/faces/grace_hopper_512x600.jpg");
    let models = repo("models");
    let out = bench(&[
        "beard",
        "--image",
        image.to_str().unwrap(),
        "--models",
        models.to_str().unwrap(),
        "--iterations",
        "3",
        "--warmup",
        "1",
    ])
    .await;
    let runs = checked(&out, "beard");
    assert_eq!(runs[0]["completed"], 3);
    let steps = runs[0]["steps"].as_object().expect("steps");
    for step in ["decode", "detect", "landmarks", "blend", "encode"] {
        let s = &steps[step];
        assert!(
            s["p50_ms"].as_f64().unwrap() <= s["p99_ms"].as_f64().unwrap(),
            "{step}: {s}"
        );
    }
}

#[actix_rt::test]
async fn beard_loads_a_daemon_reading_the_catalog_simulator() {
    let setup = beard_support::start(3, |_| {}).await;
    let base = format!("http://{}", setup.daemon.addr);
    let image = repo("tests/data/faces/astronaut_512.png");
    let out = bench(&[
        "beard",
        "--url",
        &base,
        "--style",
        "full",
        "--image",
        image.to_str().unwrap(),
        "--concurrency",
        "1",
        "--duration",
        "2s",
    ])
    .await;
    setup.stop().await;
    let runs = checked(&out, "beard");
    assert_eq!(runs[0]["unit"], "requests");
}

#[actix_rt::test]
async fn odds_follows_a_handful_of_games_for_a_few_seconds() {
    let out = bench(&[
        "odds",
        "--games",
        "5",
        "--warmup-s",
        "2",
        "--seconds",
        "3",
        "--change-every-ms",
        "300",
    ])
    .await;
    let runs = checked(&out, "odds");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["games"], 5);
    assert!(runs[0]["changes"].as_u64().unwrap() > 0, "{}", runs[0]);
}

#[actix_rt::test]
#[ignore = "needs RabbitMQ and PostgreSQL"]
async fn notify_runs_both_phases_without_the_baseline() {
    let out = bench(&[
        "notify",
        "--python",
        "",
        "--count",
        "40",
        "--rate",
        "40",
        "--drain-count",
        "40",
    ])
    .await;
    let runs = checked(&out, "notify");
    assert_eq!(runs.len(), 2, "tasklet alone: latency and drain phases");
    for run in &runs {
        assert_eq!(run["consumer"], "tasklet");
        assert_eq!(run["completed"], 40);
        assert_eq!(run["duplicates"], 0);
    }
}
