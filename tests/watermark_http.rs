//! `POST /v1/watermark` against a real daemon on 127.0.0.1:0 (SQLite in a
//! tempdir): the three photos, an EXIF-rotated photo, every bad input and
//! its status, and back-pressure (503 + Retry-After, nobody waits forever).

use std::time::Duration;

use image::RgbImage;
use tasklet::config::{Config, Secrets};
use tasklet::daemon::Daemon;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PHOTOS: [&str; 3] = ["pier", "boats", "leaves"];
/// Where the default 500x100 mark lands with the default 20 px margin.
const MARK_AT: (u32, u32, u32, u32) = (1980 - 520, 1280 - 120, 500, 100);

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn photo(name: &str) -> Vec<u8> {
    data(&format!("{name}_1980x1280.jpg"))
}

struct Running {
    daemon: Daemon,
    url: String,
    _dir: tempfile::TempDir,
}

async fn start(tune: impl FnOnce(&mut Config)) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.server.addr = "127.0.0.1:0".into();
    config.server.workers = 2;
    config.database.url = format!("sqlite://{}", dir.path().join("t.db").display());
    config.base_dir = env!("CARGO_MANIFEST_DIR").into();
    config.watermark.enabled = true;
    config.pools.compositor = 2;
    tune(&mut config);
    let daemon = Daemon::start(config, Secrets::default()).await.unwrap();
    let url = format!("http://{}/v1/watermark", daemon.addr);
    Running {
        daemon,
        url,
        _dir: dir,
    }
}

async fn post(url: &str, content_type: &str, body: Vec<u8>) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

fn rgb(bytes: &[u8]) -> RgbImage {
    image::load_from_memory(bytes).unwrap().into_rgb8()
}

fn inside(x: u32, y: u32, r: (u32, u32, u32, u32)) -> bool {
    x >= r.0 && x < r.0 + r.2 && y >= r.1 && y < r.1 + r.3
}

/// Mean absolute difference inside `r`.
fn mad(a: &RgbImage, b: &RgbImage, r: (u32, u32, u32, u32)) -> f64 {
    let mut sum = 0u64;
    for y in r.1..r.1 + r.3 {
        for x in r.0..r.0 + r.2 {
            for c in 0..3 {
                sum += u64::from(a.get_pixel(x, y)[c].abs_diff(b.get_pixel(x, y)[c]));
            }
        }
    }
    sum as f64 / f64::from(r.2 * r.3 * 3)
}

/// PSNR over the pixels outside `r` grown to the 16x16 blocks it touches
/// (the JPEG blocks that share pixels with the mark).
fn psnr_outside(a: &RgbImage, b: &RgbImage, r: (u32, u32, u32, u32)) -> f64 {
    let x0 = r.0 / 16 * 16;
    let y0 = r.1 / 16 * 16;
    let grown = (
        x0,
        y0,
        (r.0 + r.2).div_ceil(16) * 16 - x0,
        (r.1 + r.3).div_ceil(16) * 16 - y0,
    );
    let (mut se, mut n) = (0f64, 0u64);
    for (x, y, p) in a.enumerate_pixels() {
        if inside(x, y, grown) {
            continue;
        }
        let q = b.get_pixel(x, y);
        for c in 0..3 {
            let d = f64::from(p[c]) - f64::from(q[c]);
            se += d * d;
            n += 1;
        }
    }
    10.0 * (255.0f64 * 255.0 / (se / n as f64)).log10()
}

#[actix_rt::test]
async fn stamps_the_three_photos_and_leaves_the_rest_intact() {
    let r = start(|_| {}).await;
    for name in PHOTOS {
        let input = photo(name);
        let resp = post(&r.url, "image/jpeg", input.clone()).await;
        assert_eq!(resp.status(), 200, "{name}");
        assert_eq!(resp.headers()["content-type"], "image/jpeg");
        let out = resp.bytes().await.unwrap();
        let (a, b) = (rgb(&input), rgb(&out));
        assert_eq!(b.dimensions(), (1980, 1280), "{name}");
        let changed = mad(&a, &b, MARK_AT);
        assert!(
            changed > 3.0,
            "{name}: the mark's rectangle barely changed ({changed:.2})"
        );
        let psnr = psnr_outside(&a, &b, MARK_AT);
        assert!(
            psnr >= 45.0,
            "{name}: PSNR outside the mark {psnr:.1} dB < 45"
        );
    }
    r.daemon.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn the_multipart_field_image_is_stamped_and_png_stays_png() {
    let r = start(|_| {}).await;
    let boundary = "tasklet-test-boundary";
    let mut form = Vec::new();
    form.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n")
            .as_bytes(),
    );
    form.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"p.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").as_bytes());
    form.extend_from_slice(&photo("leaves"));
    form.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let ct = format!("multipart/form-data; boundary={boundary}");
    let resp = post(&r.url, &ct, form).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(rgb(&resp.bytes().await.unwrap()).dimensions(), (1980, 1280));

    // A form without the field.
    let form = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n--{boundary}--\r\n");
    let resp = post(&r.url, &ct, form.into_bytes()).await;
    assert_eq!(resp.status(), 400);

    // PNG with alpha in, PNG out; and as JPEG on request.
    let png = data("watermark_500x100.png");
    let resp = post(
        &format!("{}?position=top-left&margin=0", r.url),
        "image/png",
        png.clone(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/png");
    let resp = post(
        &format!("{}?format=jpeg&quality=70", r.url),
        "image/png",
        png,
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/jpeg");
    r.daemon.shutdown().await.unwrap();
}

/// A little-endian EXIF TIFF with only an orientation tag.
fn exif_app1(orientation: u16) -> Vec<u8> {
    let mut tiff = b"II*\0\x08\0\0\0\x01\0".to_vec();
    tiff.extend_from_slice(&0x0112u16.to_le_bytes());
    tiff.extend_from_slice(&3u16.to_le_bytes());
    tiff.extend_from_slice(&1u32.to_le_bytes());
    tiff.extend_from_slice(&u32::from(orientation).to_le_bytes());
    tiff.extend_from_slice(&0u32.to_le_bytes());
    let mut seg = vec![0xFF, 0xE1];
    seg.extend_from_slice(&((tiff.len() + 8) as u16).to_be_bytes());
    seg.extend_from_slice(b"Exif\0\0");
    seg.extend_from_slice(&tiff);
    seg
}

#[actix_rt::test]
async fn an_exif_rotated_photo_gets_the_mark_at_its_visual_bottom_right() {
    let r = start(|_| {}).await;
    let original = photo("boats");
    // Orientation 6: viewers turn the stored picture 90° clockwise.
    let mut rotated = original[..2].to_vec();
    rotated.extend_from_slice(&exif_app1(6));
    rotated.extend_from_slice(&original[2..]);
    let resp = post(&r.url, "image/jpeg", rotated).await;
    assert_eq!(resp.status(), 200);
    let out = rgb(&resp.bytes().await.unwrap());
    assert_eq!(out.dimensions(), (1280, 1980), "the output is upright");
    // What a person sees: the stored picture turned clockwise.
    let upright = image::imageops::rotate90(&rgb(&original));
    let visual_bottom_right = (1280 - 520, 1980 - 120, 500, 100);
    assert!(mad(&upright, &out, visual_bottom_right) > 3.0);
    // Turned pixels fall on a new 8x8 block grid, so this re-encode loses a
    // little more than an upright one; the rest is still the same picture.
    let psnr = psnr_outside(&upright, &out, visual_bottom_right);
    assert!(psnr >= 42.0, "PSNR outside the mark {psnr:.1} dB");
    // And the stored bottom-right (now the visual top-right) is untouched.
    assert!(mad(&upright, &out, (1280 - 520, 20, 500, 100)) < 2.0);
    r.daemon.shutdown().await.unwrap();
}

/// A PNG header declaring `w` x `h` with a valid IHDR CRC, and no pixels.
fn png_declaring(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0d".to_vec();
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The photo with its SOF0 frame header rewritten to declare `w` x `h`.
fn jpeg_declaring(w: u16, h: u16) -> Vec<u8> {
    let mut jpeg = photo("pier");
    let sof = jpeg.windows(2).position(|m| m == [0xFF, 0xC0]).unwrap();
    jpeg[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    jpeg
}

async fn status_and_reason(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap();
    (
        status,
        body["detail"].as_str().unwrap_or_default().to_owned(),
    )
}

#[actix_rt::test]
async fn every_bad_input_gets_its_status_and_the_daemon_stays_up() {
    let r = start(|c| c.watermark.max_body_bytes = 2_000_000).await;
    let jpeg = photo("pier");
    let mut corrupt_png = data("watermark_500x100.png");
    let mid = corrupt_png.len() / 2;
    corrupt_png[mid..mid + 64].fill(0x55);
    let mut cut_png = data("watermark_500x100.png");
    cut_png.truncate(cut_png.len() / 2);
    let cases: Vec<(&str, String, &str, Vec<u8>, u16)> = vec![
        ("empty body", r.url.clone(), "image/jpeg", vec![], 400),
        (
            "not an image",
            r.url.clone(),
            "image/jpeg",
            b"hello, world".to_vec(),
            422,
        ),
        (
            "wrong content type",
            r.url.clone(),
            "text/plain",
            jpeg.clone(),
            415,
        ),
        ("no content type", r.url.clone(), "", jpeg.clone(), 415),
        (
            "truncated JPEG",
            r.url.clone(),
            "image/jpeg",
            jpeg[..jpeg.len() / 2].to_vec(),
            422,
        ),
        ("corrupt PNG", r.url.clone(), "image/png", corrupt_png, 422),
        ("truncated PNG", r.url.clone(), "image/png", cut_png, 422),
        (
            "unknown mark",
            format!("{}?mark=nope", r.url),
            "image/jpeg",
            jpeg.clone(),
            404,
        ),
        (
            "bad opacity",
            format!("{}?opacity=3", r.url),
            "image/jpeg",
            jpeg.clone(),
            400,
        ),
        (
            "bad position",
            format!("{}?position=middle", r.url),
            "image/jpeg",
            jpeg.clone(),
            400,
        ),
        (
            "bad quality",
            format!("{}?quality=abc", r.url),
            "image/jpeg",
            jpeg.clone(),
            400,
        ),
        (
            "unknown option",
            format!("{}?colour=red", r.url),
            "image/jpeg",
            jpeg.clone(),
            400,
        ),
        (
            "oversized",
            r.url.clone(),
            "image/jpeg",
            vec![0xFF; 3_000_000],
            413,
        ),
        (
            "huge declared JPEG",
            r.url.clone(),
            "image/jpeg",
            jpeg_declaring(60_000, 60_000),
            422,
        ),
        (
            "huge declared PNG",
            r.url.clone(),
            "image/png",
            png_declaring(100_000, 100_000),
            422,
        ),
    ];
    let client = reqwest::Client::new();
    for (what, url, ct, body, want) in cases {
        let mut req = client.post(&url).body(body);
        if !ct.is_empty() {
            req = req.header("content-type", ct);
        }
        let (status, reason) = status_and_reason(req.send().await.unwrap()).await;
        assert_eq!(status, want, "{what}: {reason}");
        assert!(!reason.is_empty(), "{what}: no reason given");
    }
    // An oversized multipart field is refused while streaming.
    let boundary = "b";
    let mut form =
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\n")
            .into_bytes();
    form.extend(std::iter::repeat_n(0xFFu8, 2_100_000));
    form.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let resp = post(&r.url, "multipart/form-data; boundary=b", form).await;
    assert_eq!(resp.status(), 413);

    let health = reqwest::get(format!("http://{}/healthz", r.daemon.addr))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let resp = post(&r.url, "image/jpeg", jpeg).await;
    assert_eq!(resp.status(), 200, "still stamping after the bad inputs");
    r.daemon.shutdown().await.unwrap();
}

/// Sends the headers and half of a JPEG upload on a raw connection and
/// keeps the rest: the request holds its permit until `finish`.
struct SlowUpload {
    conn: tokio::net::TcpStream,
    rest: Vec<u8>,
}

impl SlowUpload {
    async fn begin(addr: std::net::SocketAddr, body: &[u8]) -> SlowUpload {
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST /v1/watermark HTTP/1.1\r\nHost: test\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        let half = body.len() / 2;
        conn.write_all(&body[..half]).await.unwrap();
        SlowUpload {
            conn,
            rest: body[half..].to_vec(),
        }
    }

    async fn finish(mut self) -> String {
        self.conn.write_all(&self.rest).await.unwrap();
        let mut answer = Vec::new();
        self.conn.read_to_end(&mut answer).await.unwrap();
        String::from_utf8_lossy(&answer[..answer.len().min(200)]).into_owned()
    }
}

#[actix_rt::test]
async fn beyond_max_in_flight_the_answer_is_503_at_once() {
    let r = start(|c| {
        c.watermark.max_in_flight = 1;
        c.watermark.retry_after_s = 3;
    })
    .await;
    let jpeg = photo("leaves");
    let bound = Duration::from_secs(20);
    let held = SlowUpload::begin(r.daemon.addr, &jpeg).await;
    // Let the server read the head and take the only permit.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // While the permit is held, a second upload is refused, not queued: it
    // returns although the first one is still being sent.
    let second = tokio::time::timeout(bound, post(&r.url, "image/jpeg", jpeg.clone()))
        .await
        .expect("a request over max_in_flight waited instead of being refused");
    assert_eq!(second.status(), 503);
    assert_eq!(second.headers()["retry-after"], "3");
    let (_, reason) = status_and_reason(second).await;
    assert!(reason.contains("max_in_flight"), "{reason}");
    // The held upload completes normally and gives its permit back.
    let first = tokio::time::timeout(bound, held.finish()).await.unwrap();
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    let third = tokio::time::timeout(bound, post(&r.url, "image/jpeg", jpeg))
        .await
        .unwrap();
    assert_eq!(third.status(), 200);
    r.daemon.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn a_burst_is_answered_quickly_with_200_or_503() {
    let r = start(|c| {
        c.watermark.max_in_flight = 2;
        c.pools.compositor = 1;
    })
    .await;
    let jpeg = photo("pier");
    let burst = (0..12).map(|_| {
        let (url, body) = (r.url.clone(), jpeg.clone());
        async move { post(&url, "image/jpeg", body).await }
    });
    let answers = tokio::time::timeout(
        Duration::from_secs(60),
        futures_util::future::join_all(burst),
    )
    .await
    .expect("a request of the burst waited unboundedly");
    let mut ok = 0;
    for a in answers {
        match a.status().as_u16() {
            200 => ok += 1,
            503 => assert!(a.headers().contains_key("retry-after")),
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(ok >= 1);
    r.daemon.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn a_disabled_pipeline_answers_404_with_a_reason() {
    let r = start(|c| c.watermark.enabled = false).await;
    let (status, reason) =
        status_and_reason(post(&r.url, "image/jpeg", photo("leaves")).await).await;
    assert_eq!(status, 404);
    assert!(reason.contains("watermark.enabled"), "{reason}");
    r.daemon.shutdown().await.unwrap();
}

/// The real stamp, except that a body of exactly `boom` panics inside it.
fn stamp_or_panic(
    body: &[u8],
    marks: &tasklet_actors::compose::Marks,
    opts: &tasklet_actors::compose::StampOptions,
    codecs: &mut tasklet_actors::compose::Codecs,
) -> Result<tasklet_actors::compose::Stamped, tasklet_actors::compose::StampError> {
    assert!(body != b"boom", "injected failure");
    tasklet_actors::compose::stamp(body, marks, opts, codecs)
}

#[actix_rt::test]
async fn a_panic_in_the_worker_is_a_500_with_a_reason_and_the_pool_goes_on() {
    use std::sync::Arc;
    use tasklet::http::{self, AppState};
    use tasklet::pipelines::watermark::WatermarkHandle;
    use tasklet::topology::Handles;
    use tasklet_actors::compose::{load_marks, Compositor, WatermarkSettings};

    let dir = tempfile::tempdir().unwrap();
    let mut db = tasklet_actors::store::DatabaseSettings::default();
    db.url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = tasklet_actors::store::Store::connect(&db, dir.path())
        .await
        .unwrap();
    let settings = WatermarkSettings::default();
    let marks = Arc::new(load_marks(&settings.marks, env!("CARGO_MANIFEST_DIR").as_ref()).unwrap());
    // One worker: the request after the panic is served by the same one.
    let compositor = actix::SyncArbiter::start(1, move || {
        Compositor::with_stamp(Arc::clone(&marks), stamp_or_panic)
    });
    let state = AppState {
        store,
        pipelines: vec!["watermark"],
        handles: Handles {
            watermark: Some(WatermarkHandle {
                compositor,
                permits: Arc::new(tokio::sync::Semaphore::new(4)),
                settings: Arc::new(settings),
            }),
            ..Handles::default()
        },
        secrets: Secrets::default(),
    };
    let app =
        actix_web::test::init_service(actix_web::App::new().configure(http::configure(state)))
            .await;
    let req = actix_web::test::TestRequest::post()
        .uri("/v1/watermark")
        .insert_header(("content-type", "image/jpeg"))
        .insert_header(("x-request-id", "panic-1"))
        .set_payload("boom")
        .to_request();
    let resp = actix_web::test::call_service(&app, req).await;
    assert_eq!(resp.status(), 500);
    let body: serde_json::Value = actix_web::test::read_body_json(resp).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("injected failure"),
        "{body}"
    );
    let req = actix_web::test::TestRequest::post()
        .uri("/v1/watermark")
        .insert_header(("content-type", "image/jpeg"))
        .set_payload(photo("leaves"))
        .to_request();
    let resp = actix_web::test::call_service(&app, req).await;
    assert_eq!(resp.status(), 200, "the worker goes on after a panic");
}

#[actix_rt::test]
async fn a_stalled_upload_is_cut_off_and_gives_its_permit_back() {
    let r = start(|c| {
        c.watermark.max_in_flight = 1;
        c.watermark.body_timeout_ms = 300;
    })
    .await;
    let jpeg = photo("leaves");
    let mut stalled = SlowUpload::begin(r.daemon.addr, &jpeg).await;
    let mut head = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(20), stalled.conn.read_exact(&mut head))
        .await
        .expect("the stalled upload was never answered")
        .unwrap();
    assert_eq!(&head, b"HTTP/1.1 400");
    let next = tokio::time::timeout(Duration::from_secs(20), post(&r.url, "image/jpeg", jpeg))
        .await
        .unwrap();
    assert_eq!(next.status(), 200, "the permit came back");
    r.daemon.shutdown().await.unwrap();
}
