//! The watermark JPEG fast path against the full path (libjpeg-turbo
//! decode, blend, encode: `compose::stamp` with `fast_path: false`) on the
//! test photos, the 500x100 mark at the bottom-right with a 20 px margin.
//! `fast/` is `compose::jpeg::stamp_baseline` alone, `stamp-fast/` the
//! compositor's whole `stamp` (sniff, header, metadata) taking the fast path.
//!
//! `taskset -c 1 cargo bench --bench fastpath` (one core); Pillow's figure on
//! the same images comes from `bench/python/pillow_watermark.py`, which this
//! bench runs at the end when `python3` with Pillow is available.

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::path::{Path, PathBuf};
use tasklet_actors::compose::jpeg::stamp_baseline;
use tasklet_actors::compose::{
    stamp, Codecs, ImagePath, Mark, Marks, OutputFormat, Position, StampOptions, StripMetadata,
};

const MARGIN: u32 = 20;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn photos() -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(data())
        .expect("tests/data")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().to_string();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    v.sort();
    v
}

fn mark() -> Mark {
    Mark::from_png(&std::fs::read(data().join("watermark_500x100.png")).expect("mark"))
        .expect("the mark decodes")
}

fn options(fast_path: bool) -> StampOptions {
    StampOptions {
        mark: "default".into(),
        position: Position::BottomRight,
        margin: MARGIN,
        opacity: 1.0,
        quality: 85,
        format: OutputFormat::Same,
        strip: StripMetadata::Gps,
        max_pixels: 50_000_000,
        fast_path,
    }
}

/// CPU time of the calling thread: the machine is shared, and wall time
/// would count the time other processes held the core.
struct ThreadCpu;

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec the call writes into.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns() - start
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, _typical: f64, values: &mut [f64]) -> &'static str {
        values.iter_mut().for_each(|v| *v /= 1e6);
        "ms CPU"
    }
    fn scale_throughputs(
        &self,
        _typical: f64,
        _t: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        values.iter_mut().for_each(|v| *v /= 1e6);
        "ms CPU"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns CPU"
    }
}

fn bench(c: &mut Criterion<ThreadCpu>) {
    let mark = mark();
    let (mw, mh) = (mark.width, mark.height);
    let marks = Marks::from([("default".to_owned(), mark.clone())]);
    let (fast, full) = (options(true), options(false));
    let mut codecs = Codecs::new().expect("libjpeg-turbo handles");
    let mut group = c.benchmark_group("watermark_1980x1280");
    for (name, jpeg) in photos() {
        let (x, y) = (1980 - mw - MARGIN, 1280 - mh - MARGIN);
        group.bench_function(format!("fast/{name}"), |b| {
            b.iter(|| stamp_baseline(&jpeg, &mark.rgba, mw, mh, x, y, 255).unwrap())
        });
        assert_eq!(
            stamp(&jpeg, &marks, &fast, &mut codecs).unwrap().path,
            ImagePath::Fast
        );
        group.bench_function(format!("stamp-fast/{name}"), |b| {
            b.iter(|| stamp(&jpeg, &marks, &fast, &mut codecs).unwrap())
        });
        group.bench_function(format!("stamp-full/{name}"), |b| {
            b.iter(|| stamp(&jpeg, &marks, &full, &mut codecs).unwrap())
        });
    }
    group.finish();
}

fn pillow() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/python/pillow_watermark.py");
    match std::process::Command::new("python3")
        .arg(script)
        .arg(data())
        .arg(MARGIN.to_string())
        .output()
    {
        Ok(out) if out.status.success() => print!("{}", String::from_utf8_lossy(&out.stdout)),
        Ok(out) => eprintln!(
            "pillow baseline failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("pillow baseline not run: {e}"),
    }
}

fn pillow_group(_: &mut Criterion<ThreadCpu>) {
    pillow();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = bench, pillow_group
}
criterion_main!(benches);
