//! `POST /v1/watermark` takes the JPEG fast path for baseline photos: the
//! answer says so (`X-Tasklet-Path: fast`), keeps every byte of the input
//! before the seam, and equals what `compose::jpeg` makes in process;
//! inputs the fast path does not cover, or bad ones, get the full path's
//! answer.

use tasklet::config::{Config, Secrets};
use tasklet::daemon::Daemon;
use tasklet_actors::compose::jpeg;
use tasklet_actors::compose::Mark;

const PHOTOS: [&str; 3] = ["pier", "boats", "leaves"];
/// Where the default 500x100 mark lands with the default 20 px margin.
const MARK_AT: (u32, u32) = (1980 - 520, 1280 - 120);

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

struct Running {
    daemon: Daemon,
    url: String,
    _dir: tempfile::TempDir,
}

async fn start(fast_path: bool) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.server.addr = "127.0.0.1:0".into();
    config.server.workers = 2;
    config.database.url = format!("sqlite://{}", dir.path().join("t.db").display());
    config.base_dir = env!("CARGO_MANIFEST_DIR").into();
    config.watermark.enabled = true;
    config.watermark.fast_path = fast_path;
    config.pools.compositor = 2;
    let daemon = Daemon::start(config, Secrets::default()).await.unwrap();
    let url = format!("http://{}/v1/watermark", daemon.addr);
    Running {
        daemon,
        url,
        _dir: dir,
    }
}

async fn post(url: &str, body: Vec<u8>) -> (u16, Option<String>, Vec<u8>) {
    let resp = reqwest::Client::new()
        .post(url)
        .header("content-type", "image/jpeg")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let path = resp
        .headers()
        .get("x-tasklet-path")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, path, resp.bytes().await.unwrap().to_vec())
}

#[actix_rt::test]
async fn photos_take_the_fast_path_and_keep_the_bytes_before_the_seam() {
    let running = start(true).await;
    let mark = Mark::from_png(&data("watermark_500x100.png")).unwrap();
    for name in PHOTOS {
        let photo = data(&format!("{name}_1980x1280.jpg"));
        let (status, path, body) = post(&running.url, photo.clone()).await;
        assert_eq!(status, 200, "{name}");
        assert_eq!(path.as_deref(), Some("fast"), "{name}");

        // Exactly what the fast path makes in process, seam included.
        let expected = jpeg::stamp(
            &photo,
            &jpeg::Mark {
                rgba: &mark.rgba,
                width: mark.width,
                height: mark.height,
                x: MARK_AT.0,
                y: MARK_AT.1,
                opacity: 255,
            },
        )
        .unwrap();
        assert!(!expected.rebuilt_tables);
        let seam = expected.copied_bytes;
        assert_eq!(body[..seam], photo[..seam], "{name}: bytes before the seam");
        assert_eq!(body, expected.jpeg, "{name}");
        // The mark starts in MCU row 72 of 80: most of the file is copied.
        assert!(
            seam > photo.len() * 3 / 4,
            "{name}: seam at {seam} of {}",
            photo.len()
        );

        let img = image::load_from_memory(&body).unwrap();
        assert_eq!((img.width(), img.height()), (1980, 1280));
        assert_ne!(body, photo);
    }
    running.daemon.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn an_explicit_quality_or_a_progressive_jpeg_takes_the_full_path() {
    let running = start(true).await;
    let photo = data("leaves_1980x1280.jpg");
    let (status, path, _) = post(&format!("{}?quality=80", running.url), photo.clone()).await;
    assert_eq!((status, path.as_deref()), (200, Some("full")));

    let rgb = image::load_from_memory(&photo).unwrap().into_rgb8();
    let mut progressive = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut progressive, 85);
    enc.set_progressive(true);
    enc.encode(&rgb, 1980, 1280, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    let (status, path, _) = post(&running.url, progressive).await;
    assert_eq!((status, path.as_deref()), (200, Some("full")));
    running.daemon.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn bad_jpegs_get_the_full_paths_answer() {
    let photo = data("boats_1980x1280.jpg");
    let mut flipped = photo.clone();
    // Garbage in the entropy-coded data after the seam.
    let at = photo.len() - 2000;
    flipped[at..at + 64].fill(0xFF);
    let bad = [
        photo[..photo.len() / 2].to_vec(),
        photo[..photo.len() - 1000].to_vec(),
        flipped,
    ];
    let mut answers = Vec::new();
    for fast_path in [true, false] {
        let running = start(fast_path).await;
        let mut statuses = Vec::new();
        for body in &bad {
            let (status, _, _) = post(&running.url, body.clone()).await;
            statuses.push(status);
        }
        running.daemon.shutdown().await.unwrap();
        answers.push(statuses);
    }
    assert_eq!(answers[0], answers[1]);
}
