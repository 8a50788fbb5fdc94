//! Shared by the odds integration tests: start simulators and a daemon,
//! follow the SSE stream and the database, and score what was recorded
//! against the simulator's ground truth.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tasklet::config::{Config, Secrets};
use tasklet::daemon::Daemon;
use tasklet::sim::bookmaker::{Bookmaker, BookmakerArgs, Format, TruthChange};
use tasklet_actors::odds::messages::OddsChange;
use tasklet_actors::odds::queries::{self, ChangeFilter, ChangeRow};
use tasklet_actors::odds::{SiteKind, SiteSettings};
use tasklet_actors::store::models::now_us;
use tasklet_actors::store::Store;

pub const POLL_MS: i64 = 1_000;

pub async fn start_sim(format: Format, games: usize, seed: u64) -> Bookmaker {
    Bookmaker::start(BookmakerArgs {
        games,
        format,
        addr: "127.0.0.1:0".to_owned(),
        change_every_ms: 4_000,
        game_length_s: 40,
        prematch_ms: 4_000,
        finished_ms: 3_000,
        seed,
        workers: 1,
    })
    .await
    .expect("simulator starts")
}

pub fn site_for(name: &str, sim: &Bookmaker) -> SiteSettings {
    SiteSettings {
        name: name.to_owned(),
        kind: match sim.format {
            Format::Favbet => SiteKind::Favbet,
            Format::Html => SiteKind::Html,
        },
        base_url: sim.site_url(),
        ..SiteSettings::default()
    }
}

pub fn config(dir: &std::path::Path, db_url: Option<&str>, sites: Vec<SiteSettings>) -> Config {
    let mut c = Config {
        base_dir: dir.to_path_buf(),
        ..Config::default()
    };
    c.server.addr = "127.0.0.1:0".to_owned();
    c.server.workers = 1;
    c.database.url = db_url
        .map(str::to_owned)
        .unwrap_or_else(|| "sqlite://odds.db".to_owned());
    c.pools.parser = 2;
    c.odds.enabled = true;
    c.odds.discovery_interval_ms = 1_000;
    c.odds.poll_interval_ms = POLL_MS as u64;
    c.odds.backoff_max_ms = 2_000;
    c.odds.request_timeout_ms = 2_000;
    c.odds.stale_after_failures = 3;
    c.odds.sites = sites;
    c.validate().expect("test config is valid");
    c
}

pub async fn start_daemon(config: Config) -> Daemon {
    Daemon::start(config, Secrets::default())
        .await
        .expect("daemon starts")
}

/// Rows as the database shows them, with when each was first seen there.
#[derive(Default)]
pub struct DbFollower {
    pub rows: Vec<(ChangeRow, i64)>,
}

/// Polls the database every 50 ms for new rows (the time a row is first
/// seen is an upper bound of its commit time).
pub fn follow_db(store: Store) -> (Arc<Mutex<DbFollower>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(DbFollower::default()));
    let out = seen.clone();
    let task = tokio::spawn(async move {
        let mut after = 0i64;
        loop {
            if let Ok(rows) = queries::changes(
                &store,
                ChangeFilter {
                    after_id: Some(after),
                    limit: 10_000,
                    ..ChangeFilter::default()
                },
            )
            .await
            {
                let now = now_us();
                if let Some(last) = rows.last() {
                    after = last.id;
                }
                out.lock()
                    .unwrap()
                    .rows
                    .extend(rows.into_iter().map(|r| (r, now)));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    (seen, task)
}

/// Changes with when they arrived.
pub type Arrivals = Arc<Mutex<Vec<(OddsChange, i64)>>>;

/// Every change the SSE stream delivered, with when it arrived.
pub fn follow_stream(url: String) -> (Arrivals, tokio::task::JoinHandle<()>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let out = got.clone();
    let task = tokio::spawn(async move {
        let mut response = reqwest::get(&url).await.expect("stream opens");
        assert_eq!(response.status(), 200);
        let mut buffer = String::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                if let Some(data) = frame
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .filter(|_| frame.starts_with("event: change"))
                {
                    let change: OddsChange = serde_json::from_str(data).expect("a change");
                    out.lock().unwrap().push((change, now_us()));
                }
            }
        }
    });
    (got, task)
}

pub async fn truth(sim: &Bookmaker) -> Vec<TruthChange> {
    reqwest::get(format!("http://{}/truth", sim.addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

pub async fn polls(sim: &Bookmaker) -> HashMap<String, Vec<i64>> {
    reqwest::get(format!("http://{}/polls", sim.addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// What a change set the thing to: a price, a status, or a state.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Value {
    Price(i64),
    Status(String),
    Suspended,
    Unsuspended,
    Removed,
}

fn cents(p: f64) -> i64 {
    (p * 100.0).round() as i64
}

fn truth_value(t: &TruthChange) -> Value {
    match t.kind.as_str() {
        "price" | "added" => Value::Price(cents(t.new_price.unwrap_or(0.0))),
        "status" => Value::Status(t.status.clone().unwrap_or_default()),
        "suspended" => Value::Suspended,
        "unsuspended" => Value::Unsuspended,
        _ => Value::Removed,
    }
}

fn row_value(r: &ChangeRow) -> Value {
    match r.kind.as_str() {
        "price" | "added" => Value::Price(cents(r.new_price.unwrap_or(0.0))),
        "status" => Value::Status(r.status.clone().unwrap_or_default()),
        "suspended" => Value::Suspended,
        "unsuspended" => Value::Unsuspended,
        _ => Value::Removed,
    }
}

type Key = (String, String, String);

/// The score of one site.
#[derive(Debug, Default)]
pub struct Score {
    pub site: String,
    /// Truth changes in the window that some poll could see (present
    /// while a page was served).
    pub visible: usize,
    pub visible_found: usize,
    /// Truth changes in the window that stayed at least one poll interval.
    pub stayed: usize,
    pub stayed_found: usize,
    /// Truth changes that stayed at least one poll interval + 250 ms.
    pub stayed_slack: usize,
    pub stayed_slack_found: usize,
    pub rows: usize,
    pub rows_true: usize,
    /// Changes that put back what the last poll saw (an unseen change
    /// undone): nothing for a poller to record, not counted.
    pub net_nil: usize,
    /// Change (simulator) → committed (first seen in the database), ms.
    pub commit_delays_ms: Vec<f64>,
    /// Change → observed by a poll, ms.
    pub observe_delays_ms: Vec<f64>,
    /// Change → committed for changes made before the game's first poll
    /// (bounded by the discovery interval, not the poll interval), ms.
    pub new_game_delays_ms: Vec<f64>,
    pub misses: Vec<String>,
    pub false_rows: Vec<String>,
}

impl Score {
    pub fn recall_visible(&self) -> f64 {
        ratio(self.visible_found, self.visible)
    }
    pub fn recall_stayed(&self) -> f64 {
        ratio(self.stayed_found, self.stayed)
    }
    pub fn recall_stayed_slack(&self) -> f64 {
        ratio(self.stayed_slack_found, self.stayed_slack)
    }
    pub fn precision(&self) -> f64 {
        ratio(self.rows_true, self.rows)
    }
    pub fn report(&self) -> String {
        format!(
            "site {}: {} rows ({} undone unseen changes not counted); precision {:.4} ({}/{}); recall of changes a poll could see {:.4} ({}/{}); \
             recall of changes that stayed >= {} ms {:.4} ({}/{}); stayed >= {} ms {:.4} ({}/{}); \
             delay change->committed (watched games, {} changes) p50 {:.0} ms p99 {:.0} ms max {:.0} ms; \
             change->observed p50 {:.0} ms p99 {:.0} ms; new games (before their first poll, {} changes) change->committed p99 {:.0} ms",
            self.site, self.rows, self.net_nil, self.precision(), self.rows_true, self.rows,
            self.recall_visible(), self.visible_found, self.visible,
            POLL_MS, self.recall_stayed(), self.stayed_found, self.stayed,
            POLL_MS + 250, self.recall_stayed_slack(), self.stayed_slack_found, self.stayed_slack,
            self.commit_delays_ms.len(),
            pct(&self.commit_delays_ms, 0.5), pct(&self.commit_delays_ms, 0.99),
            pct(&self.commit_delays_ms, 1.0), pct(&self.observe_delays_ms, 0.5),
            pct(&self.observe_delays_ms, 0.99), self.new_game_delays_ms.len(),
            pct(&self.new_game_delays_ms, 0.99),
        )
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}

pub fn pct(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    v[i.min(v.len() - 1)]
}

/// Scores one site's rows (with first-seen times) against its truth.
/// Recall counts truth changes in `[from_us, to_us]`; precision every row.
pub fn score(
    site: &str,
    truth: &[TruthChange],
    polls: &HashMap<String, Vec<i64>>,
    rows: &[(ChangeRow, i64)],
    from_us: i64,
    to_us: i64,
) -> Score {
    let mut s = Score {
        site: site.to_owned(),
        ..Score::default()
    };
    // How long each truth change stayed: until the next change of the same
    // thing, the removal of its market (for a market's state) or of its event.
    let mut by_event: BTreeMap<&str, Vec<&TruthChange>> = BTreeMap::new();
    for t in truth {
        by_event.entry(t.event.as_str()).or_default().push(t);
    }
    // Each row is caused by the latest change to its value made before it
    // was observed; a truth change is found when some row is caused by it.
    let mut truth_keys: HashMap<(Key, Value), Vec<i64>> = HashMap::new();
    for t in truth {
        truth_keys
            .entry((
                (t.event.clone(), t.market.clone(), t.outcome.clone()),
                truth_value(t),
            ))
            .or_default()
            .push(t.at_us);
    }
    let mut caused: HashMap<(Key, Value, i64), (i64, i64)> = HashMap::new();
    for (r, seen) in rows.iter().filter(|(r, _)| r.site == site) {
        s.rows += 1;
        let key = (
            (r.event_id.clone(), r.market.clone(), r.outcome.clone()),
            row_value(r),
        );
        let cause = truth_keys.get(&key).and_then(|times| {
            times
                .iter()
                .filter(|at| **at <= r.observed_at_us + 1_000)
                .max()
                .copied()
        });
        match cause {
            Some(at) => {
                s.rows_true += 1;
                let entry = caused
                    .entry((key.0, key.1, at))
                    .or_insert((r.observed_at_us, *seen));
                if r.observed_at_us < entry.0 {
                    *entry = (r.observed_at_us, *seen);
                }
            }
            None => {
                if s.false_rows.len() < 20 {
                    s.false_rows.push(format!("{r:?}"));
                }
            }
        }
    }
    let no_polls = Vec::new();
    for (event, changes) in &by_event {
        let served = polls.get(*event).unwrap_or(&no_polls);
        for (i, t) in changes.iter().enumerate() {
            if t.at_us < from_us || t.at_us > to_us {
                continue;
            }
            let until = changes[i + 1..]
                .iter()
                .find(|n| {
                    (n.market == t.market && n.outcome == t.outcome)
                        || (n.kind == "removed" && n.market.is_empty())
                        || (n.kind == "removed" && t.outcome.is_empty() && n.market == t.market)
                })
                .map(|n| n.at_us)
                .unwrap_or(i64::MAX);
            let stayed_ms = (until.min(to_us + 10_000_000) - t.at_us) / 1_000;
            // A removed event: visible when the game had been polled at all
            // (a game over before it was discovered is never watched).
            let visible = if t.kind == "removed" && t.market.is_empty() {
                served.first().is_some_and(|p| *p < t.at_us)
            } else {
                served.iter().any(|p| *p >= t.at_us && *p < until)
            };
            let stayed_ms = if t.kind == "removed" && t.market.is_empty() && !visible {
                0
            } else {
                stayed_ms
            };
            // What the last poll before the change saw of this thing: when
            // it is what the change set (an unseen change was undone), the
            // change is no change to a poller: not counted.
            let last_poll = served.iter().filter(|p| **p < t.at_us).max();
            if let Some(p) = last_poll {
                let before = changes[..i]
                    .iter()
                    .rev()
                    .find(|c| c.market == t.market && c.outcome == t.outcome && c.at_us <= *p)
                    .map(|c| truth_value(c))
                    .or_else(|| {
                        (!t.market.is_empty() && t.outcome.is_empty()).then_some(Value::Unsuspended)
                    });
                if before.as_ref() == Some(&truth_value(t)) {
                    s.net_nil += 1;
                    continue;
                }
            }
            // Before the game's first poll: waiting on discovery.
            let new_game = served.first().is_none_or(|p| *p > t.at_us);
            let key = (
                (t.event.clone(), t.market.clone(), t.outcome.clone()),
                truth_value(t),
            );
            let found = caused.get(&(key.0, key.1, t.at_us)).copied();
            if visible {
                s.visible += 1;
                s.visible_found += usize::from(found.is_some());
            }
            if stayed_ms >= POLL_MS {
                s.stayed += 1;
                s.stayed_found += usize::from(found.is_some());
            }
            if stayed_ms >= POLL_MS + 250 {
                s.stayed_slack += 1;
                s.stayed_slack_found += usize::from(found.is_some());
            }
            match found {
                Some((observed, seen)) if new_game => {
                    s.new_game_delays_ms.push((seen - t.at_us) as f64 / 1_000.0);
                    let _ = observed;
                }
                Some((observed, seen)) => {
                    s.commit_delays_ms.push((seen - t.at_us) as f64 / 1_000.0);
                    s.observe_delays_ms
                        .push((observed - t.at_us) as f64 / 1_000.0);
                }
                None if (visible || stayed_ms >= POLL_MS) && s.misses.len() < 20 => {
                    let same: Vec<_> = rows
                        .iter()
                        .filter(|(r, _)| {
                            r.site == site
                                && r.event_id == t.event
                                && (r.market == t.market || r.market.is_empty())
                        })
                        .map(|(r, _)| (r.kind.clone(), r.outcome.clone(), r.seq, r.observed_at_us))
                        .collect();
                    let around: Vec<_> = served
                        .iter()
                        .filter(|p| (**p - t.at_us).abs() < 3_000_000)
                        .map(|p| p - t.at_us)
                        .collect();
                    s.misses.push(format!(
                            "{t:?} stayed {stayed_ms} ms, visible to a poll: {visible}; rows of its market: {same:?}; polls around (us from change): {around:?}"
                        ));
                }
                None => {}
            }
        }
    }
    s
}
