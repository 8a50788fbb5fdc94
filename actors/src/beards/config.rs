//! `[beard]`: the beard pipeline's settings.

use serde::{Deserialize, Serialize};

/// The `[beard]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BeardSettings {
    /// Start this pipeline with the daemon.
    pub enabled: bool,
    /// The catalog page listing the beard styles.
    pub catalog_url: String,
    /// CSS selectors that read the catalog page.
    pub selectors: BeardSelectors,
    /// Decoded beard images kept in memory, in bytes (RGBA).
    pub cache_bytes: u64,
    /// After this long a cached beard is revalidated with a conditional GET.
    pub ttl_s: u64,
    /// Timeout of one catalog or image fetch.
    pub fetch_timeout_ms: u64,
    /// The catalog list is re-read this often (and on a miss).
    pub refresh_interval_s: u64,
    /// A miss for an unknown style re-reads the list at most this often.
    pub miss_refresh_min_ms: u64,
    /// Largest beard image accepted from the catalog, in bytes.
    pub max_image_bytes: u64,
    /// Folder of the ONNX face models (relative to the config file).
    pub models_dir: String,
    /// Beard width as a multiple of the jaw width.
    pub width_factor: f32,
    /// Beard opacity, 0..1.
    pub opacity: f32,
    /// JPEG quality of the answer (1..=100).
    pub quality: u8,
    /// Requests allowed in the compositor pool at once; beyond: 503.
    pub max_in_flight: usize,
    /// Largest upload accepted, in bytes; beyond: 413.
    pub max_body_bytes: usize,
    /// Largest photo accepted, in pixels (width x height); beyond: 422.
    pub max_pixels: u64,
}

/// CSS selectors and attributes that read a catalog page, so that another
/// site is a config change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BeardSelectors {
    /// One element per style.
    pub item: String,
    /// Inside an item: the element whose text is the style name.
    pub name: String,
    /// Inside an item: the `<img>` (or element) holding the image URL.
    pub image: String,
    /// The attribute of `image` with the URL (relative to the page).
    pub image_attr: String,
    /// Optional attribute of `image` with the anchor "x,y" in beard pixels;
    /// empty = no anchor attribute.
    pub anchor_attr: String,
}

impl Default for BeardSelectors {
    fn default() -> Self {
        Self {
            item: "li.beard".to_owned(),
            name: ".name".to_owned(),
            image: "img".to_owned(),
            image_attr: "src".to_owned(),
            anchor_attr: "data-anchor".to_owned(),
        }
    }
}

impl Default for BeardSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            catalog_url: "http://127.0.0.1:8091/beards/".to_owned(),
            selectors: BeardSelectors::default(),
            cache_bytes: 64 * 1024 * 1024,
            ttl_s: 60,
            fetch_timeout_ms: 2000,
            refresh_interval_s: 300,
            miss_refresh_min_ms: 1000,
            max_image_bytes: 4 * 1024 * 1024,
            models_dir: "models".to_owned(),
            width_factor: 1.15,
            opacity: 1.0,
            quality: 85,
            max_in_flight: 64,
            max_body_bytes: 20 * 1024 * 1024,
            max_pixels: 40_000_000,
        }
    }
}

impl BeardSettings {
    /// Refuses impossible values; each error names its key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let positive = |key: &'static str, v: u64| {
            if v == 0 {
                Err((key, "must be at least 1".to_owned()))
            } else {
                Ok(())
            }
        };
        positive("cache_bytes", self.cache_bytes)?;
        positive("ttl_s", self.ttl_s)?;
        positive("fetch_timeout_ms", self.fetch_timeout_ms)?;
        positive("refresh_interval_s", self.refresh_interval_s)?;
        positive("max_image_bytes", self.max_image_bytes)?;
        positive("max_in_flight", self.max_in_flight as u64)?;
        positive("max_body_bytes", self.max_body_bytes as u64)?;
        positive("max_pixels", self.max_pixels)?;
        if !(1..=100).contains(&self.quality) {
            return Err(("quality", format!("{} is not in 1..=100", self.quality)));
        }
        if !(self.width_factor > 0.0 && self.width_factor <= 4.0) {
            return Err(("width_factor", "must be in (0, 4]".to_owned()));
        }
        if !(0.0..=1.0).contains(&self.opacity) {
            return Err(("opacity", "must be in 0..=1".to_owned()));
        }
        if self.enabled && !self.catalog_url.starts_with("http") {
            return Err(("catalog_url", "must be an http(s) URL".to_owned()));
        }
        for (key, sel) in [
            ("selectors.item", &self.selectors.item),
            ("selectors.name", &self.selectors.name),
            ("selectors.image", &self.selectors.image),
        ] {
            if let Err(e) = scraper::Selector::parse(sel) {
                return Err((key, format!("not a CSS selector: {e}")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        BeardSettings::default().validate().unwrap();
    }

    #[test]
    fn bad_values_name_their_key() {
        let s = BeardSettings {
            quality: 0,
            ..Default::default()
        };
        assert_eq!(s.validate().unwrap_err().0, "quality");
        let mut s = BeardSettings::default();
        s.selectors.item = "li[[".into();
        assert_eq!(s.validate().unwrap_err().0, "selectors.item");
        let s = BeardSettings {
            ttl_s: 0,
            ..Default::default()
        };
        assert_eq!(s.validate().unwrap_err().0, "ttl_s");
    }
}
