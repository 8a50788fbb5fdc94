//! `tasklet sim beards`: a beard catalog site that keeps changing.
//!
//! Serves a catalog page (`GET /beards/`, one `<li class="beard">` per
//! style with a name, an `<img src>` and a `data-anchor`) and procedurally
//! drawn RGBA PNG beards (`GET /beards/img/{style}.png`) with ETag and
//! Last-Modified, answering conditional GETs with 304. Over time it redraws,
//! adds and replaces styles. Fail, slow and garbage modes switch at runtime
//! (`POST /control/mode`), and it counts downloads per style
//! (`GET /control/downloads`). Tests start it in-process with
//! [`BeardSim::start`] on `127.0.0.1:0`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use actix_web::dev::ServerHandle;
use actix_web::http::header;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tracing::info;

/// `tasklet sim beards …`
#[derive(Debug, Clone, clap::Args)]
pub struct BeardsArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8091")]
    pub addr: String,
    /// Number of styles at start.
    #[arg(long, default_value_t = 5)]
    pub styles: usize,
    /// Redraw, add or replace a style this often (e.g. 30s, 500ms, 2m; 0 = never).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub change_every: Duration,
}

/// Reads `30s`, `500ms`, `2m` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("{s:?}: unit must be ms, s or m")),
    }
}

/// The kinds of beard the simulator draws.
pub const KINDS: [&str; 6] = [
    "full",
    "goatee",
    "moustache",
    "stubble",
    "chinstrap",
    "vandyke",
];
/// Beard image size and the anchor (mouth centre) in beard pixels.
pub const BEARD_W: u32 = 400;
pub const BEARD_H: u32 = 320;
pub const ANCHOR: [u32; 2] = [200, 70];

/// What the site serves and how it behaves now.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Mode {
    /// Answer every request 503.
    pub fail: bool,
    /// Wait this long before answering.
    pub slow_ms: u64,
    /// Serve a catalog page that is not a catalog.
    pub garbage: bool,
}

#[derive(Debug, Clone)]
struct Style {
    name: String,
    kind: &'static str,
    version: u32,
    modified: SystemTime,
}

#[derive(Default)]
struct State {
    styles: Vec<Style>,
    mode: Mode,
    downloads: BTreeMap<String, u64>,
    not_modified: BTreeMap<String, u64>,
    catalog_reads: u64,
    next: usize,
}

impl State {
    fn add(&mut self) -> String {
        let i = self.next;
        self.next += 1;
        let kind = KINDS[i % KINDS.len()];
        let name = if i < KINDS.len() {
            kind.to_owned()
        } else {
            format!("{kind}-{}", i / KINDS.len() + 1)
        };
        self.styles.push(Style {
            name: name.clone(),
            kind,
            version: 1,
            modified: now_s(),
        });
        name
    }
}

/// Now, to the second (what Last-Modified can say).
fn now_s() -> SystemTime {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// A running simulator.
pub struct BeardSim {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    server: ServerHandle,
    changer: Option<tokio::task::JoinHandle<()>>,
}

impl BeardSim {
    /// Starts serving `styles` styles on `addr`; changes one every
    /// `change_every` (never when zero).
    pub async fn start(
        addr: &str,
        styles: usize,
        change_every: Duration,
    ) -> anyhow::Result<BeardSim> {
        let mut initial = State::default();
        for _ in 0..styles {
            initial.add();
        }
        let state = Arc::new(Mutex::new(initial));
        let data = web::Data::new(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/beards/", web::get().to(catalog_page))
                .route("/beards/img/{file}", web::get().to(beard_png))
                .route("/control/downloads", web::get().to(downloads))
                .route("/control/mode", web::post().to(set_mode))
                .route("/control/change/{style}", web::post().to(change))
                .route("/control/add", web::post().to(add))
        })
        .workers(1)
        .disable_signals()
        .bind(addr)
        .with_context(|| format!("binding {addr}"))?;
        let addr = *server.addrs().first().context("no address")?;
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        let changer = (!change_every.is_zero()).then(|| {
            let state = state.clone();
            tokio::spawn(async move {
                let mut tick = 0u64;
                loop {
                    tokio::time::sleep(change_every).await;
                    tick += 1;
                    let mut s = lock(&state);
                    match tick % 3 {
                        // Redraw one style (same URL, new ETag).
                        1 if !s.styles.is_empty() => {
                            let i = (tick as usize / 3) % s.styles.len();
                            s.styles[i].version += 1;
                            s.styles[i].modified = now_s();
                            info!(style = %s.styles[i].name, version = s.styles[i].version, "sim: style redrawn");
                        }
                        // Add one.
                        2 => {
                            let name = s.add();
                            info!(style = %name, "sim: style added");
                        }
                        // Replace the oldest.
                        _ => {
                            if !s.styles.is_empty() {
                                let gone = s.styles.remove(0);
                                info!(style = %gone.name, "sim: style removed");
                            }
                            let name = s.add();
                            info!(style = %name, "sim: style added");
                        }
                    }
                }
            })
        });
        info!(%addr, styles, "beard catalog simulator listening");
        Ok(BeardSim {
            addr,
            state,
            server: handle,
            changer,
        })
    }

    /// The catalog page's URL (what `beard.catalog_url` should say).
    pub fn catalog_url(&self) -> String {
        format!("http://{}/beards/", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        lock(&self.state).mode = mode;
    }

    /// Redraws `style` (new ETag and Last-Modified, same URL).
    pub fn change(&self, style: &str) -> bool {
        let mut s = lock(&self.state);
        match s.styles.iter_mut().find(|x| x.name == style) {
            Some(x) => {
                x.version += 1;
                x.modified = now_s();
                true
            }
            None => false,
        }
    }

    /// Adds the next style; returns its name.
    pub fn add(&self) -> String {
        lock(&self.state).add()
    }

    /// Full (200) downloads of `style` so far.
    pub fn downloads(&self, style: &str) -> u64 {
        lock(&self.state).downloads.get(style).copied().unwrap_or(0)
    }

    /// 304 answers for `style` so far.
    pub fn not_modified(&self, style: &str) -> u64 {
        lock(&self.state)
            .not_modified
            .get(style)
            .copied()
            .unwrap_or(0)
    }

    pub fn catalog_reads(&self) -> u64 {
        lock(&self.state).catalog_reads
    }

    pub fn styles(&self) -> Vec<String> {
        lock(&self.state)
            .styles
            .iter()
            .map(|s| s.name.clone())
            .collect()
    }

    pub async fn stop(self) {
        if let Some(changer) = self.changer {
            changer.abort();
        }
        self.server.stop(false).await;
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

type Shared = web::Data<Arc<Mutex<State>>>;

/// Applies the fail and slow modes; `Some` is the answer when failing.
async fn misbehave(state: &Shared) -> Option<HttpResponse> {
    let mode = lock(state).mode.clone();
    if mode.slow_ms > 0 {
        tokio::time::sleep(Duration::from_millis(mode.slow_ms)).await;
    }
    mode.fail
        .then(|| HttpResponse::ServiceUnavailable().body("catalog is down"))
}

async fn catalog_page(state: Shared) -> HttpResponse {
    if let Some(failed) = misbehave(&state).await {
        return failed;
    }
    let mut s = lock(&state);
    s.catalog_reads += 1;
    if s.mode.garbage {
        return HttpResponse::Ok()
            .content_type("text/html")
            .body("<<html><div>%%% maintenance &&& <p <p <table>>>");
    }
    let mut html = String::from(
        "<!doctype html><html><head><title>Beards</title></head><body><h1>Beard styles</h1><ul class=\"catalog\">\n",
    );
    for style in &s.styles {
        html.push_str(&format!(
            "<li class=\"beard\"><span class=\"name\">{}</span> <img src=\"img/{}.png\" data-anchor=\"{},{}\" alt=\"{}\"></li>\n",
            style.name, style.name, ANCHOR[0], ANCHOR[1], style.kind
        ));
    }
    html.push_str("</ul></body></html>\n");
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html)
}

async fn beard_png(req: HttpRequest, path: web::Path<String>, state: Shared) -> HttpResponse {
    if let Some(failed) = misbehave(&state).await {
        return failed;
    }
    let Some(name) = path.strip_suffix(".png") else {
        return HttpResponse::NotFound().finish();
    };
    let style = lock(&state).styles.iter().find(|s| s.name == name).cloned();
    let Some(style) = style else {
        return HttpResponse::NotFound().body("no such style");
    };
    let etag = format!("\"{}-v{}\"", style.name, style.version);
    let last_modified = httpdate::fmt_http_date(style.modified);
    let header_str = |h| {
        req.headers()
            .get(h)
            .and_then(|v: &header::HeaderValue| v.to_str().ok())
    };
    let fresh = match header_str(header::IF_NONE_MATCH) {
        Some(inm) => inm.split(',').any(|t| t.trim() == etag),
        None => header_str(header::IF_MODIFIED_SINCE)
            .and_then(|d| httpdate::parse_http_date(d).ok())
            .is_some_and(|since| since >= style.modified),
    };
    if fresh {
        *lock(&state)
            .not_modified
            .entry(style.name.clone())
            .or_default() += 1;
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .insert_header((header::LAST_MODIFIED, last_modified))
            .finish();
    }
    let png = draw_png(style.kind, style.version, &style.name);
    *lock(&state)
        .downloads
        .entry(style.name.clone())
        .or_default() += 1;
    HttpResponse::Ok()
        .content_type("image/png")
        .insert_header((header::ETAG, etag))
        .insert_header((header::LAST_MODIFIED, last_modified))
        .insert_header((header::CACHE_CONTROL, "max-age=0"))
        .body(png)
}

#[derive(Serialize)]
struct Counts {
    downloads: BTreeMap<String, u64>,
    not_modified: BTreeMap<String, u64>,
    catalog_reads: u64,
    styles: Vec<String>,
}

async fn downloads(state: Shared) -> HttpResponse {
    let s = lock(&state);
    HttpResponse::Ok().json(Counts {
        downloads: s.downloads.clone(),
        not_modified: s.not_modified.clone(),
        catalog_reads: s.catalog_reads,
        styles: s.styles.iter().map(|x| x.name.clone()).collect(),
    })
}

async fn set_mode(state: Shared, mode: web::Json<Mode>) -> HttpResponse {
    info!(mode = ?mode.0, "sim: mode set");
    lock(&state).mode = mode.into_inner();
    HttpResponse::NoContent().finish()
}

async fn change(state: Shared, path: web::Path<String>) -> HttpResponse {
    let mut s = lock(&state);
    match s.styles.iter_mut().find(|x| x.name == *path) {
        Some(x) => {
            x.version += 1;
            x.modified = now_s();
            HttpResponse::NoContent().finish()
        }
        None => HttpResponse::NotFound().finish(),
    }
}

async fn add(state: Shared) -> HttpResponse {
    let name = lock(&state).add();
    HttpResponse::Ok().json(serde_json::json!({ "added": name }))
}

/// Draws a beard as an RGBA PNG, 400x320, mouth centre at [`ANCHOR`];
/// `version` changes the colour, `name` seeds the hair texture.
pub fn draw_png(kind: &str, version: u32, name: &str) -> Vec<u8> {
    let img = draw(kind, version, name);
    let mut out = Vec::new();
    // Encoding an in-memory RGBA buffer cannot fail.
    let _ = image::DynamicImage::ImageRgba8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png);
    out
}

/// The drawing behind [`draw_png`].
pub fn draw(kind: &str, version: u32, name: &str) -> image::RgbaImage {
    let palette = [
        [92u8, 58, 33],
        [40, 30, 25],
        [150, 90, 40],
        [120, 120, 120],
        [200, 170, 110],
    ];
    let base = palette[(version as usize + name.len()) % palette.len()];
    let seed = name.bytes().fold(version, |h, b| {
        h.wrapping_mul(31).wrapping_add(u32::from(b))
    });
    let (ax, ay) = (ANCHOR[0] as f32, ANCHOR[1] as f32);
    image::RgbaImage::from_fn(BEARD_W, BEARD_H, |x, y| {
        let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
        let nx = (fx - ax) / (BEARD_W as f32 / 2.0);
        // Coverage 0..1 of each part, soft at the edges.
        let full = {
            let dy = (fy - 30.0) / (BEARD_H as f32 - 30.0);
            let outer = 1.0 - (nx * nx + dy * dy).sqrt();
            if fy < 30.0 {
                0.0
            } else {
                (outer * 25.0).clamp(0.0, 1.0)
            }
        };
        let mouth = {
            let d = ((fx - ax) / 62.0).powi(2) + ((fy - ay) / 16.0).powi(2);
            ((d - 1.0) * 4.0).clamp(0.0, 1.0)
        };
        let moustache = {
            let d = ((fx - ax) / 115.0).powi(2) + ((fy - (ay - 20.0)) / 18.0).powi(2);
            ((1.0 - d) * 6.0).clamp(0.0, 1.0)
        };
        let chin = {
            let d = ((fx - ax) / 55.0).powi(2) + ((fy - (ay + 85.0)) / 70.0).powi(2);
            ((1.0 - d) * 6.0).clamp(0.0, 1.0)
        };
        let rim = {
            let dy = (fy - 30.0) / (BEARD_H as f32 - 30.0);
            let r = (nx * nx + dy * dy).sqrt();
            if fy < 60.0 {
                0.0
            } else {
                ((0.12 - (r - 0.86).abs()) * 30.0).clamp(0.0, 1.0)
            }
        };
        let (coverage, opacity) = match kind {
            "goatee" => (moustache.max(chin) * mouth, 1.0),
            "moustache" => (moustache * mouth, 1.0),
            "stubble" => (full * mouth, 0.45),
            "chinstrap" => (rim, 1.0),
            "vandyke" => (
                moustache.max(chin * if fy > ay + 20.0 { 1.0 } else { 0.0 }) * mouth,
                1.0,
            ),
            _ => (full * mouth.max(if fy < ay - 8.0 { 1.0 } else { 0.0 }), 1.0),
        };
        // Hair texture: a hash per pixel, streaks along y.
        let h = (x / 2)
            .wrapping_mul(0x9E37_79B1)
            .wrapping_add((y / 6).wrapping_mul(0x85EB_CA6B))
            ^ seed;
        let h = h.wrapping_mul(0xC2B2_AE35) >> 24;
        let shade = 0.75 + (h as f32 / 255.0) * 0.5;
        let speckle = if kind == "stubble" && h % 3 == 0 {
            0.0
        } else {
            1.0
        };
        let alpha = (coverage * opacity * speckle * 255.0).round() as u8;
        let c = |v: u8| (f32::from(v) * shade).round().clamp(0.0, 255.0) as u8;
        if alpha == 0 {
            image::Rgba([0, 0, 0, 0])
        } else {
            image::Rgba([c(base[0]), c(base[1]), c(base[2]), alpha])
        }
    })
}

/// `tasklet sim beards`: runs until Ctrl-C.
pub async fn run(args: BeardsArgs) -> anyhow::Result<()> {
    let sim = BeardSim::start(&args.addr, args.styles, args.change_every).await?;
    println!(
        "beard catalog at {}  (counts: http://{}/control/downloads)",
        sim.catalog_url(),
        sim.addr
    );
    tokio::signal::ctrl_c().await?;
    sim.stop().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_with_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3h").is_err());
    }

    #[test]
    fn every_kind_draws_a_visible_beard_with_a_clear_mouth() {
        for kind in KINDS {
            let img = draw(kind, 1, kind);
            let opaque = img.pixels().filter(|p| p.0[3] > 0).count();
            assert!(opaque > 1000, "{kind}: {opaque} visible pixels");
            // Transparent above the moustache line.
            assert_eq!(img.get_pixel(ANCHOR[0], 5).0[3], 0, "{kind}");
            if kind != "chinstrap" {
                assert_eq!(
                    img.get_pixel(ANCHOR[0], ANCHOR[1]).0[3],
                    0,
                    "{kind}: mouth open"
                );
            }
        }
    }

    #[test]
    fn a_new_version_draws_different_pixels() {
        assert_ne!(draw("full", 1, "full"), draw("full", 2, "full"));
    }
}
