//! `GET /metrics` (Prometheus text) and `GET /debug/profile?seconds=N`
//! (a CPU flamegraph of the running daemon, guarded by `TASKLET_DEBUG_TOKEN`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::{get, web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{ApiError, AppState};

#[get("/metrics")]
async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::telemetry::render_metrics())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileQuery {
    #[serde(default = "default_seconds")]
    seconds: u64,
}

fn default_seconds() -> u64 {
    10
}

/// The longest profile one request may ask for.
const MAX_PROFILE_SECONDS: u64 = 300;

/// Only one profile runs at a time: the sampler is process-wide.
static PROFILING: AtomicBool = AtomicBool::new(false);

/// Checks `Authorization: Bearer <TASKLET_DEBUG_TOKEN>`.
fn authorize(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let Some(expected) = state.secrets.debug_token.as_deref() else {
        return Err(ApiError::NotFound(
            "profiling is off: start the daemon with TASKLET_DEBUG_TOKEN set".into(),
        ));
    };
    let given = req
        .headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(token) if constant_time_eq(token.as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::Unauthorized("wrong debug token".into())),
        None => Err(ApiError::Unauthorized(
            "missing Authorization: Bearer <debug token>".into(),
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

struct Running;

impl Drop for Running {
    fn drop(&mut self) {
        PROFILING.store(false, Ordering::SeqCst);
    }
}

#[get("/debug/profile")]
async fn profile(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<ProfileQuery>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    if query.seconds == 0 || query.seconds > MAX_PROFILE_SECONDS {
        return Err(ApiError::BadRequest(format!(
            "seconds must be 1..={MAX_PROFILE_SECONDS}"
        )));
    }
    if PROFILING.swap(true, Ordering::SeqCst) {
        return Err(ApiError::Busy {
            detail: "a profile is already being taken".into(),
            retry_after_s: query.seconds as u32,
        });
    }
    let _running = Running;
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(199)
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()
        .map_err(|e| ApiError::Internal(format!("cannot start the profiler: {e}")))?;
    actix_rt::time::sleep(Duration::from_secs(query.seconds)).await;
    let report = guard
        .report()
        .build()
        .map_err(|e| ApiError::Internal(format!("cannot build the profile: {e}")))?;
    drop(guard);
    let mut svg = Vec::new();
    report
        .flamegraph(&mut svg)
        .map_err(|e| ApiError::Internal(format!("cannot draw the flamegraph: {e}")))?;
    Ok(HttpResponse::Ok().content_type("image/svg+xml").body(svg))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(metrics).service(profile);
}
