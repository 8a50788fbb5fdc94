//! HTTP resources of the notify pipeline: Viber's delivery receipts
//! (`POST /v1/viber/webhook`) and the notification log
//! (`GET /v1/notifications`).

use actix_web::{web, HttpRequest, HttpResponse};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;
use tasklet_actors::notify::actions::{self, ListFilter, Receipt};
use tasklet_actors::notify::messages::state;
use tracing::{info, warn};

use super::{ApiError, AppState};

/// The header Viber signs every callback with.
pub const SIGNATURE_HEADER: &str = "X-Viber-Content-Signature";

/// Rows `GET /v1/notifications` returns at most per call.
pub const MAX_LIMIT: i64 = 1000;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/viber/webhook", web::post().to(webhook))
        .route("/v1/notifications", web::get().to(list));
}

/// Hex HMAC-SHA256 of `body` keyed with `token`: what Viber puts in
/// `X-Viber-Content-Signature`.
pub fn viber_signature(token: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(token.as_bytes())
        .unwrap_or_else(|_| unreachable_hmac());
    mac.update(body);
    to_hex(&mac.finalize().into_bytes())
}

/// HMAC accepts keys of any length; this is never reached.
fn unreachable_hmac() -> Hmac<Sha256> {
    <Hmac<Sha256> as KeyInit>::new_from_slice(b"k").unwrap_or_else(|_| unreachable!())
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Whether `signature` (hex) is the HMAC of `body` under `token`; the
/// comparison takes constant time.
pub fn signature_matches(token: &str, body: &[u8], signature: &str) -> bool {
    let Some(expected) = from_hex(signature.trim()) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(token.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// A Viber callback; only the fields tasklet uses.
#[derive(Debug, Deserialize)]
struct Callback {
    event: String,
    #[serde(default)]
    timestamp: Option<i64>,
    #[serde(default)]
    message_token: Option<i64>,
    #[serde(default)]
    desc: Option<String>,
}

async fn webhook(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let Some(notify) = &state.handles.notify else {
        return Err(ApiError::NotFound(
            "the notify pipeline is not enabled".into(),
        ));
    };
    let signature = req
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            warn!(pipeline = "notify", "webhook without signature");
            ApiError::Unauthorized(format!("missing {SIGNATURE_HEADER}"))
        })?;
    if !signature_matches(&notify.token, &body, signature) {
        warn!(pipeline = "notify", "webhook with a bad signature");
        return Err(ApiError::Unauthorized(format!(
            "{SIGNATURE_HEADER} does not match the body"
        )));
    }
    let callback: Callback = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("not a Viber callback: {e}")))?;
    let to = match callback.event.as_str() {
        "delivered" => state::DELIVERED,
        "seen" => state::SEEN,
        "failed" => state::FAILED,
        // "webhook" (the check when it is set), subscribed, … : nothing to log.
        _ => return Ok(HttpResponse::Ok().json(serde_json::json!({"status": 0, "updated": 0}))),
    };
    let token = callback
        .message_token
        .ok_or_else(|| ApiError::BadRequest(format!("{} without message_token", callback.event)))?;
    let at_us = callback
        .timestamp
        .map(|ms| ms.saturating_mul(1000))
        .unwrap_or_else(tasklet_actors::store::models::now_us);
    let updated = actions::apply_receipt(
        &state.store,
        Receipt {
            message_token: token,
            state: to,
            at_us,
            desc: callback.desc,
        },
    )
    .await
    .map_err(|e| ApiError::Upstream(format!("database: {e}")))?;
    metrics::counter!("tasklet_notify_receipts_total", "event" => to, "matched" => if updated > 0 { "yes" } else { "no" })
        .increment(1);
    info!(pipeline = "notify", token, event = to, updated, "receipt");
    Ok(HttpResponse::Ok().json(serde_json::json!({"status": 0, "updated": updated})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    transaction_id: Option<String>,
    state: Option<String>,
    /// RFC 3339 time, or microseconds since the epoch.
    since: Option<String>,
    limit: Option<i64>,
}

async fn list(
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    if let Some(s) = &q.state {
        if !state::ALL.contains(&s.as_str()) {
            return Err(ApiError::BadRequest(format!(
                "state must be one of {}",
                state::ALL.join(", ")
            )));
        }
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to {MAX_LIMIT}"
        )));
    }
    let since_us = match &q.since {
        None => None,
        Some(s) => Some(parse_since(s).ok_or_else(|| {
            ApiError::BadRequest(
                "since must be an RFC 3339 time or microseconds since the epoch".into(),
            )
        })?),
    };
    let rows = actions::list(
        &state.store,
        ListFilter {
            transaction_id: q.transaction_id,
            state: q.state,
            since_us,
            limit,
        },
    )
    .await
    .map_err(|e| ApiError::Upstream(format!("database: {e}")))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "notifications": rows })))
}

/// Microseconds since the epoch from an integer or an RFC 3339 time.
pub fn parse_since(s: &str) -> Option<i64> {
    if let Ok(us) = s.parse::<i64>() {
        return Some(us);
    }
    rfc3339_to_us(s)
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` → microseconds since the epoch.
pub fn rfc3339_to_us(s: &str) -> Option<i64> {
    let n = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d, h, mi, sec) = (
        n(0..4)?,
        n(5..7)?,
        n(8..10)?,
        n(11..13)?,
        n(14..16)?,
        n(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut micros = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded = format!("{:0<6}", &frac[..digits.min(6)]);
        micros = padded.parse().ok()?;
        rest = &frac[digits..];
    }
    let offset_s = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let oh: i64 = rest[1..3].parse().ok()?;
            let om: i64 = rest[4..6].parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_s;
    Some(secs * 1_000_000 + micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_round_trip_and_refuse_tampering() {
        let sig = viber_signature("secret", b"{\"event\":\"seen\"}");
        assert_eq!(sig.len(), 64);
        assert!(signature_matches("secret", b"{\"event\":\"seen\"}", &sig));
        assert!(!signature_matches("secret", b"{\"event\":\"seen\" }", &sig));
        assert!(!signature_matches("other", b"{\"event\":\"seen\"}", &sig));
        assert!(!signature_matches("secret", b"x", "zz"));
        assert!(!signature_matches("secret", b"x", "abc"));
    }

    #[test]
    fn known_hmac_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            viber_signature("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn since_parses_rfc3339_and_micros() {
        assert_eq!(parse_since("1700000000000000"), Some(1_700_000_000_000_000));
        assert_eq!(rfc3339_to_us("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339_to_us("1970-01-01T00:00:01.5Z"), Some(1_500_000));
        assert_eq!(
            rfc3339_to_us("2026-11-29T02:00:00+02:00"),
            rfc3339_to_us("2026-11-29T00:00:00Z")
        );
        assert_eq!(
            rfc3339_to_us("2000-03-01T00:00:00Z"),
            Some(951_868_800_000_000)
        );
        assert_eq!(parse_since("yesterday"), None);
        assert_eq!(rfc3339_to_us("2026-11-29T00:00:00"), None);
    }
}
