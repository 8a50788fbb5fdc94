//! What every load generator shares: the progress bar on stderr, the
//! latency summary (throughput, p50/p95/p99, errors), the closing table on
//! stdout, and the `--json` result.
//!
//! With `--json`, stdout carries exactly one JSON document,
//! `{"bench": NAME, "runs": [RUN, …]}`, where each run holds the fields of
//! [`Summary`] beside the figures only that bench has.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

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

/// The value at quantile `q` of sorted `v` (nearest rank); 0 when empty.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// One run's headline figures, the same for every bench.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// What was run, e.g. `POST http://…/v1/watermark x8` or `1000 games`.
    pub label: String,
    /// What `completed` counts: images, dresses, requests, polls, messages.
    pub unit: &'static str,
    pub completed: u64,
    pub errors: u64,
    pub seconds: f64,
    /// `completed` per second of `seconds`.
    pub per_s: f64,
    /// What the percentiles time, e.g. `request` or `change → committed`.
    pub latency: &'static str,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Summary {
    /// Summarises `latencies_ms` (one per completed unit, any order).
    pub fn new(
        label: String,
        unit: &'static str,
        latency: &'static str,
        mut latencies_ms: Vec<f64>,
        completed: u64,
        errors: u64,
        seconds: f64,
    ) -> Summary {
        latencies_ms.sort_by(f64::total_cmp);
        Summary {
            label,
            unit,
            completed,
            errors,
            seconds,
            per_s: if seconds > 0.0 {
                completed as f64 / seconds
            } else {
                0.0
            },
            latency,
            p50_ms: percentile(&latencies_ms, 0.50),
            p95_ms: percentile(&latencies_ms, 0.95),
            p99_ms: percentile(&latencies_ms, 0.99),
            max_ms: percentile(&latencies_ms, 1.0),
        }
    }
}

/// A bench's result as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct Output<'a, R: Serialize> {
    pub bench: &'static str,
    pub runs: &'a [R],
}

/// Prints the result: one JSON document with `json`, else the summary table.
pub fn print<R: Serialize>(
    bench: &'static str,
    runs: &[R],
    summaries: &[&Summary],
    json: bool,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&Output { bench, runs })?);
    } else {
        print!("{}", table(summaries));
    }
    Ok(())
}

/// The closing table: one row per run.
pub fn table(summaries: &[&Summary]) -> String {
    let mut out = format!(
        "{:<40} {:>9} {:>7} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9}  latency\n",
        "run", "completed", "errors", "s", "per s", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    for s in summaries {
        out.push_str(&format!(
            "{:<40} {:>9} {:>7} {:>7.1} {:>10.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2}  {} ({})\n",
            s.label,
            s.completed,
            s.errors,
            s.seconds,
            s.per_s,
            s.p50_ms,
            s.p95_ms,
            s.p99_ms,
            s.max_ms,
            s.latency,
            s.unit
        ));
    }
    out
}

/// A progress bar on stderr of `len` steps, hidden when the result goes
/// out as JSON or stderr is not a terminal (CI logs, tests).
pub fn progress(len: u64, unit: &str, json: bool) -> ProgressBar {
    let target = if json || !std::io::stderr().is_terminal() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    let template = format!("{{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{msg}}");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
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
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.50), 50.0);
        assert_eq!(percentile(&v, 0.95), 95.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn a_summary_sorts_its_latencies_and_counts_per_second() {
        let s = Summary::new(
            "x".into(),
            "images",
            "request",
            vec![3.0, 1.0, 2.0, 4.0],
            4,
            1,
            2.0,
        );
        assert_eq!(s.per_s, 2.0);
        assert_eq!((s.p50_ms, s.p95_ms, s.max_ms), (2.0, 4.0, 4.0));
        assert_eq!(s.errors, 1);
        let table = table(&[&s]);
        assert_eq!(table.lines().count(), 2);
        assert!(table.contains("request (images)"), "{table}");
    }

    #[test]
    fn json_output_holds_the_bench_name_and_its_runs() {
        let s = Summary::new("x".into(), "polls", "poll", vec![1.0], 1, 0, 1.0);
        let v = serde_json::to_value(Output {
            bench: "odds",
            runs: &[&s],
        })
        .unwrap();
        assert_eq!(v["bench"], "odds");
        assert_eq!(v["runs"][0]["completed"], 1);
        assert_eq!(v["runs"][0]["p99_ms"], 1.0);
    }
}
