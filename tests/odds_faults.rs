//! Faults on the bookmaker's side: 500s, 429 with Retry-After, slow pages
//! and malformed pages for some games must not disturb the others, and
//! every game must recover when the site does (also after a global outage).

mod odds_support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use odds_support::*;
use serde_json::{json, Value};
use tasklet::sim::bookmaker::{Bookmaker, BookmakerArgs, Format};
use tasklet_actors::store::models::now_us;

async fn sim_get(sim: &Bookmaker, path: &str) -> Value {
    reqwest::get(format!("http://{}{path}", sim.addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn set_fault(sim: &Bookmaker, body: Value) {
    let r = reqwest::Client::new()
        .post(format!("http://{}/faults", sim.addr))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

async fn clear_faults(sim: &Bookmaker) {
    let r = reqwest::Client::new()
        .delete(format!("http://{}/faults", sim.addr))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

async fn watch_states(addr: std::net::SocketAddr) -> HashMap<String, String> {
    let v: Value = reqwest::get(format!("http://{addr}/v1/odds/events"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_owned(),
                e["watch"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[actix_rt::test]
async fn faulty_games_do_not_disturb_the_others_and_recover() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Bookmaker::start(BookmakerArgs {
        games: 30,
        format: Format::Favbet,
        change_every_ms: 2_000,
        game_length_s: 100_000,
        prematch_ms: 2_000,
        seed: 5,
        ..BookmakerArgs::default()
    })
    .await
    .unwrap();
    let mut config = config(dir.path(), None, vec![site_for("favbet", &sim)]);
    config.odds.request_timeout_ms = 1_000;
    let daemon = start_daemon(config).await;
    let (db, db_task) = follow_db(daemon.store.clone());
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Phase 1: four games misbehave, each its own way.
    let ids: Vec<String> = sim_get(&sim, "/games").await["games"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let faulty: Vec<String> = ids[..4].to_vec();
    let faults = [
        json!({"kind": "error"}),
        json!({"kind": "throttle", "retry_after_s": 3}),
        json!({"kind": "slow", "ms": 3_000}),
        json!({"kind": "malformed"}),
    ];
    let hits_before = sim_get(&sim, "/games").await["hits"].clone();
    for (game, fault) in faulty.iter().zip(&faults) {
        set_fault(&sim, json!({"game": game, "fault": fault})).await;
    }
    let faults_on = now_us();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let faults_off = now_us();
    let states = watch_states(daemon.addr).await;
    let hits_after = sim_get(&sim, "/games").await["hits"].clone();
    clear_faults(&sim).await;

    // Every faulty game was reported stale; no other was.
    for game in &faulty {
        assert_eq!(
            states.get(game).map(String::as_str),
            Some("stale"),
            "game {game}"
        );
    }
    for game in ids.iter().filter(|g| !faulty.contains(g)) {
        assert_eq!(
            states.get(game).map(String::as_str),
            Some("watching"),
            "game {game}"
        );
    }
    // Retry-After was honoured: a 3 s wait allows at most 4 requests in 10 s.
    let throttled = &faulty[1];
    let hits =
        hits_after[throttled].as_u64().unwrap() - hits_before[throttled].as_u64().unwrap_or(0);
    assert!(hits <= 4, "throttled game was asked {hits} times in 10 s");
    // The failing ones backed off (at most every 2 s) rather than hammering.
    let failing = &faulty[0];
    let hits = hits_after[failing].as_u64().unwrap() - hits_before[failing].as_u64().unwrap_or(0);
    assert!(hits <= 8, "failing game was asked {hits} times in 10 s");

    // Phase 2: recovered; then a global outage of 3 s, and recovery again.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let states = watch_states(daemon.addr).await;
    for game in &faulty {
        assert_eq!(
            states.get(game).map(String::as_str),
            Some("watching"),
            "game {game} recovered"
        );
    }
    set_fault(&sim, json!({"fault": {"kind": "error"}})).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    clear_faults(&sim).await;
    let outage_over = now_us();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let ended = now_us();
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    db_task.abort();

    let truth = truth(&sim).await;
    let polls = polls(&sim).await;
    let rows = db.lock().unwrap().rows.clone();
    let others: HashSet<&String> = ids.iter().filter(|g| !faulty.contains(g)).collect();

    // While four games failed, the others lost nothing.
    let truth_others: Vec<_> = truth
        .iter()
        .filter(|t| others.contains(&t.event))
        .cloned()
        .collect();
    let s = score(
        "favbet",
        &truth_others,
        &polls,
        &rows,
        faults_on,
        faults_off,
    );
    eprintln!("during the faults, other games: {}", s.report());
    assert!(s.stayed > 20, "too few changes to judge");
    assert_eq!(s.recall_visible(), 1.0, "{:?}", s.misses);
    assert_eq!(s.recall_stayed_slack(), 1.0, "{:?}", s.misses);

    // After the outage every game, faulty ones included, is followed again
    // (allowing the 2 s maximum backoff to run out).
    let s = score(
        "favbet",
        &truth,
        &polls,
        &rows,
        outage_over + 3_000_000,
        ended - 2_000_000,
    );
    eprintln!("after recovery, all games: {}", s.report());
    assert!(s.stayed > 10, "too few changes to judge");
    assert_eq!(s.recall_visible(), 1.0, "{:?}", s.misses);
    assert_eq!(s.recall_stayed_slack(), 1.0, "{:?}", s.misses);
    // Every row anywhere is one the simulator made: faults invented nothing.
    assert_eq!(s.precision(), 1.0, "{:?}", s.false_rows);
    // An unreadable page left the cache alone: no outcome was added twice.
    let mut added = HashSet::new();
    for (r, _) in &rows {
        if r.kind == "added" {
            assert!(
                added.insert((r.event_id.clone(), r.market.clone(), r.outcome.clone())),
                "added twice: {r:?}"
            );
        }
    }
    daemon.shutdown().await.expect("clean stop");
    sim.stop().await;
}
