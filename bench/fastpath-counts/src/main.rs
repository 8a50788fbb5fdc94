//! Stamps `tests/data/*_1980x1280.jpg` with the 500x100 mark at the
//! bottom-right (20 px margin, full opacity), as `benches/fastpath.rs`
//! does, calling `compose::jpeg::stamp_baseline` alone.
//!
//! `fastpath-counts [iterations] [photo]`: one untimed stamp per photo,
//! then `iterations` timed ones (CPU time of the thread), median and
//! minimum printed. With `iterations` 0 it does the one stamp only, which
//! is what to count instructions on, and prints a digest of each output.

#![allow(dead_code)]

mod compose;

use std::path::Path;

const MARGIN: u32 = 20;
const PHOTOS: [&str; 3] = ["boats", "leaves", "pier"];

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec the call writes into.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let iterations: usize = args.get(1).map_or(0, |s| s.parse().expect("iterations"));
    let only = args.get(2);
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data");
    let png = std::fs::File::open(data.join("watermark_500x100.png")).expect("the mark");
    let mut reader = png::Decoder::new(std::io::BufReader::new(png))
        .read_info()
        .expect("a png");
    let mut mark = vec![0; reader.output_buffer_size().expect("a size")];
    let info = reader.next_frame(&mut mark).expect("the mark decodes");
    assert_eq!(info.color_type, png::ColorType::Rgba, "an RGBA8 mark");
    let (mw, mh) = (info.width, info.height);
    for name in PHOTOS {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let jpeg = std::fs::read(data.join(format!("{name}_1980x1280.jpg"))).expect("the photo");
        let (x, y) = (1980 - mw - MARGIN, 1280 - mh - MARGIN);
        let stamp = || compose::jpeg::stamp_baseline(&jpeg, &mark, mw, mh, x, y, 255);
        let out = stamp().expect("the photo takes the fast path");
        if iterations == 0 {
            // A digest of the output, to check that a change to the codec
            // keeps it byte for byte.
            println!("{name}: {} bytes, fnv1a {:016x}", out.len(), fnv1a(&out));
            continue;
        }
        let mut ns: Vec<u64> = (0..iterations)
            .map(|_| {
                let t = thread_cpu_ns();
                std::hint::black_box(stamp().expect("stamped"));
                thread_cpu_ns() - t
            })
            .collect();
        ns.sort_unstable();
        println!(
            "{name}: median {:.2} ms CPU, min {:.2} ms ({iterations} stamps)",
            ns[iterations / 2] as f64 / 1e6,
            ns[0] as f64 / 1e6
        );
    }
}
