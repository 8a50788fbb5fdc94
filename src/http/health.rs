//! `/healthz`, `/readyz` and `/`: is the daemon alive, is it ready, what runs.

use std::time::Duration;

use actix_web::{get, web, HttpResponse};
use serde_json::json;

use super::{ApiError, AppState};

/// Alive: the HTTP server answers.
#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready: the database answers and every enabled pipeline has started.
#[get("/readyz")]
async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let db = tokio::time::timeout(Duration::from_secs(2), store.ping()).await;
    let database = match db {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "no answer within 2 s".to_owned(),
    };
    let pipelines = state.pipelines.clone();
    if database != "ok" {
        return Err(ApiError::NotReady(format!("database: {database}")));
    }
    Ok(HttpResponse::Ok()
        .json(json!({"status": "ready", "database": database, "pipelines": pipelines})))
}

/// A page a person can read: what runs here.
#[get("/")]
async fn index(state: web::Data<AppState>) -> HttpResponse {
    let mut page = format!(
        "tasklet {}\n\nstore: {:?}\npipelines started: {}\n\nendpoints: /healthz /readyz /metrics /debug/profile?seconds=N\n",
        env!("CARGO_PKG_VERSION"),
        state.store,
        if state.pipelines.is_empty() {
            "none".to_owned()
        } else {
            state.pipelines.join(", ")
        },
    );
    page.push('\n');
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(page)
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz).service(readyz).service(index);
}
