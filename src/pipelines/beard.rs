//! Wiring of the beard pipeline: which actors start, in what order, how they
//! stop, and what the HTTP layer gets to reach them.

use tasklet_actors::store::Store;

use crate::config::{Config, Secrets};
use crate::topology::Topology;

/// What the HTTP handlers of the beard pipeline need; cheap to clone.
#[derive(Clone)]
pub struct BeardHandle {}

/// Starts the beard pipeline's actors sink-first and registers their stop
/// stages on `topology`.
pub async fn start(
    _config: &Config,
    _secrets: &Secrets,
    _store: &Store,
    _topology: &mut Topology,
) -> anyhow::Result<BeardHandle> {
    anyhow::bail!("this build has no beard pipeline yet")
}
