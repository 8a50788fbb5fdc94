//! The actix-web app, shared by the daemon and the tests: one file per
//! resource, all errors as [`ApiError`] JSON bodies.

mod beard;
mod debug;
mod errors;
mod health;
mod notify;
mod odds;
pub mod origin;
mod watermark;

pub use errors::{from_actix, ApiError};
pub use notify::{viber_signature, SIGNATURE_HEADER};

use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::{web, HttpRequest};
use tasklet_actors::store::Store;

use crate::config::Secrets;
use crate::topology::Handles;

/// What every handler can reach. Cheap to clone (one per HTTP worker).
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// Names of the pipelines the topology started.
    pub pipelines: Vec<&'static str>,
    /// Each started pipeline's handle (`None` when disabled).
    pub handles: Handles,
    /// Secrets from the environment (debug token, Viber token).
    pub secrets: Secrets,
}

/// Registers every resource. Used by the daemon and by tests alike.
pub fn configure(state: AppState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(state))
            .app_data(web::QueryConfig::default().error_handler(|e, _| from_actix(e.into())))
            .app_data(web::JsonConfig::default().error_handler(|e, _| from_actix(e.into())))
            .configure(health::configure)
            .configure(debug::configure)
            .configure(watermark::configure)
            .configure(beard::configure)
            .configure(odds::configure)
            .configure(notify::configure)
            .default_service(web::to(|| async {
                Err::<actix_web::HttpResponse, _>(ApiError::NotFound("no such resource".into()))
            }));
    }
}

/// The id that follows a request through the logs of every actor on its
/// path: the client's `X-Request-Id` (1 to 64 bytes) or `{prefix}-{n}`.
fn request_id(req: &HttpRequest, prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed)))
}
