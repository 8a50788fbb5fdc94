//! `tasklet bench watermark`: a load generator for `POST /v1/watermark` (or
//! any server taking the same upload): N concurrent senders post one image
//! for a fixed time, then report images/s, latency percentiles and errors.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use serde::Serialize;

use super::report::{parse_duration, print, progress, Summary};
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
    /// Print the result as JSON on stdout instead of a table (no progress bar).
    #[arg(long)]
    pub json: bool,
}

/// What one run measured: `completed` counts the answers with status 200,
/// whose latencies the percentiles are; `errors` every other outcome.
#[derive(Debug, Serialize, PartialEq)]
pub struct Report {
    #[serde(flatten)]
    pub summary: Summary,
    pub url: String,
    pub image: String,
    pub concurrency: usize,
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

fn summarize(args: &WatermarkBench, seconds: f64, tallies: Vec<Tally>) -> Report {
    let mut all = Tally::default();
    for t in tallies {
        all.latencies_us.extend(t.latencies_us);
        for (k, v) in t.statuses {
            *all.statuses.entry(k).or_default() += v;
        }
        all.transport_errors += t.transport_errors;
    }
    let ok = all.latencies_us.len() as u64;
    let errors = all.statuses.values().sum::<u64>() + all.transport_errors;
    Report {
        summary: Summary::new(
            format!("POST {} x{}", args.url, args.concurrency),
            "images",
            "request",
            all.latencies_us
                .iter()
                .map(|&us| us as f64 / 1000.0)
                .collect(),
            ok,
            errors,
            seconds,
        ),
        url: args.url.clone(),
        image: args.image.display().to_string(),
        concurrency: args.concurrency,
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
    let bar = progress(args.duration.as_secs().max(1), "s", args.json);
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
    if !args.json && !report.statuses.is_empty() {
        println!("other statuses: {:?}", report.statuses);
    }
    print("watermark", &[&report], &[&report.summary], args.json)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(r.summary.completed, 3);
        assert_eq!(
            r.summary.errors, 5,
            "four refused answers and one transport error"
        );
        assert_eq!(r.summary.per_s, 1.5);
        assert_eq!(r.summary.p50_ms, 2.0);
        assert_eq!(r.summary.max_ms, 3.0);
        assert_eq!(r.statuses, BTreeMap::from([(500, 1), (503, 3)]));
        assert_eq!(r.transport_errors, 1);
    }
}
