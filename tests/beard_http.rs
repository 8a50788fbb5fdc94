//! `POST /v1/beard` and `GET /v1/beards` over HTTP: every bad input gets
//! its 4xx (the same answers as the watermark endpoint), back-pressure is
//! a 503 with Retry-After, and the daemon stays healthy.

mod beard_support;

use std::time::Duration;

use beard_support::{error_of, face, start};
use tasklet::sim::beards::Mode;

fn gradient_jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 80])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(
            &mut std::io::Cursor::new(&mut out),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    out
}

#[actix_rt::test]
async fn every_bad_input_gets_its_status_and_the_daemon_stays_up() {
    let s = start(3, |c| {
        c.beard.max_body_bytes = 2_000_000;
        c.beard.max_pixels = 1_000_000;
    })
    .await;
    let jpeg = face("grace_hopper_512x600.jpg");
    let mut png = face("astronaut_512.png");
    let cases: Vec<(&str, &str, &str, Vec<u8>, u16)> = vec![
        (
            "no face",
            "style=full",
            "image/jpeg",
            gradient_jpeg(320, 240),
            422,
        ),
        ("empty body", "style=full", "image/jpeg", Vec::new(), 400),
        (
            "not an image",
            "style=full",
            "image/jpeg",
            b"this is not an image at all".to_vec(),
            422,
        ),
        (
            "wrong content type",
            "style=full",
            "text/plain",
            jpeg.clone(),
            415,
        ),
        (
            "truncated jpeg",
            "style=full",
            "image/jpeg",
            jpeg[..jpeg.len() / 2].to_vec(),
            422,
        ),
        (
            "corrupt png",
            "style=full",
            "image/png",
            {
                let mut p = png.clone();
                for b in &mut p[100..4000] {
                    *b = b.wrapping_mul(7).wrapping_add(3);
                }
                p
            },
            422,
        ),
        (
            "too many bytes",
            "style=full",
            "image/jpeg",
            vec![0xFF; 2_500_000],
            413,
        ),
        (
            "too many pixels",
            "style=full",
            "image/jpeg",
            gradient_jpeg(1200, 1000),
            422,
        ),
        ("no style", "", "image/jpeg", jpeg.clone(), 400),
        (
            "bad faces",
            "style=full&faces=some",
            "image/jpeg",
            jpeg.clone(),
            400,
        ),
        (
            "bad face box",
            "style=full&face=1,2,3",
            "image/jpeg",
            jpeg.clone(),
            400,
        ),
        (
            "face box outside",
            "style=full&face=400,500,300,300",
            "image/jpeg",
            jpeg.clone(),
            400,
        ),
        (
            "unknown query key",
            "style=full&colour=red",
            "image/jpeg",
            jpeg.clone(),
            400,
        ),
        (
            "unknown style",
            "style=walrus",
            "image/jpeg",
            jpeg.clone(),
            404,
        ),
    ];
    for (what, query, content_type, body, expected) in cases {
        let (status, detail) = error_of(s.post(query, content_type, body).await).await;
        assert_eq!(status, expected, "{what}: {detail}");
        assert!(!detail.is_empty(), "{what}: a reason is given");
    }
    png.truncate(png.len() / 3);
    let (status, _) = error_of(s.post("style=full", "image/png", png).await).await;
    assert_eq!(status, 422, "truncated png");
    let health = s.client.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    // And it still works.
    assert_eq!(s.dress("full").await.status(), 200);
    s.stop().await;
}

/// A multipart/form-data body with one file field.
fn form(field: &str, content: &[u8]) -> (String, Vec<u8>) {
    let boundary = "tasklet-test-boundary-7f3a";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"me.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[actix_rt::test]
async fn multipart_uploads_read_the_photo_field() {
    let s = start(3, |_| {}).await;
    let (content_type, body) = form("photo", &face("grace_hopper_512x600.jpg"));
    let resp = s
        .post("style=goatee&faces=largest", &content_type, body)
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-faces"], "1");
    let (content_type, body) = form("picture", b"nope");
    let (status, detail) = error_of(s.post("style=goatee", &content_type, body).await).await;
    assert_eq!(status, 400);
    assert!(detail.contains("photo"), "{detail}");
    s.stop().await;
}

#[actix_rt::test]
async fn a_face_box_given_by_hand_is_used() {
    let s = start(3, |_| {}).await;
    let resp = s
        .post(
            "style=full&face=150,110,220,260",
            "image/jpeg",
            face("grace_hopper_512x600.jpg"),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let timing = resp.headers()["server-timing"].to_str().unwrap().to_owned();
    assert!(timing.contains("detect;dur=0.00"), "{timing}");
    s.stop().await;
}

#[actix_rt::test]
async fn no_free_permit_is_503_with_retry_after_and_nobody_waits_unboundedly() {
    let s = start(3, |c| {
        c.beard.max_in_flight = 1;
        c.beard.fetch_timeout_ms = 5000;
    })
    .await;
    s.sim.set_mode(Mode {
        slow_ms: 1500,
        ..Mode::default()
    });
    let slow = {
        let client = s.client.clone();
        let url = s.url("/v1/beard?style=full");
        let photo = face("astronaut_512.png");
        tokio::spawn(async move {
            client
                .post(url)
                .header("Content-Type", "image/png")
                .body(photo)
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let resp = s.dress("goatee").await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "answered at once"
    );
    assert_eq!(slow.await.unwrap(), 200);
    s.stop().await;
}

#[actix_rt::test]
async fn a_disabled_pipeline_answers_404_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = beard_support::config(dir.path(), "http://127.0.0.1:9/beards/");
    c.beard.enabled = false;
    let daemon = tasklet::daemon::Daemon::start(c, Default::default())
        .await
        .unwrap();
    let resp = reqwest::get(format!("http://{}/v1/beards", daemon.addr))
        .await
        .unwrap();
    let (status, detail) = error_of(resp).await;
    assert_eq!(status, 404);
    assert!(detail.contains("not enabled"), "{detail}");
    daemon.shutdown().await.unwrap();
}
