//! The actix-web app, shared by the daemon and the tests: one file per
//! resource, all errors as [`ApiError`] JSON bodies.

mod errors;
mod health;

pub use errors::{from_actix, ApiError};

use actix_web::web;
use tasklet_actors::store::Store;

/// What every handler can reach. Cheap to clone (one per HTTP worker).
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// Names of the pipelines the topology started.
    pub pipelines: Vec<&'static str>,
}

/// Registers every resource. Used by the daemon and by tests alike.
pub fn configure(state: AppState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(state))
            .app_data(web::QueryConfig::default().error_handler(|e, _| from_actix(e.into())))
            .app_data(web::JsonConfig::default().error_handler(|e, _| from_actix(e.into())))
            .configure(health::configure)
            .default_service(web::to(|| async {
                Err::<actix_web::HttpResponse, _>(ApiError::NotFound("no such resource".into()))
            }));
    }
}
