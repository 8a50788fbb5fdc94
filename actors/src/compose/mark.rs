//! [`Mark`]: a decoded RGBA watermark, loaded once at start, and its
//! scaled-down copy for pictures smaller than it.

use std::collections::BTreeMap;
use std::path::Path;

use image::imageops::{self, FilterType};
use image::RgbaImage;

/// A straight-alpha RGBA mark.
#[derive(Clone, PartialEq)]
pub struct Mark {
    pub width: u32,
    pub height: u32,
    /// `width * height * 4` bytes, row-major, straight (not premultiplied) alpha.
    pub rgba: Vec<u8>,
}

impl std::fmt::Debug for Mark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mark({}x{})", self.width, self.height)
    }
}

/// Why a mark could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum MarkError {
    #[error("cannot read mark {name:?} from {path}: {reason}")]
    Read {
        name: String,
        path: String,
        reason: String,
    },
    #[error("mark {name:?} ({path}) is not a PNG image: {reason}")]
    Decode {
        name: String,
        path: String,
        reason: String,
    },
}

/// Every named mark, decoded.
pub type Marks = BTreeMap<String, Mark>;

/// Reads and decodes each `name -> path` (relative paths against `base`).
pub fn load_marks(paths: &BTreeMap<String, String>, base: &Path) -> Result<Marks, MarkError> {
    paths
        .iter()
        .map(|(name, path)| {
            let full = base.join(path);
            let bytes = std::fs::read(&full).map_err(|e| MarkError::Read {
                name: name.clone(),
                path: full.display().to_string(),
                reason: e.to_string(),
            })?;
            let mark = Mark::from_png(&bytes).map_err(|reason| MarkError::Decode {
                name: name.clone(),
                path: full.display().to_string(),
                reason,
            })?;
            Ok((name.clone(), mark))
        })
        .collect()
}

impl Mark {
    /// Decodes a PNG (any colour type) into straight RGBA.
    pub fn from_png(bytes: &[u8]) -> Result<Mark, String> {
        let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Png)
            .map_err(|e| e.to_string())?
            .into_rgba8();
        Ok(Mark {
            width: img.width(),
            height: img.height(),
            rgba: img.into_raw(),
        })
    }

    /// This mark scaled down (aspect kept) to fit `max_w` x `max_h`, or
    /// `None` when it already fits. Scaling is done on premultiplied
    /// colour so transparent pixels do not bleed dark into the edges.
    pub fn fitted(&self, max_w: u32, max_h: u32) -> Option<Mark> {
        if self.width <= max_w && self.height <= max_h {
            return None;
        }
        let scale = f64::min(
            f64::from(max_w.max(1)) / f64::from(self.width),
            f64::from(max_h.max(1)) / f64::from(self.height),
        );
        let w = ((f64::from(self.width) * scale).floor() as u32).max(1);
        let h = ((f64::from(self.height) * scale).floor() as u32).max(1);
        let mut pre = self.rgba.clone();
        for px in pre.chunks_exact_mut(4) {
            let a = u32::from(px[3]);
            for c in &mut px[..3] {
                *c = ((u32::from(*c) * a + 127) / 255) as u8;
            }
        }
        let pre = RgbaImage::from_raw(self.width, self.height, pre)?;
        let mut scaled = imageops::resize(&pre, w, h, FilterType::Triangle).into_raw();
        for px in scaled.chunks_exact_mut(4) {
            let a = u32::from(px[3]);
            for c in &mut px[..3] {
                if let Some(v) = (u32::from(*c) * 255 + a / 2).checked_div(a) {
                    *c = v.min(255) as u8;
                }
            }
        }
        Some(Mark {
            width: w,
            height: h,
            rgba: scaled,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn solid(w: u32, h: u32, px: [u8; 4]) -> Mark {
        Mark {
            width: w,
            height: h,
            rgba: px.repeat((w * h) as usize),
        }
    }

    #[test]
    fn a_mark_that_fits_is_kept() {
        assert!(solid(10, 5, [1, 2, 3, 4]).fitted(10, 5).is_none());
    }

    #[test]
    fn a_large_mark_is_scaled_keeping_its_aspect() {
        let m = solid(500, 100, [255, 255, 255, 128])
            .fitted(250, 250)
            .unwrap();
        assert_eq!((m.width, m.height), (250, 50));
        // Premultiplied scaling: a white half-transparent mark stays white.
        assert!(m.rgba.chunks(4).all(|p| p[0] >= 254 && p[3] == 128));
    }

    #[test]
    fn the_shipped_mark_decodes() {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/data/watermark_500x100.png"
        ))
        .unwrap();
        let m = Mark::from_png(&bytes).unwrap();
        assert_eq!((m.width, m.height), (500, 100));
        assert!(m.rgba.chunks(4).any(|p| p[3] == 0) && m.rgba.chunks(4).any(|p| p[3] > 0));
    }

    #[test]
    fn missing_and_broken_marks_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.png"), b"not a png").unwrap();
        let paths = BTreeMap::from([("m".to_owned(), "nope.png".to_owned())]);
        assert!(matches!(
            load_marks(&paths, dir.path()),
            Err(MarkError::Read { .. })
        ));
        let paths = BTreeMap::from([("m".to_owned(), "bad.png".to_owned())]);
        assert!(matches!(
            load_marks(&paths, dir.path()),
            Err(MarkError::Decode { .. })
        ));
    }
}
