//! Face finding on the beard path: the BlazeFace detectors and the FaceMesh
//! landmarks (`FaceFinder::find`) on the portraits in `tests/data/faces`,
//! decoded once before timing, with the models shipped in `models/`.
//! `detect+landmarks/` is the whole of `find`; `landmarks/` is FaceMesh
//! alone on the face box the detector found.
//!
//! `taskset -c 1 cargo bench --bench face`

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tasklet_actors::compose::dress::decode_photo;
use tasklet_actors::compose::face::{FaceFinder, Rgb};

const PHOTOS: [&str; 2] = ["astronaut_1280x853.jpg", "grace_hopper_512x600.jpg"];

fn bench_face(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let finder = FaceFinder::load(&root.join("models")).expect("the models load");
    let mut group = c.benchmark_group("face");
    group.throughput(Throughput::Elements(1));
    for name in PHOTOS {
        let bytes = std::fs::read(root.join("tests/data/faces").join(name))
            .expect("tests/data/faces is in the repository");
        let photo = decode_photo(&bytes, u64::MAX).expect("the photo decodes");
        let image = Rgb {
            pixels: &photo.pixels,
            width: photo.width,
            height: photo.height,
        };
        let (faces, _) = finder.find(image).expect("the models run");
        let face = faces.first().expect("the portrait shows a face");
        let bbox = face.detection.bbox;
        let stem = name.split('.').next().unwrap_or(name);
        group.bench_function(format!("detect+landmarks/{stem}"), |b| {
            b.iter(|| finder.find(black_box(image)).expect("the models run"))
        });
        group.bench_function(format!("landmarks/{stem}"), |b| {
            b.iter(|| {
                finder
                    .landmarks_in_box(black_box(image), bbox)
                    .expect("the model runs")
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = bench_face
}
criterion_main!(benches);
