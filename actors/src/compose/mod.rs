//! The watermark pipeline: the compositor pool and its image paths.

mod config;

pub use config::WatermarkSettings;
