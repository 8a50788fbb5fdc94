//! `[watermark]`: the watermark pipeline's settings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::options::{Position, StripMetadata};

/// The `[watermark]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatermarkSettings {
    /// Start this pipeline with the daemon.
    pub enabled: bool,
    /// Requests being stamped or waiting for a compositor at once; beyond it
    /// `POST /v1/watermark` answers 503 with `Retry-After`.
    pub max_in_flight: usize,
    /// The `Retry-After` of a 503, in seconds.
    pub retry_after_s: u32,
    /// Largest accepted body (raw or multipart), in bytes; beyond it 413.
    pub max_body_bytes: usize,
    /// How long reading the body may take once a permit is held; beyond it
    /// 400 (a slow upload must not hold a permit for ever).
    pub body_timeout_ms: u64,
    /// Largest accepted width x height as declared by the image header;
    /// beyond it 422, before any pixel buffer is allocated.
    pub max_pixels: u64,
    /// The mark used when the request names none; a key of `marks`.
    pub default_mark: String,
    /// Named marks: name -> RGBA PNG path (relative to the config file).
    pub marks: BTreeMap<String, String>,
    /// Default `position`: `bottom-right`, `bottom-left`, `top-right`,
    /// `top-left`, `center` or `X,Y` (the mark's top-left corner in pixels).
    pub position: Position,
    /// Default distance of the mark from the picture's edges, in pixels.
    pub margin: u32,
    /// Default opacity of the mark, 0.0..=1.0 (multiplies its own alpha).
    pub opacity: f32,
    /// Default JPEG quality of the output, 1..=100.
    pub quality: u8,
    /// Which metadata the output drops: `none`, `gps` (keeps EXIF and ICC
    /// but removes the GPS block) or `all` (no EXIF, no ICC).
    pub strip_metadata: StripMetadata,
}

fn default_marks() -> BTreeMap<String, String> {
    BTreeMap::from([(
        DEFAULT_MARK.to_owned(),
        "assets/watermark_500x100.png".to_owned(),
    )])
}

/// The name of the mark the repository ships.
pub const DEFAULT_MARK: &str = "default";
const DEFAULT_MAX_IN_FLIGHT: usize = 64;
const DEFAULT_RETRY_AFTER_S: u32 = 1;
const DEFAULT_MAX_BODY_BYTES: usize = 20 * 1024 * 1024;
const DEFAULT_BODY_TIMEOUT_MS: u64 = 10_000;
const DEFAULT_MAX_PIXELS: u64 = 50_000_000;
const DEFAULT_MARGIN: u32 = 20;
const DEFAULT_OPACITY: f32 = 1.0;
const DEFAULT_QUALITY: u8 = 85;

impl Default for WatermarkSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            retry_after_s: DEFAULT_RETRY_AFTER_S,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            body_timeout_ms: DEFAULT_BODY_TIMEOUT_MS,
            max_pixels: DEFAULT_MAX_PIXELS,
            default_mark: DEFAULT_MARK.to_owned(),
            marks: default_marks(),
            position: Position::BottomRight,
            margin: DEFAULT_MARGIN,
            opacity: DEFAULT_OPACITY,
            quality: DEFAULT_QUALITY,
            strip_metadata: StripMetadata::Gps,
        }
    }
}

impl WatermarkSettings {
    /// Refuses impossible values; each error names its key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.max_in_flight == 0 {
            return Err(("max_in_flight", "must be at least 1".into()));
        }
        if self.max_body_bytes == 0 {
            return Err(("max_body_bytes", "must be at least 1".into()));
        }
        if self.body_timeout_ms == 0 {
            return Err(("body_timeout_ms", "must be at least 1".into()));
        }
        if self.max_pixels == 0 {
            return Err(("max_pixels", "must be at least 1".into()));
        }
        if !(0.0..=1.0).contains(&self.opacity) {
            return Err(("opacity", format!("{} is not in 0.0..=1.0", self.opacity)));
        }
        if !(1..=100).contains(&self.quality) {
            return Err(("quality", format!("{} is not in 1..=100", self.quality)));
        }
        if self.marks.is_empty() {
            return Err(("marks", "name at least one mark".into()));
        }
        if !self.marks.contains_key(&self.default_mark) {
            return Err((
                "default_mark",
                format!("{:?} is not a key of watermark.marks", self.default_mark),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        assert_eq!(WatermarkSettings::default().validate(), Ok(()));
    }

    #[test]
    fn parses_every_key() {
        let s: WatermarkSettings = toml_like(
            r#"{"enabled": true, "max_in_flight": 8, "retry_after_s": 2, "max_body_bytes": 100,
                "max_pixels": 10, "default_mark": "a", "marks": {"a": "a.png"},
                "position": "10,20", "margin": 0, "opacity": 0.5, "quality": 90,
                "strip_metadata": "all"}"#,
        );
        assert_eq!(s.position, Position::At { x: 10, y: 20 });
        assert_eq!(s.strip_metadata, StripMetadata::All);
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn refuses_bad_values_by_key() {
        let bad = |f: fn(&mut WatermarkSettings)| {
            let mut s = WatermarkSettings::default();
            f(&mut s);
            s.validate().unwrap_err().0
        };
        assert_eq!(bad(|s| s.max_in_flight = 0), "max_in_flight");
        assert_eq!(bad(|s| s.opacity = 1.5), "opacity");
        assert_eq!(bad(|s| s.quality = 0), "quality");
        assert_eq!(bad(|s| s.default_mark = "nope".into()), "default_mark");
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(serde_json::from_str::<WatermarkSettings>(r#"{"nope": 1}"#).is_err());
    }

    fn toml_like(json: &str) -> WatermarkSettings {
        serde_json::from_str(json).unwrap()
    }
}
