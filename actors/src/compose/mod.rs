//! The watermark pipeline (and the image work the beard pipeline shares):
//! the [`Compositor`] pool and the full image path.
//!
//! | file | what |
//! |---|---|
//! | `compositor.rs` | [`Compositor`], the `SyncArbiter` worker: owns the marks and codec handles |
//! | `messages.rs` | [`Stamp`], what the HTTP handler sends to the pool |
//! | `stamp.rs` | the full path as pure functions: sniff, size check, decode, orient, blend, encode |
//! | `pixels.rs` | orientation, placement and blending on interleaved buffers |
//! | `blend.rs` | the one blend formula every path uses |
//! | `jpeg/` | the baseline JPEG fast path: re-encodes only the MCUs from the first one under the mark |
//! | `mark.rs` | decoded marks, loaded once at start, scaled down when too large |
//! | `metadata.rs` | JPEG EXIF/ICC segments: orientation, GPS stripping, re-insertion |
//! | `options.rs` | per-request options (position, margin, opacity, quality, format, strip) |
//! | `config.rs` | [`WatermarkSettings`], the `[watermark]` section |
//! | `face.rs` | face finding: BlazeFace + FaceMesh through tract-onnx (beard pipeline) |
//! | `beard.rs` | beard placement and blending, pure (beard pipeline) |
//! | `dress.rs` | `Dress`, the beard job for the pool: decode, find faces, place, blend, encode |

pub mod beard;
pub mod blend;
mod compositor;
mod config;
pub mod dress;
pub mod face;
pub mod jpeg;
pub mod mark;
mod messages;
pub mod metadata;
pub mod options;
pub mod pixels;
pub mod stamp;

pub use compositor::{Compositor, StampFn};
pub use config::{WatermarkSettings, DEFAULT_MARK};
pub use mark::{load_marks, Mark, MarkError, Marks};
pub use messages::Stamp;
pub use options::{OutputFormat, Position, StampOptions, StripMetadata};
pub use stamp::{stamp, Codecs, ImagePath, StampError, Stamped};
