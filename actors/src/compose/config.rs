//! `[watermark]`: the watermark pipeline's settings.

use serde::{Deserialize, Serialize};

/// The `[watermark]` section.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatermarkSettings {
    /// Start this pipeline with the daemon.
    pub enabled: bool,
}

impl WatermarkSettings {
    /// Refuses impossible values; each error names its key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        Ok(())
    }
}
