//! `tasklet bench watermark`: a load generator for `POST /v1/watermark` (or
//! any server taking the same upload): N concurrent senders post one image
//! for a fixed time, then report images/s, latency percentiles and errors.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::config::Config;

#[derive(Debug, Args)]
pub struct WatermarkBench {
    /// Where to post the image.
    #[arg(long, default_value = "http://127.0.0.1:8080/v1/watermark")]
    pub url: String,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// How long to send, e.g. `30s`, `500ms`, `2m`.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,
    /// The image to post (JPEG or PNG; the Content-Type follows the extension).
    #[arg(long)]
    pub image: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `30s`, `1500ms`, `2m` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30s"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("{s:?}: unit must be ms, s or m")),
    };
    if !(secs > 0.0 && secs.is_finite()) {
        return Err(format!("{s:?} must be positive"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// What one run measured.
#[derive(Debug, Serialize, PartialEq)]
pub struct Report {
    pub url: String,
    pub image: String,
    pub concurrency: usize,
    pub seconds: f64,
    /// Answers with status 200.
    pub ok: u64,
    pub images_per_s: f64,
    /// Latency percentiles of the 200 answers, in milliseconds.
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Non-200 answers by status code (e.g. 503 when the server sheds load).
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no answer (connection refused, reset, ...).
    pub transport_errors: u64,
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    statuses: BTreeMap<u16, u64>,
    transport_errors: u64,
}

/// The value at quantile `q` of sorted `v`, nearest rank.
fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1000.0
}

fn summarize(args: &WatermarkBench, seconds: f64, tallies: Vec<Tally>) -> Report {
    let mut all = Tally::default();
    for t in tallies {
        all.latencies_us.extend(t.latencies_us);
        for (k, v) in t.statuses {
            *all.statuses.entry(k).or_default() += v;
        }
        all.transport_errors += t.transport_errors;
    }
    all.latencies_us.sort_unstable();
    let ok = all.latencies_us.len() as u64;
    Report {
        url: args.url.clone(),
        image: args.image.display().to_string(),
        concurrency: args.concurrency,
        seconds,
        ok,
        images_per_s: ok as f64 / seconds,
        p50_ms: percentile(&all.latencies_us, 0.50),
        p95_ms: percentile(&all.latencies_us, 0.95),
        p99_ms: percentile(&all.latencies_us, 0.99),
        max_ms: percentile(&all.latencies_us, 1.0),
        statuses: all.statuses,
        transport_errors: all.transport_errors,
    }
}

pub async fn run(args: WatermarkBench, _config: &Config) -> anyhow::Result<()> {
    let body = Bytes::from(std::fs::read(&args.image)?);
    let content_type = match args.image.extension().and_then(|e| e.to_str()) {
        Some("png") | Some("PNG") => "image/png",
        _ => "image/jpeg",
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(60))
        .build()?;
    let started = Instant::now();
    let deadline = started + args.duration;
    let bar = ProgressBar::new(args.duration.as_secs().max(1));
    bar.set_style(ProgressStyle::with_template(
        "{elapsed_precise} [{bar:30}] {pos}/{len}s {msg}",
    )?);
    let done = std::rc::Rc::new(std::cell::Cell::new((0u64, 0u64)));
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (client, body, url, done) =
            (client.clone(), body.clone(), args.url.clone(), done.clone());
        tasks.push(tokio::task::spawn_local(async move {
            let mut tally = Tally::default();
            while Instant::now() < deadline {
                let sent = Instant::now();
                let answer = client
                    .post(&url)
                    .header("content-type", content_type)
                    .body(body.clone())
                    .send()
                    .await;
                let status = match answer {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        // Read the whole answer: that is part of the work.
                        match resp.bytes().await {
                            Ok(_) => Some(status),
                            Err(_) => None,
                        }
                    }
                    Err(_) => None,
                };
                let (ok, failed) = done.get();
                match status {
                    Some(200) => {
                        tally.latencies_us.push(sent.elapsed().as_micros() as u64);
                        done.set((ok + 1, failed));
                    }
                    Some(other) => {
                        *tally.statuses.entry(other).or_default() += 1;
                        done.set((ok, failed + 1));
                    }
                    None => {
                        tally.transport_errors += 1;
                        done.set((ok, failed + 1));
                    }
                }
            }
            tally
        }));
    }
    let ticker = {
        let bar = bar.clone();
        let done = done.clone();
        tokio::task::spawn_local(async move {
            while Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let secs = started.elapsed().as_secs_f64();
                let (ok, failed) = done.get();
                bar.set_position(secs as u64);
                bar.set_message(format!("{:.0} images/s, {failed} errors", ok as f64 / secs));
            }
        })
    };
    let mut tallies = Vec::new();
    for t in tasks {
        tallies.push(t.await?);
    }
    let seconds = started.elapsed().as_secs_f64();
    ticker.abort();
    bar.finish_and_clear();
    let report = summarize(&args, seconds, tallies);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} x{} for {:.1}s: {} ok, {:.1} images/s, p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms, other statuses {:?}, transport errors {}",
            report.url,
            report.concurrency,
            report.seconds,
            report.ok,
            report.images_per_s,
            report.p50_ms,
            report.p95_ms,
            report.p99_ms,
            report.max_ms,
            report.statuses,
            report.transport_errors
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        for bad in ["", "s", "0s", "3h", "-1s", "x"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile(&v, 0.50), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn tallies_merge_into_one_report() {
        let args = WatermarkBench {
            url: "u".into(),
            concurrency: 2,
            duration: Duration::from_secs(2),
            image: "i.jpg".into(),
            json: true,
        };
        let a = Tally {
            latencies_us: vec![1000, 3000],
            statuses: BTreeMap::from([(503, 2)]),
            transport_errors: 1,
        };
        let b = Tally {
            latencies_us: vec![2000],
            statuses: BTreeMap::from([(503, 1), (500, 1)]),
            transport_errors: 0,
        };
        let r = summarize(&args, 2.0, vec![a, b]);
        assert_eq!(r.ok, 3);
        assert_eq!(r.images_per_s, 1.5);
        assert_eq!(r.p50_ms, 2.0);
        assert_eq!(r.statuses, BTreeMap::from([(500, 1), (503, 3)]));
        assert_eq!(r.transport_errors, 1);
    }
}
