//! The daemon as a user runs it: the real binary in an empty folder, its
//! CLI, and the orderly stop.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix::Actor;
use diesel::prelude::*;
use tasklet::topology::Topology;
use tasklet_actors::store::models::NewNotification;
use tasklet_actors::store::schema::notifications;
use tasklet_actors::store::{BatchWriter, DatabaseSettings, Flush, Insert, Store, WriterSettings};

const BIN: &str = env!("CARGO_BIN_EXE_tasklet");

fn tasklet(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("TASKLET_CONFIG")
        .env("TASKLET__SERVER__ADDR", "127.0.0.1:0");
    cmd
}

/// Starts `tasklet run` and waits for its "listening on" line.
fn spawn_daemon(dir: &Path) -> (Child, String) {
    let mut child = tasklet(dir)
        .arg("run")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tasklet");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = lines.next().expect("a line on stdout").expect("utf-8");
    let url = line
        .strip_prefix("tasklet listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, url)
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("tasklet did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn run_in_an_empty_folder_serves_health_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = spawn_daemon(dir.path());
    let client = reqwest::blocking::Client::new();
    let health = client.get(format!("{url}/healthz")).send().unwrap();
    assert_eq!(health.status(), 200);
    let ready = client.get(format!("{url}/readyz")).send().unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().unwrap();
    assert_eq!(body["database"], "ok");
    assert_eq!(
        body["pipelines"],
        serde_json::json!(["watermark"]),
        "the shipped config runs watermark"
    );
    let photo = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/pier_1980x1280.jpg"
    ))
    .unwrap();
    let stamped = client
        .post(format!("{url}/v1/watermark"))
        .header("Content-Type", "image/jpeg")
        .body(photo)
        .send()
        .unwrap();
    assert_eq!(
        stamped.status(),
        200,
        "the built-in mark works from an empty folder"
    );
    let missing = client.get(format!("{url}/v1/nope")).send().unwrap();
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().unwrap();
    assert!(
        body["error"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    assert!(
        dir.path().join("tasklet.db").exists(),
        "the SQLite file is created in the working folder"
    );

    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn log_dir_gets_json_lines_in_a_daily_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = tasklet(dir.path());
    cmd.env("TASKLET__LOG__DIR", "logs");
    let mut child = cmd
        .arg("run")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines
        .next()
        .unwrap()
        .unwrap()
        .starts_with("tasklet listening on "));
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
    let files: Vec<_> = std::fs::read_dir(dir.path().join("logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("tasklet.log."), "dated file name: {name}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    let mut messages = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        messages.push(
            v["fields"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    assert!(messages.iter().any(|m| m == "listening"), "{messages:?}");
    assert!(
        messages.iter().any(|m| m == "stopped cleanly"),
        "{messages:?}"
    );
}

#[test]
fn sigint_also_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, _url) = spawn_daemon(dir.path());
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
}

#[test]
fn config_check_prints_the_effective_config_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let out = tasklet(dir.path())
        .args(["config", "check"])
        .env(
            "TASKLET__DATABASE__URL",
            "postgres://app:s3cret@db.example:5432/tasklet",
        )
        .env("VIBER_AUTH_TOKEN", "viber-secret-token")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("postgres://app:***@db.example:5432/tasklet"),
        "{text}"
    );
    assert!(
        !text.contains("s3cret") && !text.contains("viber-secret-token"),
        "{text}"
    );
    assert!(text.contains("VIBER_AUTH_TOKEN: set"), "{text}");
    assert!(
        text.contains("addr = \"127.0.0.1:0\""),
        "environment overrides show: {text}"
    );
}

#[test]
fn bad_config_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (text, key) in [
        ("[pools]\ncompositor = -1\n", "pools.compositor"),
        ("[server]\nport = 80\n", "server.port"),
        ("[database]\nbatch_size = \"big\"\n", "database.batch_size"),
    ] {
        std::fs::write(dir.path().join("bad.toml"), text).unwrap();
        for args in [
            &["config", "check", "--config", "bad.toml"][..],
            &["run", "--config", "bad.toml"][..],
        ] {
            let out = tasklet(dir.path()).args(args).output().unwrap();
            assert!(!out.status.success(), "{args:?} accepted {text:?}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains(key),
                "{args:?}: error should name {key}: {err}"
            );
        }
    }
}

#[test]
fn migrate_creates_and_migrates_the_database_then_exits() {
    let dir = tempfile::tempdir().unwrap();
    let out = tasklet(dir.path()).arg("migrate").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("tasklet.db").exists());
    let again = tasklet(dir.path()).arg("migrate").output().unwrap();
    assert!(again.status.success());
}

#[test]
fn every_command_has_help() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["migrate", "--help"],
        &["config", "--help"],
        &["config", "check", "--help"],
        &["bench", "--help"],
        &["bench", "store", "--help"],
    ] {
        let out = tasklet(dir.path()).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{args:?}"
        );
    }
}

/// What SIGTERM runs: rows handed to a writer just before the stop are
/// committed by the stop stages before `shutdown` returns.
#[actix_rt::test]
async fn stop_stages_flush_rows_sent_just_before() {
    let dir = tempfile::tempdir().unwrap();
    let settings = DatabaseSettings::default();
    let store = Store::connect(&settings, dir.path()).await.unwrap();
    store.migrate().await.unwrap();
    let writer = BatchWriter::<NewNotification>::new(
        store.clone(),
        WriterSettings {
            flush_interval_ms: 600_000,
            ..settings.writer()
        },
    )
    .start();
    let mut topology = Topology::empty();
    let w = writer.clone();
    topology.on_stop("notify log", move || {
        Box::pin(async move {
            if let Ok(receipt) = w.send(Flush).await {
                let _ = receipt.await;
            }
        })
    });
    for i in 0..25 {
        let _receipt = writer
            .send(Insert(vec![tasklet::testing::sent_notification(
                format!("m{i}"),
                i,
            )]))
            .await
            .unwrap();
    }
    topology.shutdown().await;
    let n: i64 = store
        .read_sqlite(|c| Ok(notifications::table.count().get_result(c)?))
        .await
        .unwrap();
    assert_eq!(n, 25);
}
