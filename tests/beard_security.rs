//! HTTPS (rustls, a self-signed certificate made here) and the Origin
//! check (`server.allowed_origins`).

mod beard_support;

use beard_support::{error_of, face, start};
use tasklet::config::Secrets;
use tasklet::daemon::Daemon;

#[actix_rt::test]
async fn an_origin_off_the_list_is_refused_and_listed_ones_get_cors() {
    let s = start(3, |c| {
        c.server.allowed_origins = vec!["https://shop.example".into()]
    })
    .await;
    let post = |origin: &'static str| {
        s.client
            .post(s.url("/v1/beard?style=full"))
            .header("Content-Type", "image/png")
            .header("Origin", origin)
            .body(face("astronaut_512.png"))
            .send()
    };
    let (status, detail) = error_of(post("https://evil.example").await.unwrap()).await;
    assert_eq!(status, 403);
    assert!(detail.contains("evil.example"), "{detail}");
    let ok = post("https://shop.example").await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://shop.example"
    );
    let preflight = s
        .client
        .request(reqwest::Method::OPTIONS, s.url("/v1/beard?style=full"))
        .header("Origin", "https://shop.example")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://shop.example"
    );
    assert!(preflight.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    let refused_preflight = s
        .client
        .request(reqwest::Method::OPTIONS, s.url("/v1/beard"))
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(refused_preflight.status(), 403);
    // No Origin (curl, servers): not a browser, not checked.
    assert_eq!(s.dress("full").await.status(), 200);
    s.stop().await;
}

#[actix_rt::test]
async fn https_serves_with_the_configured_certificate_and_plain_http_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_pem = made.cert.pem();
    std::fs::write(dir.path().join("cert.pem"), &cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), made.signing_key.serialize_pem()).unwrap();
    let mut c = beard_support::config(dir.path(), "http://127.0.0.1:9/beards/");
    c.beard.enabled = false;
    c.server.tls_cert = "cert.pem".into();
    c.server.tls_key = "key.pem".into();
    let daemon = Daemon::start(c, Secrets::default()).await.unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap()])
        .resolve("localhost", daemon.addr)
        .build()
        .unwrap();
    let resp = client
        .get(format!("https://localhost:{}/healthz", daemon.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    let plain = reqwest::get(format!("http://{}/healthz", daemon.addr)).await;
    assert!(
        plain.map(|r| r.status() != 200).unwrap_or(true),
        "plain HTTP must not be served on the HTTPS port"
    );
    // A client that does not trust the certificate is refused.
    let untrusting = reqwest::Client::builder()
        .resolve("localhost", daemon.addr)
        .build()
        .unwrap();
    assert!(untrusting
        .get(format!("https://localhost:{}/healthz", daemon.addr.port()))
        .send()
        .await
        .is_err());
    daemon.shutdown().await.unwrap();
}

#[test]
fn half_a_tls_configuration_is_refused_naming_the_key() {
    let err = tasklet::config::Config::parse(
        "[server]\ntls_cert = \"cert.pem\"\n",
        "t",
        Vec::<(String, String)>::new(),
    )
    .unwrap_err();
    assert_eq!(err.key(), Some("server.tls_key"), "{err}");
    let err = tasklet::config::Config::parse(
        "[server]\nallowed_origins = [\"shop.example\"]\n",
        "t",
        Vec::<(String, String)>::new(),
    )
    .unwrap_err();
    assert_eq!(err.key(), Some("server.allowed_origins"), "{err}");
}
