//! The in-process stamp (sniff, decode, blend, encode, metadata) of each
//! photo in `tests/data`, on one thread: the figure compared with Pillow's
//! `Image.open → paste → save(quality=85)` in docs/PERFORMANCE.md.
//!
//! `taskset -c 1 cargo bench --bench stamp`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tasklet_actors::compose::{
    stamp, Codecs, Mark, Marks, OutputFormat, Position, StampOptions, StripMetadata,
};

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR")))
        .expect("tests/data is in the repository")
}

/// CPU time of the calling thread: what one core spent, whatever else the
/// machine runs (a loaded machine stretches wall time, not this).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the pointer it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn bench_stamp(c: &mut Criterion) {
    let mark = Mark::from_png(&data("watermark_500x100.png")).expect("the mark decodes");
    let marks = Marks::from([("default".to_owned(), mark)]);
    let options = StampOptions {
        mark: "default".into(),
        position: Position::BottomRight,
        margin: 20,
        opacity: 1.0,
        quality: 85,
        format: OutputFormat::Same,
        strip: StripMetadata::Gps,
        max_pixels: 50_000_000,
        // This bench measures the full path; benches/fastpath.rs the fast one.
        fast_path: false,
    };
    let mut codecs = Codecs::new().expect("libjpeg-turbo handles");
    let mut group = c.benchmark_group("stamp");
    group.throughput(Throughput::Elements(1));
    group.sample_size(30);
    for name in ["pier", "boats", "leaves"] {
        let photo = data(&format!("{name}_1980x1280.jpg"));
        group.bench_function(name, |b| {
            b.iter(|| stamp(black_box(&photo), &marks, &options, &mut codecs).expect("stamps"))
        });
    }
    group.finish();
    // The same work timed in thread CPU time (reported by criterion as "time").
    let mut group = c.benchmark_group("stamp_cpu");
    group.throughput(Throughput::Elements(1));
    group.sample_size(30);
    for name in ["pier", "boats", "leaves"] {
        let photo = data(&format!("{name}_1980x1280.jpg"));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let started = thread_cpu();
                for _ in 0..iters {
                    black_box(
                        stamp(black_box(&photo), &marks, &options, &mut codecs).expect("stamps"),
                    );
                }
                thread_cpu() - started
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_stamp);
criterion_main!(benches);
