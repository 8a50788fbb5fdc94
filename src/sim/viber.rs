//! `tasklet sim viber`: a stand-in for Viber's REST bot API on loopback.
//!
//! Speaks `POST /pa/send_message` and `POST /pa/set_webhook` like the real
//! API (answers HTTP 200 with a body `status`), with a configurable latency
//! and error mix (status 12, HTTP 5xx, timeouts, permanent codes), and a
//! fault window that fails every request for a while. It records every
//! request it answered (`GET /sim/received`), can post signed delivery
//! callbacks to the registered webhook (`POST /sim/callback`, or
//! automatically after each accepted send), and takes a new mode at
//! `POST /sim/mode`. Tests start it in-process with [`ViberSim::start`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use clap::Args;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tasklet_actors::store::models::now_us;
use tracing::{info, warn};

use crate::http::{viber_signature, SIGNATURE_HEADER};

/// `tasklet sim viber` arguments.
#[derive(Debug, Clone, Args)]
pub struct ViberSimArgs {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub addr: String,
    /// The token requests must carry (and callbacks are signed with);
    /// default `VIBER_AUTH_TOKEN`, else any token is accepted.
    #[arg(long, env = "VIBER_AUTH_TOKEN")]
    pub token: Option<String>,
    #[command(flatten)]
    pub mode: Mode,
}

/// How the simulator answers; every ratio is a probability per request.
#[derive(Debug, Clone, PartialEq, Args, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mode {
    /// Delay before every answer.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of requests answered with status 12 (tooManyRequests).
    #[arg(long, default_value_t = 0.0)]
    pub status12: f64,
    /// Share of requests answered with HTTP 503.
    #[arg(long, default_value_t = 0.0)]
    pub http5xx: f64,
    /// Share of requests never answered in time (held for `hang_ms`).
    #[arg(long, default_value_t = 0.0)]
    pub timeout: f64,
    /// Share of requests answered with status 6 (receiverNotSubscribed).
    #[arg(long, default_value_t = 0.0)]
    pub permanent: f64,
    /// How long a "timeout" request is held.
    #[arg(long, default_value_t = 30_000)]
    pub hang_ms: u64,
    /// Fail every request for this long from now (see `fail_with`).
    #[arg(long, default_value_t = 0)]
    pub fail_for_ms: u64,
    /// `status12` or `http5xx`: how the fault window fails.
    #[arg(long, default_value = "http5xx")]
    pub fail_with: String,
    /// After each accepted send, post a signed "delivered" callback to the webhook.
    #[arg(long, default_value_t = false)]
    pub callbacks: bool,
}

/// One request the simulator answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Received {
    /// The `tracking_data` (tasklet puts the message id there).
    pub tracking_data: String,
    pub receiver: String,
    pub text: String,
    /// Microseconds since the epoch when the request arrived.
    pub received_at_us: i64,
    /// The body status answered (-1 for HTTP 503, -2 for a held request).
    pub status: i64,
    pub message_token: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct SendMessage {
    receiver: String,
    #[serde(default)]
    tracking_data: String,
    #[serde(default)]
    text: String,
    #[serde(rename = "type")]
    kind: String,
}

struct State {
    token: Option<String>,
    mode: Mutex<(Mode, Option<Instant>)>,
    received: Mutex<Vec<Received>>,
    webhook: Mutex<Option<String>>,
    next_token: AtomicI64,
    client: reqwest::Client,
}

/// A running simulator.
pub struct ViberSim {
    pub addr: SocketAddr,
    state: Arc<State>,
    server: ServerHandle,
}

impl ViberSim {
    /// Starts on `addr` (port 0 picks one) with `mode`.
    pub async fn start(addr: &str, token: Option<String>, mode: Mode) -> anyhow::Result<ViberSim> {
        let fail_until = fail_until(&mode);
        let state = Arc::new(State {
            token,
            mode: Mutex::new((mode, fail_until)),
            received: Mutex::new(Vec::new()),
            webhook: Mutex::new(None),
            next_token: AtomicI64::new(5_000_000_000_000_000_000),
            client: reqwest::Client::new(),
        });
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/pa/send_message", web::post().to(send_message))
                .route("/pa/set_webhook", web::post().to(set_webhook))
                .route("/sim/received", web::get().to(received))
                .route("/sim/received", web::delete().to(clear))
                .route("/sim/mode", web::post().to(set_mode))
                .route("/sim/callback", web::post().to(callback))
        })
        .workers(2)
        .disable_signals()
        .shutdown_timeout(1)
        .bind(addr)?;
        let addr = *server
            .addrs()
            .first()
            .ok_or_else(|| anyhow::anyhow!("no address"))?;
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(ViberSim {
            addr,
            state,
            server: handle,
        })
    }

    /// `http://ADDR`, for `notify.viber_base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request answered so far.
    pub fn received(&self) -> Vec<Received> {
        self.state
            .received
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Replaces the mode (a new `fail_for_ms` window starts now).
    pub fn set_mode(&self, mode: Mode) {
        if let Ok(mut m) = self.state.mode.lock() {
            *m = (mode.clone(), fail_until(&mode));
        }
    }

    /// The webhook registered with set_webhook, if any.
    pub fn webhook(&self) -> Option<String> {
        self.state.webhook.lock().ok().and_then(|w| w.clone())
    }

    /// Posts a signed callback for `message_token` to the webhook; returns
    /// the webhook's HTTP status.
    pub async fn post_callback(&self, message_token: i64, event: &str) -> anyhow::Result<u16> {
        post_callback(&self.state, message_token, event, None).await
    }

    pub async fn stop(&self) {
        self.server.stop(false).await;
    }
}

impl Default for Mode {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            status12: 0.0,
            http5xx: 0.0,
            timeout: 0.0,
            permanent: 0.0,
            hang_ms: 30_000,
            fail_for_ms: 0,
            fail_with: "http5xx".to_owned(),
            callbacks: false,
        }
    }
}

fn fail_until(mode: &Mode) -> Option<Instant> {
    (mode.fail_for_ms > 0).then(|| Instant::now() + Duration::from_millis(mode.fail_for_ms))
}

/// What to answer to one request.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Answer {
    Ok,
    Status(i64),
    Http503,
    Hang,
}

fn choose(mode: &Mode, in_fault: bool, roll: f64) -> Answer {
    if in_fault {
        return if mode.fail_with == "status12" {
            Answer::Status(12)
        } else {
            Answer::Http503
        };
    }
    let mut edge = mode.status12;
    if roll < edge {
        return Answer::Status(12);
    }
    edge += mode.http5xx;
    if roll < edge {
        return Answer::Http503;
    }
    edge += mode.timeout;
    if roll < edge {
        return Answer::Hang;
    }
    edge += mode.permanent;
    if roll < edge {
        return Answer::Status(6);
    }
    Answer::Ok
}

fn status_body(status: i64, token: Option<i64>) -> serde_json::Value {
    let name = tasklet_actors::notify::status_name(status);
    let mut body = serde_json::json!({"status": status, "status_message": name, "chat_hostname": "SN-SIM", "billing_status": 1});
    if let Some(t) = token {
        body["message_token"] = serde_json::json!(t);
    }
    body
}

async fn send_message(
    state: web::Data<State>,
    req: HttpRequest,
    body: web::Json<SendMessage>,
) -> HttpResponse {
    let arrived = now_us();
    let token_ok = match &state.token {
        None => true,
        Some(t) => {
            req.headers()
                .get("X-Viber-Auth-Token")
                .and_then(|v| v.to_str().ok())
                == Some(t.as_str())
        }
    };
    let (mode, in_fault) = match state.mode.lock() {
        Ok(m) => (m.0.clone(), m.1.is_some_and(|u| Instant::now() < u)),
        Err(_) => (Mode::default(), false),
    };
    let answer = if !token_ok {
        Answer::Status(2)
    } else if body.kind != "text" || body.receiver.is_empty() {
        Answer::Status(3)
    } else {
        choose(&mode, in_fault, rand::rng().random::<f64>())
    };
    let token = (answer == Answer::Ok).then(|| state.next_token.fetch_add(1, Ordering::Relaxed));
    let status = match answer {
        Answer::Ok => 0,
        Answer::Status(s) => s,
        Answer::Http503 => -1,
        Answer::Hang => -2,
    };
    if let Ok(mut r) = state.received.lock() {
        r.push(Received {
            tracking_data: body.tracking_data.clone(),
            receiver: body.receiver.clone(),
            text: body.text.clone(),
            received_at_us: arrived,
            status,
            message_token: token,
        });
    }
    if mode.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(mode.latency_ms)).await;
    }
    match answer {
        Answer::Hang => {
            tokio::time::sleep(Duration::from_millis(mode.hang_ms)).await;
            HttpResponse::Ok().json(status_body(0, token))
        }
        Answer::Http503 => HttpResponse::ServiceUnavailable().body("overloaded"),
        Answer::Status(s) => HttpResponse::Ok().json(status_body(s, None)),
        Answer::Ok => {
            if mode.callbacks {
                if let Some(t) = token {
                    let state = state.clone().into_inner();
                    actix_web::rt::spawn(async move {
                        let _ = post_callback(&state, t, "delivered", None).await;
                    });
                }
            }
            HttpResponse::Ok().json(status_body(0, token))
        }
    }
}

#[derive(Debug, Deserialize)]
struct SetWebhook {
    url: String,
}

async fn set_webhook(state: web::Data<State>, body: web::Json<SetWebhook>) -> HttpResponse {
    // Like Viber: call the URL once and expect HTTP 200.
    let check =
        serde_json::json!({"event": "webhook", "timestamp": now_us() / 1000, "message_token": 0});
    let raw = check.to_string();
    let mut request = state
        .client
        .post(&body.url)
        .header("Content-Type", "application/json");
    if let Some(t) = &state.token {
        request = request.header(SIGNATURE_HEADER, viber_signature(t, raw.as_bytes()));
    }
    match request.body(raw).send().await {
        Ok(r) if r.status().is_success() => {
            if let Ok(mut w) = state.webhook.lock() {
                *w = Some(body.url.clone());
            }
            info!(url = %body.url, "webhook set");
            HttpResponse::Ok().json(serde_json::json!({"status": 0, "status_message": "ok", "event_types": ["delivered", "seen", "failed"]}))
        }
        Ok(r) => {
            warn!(url = %body.url, status = r.status().as_u16(), "webhook check refused");
            HttpResponse::Ok().json(status_body(1, None))
        }
        Err(e) => {
            warn!(url = %body.url, error = %e, "webhook unreachable");
            HttpResponse::Ok().json(status_body(1, None))
        }
    }
}

async fn received(state: web::Data<State>) -> HttpResponse {
    let r = state.received.lock().map(|r| r.clone()).unwrap_or_default();
    HttpResponse::Ok().json(r)
}

async fn clear(state: web::Data<State>) -> HttpResponse {
    if let Ok(mut r) = state.received.lock() {
        r.clear();
    }
    HttpResponse::NoContent().finish()
}

async fn set_mode(state: web::Data<State>, mode: web::Json<Mode>) -> HttpResponse {
    let mode = mode.into_inner();
    if let Ok(mut m) = state.mode.lock() {
        *m = (mode.clone(), fail_until(&mode));
    }
    HttpResponse::Ok().json(mode)
}

#[derive(Debug, Deserialize)]
struct CallbackRequest {
    message_token: i64,
    event: String,
    #[serde(default)]
    desc: Option<String>,
}

async fn callback(state: web::Data<State>, body: web::Json<CallbackRequest>) -> HttpResponse {
    match post_callback(&state, body.message_token, &body.event, body.desc.clone()).await {
        Ok(status) => HttpResponse::Ok().json(serde_json::json!({"webhook_status": status})),
        Err(e) => HttpResponse::BadGateway().json(serde_json::json!({"error": e.to_string()})),
    }
}

async fn post_callback(
    state: &State,
    message_token: i64,
    event: &str,
    desc: Option<String>,
) -> anyhow::Result<u16> {
    let url = state
        .webhook
        .lock()
        .ok()
        .and_then(|w| w.clone())
        .ok_or_else(|| anyhow::anyhow!("no webhook set"))?;
    let mut body = serde_json::json!({
        "event": event, "timestamp": now_us() / 1000, "message_token": message_token,
        "user_id": "sim-user",
    });
    if let Some(d) = desc {
        body["desc"] = serde_json::json!(d);
    }
    let raw = body.to_string();
    let mut request = state
        .client
        .post(&url)
        .header("Content-Type", "application/json");
    if let Some(t) = &state.token {
        request = request.header(SIGNATURE_HEADER, viber_signature(t, raw.as_bytes()));
    }
    Ok(request.body(raw).send().await?.status().as_u16())
}

/// `tasklet sim viber`: runs until SIGINT/SIGTERM.
pub async fn run(args: ViberSimArgs) -> anyhow::Result<()> {
    let sim = ViberSim::start(&args.addr, args.token.clone(), args.mode.clone()).await?;
    println!("viber sim listening on http://{}", sim.addr);
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    sim.stop().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_is_taken_in_order() {
        let mode = Mode {
            status12: 0.1,
            http5xx: 0.1,
            timeout: 0.1,
            permanent: 0.1,
            ..Mode::default()
        };
        assert_eq!(choose(&mode, false, 0.05), Answer::Status(12));
        assert_eq!(choose(&mode, false, 0.15), Answer::Http503);
        assert_eq!(choose(&mode, false, 0.25), Answer::Hang);
        assert_eq!(choose(&mode, false, 0.35), Answer::Status(6));
        assert_eq!(choose(&mode, false, 0.45), Answer::Ok);
        assert_eq!(choose(&mode, true, 0.45), Answer::Http503);
        let m12 = Mode {
            fail_with: "status12".into(),
            ..Mode::default()
        };
        assert_eq!(choose(&m12, true, 0.9), Answer::Status(12));
    }
}
