//! The watermark pipeline: the compositor pool and its image paths.

pub mod beard;
pub mod blend;
pub mod compositor;
mod config;
pub mod dress;
pub mod face;

pub use config::WatermarkSettings;
