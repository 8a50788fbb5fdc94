//! [`ApiError`]: every error the HTTP API answers with, each mapped to one
//! status code and a JSON body `{"error": "...", "detail": "..."}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("bad request")]
    BadRequest(String),
    #[error("not found")]
    NotFound(String),
    #[error("payload too large")]
    PayloadTooLarge(String),
    #[error("unsupported media type")]
    UnsupportedMediaType(String),
    #[error("unprocessable input")]
    Unprocessable(String),
    #[error("forbidden")]
    Forbidden(String),
    #[error("unauthorized")]
    Unauthorized(String),
    #[error("busy")]
    Busy { detail: String, retry_after_s: u32 },
    #[error("upstream unavailable")]
    Upstream(String),
    #[error("upstream timeout")]
    UpstreamTimeout(String),
    #[error("not ready")]
    NotReady(String),
    #[error("internal error")]
    Internal(String),
}

#[derive(Serialize)]
struct Body<'a> {
    error: String,
    detail: &'a str,
}

impl ApiError {
    pub fn detail(&self) -> &str {
        match self {
            ApiError::BadRequest(d)
            | ApiError::NotFound(d)
            | ApiError::PayloadTooLarge(d)
            | ApiError::UnsupportedMediaType(d)
            | ApiError::Unprocessable(d)
            | ApiError::Forbidden(d)
            | ApiError::Unauthorized(d)
            | ApiError::Upstream(d)
            | ApiError::UpstreamTimeout(d)
            | ApiError::NotReady(d)
            | ApiError::Internal(d) => d,
            ApiError::Busy { detail, .. } => detail,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Busy { .. } | ApiError::Upstream(_) | ApiError::NotReady(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let ApiError::Busy { retry_after_s, .. } = self {
            response.insert_header(("Retry-After", retry_after_s.to_string()));
        }
        response.json(Body {
            error: self.to_string(),
            detail: self.detail(),
        })
    }
}

/// Maps actix-web's own extractor errors (bad query, oversized body, bad
/// JSON) to the same JSON shape.
pub fn from_actix(err: actix_web::Error) -> actix_web::Error {
    let status = err.as_response_error().status_code();
    let detail = err.to_string();
    let api = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(detail),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(detail),
        StatusCode::NOT_FOUND => ApiError::NotFound(detail),
        _ => ApiError::BadRequest(detail),
    };
    api.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;

    #[actix_web::test]
    async fn busy_carries_retry_after_and_json() {
        let resp = ApiError::Busy {
            detail: "all permits taken".into(),
            retry_after_s: 1,
        }
        .error_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers().get("Retry-After").unwrap(), "1");
        let body = to_bytes(resp.into_body()).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"], "busy");
        assert_eq!(v["detail"], "all permits taken");
    }
}
