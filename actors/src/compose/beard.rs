//! Beard placement, pure geometry and pixels: scale a beard to the jaw
//! width, rotate it with the eye line, put its anchor on the mouth, and
//! blend it with [`crate::compose::blend`].
//!
//! The beard's `anchor` is the point of the beard image (in its own
//! pixels) that sits on the middle of the mouth — between the upper lip and
//! the chin; catalogs give it per style, otherwise it defaults to
//! [`default_anchor`].

use std::sync::Arc;

use super::blend::{blend_channel, effective_alpha};
use super::face::{distance, landmark, Face, Point};

/// A decoded beard: straight RGBA8 plus its anchor.
#[derive(Clone, PartialEq)]
pub struct BeardImage {
    pub width: u32,
    pub height: u32,
    /// Straight (not premultiplied) RGBA, row-major.
    pub rgba: Arc<Vec<u8>>,
    /// The point that sits on the mouth centre, in beard pixels.
    pub anchor: Point,
}

impl std::fmt::Debug for BeardImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BeardImage")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("anchor", &self.anchor)
            .finish()
    }
}

/// The anchor when the catalog gives none: horizontally centred, a quarter
/// of the way down (a full beard's moustache line).
pub fn default_anchor(width: u32, height: u32) -> Point {
    [width as f32 / 2.0, height as f32 / 4.0]
}

/// Where a beard goes on one face: a similarity transform from beard
/// pixels to image pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    /// Image point the beard's anchor lands on.
    pub origin: Point,
    pub anchor: Point,
    /// Image pixels per beard pixel.
    pub scale: f32,
    /// Rotation in radians (image y down), the eye line's angle.
    pub angle: f32,
}

impl Placement {
    /// Beard pixel to image pixel.
    pub fn to_image(&self, p: Point) -> Point {
        let (s, c) = self.angle.sin_cos();
        let dx = (p[0] - self.anchor[0]) * self.scale;
        let dy = (p[1] - self.anchor[1]) * self.scale;
        [
            self.origin[0] + dx * c - dy * s,
            self.origin[1] + dx * s + dy * c,
        ]
    }

    /// Image pixel to beard pixel.
    pub fn to_beard(&self, p: Point) -> Point {
        let (s, c) = self.angle.sin_cos();
        let dx = p[0] - self.origin[0];
        let dy = p[1] - self.origin[1];
        [
            (dx * c + dy * s) / self.scale + self.anchor[0],
            (-dx * s + dy * c) / self.scale + self.anchor[1],
        ]
    }
}

/// The mouth centre: the middle of the inner lips.
pub fn mouth_centre(face: &Face) -> Point {
    midpoint(
        face.at(landmark::UPPER_LIP_INNER),
        face.at(landmark::LOWER_LIP_INNER),
    )
}

fn midpoint(a: Point, b: Point) -> Point {
    [(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0]
}

/// The eye line's angle (subject's right eye to left eye).
pub fn eye_angle(face: &Face) -> f32 {
    let r = face.at(landmark::EYE_RIGHT);
    let l = face.at(landmark::EYE_LEFT);
    (l[1] - r[1]).atan2(l[0] - r[0])
}

/// Scales the beard so that its width equals the jaw width times
/// `width_factor`, rotates it with the eye line and puts its anchor on the
/// mouth centre.
pub fn place(face: &Face, beard: &BeardImage, width_factor: f32) -> Placement {
    let jaw = distance(face.at(landmark::JAW_RIGHT), face.at(landmark::JAW_LEFT));
    Placement {
        origin: mouth_centre(face),
        anchor: beard.anchor,
        scale: (jaw * width_factor / beard.width.max(1) as f32).max(1e-3),
        angle: eye_angle(face),
    }
}

/// Blends `beard` onto an RGB8 image (`pixels`, `width` x `height`) at
/// `placement`, with `opacity_u8` (255 = as drawn). Bilinear sampling of
/// premultiplied colour, so transparent edges leave no dark fringe.
pub fn blend_beard(
    pixels: &mut [u8],
    width: u32,
    height: u32,
    beard: &BeardImage,
    placement: &Placement,
    opacity_u8: u8,
) {
    let (bw, bh) = (beard.width as f32, beard.height as f32);
    let corners = [[0.0, 0.0], [bw, 0.0], [0.0, bh], [bw, bh]].map(|p| placement.to_image(p));
    let min_x = corners
        .iter()
        .map(|p| p[0])
        .fold(f32::MAX, f32::min)
        .floor()
        .max(0.0) as u32;
    let min_y = corners
        .iter()
        .map(|p| p[1])
        .fold(f32::MAX, f32::min)
        .floor()
        .max(0.0) as u32;
    let max_x = (corners
        .iter()
        .map(|p| p[0])
        .fold(f32::MIN, f32::max)
        .ceil()
        .max(0.0) as u32)
        .min(width);
    let max_y = (corners
        .iter()
        .map(|p| p[1])
        .fold(f32::MIN, f32::max)
        .ceil()
        .max(0.0) as u32)
        .min(height);
    let stride = width as usize * 3;
    for y in min_y..max_y {
        let row = &mut pixels[y as usize * stride..(y as usize + 1) * stride];
        for x in min_x..max_x {
            let [u, v] = placement.to_beard([x as f32 + 0.5, y as f32 + 0.5]);
            let Some([r, g, b, a]) = sample_premultiplied(beard, u, v) else {
                continue;
            };
            let alpha = effective_alpha(a, opacity_u8);
            if alpha == 0 {
                continue;
            }
            let px = &mut row[x as usize * 3..x as usize * 3 + 3];
            for (dst, src) in px.iter_mut().zip([r, g, b]) {
                *dst = blend_channel(*dst, src, alpha);
            }
        }
    }
}

/// Bilinear sample at beard coordinates (u, v), pixel centres at +0.5;
/// `None` outside the beard. Colour is interpolated premultiplied and
/// returned straight.
fn sample_premultiplied(beard: &BeardImage, u: f32, v: f32) -> Option<[u8; 4]> {
    if u < 0.0 || v < 0.0 || u >= beard.width as f32 || v >= beard.height as f32 {
        return None;
    }
    let fx = u - 0.5;
    let fy = v - 0.5;
    let x0 = fx.floor();
    let y0 = fy.floor();
    let (ax, ay) = (fx - x0, fy - y0);
    let (w, h) = (beard.width as i64, beard.height as i64);
    let px = |x: i64, y: i64| -> [f32; 4] {
        let x = x.clamp(0, w - 1);
        let y = y.clamp(0, h - 1);
        let i = ((y * w + x) * 4) as usize;
        let p = &beard.rgba[i..i + 4];
        let a = f32::from(p[3]) / 255.0;
        [
            f32::from(p[0]) * a,
            f32::from(p[1]) * a,
            f32::from(p[2]) * a,
            f32::from(p[3]),
        ]
    };
    let (x0, y0) = (x0 as i64, y0 as i64);
    let (p00, p10, p01, p11) = (
        px(x0, y0),
        px(x0 + 1, y0),
        px(x0, y0 + 1),
        px(x0 + 1, y0 + 1),
    );
    let mut out = [0f32; 4];
    for c in 0..4 {
        let top = p00[c] + (p10[c] - p00[c]) * ax;
        let bottom = p01[c] + (p11[c] - p01[c]) * ax;
        out[c] = top + (bottom - top) * ay;
    }
    let a = out[3];
    if a < 0.5 {
        return Some([0, 0, 0, 0]);
    }
    let un = |c: f32| (c * 255.0 / a).round().clamp(0.0, 255.0) as u8;
    Some([un(out[0]), un(out[1]), un(out[2]), a.round() as u8])
}

/// The first row (from the top) of the beard with any pixel at least
/// `min_alpha` opaque: the visible top edge, in beard pixels.
pub fn opaque_top(beard: &BeardImage, min_alpha: u8) -> Option<u32> {
    let w = beard.width as usize;
    (0..beard.height).find(|&y| {
        let row = &beard.rgba[y as usize * w * 4..(y as usize + 1) * w * 4];
        row.chunks_exact(4).any(|p| p[3] >= min_alpha)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::face::{Detection, FaceBox};

    fn solid_beard(w: u32, h: u32, rgba: [u8; 4]) -> BeardImage {
        BeardImage {
            width: w,
            height: h,
            rgba: Arc::new(rgba.repeat((w * h) as usize)),
            anchor: [w as f32 / 2.0, 0.0],
        }
    }

    /// A synthetic face: level eyes, mouth at (100, 120), jaw 80 px wide.
    fn face(angle: f32) -> Face {
        let mut landmarks = vec![[0.0f32; 2]; 468];
        let c = [100.0f32, 100.0];
        let rot = |p: Point| {
            let (s, co) = angle.sin_cos();
            let (dx, dy) = (p[0] - c[0], p[1] - c[1]);
            [c[0] + dx * co - dy * s, c[1] + dx * s + dy * co]
        };
        let set = |l: &mut Vec<Point>, i: usize, p: Point| l[i] = rot(p);
        set(&mut landmarks, landmark::EYE_RIGHT, [70.0, 70.0]);
        set(&mut landmarks, landmark::EYE_LEFT, [130.0, 70.0]);
        set(&mut landmarks, landmark::UPPER_LIP_INNER, [100.0, 118.0]);
        set(&mut landmarks, landmark::LOWER_LIP_INNER, [100.0, 122.0]);
        set(&mut landmarks, landmark::JAW_RIGHT, [60.0, 130.0]);
        set(&mut landmarks, landmark::JAW_LEFT, [140.0, 130.0]);
        Face {
            detection: Detection {
                bbox: FaceBox {
                    x: 50.0,
                    y: 40.0,
                    w: 100.0,
                    h: 120.0,
                },
                score: 1.0,
                keypoints: [[0.0; 2]; 6],
            },
            landmarks,
        }
    }

    #[test]
    fn placement_scales_to_the_jaw_and_anchors_on_the_mouth() {
        let beard = solid_beard(40, 20, [0, 0, 0, 255]);
        let p = place(&face(0.0), &beard, 1.0);
        assert!((p.scale - 2.0).abs() < 1e-5);
        let a = p.to_image(beard.anchor);
        assert!((a[0] - 100.0).abs() < 1e-4 && (a[1] - 120.0).abs() < 1e-4);
        let right = p.to_image([40.0, 0.0]);
        assert!((right[0] - 140.0).abs() < 1e-4);
    }

    #[test]
    fn placement_rotates_with_the_eye_line_and_inverts() {
        let angle = 0.3f32;
        let beard = solid_beard(40, 20, [0, 0, 0, 255]);
        let p = place(&face(angle), &beard, 1.0);
        assert!((p.angle - angle).abs() < 1e-4);
        for q in [[0.0, 0.0], [13.0, 7.5], [40.0, 20.0]] {
            let back = p.to_beard(p.to_image(q));
            assert!((back[0] - q[0]).abs() < 1e-3 && (back[1] - q[1]).abs() < 1e-3);
        }
    }

    #[test]
    fn blending_covers_the_placed_rectangle_only() {
        let (w, h) = (200u32, 200u32);
        let mut img = vec![200u8; (w * h * 3) as usize];
        let beard = solid_beard(40, 20, [10, 20, 30, 255]);
        let p = place(&face(0.0), &beard, 1.0);
        blend_beard(&mut img, w, h, &beard, &p, 255);
        let at = |x: u32, y: u32| &img[((y * w + x) * 3) as usize..((y * w + x) * 3 + 3) as usize];
        // Inside: x 60..140, y 120..160.
        assert_eq!(at(100, 140), &[10, 20, 30]);
        assert_eq!(at(100, 100), &[200, 200, 200]);
        assert_eq!(at(30, 140), &[200, 200, 200]);
        assert_eq!(at(100, 170), &[200, 200, 200]);
    }

    #[test]
    fn transparent_edges_leave_no_dark_fringe() {
        // White beard with a transparent black border: blended on white,
        // every pixel must stay white.
        let (bw, bh) = (10u32, 10u32);
        let mut rgba = Vec::new();
        for y in 0..bh {
            for x in 0..bw {
                let inside = (2..8).contains(&x) && (2..8).contains(&y);
                rgba.extend_from_slice(if inside {
                    &[255, 255, 255, 255]
                } else {
                    &[0, 0, 0, 0]
                });
            }
        }
        let beard = BeardImage {
            width: bw,
            height: bh,
            rgba: Arc::new(rgba),
            anchor: [5.0, 0.0],
        };
        let (w, h) = (200u32, 200u32);
        let mut img = vec![255u8; (w * h * 3) as usize];
        let p = place(&face(0.2), &beard, 1.0);
        blend_beard(&mut img, w, h, &beard, &p, 255);
        assert!(img.iter().all(|&v| v == 255));
    }

    #[test]
    fn a_beard_off_the_image_is_clipped_not_a_panic() {
        let (w, h) = (50u32, 50u32);
        let mut img = vec![0u8; (w * h * 3) as usize];
        let beard = solid_beard(40, 20, [255, 255, 255, 255]);
        let p = Placement {
            origin: [45.0, 45.0],
            anchor: [0.0, 0.0],
            scale: 3.0,
            angle: 0.5,
        };
        blend_beard(&mut img, w, h, &beard, &p, 255);
        assert_eq!(img[(49 * 50 + 49) * 3], 255);
        let far = Placement {
            origin: [-500.0, 900.0],
            ..p
        };
        blend_beard(&mut img, w, h, &beard, &far, 255);
    }

    #[test]
    fn opaque_top_finds_the_first_visible_row() {
        let mut beard = solid_beard(4, 4, [0, 0, 0, 0]);
        let mut rgba = (*beard.rgba).clone();
        rgba[(2 * 4 + 1) * 4 + 3] = 200;
        beard.rgba = Arc::new(rgba);
        assert_eq!(opaque_top(&beard, 128), Some(2));
        assert_eq!(opaque_top(&beard, 201), None);
    }
}
