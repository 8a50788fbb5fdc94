//! The watermark JPEG fast path against the full path (decode, blend,
//! encode) on the test photos, a 500x100 mark at the bottom-right.
//!
//! `taskset -c 1 cargo bench --bench fastpath` (one core); Pillow's figure on
//! the same images comes from `bench/python/pillow_watermark.py`, which this
//! bench runs at the end when `python3` with Pillow is available.

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::path::{Path, PathBuf};
use tasklet_actors::compose::blend::{blend_channel, effective_alpha};
use tasklet_actors::compose::jpeg::stamp_baseline;

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

fn mark() -> (Vec<u8>, u32, u32) {
    let img = image::open(data().join("watermark_500x100.png"))
        .expect("mark")
        .to_rgba8();
    let (w, h) = img.dimensions();
    (img.into_raw(), w, h)
}

/// The full path: decode everything, blend, encode everything (q85, 4:2:0).
fn full_path(jpeg: &[u8], rgba: &[u8], mw: u32, mh: u32, x: u32, y: u32) -> Vec<u8> {
    use zune_core::bytestream::ZCursor;
    let mut d = zune_jpeg::JpegDecoder::new(ZCursor::new(jpeg));
    let mut px = d.decode().unwrap();
    let info = d.info().unwrap();
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    for my in 0..mh.min(h - y) {
        for mx in 0..mw.min(w - x) {
            let m = &rgba[((my * mw + mx) * 4) as usize..][..4];
            let a = effective_alpha(m[3], 255);
            let k = (((y + my) * w + x + mx) * 3) as usize;
            for c in 0..3 {
                px[k + c] = blend_channel(px[k + c], m[c], a);
            }
        }
    }
    let mut out = Vec::with_capacity(jpeg.len());
    let mut enc = jpeg_encoder::Encoder::new(&mut out, 85);
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    enc.encode(&px, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    out
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
    let (rgba, mw, mh) = mark();
    let mut group = c.benchmark_group("watermark_1980x1280");
    for (name, jpeg) in photos() {
        let (x, y) = (1980 - mw - MARGIN, 1280 - mh - MARGIN);
        group.bench_function(format!("fast/{name}"), |b| {
            b.iter(|| stamp_baseline(&jpeg, &rgba, mw, mh, x, y, 255).unwrap())
        });
        group.bench_function(format!("full/{name}"), |b| {
            b.iter(|| full_path(&jpeg, &rgba, mw, mh, x, y))
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
