//! HTTP resources of the beard pipeline: `POST /v1/beard?style=NAME` (the
//! photo as the body or as multipart field `photo`; answers a JPEG) and
//! `GET /v1/beards` (the styles known now, with freshness).
//!
//! The photo stays in memory: it is never written anywhere and never
//! logged (only its size is).

use std::time::Instant;

use actix_multipart::Multipart;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use serde::Deserialize;
use tasklet_actors::beards::{CatalogError, GetBeard, ListStyles};
use tasklet_actors::compose::blend::opacity_u8;
use tasklet_actors::compose::dress::{Dress, DressError, DressOptions, FaceChoice};
use tasklet_actors::compose::face::FaceBox;
use tasklet_actors::observe;
use tracing::info;

use super::{ApiError, AppState};
use crate::pipelines::beard::BeardHandle;

/// Query of `POST /v1/beard`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeardQuery {
    pub style: Option<String>,
    /// `all` (default) or `largest`.
    pub faces: Option<String>,
    /// `x,y,w,h`: place on this box instead of detecting faces.
    pub face: Option<String>,
}

fn handle(state: &AppState) -> Result<&BeardHandle, ApiError> {
    state.handles.beard.as_ref().ok_or_else(|| {
        ApiError::NotFound("the beard pipeline is not enabled ([beard] enabled = false)".into())
    })
}

fn parse_faces(s: Option<&str>) -> Result<FaceChoice, ApiError> {
    match s {
        None | Some("all") => Ok(FaceChoice::All),
        Some("largest") => Ok(FaceChoice::Largest),
        Some(other) => Err(ApiError::BadRequest(format!(
            "faces={other:?}: expected all or largest"
        ))),
    }
}

/// `x,y,w,h` in photo pixels.
pub fn parse_face_box(s: &str) -> Result<FaceBox, ApiError> {
    let bad = || ApiError::BadRequest(format!("face={s:?}: expected x,y,w,h in pixels"));
    let v: Vec<f32> = s
        .split(',')
        .map(|p| p.trim().parse::<f32>().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    match v[..] {
        [x, y, w, h] if v.iter().all(|n| n.is_finite()) && w > 0.0 && h > 0.0 => {
            Ok(FaceBox { x, y, w, h })
        }
        _ => Err(bad()),
    }
}

pub fn catalog_error(e: CatalogError) -> ApiError {
    match e {
        CatalogError::UnknownStyle { style, known } => ApiError::NotFound(format!(
            "unknown beard style {style:?}; known styles: {}",
            if known.is_empty() {
                "none yet".to_owned()
            } else {
                known.join(", ")
            }
        )),
        CatalogError::Unavailable(d) => ApiError::Upstream(format!(
            "beard catalog unavailable and style not cached: {d}"
        )),
        CatalogError::Timeout(d) => {
            ApiError::UpstreamTimeout(format!("beard catalog too slow and style not cached: {d}"))
        }
        CatalogError::Stopped => ApiError::Internal("beard catalog stopped".into()),
    }
}

pub fn dress_error(e: DressError) -> ApiError {
    let detail = e.to_string();
    match e {
        DressError::Empty => ApiError::BadRequest(detail),
        DressError::NotAnImage
        | DressError::Corrupt(_)
        | DressError::TooLarge { .. }
        | DressError::NoFace => ApiError::Unprocessable(detail),
        DressError::FaceOutside(_) => ApiError::BadRequest(detail),
        DressError::Models(_) | DressError::Encode(_) | DressError::Panicked(_) => {
            ApiError::Internal(detail)
        }
    }
}

/// Reads at most `limit` bytes of a stream; more is 413.
async fn read_limited<S, E>(mut stream: S, limit: usize) -> Result<Bytes, ApiError>
where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut body = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("reading the upload: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(format!(
                "the photo is larger than {limit} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The photo: the body (`image/jpeg`, `image/png`, `image/webp`,
/// `application/octet-stream`) or the `photo` field of a multipart form.
async fn read_photo(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<Bytes, ApiError> {
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > limit {
            return Err(ApiError::PayloadTooLarge(format!(
                "the photo is larger than {limit} bytes"
            )));
        }
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned();
    match essence.as_str() {
        "image/jpeg" | "image/jpg" | "image/png" | "image/webp" | "application/octet-stream" => {
            read_limited(payload, limit).await
        }
        "multipart/form-data" => {
            let mut form = Multipart::new(req.headers(), payload);
            while let Some(field) = form.next().await {
                let mut field =
                    field.map_err(|e| ApiError::BadRequest(format!("multipart form: {e}")))?;
                if field.name() == Some("photo") {
                    return read_limited(field, limit).await;
                }
                // Another field: read past it (bounded like the photo).
                read_limited(&mut field, limit).await?;
            }
            Err(ApiError::BadRequest(
                "the multipart form has no field named photo".into(),
            ))
        }
        "" => Err(ApiError::UnsupportedMediaType(
            "no Content-Type: send image/jpeg, image/png, image/webp or multipart/form-data".into(),
        )),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "{other} is not accepted: send image/jpeg, image/png, image/webp or multipart/form-data"
        ))),
    }
}

/// `POST /v1/beard?style=NAME[&faces=all|largest][&face=x,y,w,h]`
async fn post_beard(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    query: web::Query<BeardQuery>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let h = handle(&state)?;
    let request_id = super::request_id(&req, "bd");
    let style = query
        .style
        .clone()
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            ApiError::BadRequest("style is required: POST /v1/beard?style=NAME".into())
        })?;
    let faces = parse_faces(query.faces.as_deref())?;
    let face = query.face.as_deref().map(parse_face_box).transpose()?;
    let _permit = h
        .permits
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Busy {
            detail: format!(
                "{} beard requests already in progress",
                h.settings.max_in_flight
            ),
            retry_after_s: 1,
        })?;
    let photo = read_photo(&req, payload, h.settings.max_body_bytes).await?;
    let get = GetBeard {
        style: style.clone(),
        request_id: request_id.clone(),
    };
    let beard = observe::queued("BeardCatalog", h.catalog.send(get))
        .await
        .map_err(|e| ApiError::Internal(format!("beard catalog: {e}")))?
        .map_err(catalog_error)?;
    let photo_bytes = photo.len();
    let dress = Dress {
        request_id: request_id.clone(),
        photo,
        beard: beard.image.clone(),
        options: DressOptions {
            faces,
            face,
            width_factor: h.settings.width_factor,
            opacity_u8: opacity_u8(h.settings.opacity),
            quality: h.settings.quality,
            max_pixels: h.settings.max_pixels,
        },
        models_dir: h.models_dir.clone(),
    };
    let dressed = observe::queued("Compositor", h.dresser.send(dress))
        .await
        .map_err(|e| ApiError::Internal(format!("compositor pool: {e}")))?
        .map_err(dress_error)?;
    let t = dressed.timings;
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    info!(
        pipeline = "beard",
        %request_id,
        style = %style,
        photo_bytes,
        faces = dressed.faces.len(),
        stale = beard.stale,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "beard placed"
    );
    metrics::counter!("tasklet_beard_requests_total", "outcome" => "ok").increment(1);
    metrics::histogram!("tasklet_beard_request_seconds").record(started.elapsed().as_secs_f64());
    let mut response = HttpResponse::Ok();
    response
        .content_type("image/jpeg")
        .insert_header(("X-Request-Id", request_id))
        .insert_header(("X-Beard-Style", style))
        .insert_header(("X-Beard-Stale", beard.stale.to_string()))
        .insert_header(("X-Beard-Age", beard.age_s.to_string()))
        .insert_header(("X-Faces", dressed.faces.len().to_string()))
        .insert_header((
            "Server-Timing",
            format!(
                "decode;dur={:.2}, detect;dur={:.2}, landmarks;dur={:.2}, blend;dur={:.2}, encode;dur={:.2}",
                ms(t.decode),
                ms(t.detect),
                ms(t.landmarks),
                ms(t.blend),
                ms(t.encode)
            ),
        ));
    if beard.stale {
        response.insert_header((
            header::WARNING,
            "110 - \"beard served stale: catalog unavailable\"",
        ));
    }
    Ok(response.body(dressed.jpeg))
}

/// `GET /v1/beards`: the styles known now, with freshness.
async fn get_beards(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let h = handle(&state)?;
    let listing = observe::queued("BeardCatalog", h.catalog.send(ListStyles))
        .await
        .map_err(|e| ApiError::Internal(format!("beard catalog: {e}")))?;
    Ok(HttpResponse::Ok().json(listing))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/beard", web::post().to(post_beard))
        .route("/v1/beards", web::get().to(get_beards));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn face_boxes_parse_or_are_refused() {
        assert_eq!(
            parse_face_box("10,20,30.5,40").unwrap(),
            FaceBox {
                x: 10.0,
                y: 20.0,
                w: 30.5,
                h: 40.0
            }
        );
        for bad in [
            "",
            "1,2,3",
            "1,2,3,4,5",
            "a,b,c,d",
            "1,2,0,4",
            "1,2,-3,4",
            "1,2,NaN,4",
        ] {
            assert!(parse_face_box(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_style_lists_the_known_ones() {
        let e = catalog_error(CatalogError::UnknownStyle {
            style: "walrus".into(),
            known: vec!["full".into(), "goatee".into()],
        });
        assert!(
            matches!(&e, ApiError::NotFound(d) if d.contains("full, goatee") && d.contains("walrus"))
        );
    }

    #[test]
    fn faces_option_reads_all_or_largest() {
        assert_eq!(parse_faces(None).unwrap(), FaceChoice::All);
        assert_eq!(parse_faces(Some("largest")).unwrap(), FaceChoice::Largest);
        assert!(parse_faces(Some("some")).is_err());
    }
}
