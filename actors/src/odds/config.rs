//! `[odds]`: the odds pipeline's settings.

use serde::{Deserialize, Serialize};

/// The `[odds]` section.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OddsSettings {
    /// Start this pipeline with the daemon.
    pub enabled: bool,
}

impl OddsSettings {
    /// Refuses impossible values; each error names its key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        Ok(())
    }
}
