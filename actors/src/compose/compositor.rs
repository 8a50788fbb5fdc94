//! [`Compositor`]: the image worker of the compositor pool.

use actix::prelude::*;

/// One image worker of the compositor pool (a `SyncArbiter`, one thread
/// per core by default).
///
/// Receives `Dress` (beard pipeline); answers with the encoded image.
/// Owns nothing between messages but the face models its thread loaded.
#[derive(Debug, Default)]
pub struct Compositor;

impl Actor for Compositor {
    type Context = SyncContext<Self>;
}
