//! The fast path's sources, compiled in as the same `compose::{blend, jpeg}`
//! modules they are in `tasklet-actors`.

#[path = "../../../../actors/src/compose/blend.rs"]
pub mod blend;
#[path = "../../../../actors/src/compose/jpeg/mod.rs"]
pub mod jpeg;
