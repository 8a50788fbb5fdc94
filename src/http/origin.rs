//! The Origin check (`server.allowed_origins`): a browser request whose
//! `Origin` is not on the list is refused 403; for origins on the list,
//! CORS preflights (`OPTIONS` with `Access-Control-Request-Method`) are
//! answered and responses carry `Access-Control-Allow-Origin`. Requests
//! without an `Origin` header (curl, servers) are not affected. `"*"` on the
//! list allows any origin.

use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError};

use super::ApiError;

/// The origins allowed to call this daemon from a browser.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    allowed: Arc<Vec<String>>,
}

impl OriginPolicy {
    pub fn new(allowed: &[String]) -> OriginPolicy {
        OriginPolicy {
            allowed: Arc::new(allowed.iter().map(|o| normalise(o)).collect()),
        }
    }

    pub fn allows(&self, origin: &str) -> bool {
        let origin = normalise(origin);
        self.allowed.iter().any(|a| a == "*" || *a == origin)
    }
}

/// Scheme and host compare case-insensitively; a trailing slash is ignored.
fn normalise(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// The middleware: `App::new().wrap(from_fn(move |req, next| check(policy.clone(), req, next)))`.
pub async fn check<B: MessageBody + 'static>(
    policy: OriginPolicy,
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    if !policy.allows(&origin) {
        metrics::counter!("tasklet_http_origin_refused_total").increment(1);
        tracing::warn!(origin = %origin, path = %req.path(), "origin refused");
        let response = ApiError::Forbidden(format!(
            "origin {origin} is not allowed (server.allowed_origins)"
        ))
        .error_response();
        return Ok(req.into_response(response).map_into_right_body());
    }
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let allow_headers = req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("content-type")
            .to_owned();
        let response = HttpResponse::NoContent()
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin))
            .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS"))
            .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, allow_headers))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"))
            .insert_header((header::VARY, "Origin"))
            .finish();
        return Ok(req.into_response(response).map_into_right_body());
    }
    let mut response = next.call(req).await?;
    let headers = response.headers_mut();
    if let Ok(value) = header::HeaderValue::from_str(&origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            header::HeaderValue::from_static(
                "x-beard-stale, x-beard-style, x-beard-age, x-faces, retry-after",
            ),
        );
        headers.append(header::VARY, header::HeaderValue::from_static("Origin"));
    }
    Ok(response.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::middleware::from_fn;
    use actix_web::test as web_test;
    use actix_web::{web, App};

    #[test]
    fn origins_compare_loosely_on_case_and_slash() {
        let p = OriginPolicy::new(&["https://Shop.example/".to_owned()]);
        assert!(p.allows("https://shop.example"));
        assert!(!p.allows("https://evil.example"));
        assert!(!p.allows("http://shop.example"));
        assert!(OriginPolicy::new(&["*".to_owned()]).allows("https://any.where"));
        assert!(!OriginPolicy::new(&[]).allows("https://any.where"));
    }

    #[actix_web::test]
    async fn refuses_unknown_origins_and_answers_preflights() {
        let policy = OriginPolicy::new(&["https://ok.example".to_owned()]);
        let app = web_test::init_service(
            App::new()
                .wrap(from_fn(move |req, next| check(policy.clone(), req, next)))
                .route("/x", web::get().to(|| async { "hi" })),
        )
        .await;
        let plain = web_test::TestRequest::get().uri("/x").to_request();
        assert_eq!(web_test::call_service(&app, plain).await.status(), 200);
        let bad = web_test::TestRequest::get()
            .uri("/x")
            .insert_header(("Origin", "https://evil.example"))
            .to_request();
        assert_eq!(web_test::call_service(&app, bad).await.status(), 403);
        let good = web_test::TestRequest::get()
            .uri("/x")
            .insert_header(("Origin", "https://ok.example"))
            .to_request();
        let resp = web_test::call_service(&app, good).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers().get("access-control-allow-origin").unwrap(),
            "https://ok.example"
        );
        let preflight = web_test::TestRequest::default()
            .method(Method::OPTIONS)
            .uri("/x")
            .insert_header(("Origin", "https://ok.example"))
            .insert_header(("Access-Control-Request-Method", "POST"))
            .to_request();
        let resp = web_test::call_service(&app, preflight).await;
        assert_eq!(resp.status(), 204);
        assert!(resp.headers().contains_key("access-control-allow-methods"));
    }
}
