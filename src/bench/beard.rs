//! `tasklet bench beard`: the beard path for a cached style, timed.
//!
//! In-process (default): one thread runs decode → detect → landmarks →
//! blend → encode on a photo again and again and reports p50/p99 of each
//! step and of the whole, and requests/s on that one core. With `--url`:
//! an HTTP load generator against a running daemon (`POST /v1/beard`),
//! reporting requests/s and p50/p99 latency plus the daemon's own
//! `Server-Timing` split.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tasklet_actors::beards::decode_beard;
use tasklet_actors::compose::dress::{dress, DressOptions, DressTimings, FaceChoice};
use tasklet_actors::compose::face::FaceFinder;

use crate::sim::beards::{draw_png, parse_duration, ANCHOR};

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
    /// Write the figures as JSON here too.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Reads one step's time out of a dress's timings.
type Step = fn(&DressTimings) -> Duration;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    (percentile(&v, 0.5), percentile(&v, 0.99), mean)
}

pub async fn run(args: BeardBench) -> anyhow::Result<()> {
    match args.url.clone() {
        Some(url) => over_http(args, url).await,
        None => tokio::task::spawn_blocking(move || in_process(args)).await?,
    }
}

fn in_process(args: BeardBench) -> anyhow::Result<()> {
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
    let mut all: Vec<(DressTimings, Duration)> = Vec::with_capacity(args.iterations);
    let started = Instant::now();
    for _ in 0..args.iterations {
        let t = Instant::now();
        let out = dress(&finder, &photo, &beard, &options)?;
        all.push((out.timings, t.elapsed()));
    }
    let wall = started.elapsed();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let steps: [(&str, Step); 5] = [
        ("decode", |t| t.decode),
        ("detect", |t| t.detect),
        ("landmarks", |t| t.landmarks),
        ("blend", |t| t.blend),
        ("encode", |t| t.encode),
    ];
    println!(
        "beard, in-process, 1 thread: {} ({} bytes), style {}, {} iterations",
        args.image.display(),
        photo.len(),
        args.style,
        args.iterations
    );
    println!(
        "{:<10} {:>9} {:>9} {:>9}",
        "step", "p50 ms", "p99 ms", "mean ms"
    );
    let mut json = serde_json::Map::new();
    for (name, get) in &steps {
        let (p50, p99, mean) = summary(all.iter().map(|(t, _)| ms(get(t))).collect());
        println!("{name:<10} {p50:>9.2} {p99:>9.2} {mean:>9.2}");
        json.insert(
            (*name).into(),
            serde_json::json!({"p50_ms": p50, "p99_ms": p99, "mean_ms": mean}),
        );
    }
    let (p50, p99, mean) = summary(all.iter().map(|(_, d)| ms(*d)).collect());
    let rps = args.iterations as f64 / wall.as_secs_f64();
    println!("{:<10} {p50:>9.2} {p99:>9.2} {mean:>9.2}", "total");
    println!("requests/s on one core: {rps:.1}");
    json.insert(
        "total".into(),
        serde_json::json!({"p50_ms": p50, "p99_ms": p99, "mean_ms": mean}),
    );
    json.insert("requests_per_s_per_core".into(), rps.into());
    if let Some(path) = args.json {
        std::fs::write(path, serde_json::to_string_pretty(&json)?)?;
    }
    Ok(())
}

async fn over_http(args: BeardBench, base: String) -> anyhow::Result<()> {
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
    let client = reqwest::Client::new();
    let deadline = Instant::now() + args.duration;
    let started = Instant::now();
    let workers = (0..args.concurrency.max(1)).map(|_| {
        let (client, url, photo) = (client.clone(), url.clone(), photo.clone());
        tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut timing = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                match client
                    .post(&url)
                    .header("Content-Type", content_type)
                    .body(photo.clone())
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => {
                        let st = r
                            .headers()
                            .get("server-timing")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        let _ = r.bytes().await;
                        lat.push(t.elapsed().as_secs_f64() * 1000.0);
                        if let Some(st) = st {
                            timing.push(st);
                        }
                    }
                    _ => errors += 1,
                }
            }
            (lat, timing, errors)
        })
    });
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
    let n = lat.len();
    let (p50, p99, mean) = summary(lat);
    println!(
        "beard over HTTP: {url}, concurrency {}, {:.1} s",
        args.concurrency, wall
    );
    println!(
        "requests ok {n}, errors {errors}, requests/s {:.1}",
        n as f64 / wall
    );
    println!("latency ms: p50 {p50:.2}  p99 {p99:.2}  mean {mean:.2}");
    let mut split: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    for st in &timings {
        for part in st.split(',') {
            if let Some((name, dur)) = part.trim().split_once(";dur=") {
                if let Ok(v) = dur.parse::<f64>() {
                    split.entry(name.to_owned()).or_default().push(v);
                }
            }
        }
    }
    for (name, v) in split {
        let (p50, p99, _) = summary(v);
        println!("  server {name:<10} p50 {p50:>7.2} ms  p99 {p99:>7.2} ms");
    }
    if let Some(path) = args.json {
        std::fs::write(
            path,
            serde_json::to_string_pretty(&serde_json::json!({
                "requests": n, "errors": errors, "requests_per_s": n as f64 / wall,
                "p50_ms": p50, "p99_ms": p99, "mean_ms": mean,
            }))?,
        )?;
    }
    Ok(())
}
