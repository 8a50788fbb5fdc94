//! [`SiteClient`]: one polite HTTP client per site, shared by its Discovery
//! and Fetchers: keep-alive connections, a cookie jar, configured headers,
//! a request rate limit and a cap on requests in flight. A 429 or 503 with
//! `Retry-After` is handed back to the caller, who waits that long.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::StatusCode;
use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;

use super::Site;
use crate::odds::config::SiteSettings;

/// Why a request brought no page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("the site asked to wait {0:?}")]
    RetryAfter(Duration),
    #[error("http status {0}")]
    Status(u16),
    #[error("timed out")]
    Timeout,
    #[error("transport: {0}")]
    Transport(String),
}

impl FetchError {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            FetchError::RetryAfter(_) => "retry_after",
            FetchError::Status(_) => "status",
            FetchError::Timeout => "timeout",
            FetchError::Transport(_) => "transport",
        }
    }
}

/// What a request brought.
#[derive(Debug)]
pub enum Fetched {
    Page(bytes::Bytes),
    /// 404 / 410: the thing asked for is not there.
    NotFound,
}

/// The shared client of one site.
pub struct SiteClient {
    pub site: Arc<dyn Site>,
    http: reqwest::Client,
    permits: Semaphore,
    /// The earliest moment the next request may start (rate limit).
    next_slot: Mutex<Instant>,
    period: Duration,
}

impl SiteClient {
    pub fn new(
        site: Arc<dyn Site>,
        settings: &SiteSettings,
        timeout: Duration,
    ) -> Result<SiteClient, String> {
        let mut headers = HeaderMap::new();
        for (name, value) in &settings.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("bad header name {name:?}"))?;
            let value =
                HeaderValue::from_str(value).map_err(|_| format!("bad header value {value:?}"))?;
            headers.insert(name, value);
        }
        let http = reqwest::Client::builder()
            .user_agent(settings.user_agent.clone())
            .default_headers(headers)
            .cookie_store(true)
            .pool_max_idle_per_host(settings.max_idle_connections)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_keepalive(Duration::from_secs(30))
            .tcp_nodelay(true)
            .timeout(timeout)
            .build()
            .map_err(|e| format!("building the http client: {e}"))?;
        Ok(SiteClient {
            site,
            http,
            permits: Semaphore::new(settings.max_concurrency),
            next_slot: Mutex::new(Instant::now()),
            period: Duration::from_secs_f64(1.0 / f64::from(settings.rate_limit_per_s)),
        })
    }

    /// The live list.
    pub async fn list(&self) -> Result<Fetched, FetchError> {
        self.send(self.site.list_request(&self.http)).await
    }

    /// One event's page.
    pub async fn event(&self, event: &str) -> Result<Fetched, FetchError> {
        self.send(self.site.event_request(&self.http, event)).await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Fetched, FetchError> {
        self.pace().await;
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| FetchError::Transport("client closed".to_owned()))?;
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
            return Ok(Fetched::NotFound);
        }
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
            if let Some(wait) = retry_after(response.headers()) {
                return Err(FetchError::RetryAfter(wait));
            }
        }
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        response.bytes().await.map(Fetched::Page).map_err(transport)
    }

    /// Waits for this request's slot under the site's rate limit.
    async fn pace(&self) {
        let slot = {
            let mut next = self.next_slot.lock().await;
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + self.period;
            slot
        };
        if slot > Instant::now() {
            tokio::time::sleep_until(slot).await;
        }
    }
}

fn transport(e: reqwest::Error) -> FetchError {
    if e.is_timeout() {
        FetchError::Timeout
    } else {
        FetchError::Transport(e.to_string())
    }
}

/// `Retry-After` in seconds (the HTTP-date form is read as one second).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    match value.parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => Some(Duration::from_secs_f64(s.min(3_600.0))),
        _ => Some(Duration::from_secs(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_falls_back_on_dates() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::from_secs(1)));
    }
}
