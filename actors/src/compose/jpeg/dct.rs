//! 8x8 inverse and forward DCT in `f32` (separable, orthonormal), and the
//! JFIF YCbCr <-> RGB conversions.
//!
//! Float on purpose: a block that is decoded and encoded again without any
//! pixel changing gets back exactly its coefficients, so only pixels under
//! the mark move.

/// Zigzag index -> natural (row-major) index.
pub(crate) const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// `B[u][x] = c(u)/2 * cos((2x+1)u*pi/16)`, an orthonormal 8-point DCT, and
/// its transpose (so that both passes of both transforms run along rows).
struct Basis {
    b: [[f32; 8]; 8],
    t: [[f32; 8]; 8],
}

fn basis() -> &'static Basis {
    static BASIS: std::sync::OnceLock<Basis> = std::sync::OnceLock::new();
    BASIS.get_or_init(|| {
        let mut b = [[0f32; 8]; 8];
        for (u, row) in b.iter_mut().enumerate() {
            let cu = if u == 0 {
                std::f64::consts::FRAC_1_SQRT_2
            } else {
                1.0
            };
            for (x, v) in row.iter_mut().enumerate() {
                let angle = (2.0 * x as f64 + 1.0) * u as f64 * std::f64::consts::PI / 16.0;
                *v = (cu / 2.0 * angle.cos()) as f32;
            }
        }
        let t = std::array::from_fn(|x| std::array::from_fn(|u| b[u][x]));
        Basis { b, t }
    })
}

/// Dequantises a zigzag block and returns its samples (level shift undone,
/// not rounded, not clamped) in row-major order.
pub(crate) fn idct(coefs: &[i16; 64], q: &[u16; 64]) -> [f32; 64] {
    let b = &basis().b;
    let mut f = [0f32; 64];
    for k in 0..64 {
        f[ZIGZAG[k]] = f32::from(coefs[k]) * f32::from(q[k]);
    }
    // rows: tmp[v][x] = sum_u f[v][u] * B[u][x]
    let mut tmp = [0f32; 64];
    for v in 0..8 {
        for u in 0..8 {
            let c = f[v * 8 + u];
            if c != 0.0 {
                for x in 0..8 {
                    tmp[v * 8 + x] += c * b[u][x];
                }
            }
        }
    }
    // columns: out[y][x] = sum_v B[v][y] * tmp[v][x]
    let mut out = [128f32; 64];
    for y in 0..8 {
        for v in 0..8 {
            let by = b[v][y];
            for x in 0..8 {
                out[y * 8 + x] += by * tmp[v * 8 + x];
            }
        }
    }
    out
}

/// Forward DCT of row-major samples, quantised (rounded) into zigzag order.
pub(crate) fn fdct_quantise(samples: &[f32; 64], q: &[u16; 64]) -> [i16; 64] {
    let Basis { b, t } = basis();
    // rows: tmp[y][u] = sum_x s[y][x] * B[u][x] (inner loops run over u)
    let mut tmp = [0f32; 64];
    for y in 0..8 {
        for x in 0..8 {
            let s = samples[y * 8 + x] - 128.0;
            for u in 0..8 {
                tmp[y * 8 + u] += s * t[x][u];
            }
        }
    }
    // columns: f[v][u] = sum_y B[v][y] * tmp[y][u]
    let mut f = [0f32; 64];
    for v in 0..8 {
        for y in 0..8 {
            let bv = b[v][y];
            for u in 0..8 {
                f[v * 8 + u] += bv * tmp[y * 8 + u];
            }
        }
    }
    let mut out = [0i16; 64];
    for k in 0..64 {
        let limit = if k == 0 { 2047.0 } else { 1023.0 };
        out[k] = round(f[ZIGZAG[k]] / f32::from(q[k])).clamp(-limit, limit) as i16;
    }
    out
}

/// JFIF YCbCr -> RGB, rounded and clamped as a decoder would.
#[inline]
pub(crate) fn ycc_to_rgb(y: f32, cb: f32, cr: f32) -> [u8; 3] {
    let (cb, cr) = (cb - 128.0, cr - 128.0);
    let r = y + 1.402 * cr;
    let g = y - 0.344_136 * cb - 0.714_136 * cr;
    let b = y + 1.772 * cb;
    [to_u8(r), to_u8(g), to_u8(b)]
}

/// JFIF RGB -> YCbCr, unrounded.
#[inline]
pub(crate) fn rgb_to_ycc(p: [u8; 3]) -> [f32; 3] {
    let (r, g, b) = (f32::from(p[0]), f32::from(p[1]), f32::from(p[2]));
    [
        0.299 * r + 0.587 * g + 0.114 * b,
        -0.168_736 * r - 0.331_264 * g + 0.5 * b + 128.0,
        0.5 * r - 0.418_688 * g - 0.081_312 * b + 128.0,
    ]
}

#[inline]
pub(crate) fn to_u8(v: f32) -> u8 {
    // Clamped first, so truncating v + 0.5 rounds half up.
    (v.clamp(0.0, 255.0) + 0.5) as u8
}

/// Rounds half away from zero like `f32::round`, without the libm call.
#[inline]
fn round(v: f32) -> f32 {
    if v >= 0.0 {
        ((v + 0.5) as i32) as f32
    } else {
        ((v - 0.5) as i32) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idct_then_fdct_gives_back_the_coefficients() {
        let q: [u16; 64] = std::array::from_fn(|k| 1 + (k as u16 * 3) % 40);
        let mut c = [0i16; 64];
        for (k, v) in c.iter_mut().enumerate() {
            *v = ((k as i32 * 37) % 21 - 10) as i16;
        }
        c[0] = -37;
        let back = fdct_quantise(&idct(&c, &q), &q);
        assert_eq!(back, c);
    }

    #[test]
    fn a_flat_block_has_only_dc() {
        let s = [200f32; 64];
        let q = [1u16; 64];
        let c = fdct_quantise(&s, &q);
        assert_eq!(c[0], 576); // (200 - 128) * 8
        assert!(c[1..].iter().all(|&v| v == 0));
    }

    #[test]
    fn colour_conversion_roundtrips() {
        for p in [[0u8, 0, 0], [255, 255, 255], [200, 30, 90], [12, 250, 128]] {
            let [y, cb, cr] = rgb_to_ycc(p);
            assert_eq!(ycc_to_rgb(y, cb, cr), p);
        }
    }
}
