//! The notify pipeline's HTTP side and CLI, against the real daemon binary
//! and in-process daemon on 127.0.0.1:0 with an SQLite file: webhook
//! signatures, receipts, `tasklet notify set-webhook`, `tasklet notify log`,
//! `GET /v1/notifications`. The broker is unreachable on purpose (the
//! consumer keeps reconnecting in the background); no RabbitMQ needed.

use std::sync::Arc;

use tasklet::bench::notify::TOKEN;
use tasklet::config::{Config, Secrets};
use tasklet::daemon::Daemon;
use tasklet::http::{viber_signature, SIGNATURE_HEADER};
use tasklet::sim::viber::{Mode, ViberSim};
use tasklet_actors::notify::actions;
use tasklet_actors::store::models::{now_us, NewNotification};

fn config(dir: &std::path::Path, viber: &str) -> Config {
    let text = format!(
        r#"[server]
addr = "127.0.0.1:0"
workers = 1
[database]
url = "sqlite://notify.db"
[log]
level = "warn"
[notify]
enabled = true
amqp_url = "amqp://guest:guest@127.0.0.1:1/%2f"
viber_base_url = "{viber}"
reconnect_max_ms = 1000
"#
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    Config::load(Some(&path), Vec::new()).unwrap()
}

fn secrets() -> Secrets {
    Secrets {
        viber_auth_token: Some(TOKEN.to_owned()),
        debug_token: None,
    }
}

fn row(id: &str, tx: &str, token: i64) -> NewNotification {
    NewNotification {
        message_id: id.into(),
        transaction_id: tx.into(),
        receiver: "viber-user-1".into(),
        status: "completed".into(),
        state: "sent".into(),
        viber_status: Some(0),
        message_token: Some(token),
        attempts: 1,
        error: None,
        enqueued_at_us: now_us(),
        sent_at_us: Some(now_us()),
        logged_at_us: now_us(),
    }
}

#[actix_rt::test]
async fn webhook_refuses_missing_and_wrong_signatures() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(config(dir.path(), "http://127.0.0.1:1"), secrets())
        .await
        .unwrap();
    let url = format!("http://{}/v1/viber/webhook", daemon.addr);
    let body = r#"{"event":"seen","timestamp":1,"message_token":7}"#;
    let client = reqwest::Client::new();

    let missing = client.post(&url).body(body).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    let v: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(v["error"], "unauthorized");

    let wrong_key = viber_signature("not-the-token", body.as_bytes());
    let r = client
        .post(&url)
        .header(SIGNATURE_HEADER, wrong_key)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let not_hex = client
        .post(&url)
        .header(SIGNATURE_HEADER, "zz")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(not_hex.status(), 401);

    // Signed over another body.
    let other = viber_signature(TOKEN, b"{}");
    let r = client
        .post(&url)
        .header(SIGNATURE_HEADER, other)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Rightly signed but not a callback: 400; a known event without token: 400.
    for bad in ["not json", r#"{"event":"seen"}"#] {
        let r = client
            .post(&url)
            .header(SIGNATURE_HEADER, viber_signature(TOKEN, bad.as_bytes()))
            .body(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    daemon.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn list_refuses_bad_queries() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(config(dir.path(), "http://127.0.0.1:1"), secrets())
        .await
        .unwrap();
    let base = format!("http://{}/v1/notifications", daemon.addr);
    for q in [
        "?state=lost",
        "?limit=0",
        "?limit=100000",
        "?since=yesterday",
        "?bogus=1",
    ] {
        let r = reqwest::get(format!("{base}{q}")).await.unwrap();
        assert_eq!(r.status(), 400, "{q}");
    }
    let r = reqwest::get(format!("{base}?since=2026-01-01T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    daemon.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn set_webhook_then_a_signed_receipt_updates_its_row() {
    let dir = tempfile::tempdir().unwrap();
    let sim = ViberSim::start("127.0.0.1:0", Some(TOKEN.to_owned()), Mode::default())
        .await
        .unwrap();
    let cfg = config(dir.path(), &sim.base_url());
    let daemon = Daemon::start(cfg, secrets()).await.unwrap();
    daemon
        .store
        .insert_batch(Arc::new(vec![
            row("m-1", "tx-42", 9001),
            row("m-2", "tx-42", 9002),
            row("m-3", "tx-7", 9003),
        ]))
        .await
        .unwrap();

    // `tasklet notify set-webhook`: the simulator checks the URL (a signed
    // "webhook" event the daemon must answer 200) and registers it.
    let hook = format!("http://{}/v1/viber/webhook", daemon.addr);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tasklet"))
        .arg("--config")
        .arg(dir.path().join("config.toml"))
        .args(["notify", "set-webhook", "--url", &hook])
        .env("VIBER_AUTH_TOKEN", TOKEN)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sim.webhook().as_deref(), Some(hook.as_str()));

    assert_eq!(sim.post_callback(9001, "delivered").await.unwrap(), 200);
    assert_eq!(sim.post_callback(9002, "seen").await.unwrap(), 200);
    // A late "delivered" after "seen" does not move the row back.
    assert_eq!(sim.post_callback(9002, "delivered").await.unwrap(), 200);
    // An unknown token is answered 200 (Viber retries otherwise) and changes nothing.
    assert_eq!(sim.post_callback(123, "seen").await.unwrap(), 200);

    let m1 = actions::find_by_message_id(&daemon.store, "m-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m1.state, "delivered");
    assert!(m1.receipt_at_us.is_some());
    let m2 = actions::find_by_message_id(&daemon.store, "m-2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m2.state, "seen");
    let m3 = actions::find_by_message_id(&daemon.store, "m-3")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m3.state, "sent");

    // GET /v1/notifications by transaction and by state.
    let v: serde_json::Value = reqwest::get(format!(
        "http://{}/v1/notifications?transaction_id=tx-42",
        daemon.addr
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let ids: Vec<&str> = v["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["m-1", "m-2"]);
    let v: serde_json::Value = reqwest::get(format!(
        "http://{}/v1/notifications?state=seen",
        daemon.addr
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(v["notifications"].as_array().unwrap().len(), 1);

    // `tasklet notify log --tx`.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tasklet"))
        .arg("--config")
        .arg(dir.path().join("config.toml"))
        .args(["notify", "log", "--tx", "tx-42"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("m-1") && text.contains("delivered"), "{text}");
    assert!(text.contains("m-2") && text.contains("seen"), "{text}");
    assert!(!text.contains("m-3"), "{text}");

    daemon.shutdown().await.unwrap();
    sim.stop().await;
}

#[actix_rt::test]
async fn set_webhook_fails_when_the_url_does_not_answer() {
    let dir = tempfile::tempdir().unwrap();
    let sim = ViberSim::start("127.0.0.1:0", Some(TOKEN.to_owned()), Mode::default())
        .await
        .unwrap();
    let _cfg = config(dir.path(), &sim.base_url());
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tasklet"))
        .arg("--config")
        .arg(dir.path().join("config.toml"))
        .args(["notify", "set-webhook", "--url", "http://127.0.0.1:1/hook"])
        .env("VIBER_AUTH_TOKEN", TOKEN)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalidUrl"));
    sim.stop().await;
}
