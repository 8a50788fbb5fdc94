//! HTTP resources of the odds pipeline: `GET /v1/odds/events`,
//! `GET /v1/odds/changes?event=&since=&limit=`, and `GET /v1/odds/stream`
//! (Server-Sent Events, filters `event`, `market`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{get, web, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use tasklet_actors::odds::messages::{ListGames, OddsChange};
use tasklet_actors::odds::queries::{self, ChangeFilter};
use tasklet_actors::store::models::now_us;
use tokio::sync::broadcast;

use super::{ApiError, AppState};
use crate::pipelines::odds::OddsHandle;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(events).service(changes).service(stream);
}

fn handle(state: &AppState) -> Result<&OddsHandle, ApiError> {
    state
        .handles
        .odds
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("the odds pipeline is not enabled (odds.enabled)".into()))
}

/// Every event stored, most recently seen first, with what Discovery does
/// with it now (`watching`, `stale`, `finished`, `gone`, or null).
#[get("/v1/odds/events")]
async fn events(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let odds = handle(&state)?;
    let mut watch = HashMap::new();
    for d in &odds.discoveries {
        if let Ok(games) = d.send(ListGames).await {
            for g in games {
                watch.insert((g.site, g.event), g.state);
            }
        }
    }
    let rows = queries::events(&state.store, 10_000)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let events: Vec<_> = rows
        .into_iter()
        .map(|e| {
            let w = watch.get(&(e.site.clone(), e.external_id.clone())).copied();
            json!({
                "site": e.site, "event": e.external_id, "home": e.home, "away": e.away,
                "sport": e.sport, "status": e.status, "first_seen_us": e.first_seen_us,
                "last_seen_us": e.last_seen_us, "watch": w,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "events": events, "watching": watch.len() })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangesQuery {
    event: Option<String>,
    site: Option<String>,
    /// `10m`, `30s`, … ago, or microseconds since the epoch.
    since: Option<String>,
    /// Only rows after this id (paging).
    after: Option<i64>,
    limit: Option<i64>,
}

const MAX_LIMIT: i64 = 10_000;

/// Stored changes, oldest first; `next_after` pages on.
#[get("/v1/odds/changes")]
async fn changes(
    state: web::Data<AppState>,
    q: web::Query<ChangesQuery>,
) -> Result<HttpResponse, ApiError> {
    handle(&state)?;
    let q = q.into_inner();
    let since_us = q
        .since
        .as_deref()
        .map(|s| queries::parse_since(s, now_us()))
        .transpose()
        .map_err(|e| ApiError::BadRequest(format!("since: {e}")))?;
    let limit = q.limit.unwrap_or(1_000);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit: must be between 1 and {MAX_LIMIT}"
        )));
    }
    let rows = queries::changes(
        &state.store,
        ChangeFilter {
            site: q.site,
            event: q.event,
            since_us,
            after_id: q.after,
            limit,
        },
    )
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let next_after = rows.last().map(|r| r.id);
    Ok(HttpResponse::Ok().json(json!({ "changes": rows, "next_after": next_after })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamQuery {
    event: Option<String>,
    market: Option<String>,
}

/// Does `change` pass the stream's filters?
fn wanted(change: &OddsChange, q: &StreamQuery) -> bool {
    q.event.as_ref().is_none_or(|e| *e == change.event)
        && q.market.as_ref().is_none_or(|m| *m == change.market)
}

/// A comment this often on a quiet stream (also finds gone clients).
const KEEP_ALIVE: Duration = Duration::from_secs(2);

/// One SSE frame per change (`event: change`); `event: lagged` with the
/// number missed when this subscriber fell behind; a comment every 2 s
/// when quiet. The stream ends when the daemon stops.
#[get("/v1/odds/stream")]
async fn stream(
    state: web::Data<AppState>,
    q: web::Query<StreamQuery>,
) -> Result<HttpResponse, ApiError> {
    let odds = handle(&state)?;
    let rx = odds.live.subscribe();
    let closing = odds.closing.clone();
    let q = Arc::new(q.into_inner());
    let frames = futures_util::stream::unfold((rx, closing), move |(mut rx, mut closing)| {
        let q = q.clone();
        async move {
            if *closing.borrow() {
                return None;
            }
            let next = tokio::select! {
                next = tokio::time::timeout(KEEP_ALIVE, rx.recv()) => next,
                _ = closing.changed() => return None,
            };
            let frame = match next {
                Err(_) => ": keep-alive\n\n".to_owned(),
                Ok(Ok(batch)) => {
                    let mut out = String::new();
                    for c in batch.iter().filter(|c| wanted(c, &q)) {
                        let data = serde_json::to_string(c).unwrap_or_default();
                        out.push_str("event: change\ndata: ");
                        out.push_str(&data);
                        out.push_str("\n\n");
                    }
                    out
                }
                Ok(Err(broadcast::error::RecvError::Lagged(n))) => {
                    format!("event: lagged\ndata: {{\"missed\":{n}}}\n\n")
                }
                Ok(Err(broadcast::error::RecvError::Closed)) => return None,
            };
            Some((
                Ok::<_, actix_web::Error>(web::Bytes::from(frame)),
                (rx, closing),
            ))
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(frames))
}
