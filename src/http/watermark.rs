//! `POST /v1/watermark`: stamp a mark on an uploaded JPEG or PNG.
//!
//! The body is the image (`Content-Type: image/jpeg` or `image/png`) or a
//! `multipart/form-data` form whose field `image` is. Options come from the
//! query (`mark`, `position`, `margin`, `opacity`, `quality`, `format`),
//! each defaulting to `[watermark]`. A permit of `watermark.max_in_flight`
//! is taken before the body is read; none free → 503 + `Retry-After`.

use std::collections::HashMap;
use std::time::Instant;

use actix_multipart::Multipart;
use actix_web::http::header::{self, HeaderMap};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use tasklet_actors::compose::{
    OutputFormat, Position, Stamp, StampError, StampOptions, WatermarkSettings,
};
use tasklet_actors::observe;
use tracing::{info, warn};

use super::{ApiError, AppState};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/watermark").route(web::post().to(post_watermark)));
}

const QUERY_KEYS: [&str; 6] = ["mark", "position", "margin", "opacity", "quality", "format"];

/// Builds the stamp options from the query over the configured defaults;
/// every bad value is a 400 naming its key.
pub fn parse_options(
    query: &HashMap<String, String>,
    settings: &WatermarkSettings,
) -> Result<StampOptions, ApiError> {
    if let Some(key) = query.keys().find(|k| !QUERY_KEYS.contains(&k.as_str())) {
        return Err(ApiError::BadRequest(format!(
            "unknown query parameter {key:?} (known: {})",
            QUERY_KEYS.join(", ")
        )));
    }
    fn value<T: std::str::FromStr>(
        query: &HashMap<String, String>,
        key: &str,
        default: T,
        ok: impl Fn(&T) -> bool,
        expected: &str,
    ) -> Result<T, ApiError> {
        match query.get(key) {
            None => Ok(default),
            Some(raw) => {
                raw.parse::<T>().ok().filter(|v| ok(v)).ok_or_else(|| {
                    ApiError::BadRequest(format!("{key}: {raw:?} is not {expected}"))
                })
            }
        }
    }
    let mark = query
        .get("mark")
        .cloned()
        .unwrap_or_else(|| settings.default_mark.clone());
    if !settings.marks.contains_key(&mark) {
        return Err(ApiError::NotFound(format!(
            "no mark named {mark:?} (known: {})",
            settings
                .marks
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let position = match query.get("position") {
        None => settings.position,
        Some(raw) => raw
            .parse::<Position>()
            .map_err(|e| ApiError::BadRequest(format!("position: {e}")))?,
    };
    let format = match query.get("format").map(String::as_str) {
        None | Some("same") => OutputFormat::Same,
        Some("jpeg") => OutputFormat::Jpeg,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "format: {other:?} is not same or jpeg"
            )))
        }
    };
    Ok(StampOptions {
        mark,
        position,
        margin: value(
            query,
            "margin",
            settings.margin,
            |_| true,
            "a whole number of pixels",
        )?,
        opacity: value(
            query,
            "opacity",
            settings.opacity,
            |o: &f32| (0.0..=1.0).contains(o),
            "a number in 0..=1",
        )?,
        quality: value(
            query,
            "quality",
            settings.quality,
            |q| (1..=100).contains(q),
            "a whole number in 1..=100",
        )?,
        format,
        strip: settings.strip_metadata,
        max_pixels: settings.max_pixels,
        // An explicit quality asks for a re-encoded image.
        fast_path: settings.fast_path && !query.contains_key("quality"),
    })
}

/// How the image arrives.
#[derive(Debug, PartialEq)]
enum BodyKind {
    Raw,
    Multipart,
}

fn body_kind(headers: &HeaderMap) -> Result<BodyKind, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "image/jpeg" | "image/jpg" | "image/png" => Ok(BodyKind::Raw),
        "multipart/form-data" => Ok(BodyKind::Multipart),
        "" => Err(ApiError::UnsupportedMediaType(
            "no Content-Type: send image/jpeg, image/png or multipart/form-data".into(),
        )),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "{other} is not image/jpeg, image/png or multipart/form-data"
        ))),
    }
}

fn too_large(max: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!("the image is larger than {max} bytes"))
}

/// Reads a byte stream into memory, refusing more than `max` bytes.
async fn read_limited<S, E>(mut stream: S, max: usize) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut body = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("reading the body: {e}")))?;
        if body.len() + chunk.len() > max {
            return Err(too_large(max));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The bytes of the form field `image`; other fields are skipped.
async fn read_multipart(
    headers: &HeaderMap,
    payload: web::Payload,
    max: usize,
) -> Result<Bytes, ApiError> {
    let mut form = Multipart::new(headers, payload);
    let mut image = None;
    while let Some(field) = form.next().await {
        let mut field =
            field.map_err(|e| ApiError::BadRequest(format!("reading the form: {e}")))?;
        if field.name() == Some("image") && image.is_none() {
            image = Some(read_limited(&mut field, max).await?);
        } else {
            while let Some(chunk) = field.next().await {
                chunk.map_err(|e| ApiError::BadRequest(format!("reading the form: {e}")))?;
            }
        }
    }
    image.ok_or_else(|| ApiError::BadRequest("the form has no field named image".into()))
}

impl From<StampError> for ApiError {
    fn from(e: StampError) -> Self {
        let detail = e.to_string();
        match e {
            StampError::Empty => ApiError::BadRequest(detail),
            StampError::UnknownMark(_) => ApiError::NotFound(detail),
            StampError::NotAnImage
            | StampError::TooManyPixels { .. }
            | StampError::Unsupported(_)
            | StampError::Corrupt(_) => ApiError::Unprocessable(detail),
            StampError::Internal(_) | StampError::Panicked(_) => ApiError::Internal(detail),
        }
    }
}

async fn post_watermark(
    req: HttpRequest,
    query: web::Query<HashMap<String, String>>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let handle = state.handles.watermark.as_ref().ok_or_else(|| {
        ApiError::NotFound("the watermark pipeline is disabled (watermark.enabled)".into())
    })?;
    let settings = &handle.settings;
    let request_id = super::request_id(&req, "wm");
    let result = async {
        let options = parse_options(&query, settings)?;
        let kind = body_kind(req.headers())?;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > settings.max_body_bytes + 64 * 1024)
            || (kind == BodyKind::Raw && declared.is_some_and(|n| n > settings.max_body_bytes))
        {
            return Err(too_large(settings.max_body_bytes));
        }
        // The permit bounds the bodies held in memory and the pool's queue.
        let permit = handle.permits.clone().try_acquire_owned().map_err(|_| {
            metrics::counter!("tasklet_watermark_busy_total").increment(1);
            ApiError::Busy {
                detail: format!(
                    "{} images already in flight (watermark.max_in_flight)",
                    settings.max_in_flight
                ),
                retry_after_s: settings.retry_after_s,
            }
        })?;
        let read = async {
            match kind {
                BodyKind::Raw => read_limited(payload, settings.max_body_bytes).await,
                BodyKind::Multipart => {
                    read_multipart(req.headers(), payload, settings.max_body_bytes).await
                }
            }
        };
        let timeout = std::time::Duration::from_millis(settings.body_timeout_ms);
        let body = tokio::time::timeout(timeout, read).await.map_err(|_| {
            ApiError::BadRequest(format!(
                "the body did not arrive within {} ms (watermark.body_timeout_ms)",
                settings.body_timeout_ms
            ))
        })??;
        let body_bytes = body.len();
        // Sent from a task of its own: a client that hangs up does not give
        // the permit back before the worker is done with its image.
        let compositor = handle.compositor.clone();
        let stamp = Stamp {
            request_id: request_id.clone(),
            body,
            options,
        };
        let job = actix_rt::spawn(async move {
            let answer = observe::queued("Compositor", compositor.send(stamp)).await;
            drop(permit);
            answer
        });
        let stamped = job
            .await
            .map_err(|e| ApiError::Internal(format!("compositor job: {e}")))?
            .map_err(|e| ApiError::Internal(format!("compositor pool: {e}")))??;
        Ok((stamped, body_bytes))
    }
    .await;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok((stamped, body_bytes)) => {
            info!(pipeline = "watermark", %request_id, body_bytes, out_bytes = stamped.bytes.len(), width = stamped.width, height = stamped.height, path = stamped.path.as_str(), elapsed_ms, "stamped");
            metrics::histogram!("tasklet_watermark_request_seconds", "path" => stamped.path.as_str())
                .record(started.elapsed().as_secs_f64());
            Ok(HttpResponse::Ok()
                .content_type(stamped.content_type)
                .insert_header(("X-Request-Id", request_id))
                .insert_header(("X-Tasklet-Path", stamped.path.as_str()))
                .body(stamped.bytes))
        }
        Err(e) => {
            warn!(pipeline = "watermark", %request_id, status = e.to_string(), detail = e.detail(), elapsed_ms, "refused");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_come_from_settings() {
        let s = WatermarkSettings::default();
        let o = parse_options(&q(&[]), &s).unwrap();
        assert_eq!(o.mark, "default");
        assert_eq!(o.position, Position::BottomRight);
        assert_eq!((o.margin, o.quality), (20, 85));
        let o = parse_options(
            &q(&[
                ("position", "center"),
                ("opacity", "0.5"),
                ("quality", "70"),
                ("format", "jpeg"),
            ]),
            &s,
        )
        .unwrap();
        assert_eq!(
            (o.position, o.opacity, o.quality),
            (Position::Center, 0.5, 70)
        );
        assert_eq!(o.format, OutputFormat::Jpeg);
    }

    #[test]
    fn bad_values_name_their_key() {
        let s = WatermarkSettings::default();
        for (k, v) in [
            ("opacity", "2"),
            ("opacity", "x"),
            ("quality", "0"),
            ("quality", "101"),
            ("margin", "-3"),
            ("position", "middle"),
            ("format", "gif"),
        ] {
            match parse_options(&q(&[(k, v)]), &s) {
                Err(ApiError::BadRequest(d)) => assert!(d.starts_with(k), "{d}"),
                other => panic!("{k}={v}: {other:?}"),
            }
        }
        assert!(matches!(
            parse_options(&q(&[("colour", "red")]), &s),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            parse_options(&q(&[("mark", "nope")]), &s),
            Err(ApiError::NotFound(_))
        ));
    }

    #[test]
    fn content_types_are_checked() {
        let mut h = HeaderMap::new();
        assert!(matches!(
            body_kind(&h),
            Err(ApiError::UnsupportedMediaType(_))
        ));
        for (ct, kind) in [
            ("image/jpeg", BodyKind::Raw),
            ("image/PNG", BodyKind::Raw),
            ("multipart/form-data; boundary=x", BodyKind::Multipart),
        ] {
            h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
            assert_eq!(body_kind(&h).unwrap(), kind);
        }
        h.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(matches!(
            body_kind(&h),
            Err(ApiError::UnsupportedMediaType(_))
        ));
    }
}
