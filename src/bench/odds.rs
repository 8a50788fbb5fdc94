//! `tasklet bench odds`: how many games one daemon follows at one poll per
//! second with the p99 delay (simulator change → committed row) within
//! poll interval + 250 ms, and the CPU per poll split into fetch (HTTP
//! client and actor runtime), parse, diff and persist. The simulator runs
//! as a separate process so that its CPU is not counted; optionally a
//! Scrapy spider (`bench/python/favbet_spider.py`) polls the same
//! simulator in the same run for comparison, at full load (each game asked
//! again as soon as it answers): pages/s and CPU per page.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clap::Args;
use indicatif::ProgressBar;
use serde::Serialize;
use tasklet_actors::odds::cpu;
use tasklet_actors::odds::queries::{self, ChangeFilter};
use tasklet_actors::odds::{SiteKind, SiteSettings};
use tasklet_actors::store::models::now_us;

use super::report::{percentile, progress, table, Summary};
use crate::config::{Config, Secrets};
use crate::daemon::Daemon;
use crate::sim::bookmaker::TruthChange;

#[derive(Debug, Args)]
pub struct OddsBench {
    /// Game counts to run, one run each.
    #[arg(long, value_delimiter = ',', default_value = "1000,2000,5000")]
    pub games: Vec<usize>,
    /// Measured seconds per run (after the warm-up).
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    #[arg(long, default_value_t = 8)]
    pub warmup_s: u64,
    /// `favbet` or `html`.
    #[arg(long, default_value = "favbet")]
    pub format: String,
    /// Mean ms between two changes of one game in the simulator.
    #[arg(long, default_value_t = 10_000)]
    pub change_every_ms: u64,
    /// HTTP worker threads of the simulator.
    #[arg(long, default_value_t = 2)]
    pub sim_workers: usize,
    /// Python with Scrapy: also run the spider on the same simulator.
    #[arg(long)]
    pub scrapy_python: Option<String>,
    /// Games for the Scrapy run (default: each of --games).
    #[arg(long, value_delimiter = ',')]
    pub scrapy_games: Vec<usize>,
    /// Database (default: a SQLite file in a temporary folder).
    #[arg(long)]
    pub database_url: Option<String>,
    /// Print the result as JSON on stdout instead of a table (no progress bar).
    #[arg(long)]
    pub json: bool,
}

/// One run: `completed` counts the polls in the measured window, `errors`
/// the failed polls and unreadable pages, and the percentiles time each
/// price change from the simulator making it to its row being committed.
#[derive(Debug, Serialize)]
struct Run {
    #[serde(flatten)]
    summary: Summary,
    games: usize,
    cpu_ms_per_poll: f64,
    fetch_ms: f64,
    parse_ms: f64,
    diff_ms: f64,
    persist_ms: f64,
    db_threads_ms: f64,
    cores_used: f64,
    changes: usize,
    /// Change made → change seen by a poll (the `observed_at` of its row).
    observe_p99_ms: f64,
    within_bound: bool,
    threads: Vec<(String, f64)>,
}

/// The simulator, as a child process.
struct Sim {
    child: Child,
    url: String,
    addr: String,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sim(
    games: usize,
    format: &str,
    change_every_ms: u64,
    workers: usize,
) -> anyhow::Result<Sim> {
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "sim",
            "bookmaker",
            "--games",
            &games.to_string(),
            "--format",
            format,
            "--addr",
            "127.0.0.1:0",
            "--change-every-ms",
            &change_every_ms.to_string(),
            "--game-length-s",
            "100000",
            "--workers",
            &workers.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first)?;
    // "bookmaker listening on http://ADDR (N games, site url URL)"
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .ok_or_else(|| anyhow::anyhow!("simulator said {first:?}"))?
        .to_owned();
    let url = first
        .split("site url ")
        .nth(1)
        .map(|s| s.trim().trim_end_matches(')').to_owned())
        .ok_or_else(|| anyhow::anyhow!("simulator said {first:?}"))?;
    Ok(Sim { child, url, addr })
}

/// CPU seconds of each thread of this process, by thread name.
fn thread_cpu() -> HashMap<String, f64> {
    let mut out = HashMap::new();
    let tick = 100.0; // USER_HZ
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of stat; 12 and 13 after ")".
        let cpu = fields
            .get(11)
            .and_then(|u| u.parse::<f64>().ok())
            .unwrap_or(0.0)
            + fields
                .get(12)
                .and_then(|s| s.parse::<f64>().ok())
                .unwrap_or(0.0);
        let name = name.trim().trim_end_matches(char::is_numeric).to_owned();
        *out.entry(name).or_insert(0.0) += cpu / tick;
    }
    out
}

/// Sums the counters called `name` whose labels include `label` (`""`: all)
/// in Prometheus text.
fn counter(text: &str, name: &str, label: &str) -> u64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(['{', ' ']) && rest.contains(label))
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Polls that failed and pages that could not be read, so far.
fn odds_errors() -> u64 {
    let text = crate::telemetry::render_metrics();
    counter(&text, "tasklet_odds_polls_total", "outcome=\"failed\"")
        + counter(&text, "tasklet_odds_unreadable_pages_total", "")
}

/// Sleeps `secs` seconds, one step of the bar each.
async fn sleep_counting(bar: &ProgressBar, secs: u64) {
    for _ in 0..secs {
        tokio::time::sleep(Duration::from_secs(1)).await;
        bar.inc(1);
    }
}

async fn run_once(
    args: &OddsBench,
    games: usize,
    config: &Config,
    bar: &ProgressBar,
) -> anyhow::Result<Run> {
    let sim = start_sim(games, &args.format, args.change_every_ms, args.sim_workers)?;
    let dir = tempfile_dir()?;
    let mut c = config.clone();
    c.base_dir = dir.clone();
    c.server.addr = "127.0.0.1:0".to_owned();
    c.server.workers = 1;
    c.database.url = args
        .database_url
        .clone()
        .unwrap_or_else(|| "sqlite://odds-bench.db".to_owned());
    c.odds.enabled = true;
    c.odds.poll_interval_ms = 1_000;
    c.odds.discovery_interval_ms = 5_000;
    c.odds.sites = vec![SiteSettings {
        name: "bench".to_owned(),
        kind: if args.format == "html" {
            SiteKind::Html
        } else {
            SiteKind::Favbet
        },
        base_url: sim.url.clone(),
        rate_limit_per_s: (games as u32 * 3).max(100),
        max_concurrency: 512,
        max_idle_connections: 512,
        ..SiteSettings::default()
    }];
    c.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let daemon = Daemon::start(c, Secrets::default()).await?;
    bar.set_message(format!("{games} games, warming up"));
    sleep_counting(bar, args.warmup_s).await;

    // Follow the database to learn when each row is committed.
    let store = daemon.store.clone();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let out = seen.clone();
    let start_id = queries::changes(
        &store,
        ChangeFilter {
            limit: i64::MAX,
            ..Default::default()
        },
    )
    .await?
    .last()
    .map(|r| r.id)
    .unwrap_or(0);
    let follower = tokio::spawn(async move {
        let mut after = start_id;
        loop {
            if let Ok(rows) = queries::changes(
                &store,
                ChangeFilter {
                    after_id: Some(after),
                    limit: 100_000,
                    ..Default::default()
                },
            )
            .await
            {
                let now = now_us();
                if let Some(last) = rows.last() {
                    after = last.id;
                }
                if let Ok(mut s) = out.lock() {
                    s.extend(rows.into_iter().map(|r| (r, now)));
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });

    let t0 = now_us();
    let cpu0 = cpu::process_cpu_ns();
    let stages0 = cpu::totals();
    let threads0 = thread_cpu();
    let errors0 = odds_errors();
    bar.set_message(format!("{games} games, measuring"));
    sleep_counting(bar, args.seconds).await;
    let errors1 = odds_errors();
    let cpu1 = cpu::process_cpu_ns();
    let stages1 = cpu::totals();
    let threads1 = thread_cpu();
    let t1 = now_us();
    sleep_counting(bar, 2).await;
    follower.abort();

    let truth: Vec<TruthChange> = reqwest::get(format!("http://{}/truth?since={t0}", sim.addr))
        .await?
        .json()
        .await?;
    let rows = seen.lock().map(|s| s.clone()).unwrap_or_default();
    daemon.shutdown().await?;
    drop(sim);
    let _ = std::fs::remove_dir_all(&dir);

    let polls_done = stages1.polls - stages0.polls;
    let polls = polls_done.max(1) as f64;
    let per_poll = |ns: u64| ns as f64 / 1e6 / polls;
    let total = per_poll(cpu1 - cpu0);
    let parse = per_poll(stages1.parse_ns - stages0.parse_ns);
    let diff = per_poll(stages1.diff_ns - stages0.diff_ns);
    let persist = per_poll(stages1.persist_ns - stages0.persist_ns);
    let mut threads: Vec<(String, f64)> = threads1
        .iter()
        .map(|(n, v)| (n.clone(), v - threads0.get(n).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect();
    threads.sort_by(|a, b| b.1.total_cmp(&a.1));
    // The database commits run on tokio's blocking threads.
    let db_threads = threads
        .iter()
        .filter(|(n, _)| n.starts_with("tokio-r"))
        .map(|(_, v)| v)
        .sum::<f64>()
        * 1e3
        / polls;

    // Delay of price changes: truth change -> row first seen committed.
    let mut latest: HashMap<(String, String, String, i64), i64> = HashMap::new();
    let mut by_key: HashMap<(String, String, String), Vec<(i64, i64)>> = HashMap::new();
    for t in truth.iter().filter(|t| t.kind == "price") {
        let cents = (t.new_price.unwrap_or(0.0) * 100.0).round() as i64;
        by_key
            .entry((t.event.clone(), t.market.clone(), t.outcome.clone()))
            .or_default()
            .push((t.at_us, cents));
        latest.insert(
            (t.event.clone(), t.market.clone(), t.outcome.clone(), cents),
            t.at_us,
        );
    }
    let mut delays = Vec::new();
    let mut observe = Vec::new();
    for (r, seen_at) in rows
        .iter()
        .filter(|(r, _)| r.kind == "price" && r.observed_at_us < t1)
    {
        let cents = (r.new_price.unwrap_or(0.0) * 100.0).round() as i64;
        let key = (r.event_id.clone(), r.market.clone(), r.outcome.clone());
        let cause = by_key.get(&key).and_then(|v| {
            v.iter()
                .filter(|(at, c)| *c == cents && *at <= r.observed_at_us + 1_000)
                .map(|(at, _)| *at)
                .max()
        });
        if let Some(at) = cause {
            delays.push((seen_at - at) as f64 / 1e3);
            observe.push((r.observed_at_us - at) as f64 / 1e3);
        }
    }
    let changes = delays.len();
    let summary = Summary::new(
        format!("{games} games, {}", args.format),
        "polls",
        "change → committed",
        delays,
        polls_done,
        errors1.saturating_sub(errors0),
        (t1 - t0) as f64 / 1e6,
    );
    Ok(Run {
        within_bound: summary.p99_ms <= 1_250.0,
        summary,
        games,
        cpu_ms_per_poll: total,
        fetch_ms: (total - parse - diff - persist - db_threads).max(0.0),
        parse_ms: parse,
        diff_ms: diff,
        persist_ms: persist,
        db_threads_ms: db_threads,
        cores_used: (cpu1 - cpu0) as f64 / 1e3 / (t1 - t0) as f64,
        changes,
        observe_p99_ms: {
            observe.sort_by(f64::total_cmp);
            percentile(&observe, 0.99)
        },
        threads,
    })
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "tasklet-bench-odds-{}-{}",
        std::process::id(),
        now_us()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn scrapy(python: &str, games: usize, args: &OddsBench) -> anyhow::Result<serde_json::Value> {
    let sim = start_sim(games, "favbet", args.change_every_ms, args.sim_workers)?;
    let spider =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/python/favbet_spider.py");
    let out = Command::new(python)
        .arg(spider)
        .args([
            "--url",
            &sim.url,
            "--games",
            &games.to_string(),
            "--seconds",
            &args.seconds.to_string(),
            "--warmup",
            &args.warmup_s.to_string(),
        ])
        .stderr(Stdio::inherit())
        .output()?;
    drop(sim);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| anyhow::anyhow!("the spider printed no result: {text}"))?;
    Ok(serde_json::from_str(line)?)
}

pub async fn run(args: OddsBench, config: &Config) -> anyhow::Result<()> {
    let per_run = args.warmup_s + args.seconds + 2;
    let bar = progress(per_run * args.games.len() as u64, "s", args.json);
    let mut runs = Vec::new();
    for &games in &args.games {
        runs.push(run_once(&args, games, config, &bar).await?);
    }
    bar.finish_and_clear();
    let mut scrapy_runs = Vec::new();
    if let Some(python) = &args.scrapy_python {
        let games = if args.scrapy_games.is_empty() {
            args.games.clone()
        } else {
            args.scrapy_games.clone()
        };
        for g in games {
            scrapy_runs.push(scrapy(python, g, &args)?);
        }
    }
    if args.json {
        let out = serde_json::json!({"bench": "odds", "runs": runs, "scrapy": scrapy_runs});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "tasklet bench odds: {} cores, format {}, poll every 1 s, {} s measured after {} s warm-up",
        crate::config::cores(),
        args.format,
        args.seconds,
        args.warmup_s
    );
    for r in &runs {
        println!(
            "{:>6} games: CPU {:.3} ms/poll (fetch+runtime {:.3}, parse {:.3}, diff {:.3}, persist {:.3}, db commit {:.3}), {:.2} cores; {} price changes, observed p99 {:.0} ms -> {}",
            r.games, r.cpu_ms_per_poll, r.fetch_ms, r.parse_ms, r.diff_ms, r.persist_ms, r.db_threads_ms, r.cores_used, r.changes, r.observe_p99_ms,
            if r.within_bound { "p99 within 1250 ms" } else { "p99 OVER 1250 ms" }
        );
        let top: Vec<String> = r
            .threads
            .iter()
            .take(6)
            .map(|(n, v)| format!("{n} {v:.1}s"))
            .collect();
        println!("    threads: {}", top.join(", "));
    }
    for (g, r) in scrapy_runs.iter().enumerate() {
        println!(
            "scrapy run {}, full load (each game polled again as soon as answered): {:>7.0} polls/s, CPU {:.3} ms/poll, {:.2} cores",
            g + 1,
            r["polls_per_s"].as_f64().unwrap_or(0.0),
            r["cpu_ms_per_poll"].as_f64().unwrap_or(0.0),
            r["cpu_s"].as_f64().unwrap_or(0.0) / args.seconds as f64
        );
    }
    let summaries: Vec<&Summary> = runs.iter().map(|r| &r.summary).collect();
    print!("{}", table(&summaries));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_summed_by_name_and_label() {
        let text = "# TYPE tasklet_odds_polls_total counter\n\
            tasklet_odds_polls_total{site=\"a\",outcome=\"ok\"} 10\n\
            tasklet_odds_polls_total{site=\"a\",outcome=\"failed\"} 2\n\
            tasklet_odds_polls_total{site=\"b\",outcome=\"failed\"} 3\n\
            tasklet_odds_polls_total_other 100\n\
            tasklet_odds_unreadable_pages_total 4\n";
        assert_eq!(
            counter(text, "tasklet_odds_polls_total", "outcome=\"failed\""),
            5
        );
        assert_eq!(counter(text, "tasklet_odds_polls_total", ""), 15);
        assert_eq!(counter(text, "tasklet_odds_unreadable_pages_total", ""), 4);
        assert_eq!(counter(text, "tasklet_odds_missing_total", ""), 0);
    }
}
