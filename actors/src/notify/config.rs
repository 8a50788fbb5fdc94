//! `[notify]`: the notify pipeline's settings.

use serde::{Deserialize, Serialize};

/// The `[notify]` section.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifySettings {
    /// Start this pipeline with the daemon.
    pub enabled: bool,
}

impl NotifySettings {
    /// Refuses impossible values; each error names its key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        Ok(())
    }
}
