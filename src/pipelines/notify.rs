//! Wiring of the notify pipeline: which actors start, in what order, how they
//! stop, and what the HTTP layer gets to reach them.

use tasklet_actors::store::Store;

use crate::config::{Config, Secrets};
use crate::topology::Topology;

/// What the HTTP handlers of the notify pipeline need; cheap to clone.
#[derive(Clone)]
pub struct NotifyHandle {}

/// Starts the notify pipeline's actors sink-first and registers their stop
/// stages on `topology`.
pub async fn start(
    _config: &Config,
    _secrets: &Secrets,
    _store: &Store,
    _topology: &mut Topology,
) -> anyhow::Result<NotifyHandle> {
    anyhow::bail!("this build has no notify pipeline yet")
}
