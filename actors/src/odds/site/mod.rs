//! Site adapters: how to ask a bookmaker site for its live list and for one
//! event, and how to read the answers. [`favbet`] speaks the JSON-RPC
//! `frontend_api2`; [`html`] reads any HTML site through CSS selectors set
//! in config. [`client`] is the polite HTTP client every adapter shares.

pub mod client;
pub mod favbet;
pub mod html;

use std::sync::Arc;

use super::config::{SiteKind, SiteSettings};
use super::messages::PageContent;

pub use client::{FetchError, SiteClient};

/// One event on a site's live list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedEvent {
    pub id: String,
    pub status: String,
}

/// Why a page could not be read. Each says what was expected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    #[error("not the expected JSON: {0}")]
    Json(String),
    #[error("the site answered an error: {0}")]
    Rpc(String),
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("bad {what}: {value:?}")]
    Bad { what: &'static str, value: String },
    /// Parsing panicked (a bug, logged with the reason); the worker was
    /// replaced and the next poll is read by a fresh one.
    #[error("the parser panicked: {0}")]
    Panicked(String),
}

/// A kind of bookmaker site. Building requests is cheap; parsing is pure
/// and runs on the Parser pool.
pub trait Site: Send + Sync + 'static {
    /// The site's name from config.
    fn name(&self) -> &Arc<str>;
    /// The request for the live list.
    fn list_request(&self, http: &reqwest::Client) -> reqwest::RequestBuilder;
    /// Reads the live list.
    fn parse_list(&self, body: &[u8]) -> Result<Vec<ListedEvent>, ParseError>;
    /// The request for one event's page.
    fn event_request(&self, http: &reqwest::Client, event: &str) -> reqwest::RequestBuilder;
    /// Reads one event's page.
    fn parse_event(&self, body: &[u8], event: &str) -> Result<PageContent, ParseError>;
}

/// The adapter named by `settings.kind`.
pub fn build(settings: &SiteSettings) -> Result<Arc<dyn Site>, String> {
    Ok(match settings.kind {
        SiteKind::Favbet => Arc::new(favbet::Favbet::new(settings)),
        SiteKind::Html => Arc::new(html::HtmlSite::new(settings)?),
    })
}

/// Decimal odds must be finite and above 1.
fn check_price(value: f64, raw: &str) -> Result<f64, ParseError> {
    if value.is_finite() && value >= 1.0 {
        Ok(value)
    } else {
        Err(ParseError::Bad {
            what: "price",
            value: raw.to_owned(),
        })
    }
}
