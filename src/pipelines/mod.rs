//! One wiring file per pipeline; [`crate::topology::Topology::start`] calls
//! each enabled one.

pub mod beard;
pub mod notify;
pub mod odds;
pub mod watermark;
