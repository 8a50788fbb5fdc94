//! `tasklet bench beard`: the beard path for a cached style, timed.
//!
//! In-process (default): one thread runs decode → detect → landmarks →
//! blend → encode on a photo `--iterations` times and reports the
//! percentiles of each step and of the whole, and dresses/s on that one
//! core. With `--url`: an HTTP load generator against a running daemon
//! (`POST /v1/beard`) for `--duration`, reporting requests/s and latency
//! percentiles plus the daemon's own `Server-Timing` split.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tasklet_actors::beards::decode_beard;
use tasklet_actors::compose::dress::{dress, DressOptions, DressTimings, FaceChoice};
use tasklet_actors::compose::face::FaceFinder;

use serde::Serialize;

use super::report::{parse_duration, percentile, print, progress, Summary};
use crate::sim::beards::{draw_png, ANCHOR};

#[derive(Debug, clap::Args)]
pub struct BeardBench {
    /// The portrait to dress.
    #[arg(long, default_value = "tests/data/faces/astronaut_1280x853.jpg")]
    pub image: PathBuf,
    /// Beard style (in-process: a simulator kind; over HTTP: a catalog style).
    #[arg(long, default_value = "full")]
    pub style: String,
    /// In-process: dresses to time (after `--warmup`).
    #[arg(long, default_value_t = 200)]
    pub iterations: usize,
    #[arg(long, default_value_t = 10)]
    pub warmup: usize,
    /// In-process: the face models folder.
    #[arg(long, default_value = "models")]
    pub models: PathBuf,
    /// Over HTTP: the daemon's base URL, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    pub url: Option<String>,
    /// Over HTTP: requests in flight.
    #[arg(long, default_value_t = 2)]
    pub concurrency: usize,
    /// Over HTTP: how long to run (e.g. 30s).
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Print the result as JSON on stdout instead of a table (no progress bar).
    #[arg(long)]
    pub json: bool,
}

/// Percentiles of one step, or of one `Server-Timing` entry, in ms.
#[derive(Debug, Serialize)]
struct Split {
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    mean_ms: f64,
}

impl Split {
    fn of(mut v: Vec<f64>) -> Split {
        v.sort_by(f64::total_cmp);
        Split {
            p50_ms: percentile(&v, 0.50),
            p95_ms: percentile(&v, 0.95),
            p99_ms: percentile(&v, 0.99),
            mean_ms: v.iter().sum::<f64>() / v.len().max(1) as f64,
        }
    }
}

/// One run: the summary, and the time of each step (in-process) or each
/// part of the daemon's `Server-Timing` (over HTTP).
#[derive(Debug, Serialize)]
struct Run {
    #[serde(flatten)]
    summary: Summary,
    image: String,
    style: String,
    steps: BTreeMap<String, Split>,
}

/// Reads one step's time out of a dress's timings.
type Step = fn(&DressTimings) -> Duration;

pub async fn run(args: BeardBench) -> anyhow::Result<()> {
    let json = args.json;
    let run = match args.url.clone() {
        Some(url) => over_http(args, url).await?,
        None => tokio::task::spawn_blocking(move || in_process(args)).await??,
    };
    if !json {
        println!(
            "{:<12} {:>9} {:>9} {:>9} {:>9}",
            "step", "p50 ms", "p95 ms", "p99 ms", "mean ms"
        );
        for (name, s) in &run.steps {
            println!(
                "{name:<12} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                s.p50_ms, s.p95_ms, s.p99_ms, s.mean_ms
            );
        }
    }
    print("beard", &[&run], &[&run.summary], json)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn in_process(args: BeardBench) -> anyhow::Result<Run> {
    let photo =
        std::fs::read(&args.image).with_context(|| format!("reading {}", args.image.display()))?;
    let finder = FaceFinder::load(&args.models)?;
    let beard = decode_beard(
        &draw_png(&args.style, 1, &args.style),
        Some([ANCHOR[0] as f32, ANCHOR[1] as f32]),
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    let options = DressOptions {
        faces: FaceChoice::All,
        face: None,
        width_factor: 1.15,
        opacity_u8: 255,
        quality: 85,
        max_pixels: 40_000_000,
    };
    for _ in 0..args.warmup {
        dress(&finder, &photo, &beard, &options)?;
    }
    let bar = progress(args.iterations as u64, "dresses", args.json);
    let mut all: Vec<(DressTimings, Duration)> = Vec::with_capacity(args.iterations);
    let started = Instant::now();
    for _ in 0..args.iterations {
        let t = Instant::now();
        let out = dress(&finder, &photo, &beard, &options)?;
        all.push((out.timings, t.elapsed()));
        bar.inc(1);
    }
    let wall = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let steps: [(&str, Step); 5] = [
        ("decode", |t| t.decode),
        ("detect", |t| t.detect),
        ("landmarks", |t| t.landmarks),
        ("blend", |t| t.blend),
        ("encode", |t| t.encode),
    ];
    Ok(Run {
        summary: Summary::new(
            "in-process, 1 thread".to_owned(),
            "dresses",
            "dress",
            all.iter().map(|(_, d)| ms(*d)).collect(),
            all.len() as u64,
            0,
            wall,
        ),
        image: args.image.display().to_string(),
        style: args.style,
        steps: steps
            .iter()
            .map(|(name, get)| {
                let v = all.iter().map(|(t, _)| ms(get(t))).collect();
                ((*name).to_owned(), Split::of(v))
            })
            .collect(),
    })
}

async fn over_http(args: BeardBench, base: String) -> anyhow::Result<Run> {
    let photo = bytes::Bytes::from(
        std::fs::read(&args.image).with_context(|| format!("reading {}", args.image.display()))?,
    );
    let content_type = if args.image.extension().is_some_and(|e| e == "png") {
        "image/png"
    } else {
        "image/jpeg"
    };
    let url = format!(
        "{}/v1/beard?style={}",
        base.trim_end_matches('/'),
        args.style
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let started = Instant::now();
    let deadline = started + args.duration;
    let bar = progress(args.duration.as_secs().max(1), "s", args.json);
    let counts = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let workers: Vec<_> = (0..args.concurrency.max(1))
        .map(|_| {
            let (client, url, photo, counts) =
                (client.clone(), url.clone(), photo.clone(), counts.clone());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut timing = Vec::new();
                let mut errors = 0u64;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let answer = client
                        .post(&url)
                        .header("Content-Type", content_type)
                        .body(photo.clone())
                        .send()
                        .await;
                    match answer {
                        Ok(r) if r.status().is_success() => {
                            let st = r
                                .headers()
                                .get("server-timing")
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned);
                            if r.bytes().await.is_err() {
                                errors += 1;
                                counts[1].fetch_add(1, Ordering::Relaxed);
                                continue;
                            }
                            lat.push(ms(t.elapsed()));
                            timing.extend(st);
                            counts[0].fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            errors += 1;
                            counts[1].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                (lat, timing, errors)
            })
        })
        .collect();
    let ticker = {
        let (bar, counts) = (bar.clone(), counts.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let secs = started.elapsed().as_secs_f64();
                bar.set_position(secs as u64);
                bar.set_message(format!(
                    "{:.1} requests/s, {} errors",
                    counts[0].load(Ordering::Relaxed) as f64 / secs,
                    counts[1].load(Ordering::Relaxed)
                ));
            }
        })
    };
    let mut lat = Vec::new();
    let mut timings = Vec::new();
    let mut errors = 0;
    for w in futures_util::future::join_all(workers).await {
        let (l, t, e) = w?;
        lat.extend(l);
        timings.extend(t);
        errors += e;
    }
    let wall = started.elapsed().as_secs_f64();
    ticker.abort();
    bar.finish_and_clear();
    let mut split: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for st in &timings {
        for part in st.split(',') {
            if let Some((name, dur)) = part.trim().split_once(";dur=") {
                if let Ok(v) = dur.parse::<f64>() {
                    split.entry(format!("server {name}")).or_default().push(v);
                }
            }
        }
    }
    Ok(Run {
        summary: Summary::new(
            format!("POST {url} x{}", args.concurrency),
            "requests",
            "request",
            lat.clone(),
            lat.len() as u64,
            errors,
            wall,
        ),
        image: args.image.display().to_string(),
        style: args.style,
        steps: split.into_iter().map(|(k, v)| (k, Split::of(v))).collect(),
    })
}
