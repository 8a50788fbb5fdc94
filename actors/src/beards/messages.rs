//! What flows to and from the [`super::BeardCatalog`].

use std::sync::Arc;

use actix::Message;
use serde::Serialize;

use crate::compose::beard::BeardImage;

/// Asks for a style's beard image: from the cache when fresh, revalidated
/// after the ttl, downloaded (once, however many ask) on a miss.
#[derive(Debug, Clone)]
pub struct GetBeard {
    pub style: String,
    /// Follows the request through the logs.
    pub request_id: String,
}

impl Message for GetBeard {
    type Result = Result<StyleImage, CatalogError>;
}

/// A beard ready to place.
#[derive(Debug, Clone)]
pub struct StyleImage {
    pub style: String,
    pub image: Arc<BeardImage>,
    /// True when the site could not confirm this copy (down or slow) and
    /// an older one is served.
    pub stale: bool,
    /// Seconds since the site last confirmed this copy.
    pub age_s: u64,
}

/// Why no beard could be given.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CatalogError {
    #[error("unknown beard style {style:?}")]
    UnknownStyle { style: String, known: Vec<String> },
    #[error("beard catalog unavailable: {0}")]
    Unavailable(String),
    #[error("beard catalog timed out: {0}")]
    Timeout(String),
    #[error("beard catalog stopped")]
    Stopped,
}

/// Asks for the styles known now and how fresh each is.
#[derive(Debug, Clone, Copy)]
pub struct ListStyles;

impl Message for ListStyles {
    type Result = CatalogListing;
}

/// The catalog as the daemon knows it now.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogListing {
    pub catalog_url: String,
    /// Seconds since the list was last read successfully (`None`: never).
    pub list_age_s: Option<u64>,
    /// The last list error, when the last read failed.
    pub list_error: Option<String>,
    pub styles: Vec<StyleFreshness>,
    pub cache_bytes: u64,
}

/// One style's freshness.
#[derive(Debug, Clone, Serialize)]
pub struct StyleFreshness {
    pub name: String,
    pub url: String,
    pub cached: bool,
    /// Seconds since the site last confirmed the cached copy.
    pub age_s: Option<u64>,
    /// True when the last revalidation failed and the copy is served stale.
    pub stale: bool,
    pub width: Option<u32>,
    pub height: Option<u32>,
}
