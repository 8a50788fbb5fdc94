//! The odds HTTP API: events, changes (with its bad inputs), the SSE
//! stream's filters, and answers when the pipeline is off.

mod odds_support;

use std::time::Duration;

use odds_support::*;
use serde_json::Value;
use tasklet::sim::bookmaker::Format;

async fn get(url: String) -> (u16, Value) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[actix_rt::test]
async fn events_changes_and_a_filtered_stream() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim(Format::Html, 5, 3).await;
    let daemon = start_daemon(config(dir.path(), None, vec![site_for("h", &sim)])).await;
    let base = format!("http://{}", daemon.addr);
    // Subscribe to one game's stream before anything is seen.
    let game = reqwest::get(format!("http://{}/games", sim.addr))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["games"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let (stream, task) = follow_stream(format!("{base}/v1/odds/stream?event={game}"));
    tokio::time::sleep(Duration::from_secs(4)).await;
    task.abort();

    let (status, events) = get(format!("{base}/v1/odds/events")).await;
    assert_eq!(status, 200);
    assert_eq!(events["watching"], 5);
    assert!(events["events"].as_array().unwrap().len() >= 5);

    let (status, all) = get(format!("{base}/v1/odds/changes?since=1m&limit=10000")).await;
    assert_eq!(status, 200);
    let all = all["changes"].as_array().unwrap().clone();
    assert!(!all.is_empty());
    let (_, one) = get(format!("{base}/v1/odds/changes?event={game}&since=10m")).await;
    let one = one["changes"].as_array().unwrap().clone();
    assert!(!one.is_empty() && one.iter().all(|c| c["event_id"] == game.as_str()));
    let (_, page) = get(format!("{base}/v1/odds/changes?limit=2")).await;
    assert_eq!(page["changes"].as_array().unwrap().len(), 2);
    let after = page["next_after"].as_i64().unwrap();
    let (_, next) = get(format!("{base}/v1/odds/changes?after={after}&limit=1")).await;
    assert!(next["changes"][0]["id"].as_i64().unwrap() > after);

    // The stream showed only that game, and the same changes as stored.
    let streamed = stream.lock().unwrap().clone();
    assert!(!streamed.is_empty());
    assert!(streamed.iter().all(|(c, _)| c.event == game));
    let r = reqwest::get(format!("{base}/v1/odds/stream?market=nope"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    drop(r);

    for bad in [
        "since=yesterday",
        "since=10x",
        "limit=0",
        "limit=100001",
        "limit=abc",
        "bogus=1",
    ] {
        let (status, body) = get(format!("{base}/v1/odds/changes?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{bad}: {body}"
        );
    }
    let r = reqwest::get(format!("{base}/v1/odds/stream?bogus=1"))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    daemon.shutdown().await.expect("clean stop");
    sim.stop().await;
}

#[actix_rt::test]
async fn a_disabled_pipeline_answers_404_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim(Format::Favbet, 1, 1).await;
    let mut config = config(dir.path(), None, vec![site_for("f", &sim)]);
    config.odds.enabled = false;
    let daemon = start_daemon(config).await;
    for path in ["/v1/odds/events", "/v1/odds/changes", "/v1/odds/stream"] {
        let (status, body) = get(format!("http://{}{path}", daemon.addr)).await;
        assert_eq!(status, 404, "{path}");
        assert!(body["detail"].as_str().unwrap().contains("odds.enabled"));
    }
    daemon.shutdown().await.expect("clean stop");
    sim.stop().await;
}

#[actix_rt::test]
async fn a_site_that_is_down_at_start_is_picked_up_when_it_comes() {
    let dir = tempfile::tempdir().unwrap();
    // Reserve a port, free it: nothing listens there yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut site = tasklet_actors::odds::SiteSettings {
        name: "late".to_owned(),
        kind: tasklet_actors::odds::SiteKind::Favbet,
        base_url: format!("http://127.0.0.1:{port}/frontend_api2/"),
        ..Default::default()
    };
    site.rate_limit_per_s = 100;
    let daemon = start_daemon(config(dir.path(), None, vec![site])).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let sim = tasklet::sim::bookmaker::Bookmaker::start(tasklet::sim::bookmaker::BookmakerArgs {
        games: 3,
        addr: format!("127.0.0.1:{port}"),
        ..Default::default()
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, events) = get(format!("http://{}/v1/odds/events", daemon.addr)).await;
    assert_eq!(events["watching"], 3, "{events}");
    daemon.shutdown().await.expect("clean stop");
    sim.stop().await;
}
