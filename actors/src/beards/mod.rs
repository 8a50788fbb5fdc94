//! The beard pipeline's catalog: scrape the catalog site, download beard
//! images, keep them in a byte-bounded cache that revalidates with the site.
//!
//! | file | what |
//! |---|---|
//! | `config.rs` | [`BeardSettings`], the `[beard]` section |
//! | `messages.rs` | [`GetBeard`], [`ListStyles`] and their answers |
//! | `catalog.rs` | [`BeardCatalog`], the actor owning the list and the cache |

mod catalog;
mod config;
mod messages;

pub use catalog::{decode_beard, scrape, BeardCatalog, ListedStyle, ScrapeError};
pub use config::{BeardSelectors, BeardSettings};
pub use messages::{
    CatalogError, CatalogListing, GetBeard, ListStyles, StyleFreshness, StyleImage,
};
