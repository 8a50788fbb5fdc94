//! [`Dress`]: put a beard on every face (or the largest) of a photo. The
//! compositor pool handles it on its worker threads; the work itself is
//! the pure [`dress`] function: decode → find faces → landmarks → place and
//! blend → encode JPEG, each step timed.
//!
//! Each worker thread loads the face models once, on its first `Dress`
//! (see [`with_finder`]); the pipeline loads them once at start as well,
//! so a missing model fails the start, not a request.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Message;
use turbojpeg::{Colorspace, Compressor, Decompressor, Image, PixelFormat, Subsamp};

use super::beard::{blend_beard, place, BeardImage, Placement};
use super::face::{Face, FaceBox, FaceError, FaceFinder, Rgb};
use super::metadata::JpegMetadata;
use super::pixels::{orient, Frame};

/// Which faces get a beard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FaceChoice {
    #[default]
    All,
    Largest,
}

/// Put `beard` on the faces of `photo`; answers a JPEG.
pub struct Dress {
    /// Follows the request through the logs.
    pub request_id: String,
    /// The uploaded photo (JPEG, PNG or WebP). Never logged, never stored.
    pub photo: bytes::Bytes,
    pub beard: Arc<BeardImage>,
    pub options: DressOptions,
    /// Where the face models are (loaded once per worker).
    pub models_dir: Arc<PathBuf>,
}

impl std::fmt::Debug for Dress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dress")
            .field("request_id", &self.request_id)
            .field("photo_bytes", &self.photo.len())
            .field("beard", &self.beard)
            .field("options", &self.options)
            .finish()
    }
}

impl Message for Dress {
    type Result = Result<Dressed, DressError>;
}

/// How to dress a photo.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DressOptions {
    pub faces: FaceChoice,
    /// A face box given by hand: no detection, landmarks inside it.
    pub face: Option<FaceBox>,
    /// Beard width as a multiple of the jaw width.
    pub width_factor: f32,
    pub opacity_u8: u8,
    pub quality: u8,
    /// Photos with more pixels are refused before decoding.
    pub max_pixels: u64,
}

/// The dressed photo.
pub struct Dressed {
    pub jpeg: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// Faces that got a beard.
    pub faces: Vec<FacePlacement>,
    pub timings: DressTimings,
}

impl std::fmt::Debug for Dressed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dressed")
            .field("jpeg_bytes", &self.jpeg.len())
            .field("width", &self.width)
            .field("height", &self.height)
            .field("faces", &self.faces.len())
            .field("timings", &self.timings)
            .finish()
    }
}

/// One face and where its beard went.
#[derive(Debug, Clone)]
pub struct FacePlacement {
    pub face: Face,
    pub placement: Placement,
}

/// Where the time of one `Dress` went.
#[derive(Debug, Default, Clone, Copy)]
pub struct DressTimings {
    pub decode: Duration,
    pub detect: Duration,
    pub landmarks: Duration,
    pub blend: Duration,
    pub encode: Duration,
}

/// Why a photo could not be dressed. Each maps to one HTTP status.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DressError {
    #[error("empty photo")]
    Empty,
    #[error("the body is not a JPEG, PNG or WebP image")]
    NotAnImage,
    #[error("photo cannot be decoded: {0}")]
    Corrupt(String),
    #[error("photo is {width}x{height}, more than {max_pixels} pixels")]
    TooLarge {
        width: u32,
        height: u32,
        max_pixels: u64,
    },
    #[error("no face found in the photo")]
    NoFace,
    #[error("face box {0} is outside the photo")]
    FaceOutside(String),
    #[error("face models unavailable: {0}")]
    Models(String),
    #[error("cannot encode the answer: {0}")]
    Encode(String),
    #[error("the image code failed on this photo: {0}")]
    Panicked(String),
}

impl From<FaceError> for DressError {
    fn from(e: FaceError) -> Self {
        DressError::Models(e.to_string())
    }
}

thread_local! {
    static FINDER: RefCell<Option<(PathBuf, Arc<FaceFinder>)>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's face finder for `dir`, loading the models
/// on the thread's first call.
pub fn with_finder<T>(
    dir: &Path,
    f: impl FnOnce(&FaceFinder) -> Result<T, DressError>,
) -> Result<T, DressError> {
    let finder = FINDER.with(|cell| -> Result<Arc<FaceFinder>, DressError> {
        let mut slot = cell.borrow_mut();
        if let Some((loaded_dir, finder)) = slot.as_ref() {
            if loaded_dir == dir {
                return Ok(finder.clone());
            }
        }
        let finder = Arc::new(FaceFinder::load(dir)?);
        *slot = Some((dir.to_path_buf(), finder.clone()));
        Ok(finder)
    })?;
    f(&finder)
}

/// A decoded RGB8 photo, EXIF orientation applied.
pub struct Photo {
    pub pixels: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

thread_local! {
    /// This worker's libjpeg-turbo handles, reused across requests.
    static JPEG: RefCell<Option<(Decompressor, Compressor)>> = const { RefCell::new(None) };
}

fn with_jpeg<T>(
    f: impl FnOnce(&mut Decompressor, &mut Compressor) -> Result<T, DressError>,
) -> Result<T, DressError> {
    JPEG.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            let d = Decompressor::new().map_err(|e| DressError::Encode(e.to_string()))?;
            let c = Compressor::new().map_err(|e| DressError::Encode(e.to_string()))?;
            *slot = Some((d, c));
        }
        match slot.as_mut() {
            Some((d, c)) => f(d, c),
            None => Err(DressError::Encode("no JPEG codec".into())),
        }
    })
}

fn check_pixels(width: u64, height: u64, max_pixels: u64) -> Result<(), DressError> {
    if width == 0 || height == 0 {
        return Err(DressError::Corrupt(format!(
            "declared size {width}x{height}"
        )));
    }
    if width.saturating_mul(height) > max_pixels {
        return Err(DressError::TooLarge {
            width: width as u32,
            height: height as u32,
            max_pixels,
        });
    }
    Ok(())
}

/// Decodes a JPEG (libjpeg-turbo), PNG or WebP, refusing more than
/// `max_pixels` before any pixel buffer is allocated, and turns it upright
/// by its EXIF orientation.
pub fn decode_photo(bytes: &[u8], max_pixels: u64) -> Result<Photo, DressError> {
    use image::ImageDecoder as _;
    if bytes.is_empty() {
        return Err(DressError::Empty);
    }
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return decode_jpeg(bytes, max_pixels);
    }
    let format = match image::guess_format(bytes) {
        Ok(f @ (image::ImageFormat::Png | image::ImageFormat::WebP)) => f,
        _ => return Err(DressError::NotAnImage),
    };
    let reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| DressError::Corrupt(e.to_string()))?;
    let (width, height) = decoder.dimensions();
    check_pixels(u64::from(width), u64::from(height), max_pixels)?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = image::DynamicImage::from_decoder(decoder)
        .map_err(|e| DressError::Corrupt(e.to_string()))?;
    image.apply_orientation(orientation);
    let rgb = image.into_rgb8();
    let (width, height) = rgb.dimensions();
    Ok(Photo {
        pixels: rgb.into_raw(),
        width,
        height,
    })
}

fn decode_jpeg(bytes: &[u8], max_pixels: u64) -> Result<Photo, DressError> {
    let frame = with_jpeg(|d, _| {
        let header = d
            .read_header(bytes)
            .map_err(|e| DressError::Corrupt(e.to_string()))?;
        check_pixels(header.width as u64, header.height as u64, max_pixels)?;
        if matches!(header.colorspace, Colorspace::CMYK | Colorspace::YCCK) {
            return Err(DressError::Corrupt("CMYK JPEG is not supported".into()));
        }
        let (w, h) = (header.width, header.height);
        let mut pixels = vec![0u8; w * h * 3];
        d.decompress(
            bytes,
            Image {
                pixels: pixels.as_mut_slice(),
                width: w,
                pitch: w * 3,
                height: h,
                format: PixelFormat::RGB,
            },
        )
        .map_err(|e| DressError::Corrupt(e.to_string()))?;
        Ok(Frame {
            width: w as u32,
            height: h as u32,
            channels: 3,
            pixels,
        })
    })?;
    let orientation = JpegMetadata::scan(bytes).orientation();
    let frame = orient(frame, orientation);
    Ok(Photo {
        pixels: frame.pixels,
        width: frame.width,
        height: frame.height,
    })
}

/// Encodes RGB8 as a 4:2:0 baseline JPEG (libjpeg-turbo).
pub fn encode_jpeg(
    pixels: &[u8],
    width: u32,
    height: u32,
    quality: u8,
) -> Result<Vec<u8>, DressError> {
    with_jpeg(|_, c| {
        let fail = |e: turbojpeg::Error| DressError::Encode(e.to_string());
        c.set_quality(i32::from(quality.clamp(1, 100)))
            .map_err(fail)?;
        c.set_subsamp(Subsamp::Sub2x2).map_err(fail)?;
        c.compress_to_vec(Image {
            pixels,
            width: width as usize,
            pitch: width as usize * 3,
            height: height as usize,
            format: PixelFormat::RGB,
        })
        .map_err(fail)
    })
}

/// The whole job: decode, find faces (or use the given box), place and
/// blend the beard on each, encode.
pub fn dress(
    finder: &FaceFinder,
    photo_bytes: &[u8],
    beard: &BeardImage,
    options: &DressOptions,
) -> Result<Dressed, DressError> {
    let mut timings = DressTimings::default();
    let started = Instant::now();
    let mut photo = decode_photo(photo_bytes, options.max_pixels)?;
    timings.decode = started.elapsed();
    let image = Rgb {
        pixels: &photo.pixels,
        width: photo.width,
        height: photo.height,
    };
    let faces = match options.face {
        Some(bbox) => {
            let inside = bbox.w >= 8.0
                && bbox.h >= 8.0
                && bbox.x >= 0.0
                && bbox.y >= 0.0
                && bbox.x + bbox.w <= photo.width as f32
                && bbox.y + bbox.h <= photo.height as f32;
            if !inside {
                return Err(DressError::FaceOutside(format!(
                    "{},{},{},{}",
                    bbox.x, bbox.y, bbox.w, bbox.h
                )));
            }
            let started = Instant::now();
            let face = finder.landmarks_in_box(image, bbox)?;
            timings.landmarks = started.elapsed();
            vec![face]
        }
        None => {
            let (mut faces, t) = finder.find(image)?;
            timings.detect = t.detect;
            timings.landmarks = t.landmarks;
            if options.faces == FaceChoice::Largest {
                faces.truncate(1);
            }
            faces
        }
    };
    if faces.is_empty() {
        return Err(DressError::NoFace);
    }
    let started = Instant::now();
    let placed: Vec<FacePlacement> = faces
        .into_iter()
        .map(|face| {
            let placement = place(&face, beard, options.width_factor);
            blend_beard(
                &mut photo.pixels,
                photo.width,
                photo.height,
                beard,
                &placement,
                options.opacity_u8,
            );
            FacePlacement { face, placement }
        })
        .collect();
    timings.blend = started.elapsed();
    let started = Instant::now();
    let jpeg = encode_jpeg(&photo.pixels, photo.width, photo.height, options.quality)?;
    timings.encode = started.elapsed();
    Ok(Dressed {
        jpeg,
        width: photo.width,
        height: photo.height,
        faces: placed,
        timings,
    })
}

impl actix::Handler<Dress> for super::compositor::Compositor {
    type Result = Result<Dressed, DressError>;

    /// A panic anywhere in the job answers `Panicked` and replaces this
    /// worker with a fresh one (see [`crate::supervise::sync`]).
    fn handle(&mut self, msg: Dress, ctx: &mut Self::Context) -> Self::Result {
        crate::supervise::sync("Compositor", ctx, DressError::Panicked, || {
            crate::supervise::fault_point("Compositor.Dress");
            self.dress_job(msg)
        })
    }
}

impl super::compositor::Compositor {
    fn dress_job(&mut self, msg: Dress) -> Result<Dressed, DressError> {
        let started = Instant::now();
        let _span =
            tracing::info_span!("Compositor", pipeline = "beard", request_id = %msg.request_id)
                .entered();
        let _handled = crate::observe::handling("Compositor");
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            with_finder(&msg.models_dir, |finder| {
                dress(finder, &msg.photo, &msg.beard, &msg.options)
            })
        }))
        .unwrap_or_else(|panic| {
            let reason = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            tracing::error!(pipeline = "beard", actor = "compositor", photo_bytes = msg.photo.len(), reason = %reason, "dress panicked");
            crate::observe::restarted("Compositor");
            Err(DressError::Panicked(reason))
        });
        let outcome = match &result {
            Ok(_) => "ok",
            Err(DressError::NoFace) => "no_face",
            Err(DressError::Models(_) | DressError::Encode(_) | DressError::Panicked(_)) => {
                "internal"
            }
            Err(_) => "rejected",
        };
        metrics::counter!("tasklet_beard_dress_total", "outcome" => outcome).increment(1);
        metrics::histogram!("tasklet_beard_dress_seconds").record(started.elapsed().as_secs_f64());
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_answers_each_bad_input_with_its_error() {
        assert_eq!(decode_photo(b"", 1000).err(), Some(DressError::Empty));
        assert_eq!(
            decode_photo(b"hello, not an image", 1000).err(),
            Some(DressError::NotAnImage)
        );
        let jpeg = encode_jpeg(&vec![128u8; 64 * 48 * 3], 64, 48, 85).unwrap();
        assert!(matches!(
            decode_photo(&jpeg, 1000),
            Err(DressError::TooLarge {
                width: 64,
                height: 48,
                ..
            })
        ));
        let ok = decode_photo(&jpeg, 1_000_000).unwrap();
        assert_eq!((ok.width, ok.height), (64, 48));
        let truncated = &jpeg[..jpeg.len() / 3];
        assert!(matches!(
            decode_photo(truncated, 1_000_000),
            Err(DressError::Corrupt(_))
        ));
    }
}
