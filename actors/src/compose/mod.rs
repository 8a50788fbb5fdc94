//! The watermark pipeline: the compositor pool and its image paths.

pub mod blend;
mod config;
pub mod jpeg;

pub use config::WatermarkSettings;
