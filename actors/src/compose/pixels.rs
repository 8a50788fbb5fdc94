//! Pixel work of the full path on interleaved 8-bit buffers: EXIF
//! orientation, where the mark goes, and the blend itself (through
//! [`super::blend`], the one formula every path shares).

use super::blend::{blend_channel, effective_alpha, opacity_u8};
use super::mark::Mark;
use super::options::Position;

/// An interleaved 8-bit picture: 1 (gray), 3 (RGB) or 4 (RGBA) channels,
/// rows packed (`width * channels` bytes each).
#[derive(Clone, PartialEq)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    pub channels: u8,
    pub pixels: Vec<u8>,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Frame({}x{}x{})", self.width, self.height, self.channels)
    }
}

/// Turns the stored pixels upright as EXIF orientation `o` (1..=8) says;
/// 1 and unknown values return the frame unchanged.
pub fn orient(frame: Frame, o: u16) -> Frame {
    if !(2..=8).contains(&o) {
        return frame;
    }
    let (w, h, c) = (
        frame.width as usize,
        frame.height as usize,
        usize::from(frame.channels),
    );
    let swap = o >= 5;
    let (ow, oh) = if swap { (h, w) } else { (w, h) };
    let mut out = vec![0u8; frame.pixels.len()];
    for y in 0..oh {
        for x in 0..ow {
            let (sx, sy) = match o {
                2 => (w - 1 - x, y),
                3 => (w - 1 - x, h - 1 - y),
                4 => (x, h - 1 - y),
                5 => (y, x),
                6 => (y, h - 1 - x),
                7 => (w - 1 - y, h - 1 - x),
                _ => (w - 1 - y, x),
            };
            let s = (sy * w + sx) * c;
            let d = (y * ow + x) * c;
            out[d..d + c].copy_from_slice(&frame.pixels[s..s + c]);
        }
    }
    Frame {
        width: ow as u32,
        height: oh as u32,
        channels: frame.channels,
        pixels: out,
    }
}

/// The mark's top-left corner on a `w` x `h` picture (may lie partly
/// outside for explicit coordinates: the blend clips).
pub fn place(w: u32, h: u32, mw: u32, mh: u32, position: Position, margin: u32) -> (u32, u32) {
    let right = w.saturating_sub(mw).saturating_sub(margin);
    let bottom = h.saturating_sub(mh).saturating_sub(margin);
    let left = margin.min(w.saturating_sub(mw));
    let top = margin.min(h.saturating_sub(mh));
    match position {
        Position::TopLeft => (left, top),
        Position::TopRight => (right, top),
        Position::BottomLeft => (left, bottom),
        Position::BottomRight => (right, bottom),
        Position::Center => (w.saturating_sub(mw) / 2, h.saturating_sub(mh) / 2),
        Position::At { x, y } => (x, y),
    }
}

/// Blends `mark` onto `frame` with its top-left at (`x`, `y`), clipped to
/// the frame. Gray frames take the mark's luma; RGBA frames composite
/// "over" their own alpha (straight alpha, no dark fringes).
pub fn blend(frame: &mut Frame, mark: &Mark, x: u32, y: u32, opacity: f32) {
    let op = opacity_u8(opacity);
    let c = usize::from(frame.channels);
    let fw = frame.width as usize;
    let x0 = x as usize;
    let y0 = y as usize;
    let cols = (mark.width as usize).min(fw.saturating_sub(x0));
    let rows = (mark.height as usize).min((frame.height as usize).saturating_sub(y0));
    for my in 0..rows {
        let mrow = &mark.rgba[my * mark.width as usize * 4..][..cols * 4];
        let frow = &mut frame.pixels[((y0 + my) * fw + x0) * c..][..cols * c];
        for (m, d) in mrow.chunks_exact(4).zip(frow.chunks_exact_mut(c)) {
            let a = effective_alpha(m[3], op);
            if a == 0 {
                continue;
            }
            match c {
                1 => d[0] = blend_channel(d[0], luma(m[0], m[1], m[2]), a),
                3 => {
                    for i in 0..3 {
                        d[i] = blend_channel(d[i], m[i], a);
                    }
                }
                _ => {
                    // "Over": out_a = a + d_a(1 - a); the colour weight of
                    // the mark is a / out_a.
                    let out_a = blend_channel(d[3], 255, a);
                    let w = ((u32::from(a) * 255 + u32::from(out_a) / 2) / u32::from(out_a).max(1))
                        .min(255) as u8;
                    for i in 0..3 {
                        d[i] = blend_channel(d[i], m[i], w);
                    }
                    d[3] = out_a;
                }
            }
        }
    }
}

/// The planes of a decoded YCbCr (or gray) JPEG, as libjpeg-turbo lays
/// them out with row alignment 1: Y, then Cb, then Cr (no chroma when gray).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YuvLayout {
    pub width: u32,
    pub height: u32,
    /// Bytes per Y row (the width padded to the horizontal factor).
    pub y_stride: usize,
    pub y_rows: usize,
    /// Bytes per chroma row and chroma rows; 0 when gray.
    pub c_stride: usize,
    pub c_rows: usize,
    /// Pixels per chroma sample, horizontally and vertically.
    pub sw: u32,
    pub sh: u32,
}

/// Blends `mark` onto YCbCr planes with its top-left at (`x`, `y`),
/// clipped. Y takes each mark pixel through [`blend_channel`]; each chroma
/// sample takes the mark's alpha-weighted chroma over the pixels it covers,
/// with their mean alpha — what blending in RGB and subsampling again
/// would give, without touching any sample the mark does not cover.
pub fn blend_yuv(planes: &mut [u8], l: &YuvLayout, mark: &Mark, x: u32, y: u32, opacity: f32) {
    let op = opacity_u8(opacity);
    let x0 = x as usize;
    let y0 = y as usize;
    let cols = (mark.width as usize).min((l.width as usize).saturating_sub(x0));
    let rows = (mark.height as usize).min((l.height as usize).saturating_sub(y0));
    if cols == 0 || rows == 0 {
        return;
    }
    let mw = mark.width as usize;
    let alpha = |mx: usize, my: usize| effective_alpha(mark.rgba[(my * mw + mx) * 4 + 3], op);
    let (luma_plane, chroma) = planes.split_at_mut(l.y_stride * l.y_rows);
    for my in 0..rows {
        let row = &mut luma_plane[(y0 + my) * l.y_stride + x0..][..cols];
        for (mx, d) in row.iter_mut().enumerate() {
            let a = alpha(mx, my);
            if a != 0 {
                let m = &mark.rgba[(my * mw + mx) * 4..][..3];
                *d = blend_channel(*d, luma(m[0], m[1], m[2]), a);
            }
        }
    }
    if l.c_stride == 0 {
        return;
    }
    let (cb_plane, cr_plane) = chroma.split_at_mut(l.c_stride * l.c_rows);
    let (sw, sh) = (l.sw as usize, l.sh as usize);
    for cy in y0 / sh..(y0 + rows).div_ceil(sh) {
        for cx in x0 / sw..(x0 + cols).div_ceil(sw) {
            let (mut n, mut sum_a, mut sum_cb, mut sum_cr) = (0u32, 0u32, 0u32, 0u32);
            for py in cy * sh..(cy * sh + sh).min(l.height as usize) {
                for px in cx * sw..(cx * sw + sw).min(l.width as usize) {
                    n += 1;
                    if px < x0 || px >= x0 + cols || py < y0 || py >= y0 + rows {
                        continue;
                    }
                    let (mx, my) = (px - x0, py - y0);
                    let a = u32::from(alpha(mx, my));
                    let m = &mark.rgba[(my * mw + mx) * 4..][..3];
                    let (cb, cr) = chroma_of(m[0], m[1], m[2]);
                    sum_a += a;
                    sum_cb += a * u32::from(cb);
                    sum_cr += a * u32::from(cr);
                }
            }
            if sum_a == 0 {
                continue;
            }
            let a = ((sum_a + n / 2) / n.max(1)) as u8;
            let mcb = ((sum_cb + sum_a / 2) / sum_a) as u8;
            let mcr = ((sum_cr + sum_a / 2) / sum_a) as u8;
            let i = cy * l.c_stride + cx;
            cb_plane[i] = blend_channel(cb_plane[i], mcb, a);
            cr_plane[i] = blend_channel(cr_plane[i], mcr, a);
        }
    }
}

/// JPEG's (full-range BT.601) Cb and Cr of an RGB colour.
#[inline]
fn chroma_of(r: u8, g: u8, b: u8) -> (u8, u8) {
    let (r, g, b) = (i32::from(r), i32::from(g), i32::from(b));
    let cb = (-11059 * r - 21709 * g + 32768 * b + (128 << 16) + 32767) >> 16;
    let cr = (32768 * r - 27439 * g - 5329 * b + (128 << 16) + 32767) >> 16;
    (cb.clamp(0, 255) as u8, cr.clamp(0, 255) as u8)
}

/// Drops the alpha of an RGBA frame by compositing it onto white.
pub fn flatten_onto_white(frame: Frame) -> Frame {
    if frame.channels != 4 {
        return frame;
    }
    let pixels = frame
        .pixels
        .chunks_exact(4)
        .flat_map(|p| [0, 1, 2].map(|i| blend_channel(255, p[i], p[3])))
        .collect();
    Frame {
        channels: 3,
        pixels,
        ..frame
    }
}

/// BT.601 luma, as JPEG's YCbCr uses.
#[inline]
fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((19595 * u32::from(r) + 38470 * u32::from(g) + 7471 * u32::from(b) + 32768) >> 16) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(w: u32, h: u32) -> Frame {
        Frame {
            width: w,
            height: h,
            channels: 1,
            pixels: (0..(w * h) as u8).collect(),
        }
    }

    #[test]
    fn orientations_map_the_corners() {
        // 3x2:  0 1 2
        //       3 4 5
        let f = numbered(3, 2);
        let px = |o| orient(f.clone(), o).pixels;
        assert_eq!(px(1), [0, 1, 2, 3, 4, 5]);
        assert_eq!(px(2), [2, 1, 0, 5, 4, 3]);
        assert_eq!(px(3), [5, 4, 3, 2, 1, 0]);
        assert_eq!(px(4), [3, 4, 5, 0, 1, 2]);
        assert_eq!(px(5), [0, 3, 1, 4, 2, 5]);
        // 6: rotate 90 clockwise -> 2x3: 3 0 / 4 1 / 5 2
        assert_eq!(px(6), [3, 0, 4, 1, 5, 2]);
        assert_eq!(px(7), [5, 2, 4, 1, 3, 0]);
        assert_eq!(px(8), [2, 5, 1, 4, 0, 3]);
        assert_eq!((orient(f.clone(), 6).width, orient(f, 6).height), (2, 3));
    }

    #[test]
    fn places_in_corners_with_margin() {
        let br = place(1980, 1280, 500, 100, Position::BottomRight, 20);
        assert_eq!(br, (1460, 1160));
        assert_eq!(place(1980, 1280, 500, 100, Position::TopLeft, 20), (20, 20));
        assert_eq!(
            place(1980, 1280, 500, 100, Position::Center, 20),
            (740, 590)
        );
        assert_eq!(
            place(1980, 1280, 500, 100, Position::At { x: 3, y: 4 }, 20),
            (3, 4)
        );
        // A mark as wide as the picture ignores the margin instead of overflowing.
        assert_eq!(place(500, 100, 500, 100, Position::BottomRight, 20), (0, 0));
    }

    #[test]
    fn blend_touches_only_the_mark_rectangle_and_clips() {
        let mut f = Frame {
            width: 4,
            height: 3,
            channels: 3,
            pixels: vec![10; 36],
        };
        let mark = Mark {
            width: 2,
            height: 2,
            rgba: [200, 100, 50, 255].repeat(4),
        };
        blend(&mut f, &mark, 3, 2, 1.0);
        let changed: Vec<usize> = (0..12).filter(|i| f.pixels[i * 3] != 10).collect();
        assert_eq!(changed, vec![11]);
        assert_eq!(&f.pixels[33..36], &[200, 100, 50]);
    }

    #[test]
    fn over_a_transparent_pixel_the_mark_keeps_its_colour() {
        let mut f = Frame {
            width: 1,
            height: 1,
            channels: 4,
            pixels: vec![0, 0, 0, 0],
        };
        let mark = Mark {
            width: 1,
            height: 1,
            rgba: vec![255, 255, 255, 100],
        };
        blend(&mut f, &mark, 0, 0, 1.0);
        assert_eq!(f.pixels, vec![255, 255, 255, 100]);
    }

    #[test]
    fn gray_frames_take_the_luma_and_opacity_scales() {
        let mut f = Frame {
            width: 1,
            height: 1,
            channels: 1,
            pixels: vec![0],
        };
        let mark = Mark {
            width: 1,
            height: 1,
            rgba: vec![255, 255, 255, 255],
        };
        blend(&mut f, &mark, 0, 0, 0.5);
        assert_eq!(f.pixels, vec![128]);
    }

    #[test]
    fn yuv_blend_matches_the_rgb_blend_through_the_colour_transform() {
        // A 4x4 gray (128) picture in 4:2:0, a 2x2 opaque red mark at (1, 1).
        let l = YuvLayout {
            width: 4,
            height: 4,
            y_stride: 4,
            y_rows: 4,
            c_stride: 2,
            c_rows: 2,
            sw: 2,
            sh: 2,
        };
        let mut planes = vec![128u8; 16 + 4 + 4];
        let red = Mark {
            width: 2,
            height: 2,
            rgba: [255, 0, 0, 255].repeat(4),
        };
        blend_yuv(&mut planes, &l, &red, 1, 1, 1.0);
        let y_changed: Vec<usize> = (0..16).filter(|&i| planes[i] != 128).collect();
        assert_eq!(y_changed, vec![5, 6, 9, 10]);
        assert_eq!(planes[5], luma(255, 0, 0));
        // Each of the four chroma samples covers one red pixel of four.
        let (cb, cr) = chroma_of(255, 0, 0);
        for i in 0..4 {
            assert_eq!(planes[16 + i], blend_channel(128, cb, 64), "cb {i}");
            assert_eq!(planes[20 + i], blend_channel(128, cr, 64), "cr {i}");
        }
    }

    #[test]
    fn yuv_blend_on_gray_touches_only_y_and_clips() {
        let l = YuvLayout {
            width: 3,
            height: 2,
            y_stride: 3,
            y_rows: 2,
            c_stride: 0,
            c_rows: 0,
            sw: 1,
            sh: 1,
        };
        let mut planes = vec![0u8; 6];
        let white = Mark {
            width: 2,
            height: 2,
            rgba: [255, 255, 255, 255].repeat(4),
        };
        blend_yuv(&mut planes, &l, &white, 2, 1, 1.0);
        assert_eq!(planes, vec![0, 0, 0, 0, 0, 255]);
    }

    #[test]
    fn flattening_composites_onto_white() {
        let f = Frame {
            width: 1,
            height: 1,
            channels: 4,
            pixels: vec![0, 0, 0, 0],
        };
        assert_eq!(flatten_onto_white(f).pixels, vec![255, 255, 255]);
    }
}
