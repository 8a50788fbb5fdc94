//! `[beard]`: the beard pipeline's settings.

use serde::{Deserialize, Serialize};

/// The `[beard]` section.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BeardSettings {
    /// Start this pipeline with the daemon.
    pub enabled: bool,
}

impl BeardSettings {
    /// Refuses impossible values; each error names its key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        Ok(())
    }
}
