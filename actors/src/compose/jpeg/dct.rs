//! 8x8 inverse and forward DCT in `f32` (the scaled AAN butterflies of
//! libjpeg's float transforms, scales folded into the quantisation), and
//! the JFIF YCbCr <-> RGB conversions.
//!
//! Float on purpose: a block decoded and encoded again without any pixel
//! changing gets back its coefficients (and the fast path does not even
//! transform blocks in which no sample moved), so only pixels under the
//! mark move.

/// Zigzag index -> natural (row-major) index.
pub(crate) const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// `cos(k*pi/16) * sqrt(2)` (1 for k = 0): the row and column scales the
/// AAN transforms leave in their output, folded into the quantisation.
const AAN_SCALE: [f32; 8] = [
    1.0,
    1.387_039_8,
    1.306_563,
    1.175_875_6,
    1.0,
    0.785_694_96,
    0.541_196_1,
    0.275_899_38,
];

/// A quantisation table prepared for both transforms: natural (row-major)
/// order, AAN scales and the 1/8 of the 2-D transform folded in.
#[derive(Clone, Copy)]
pub(crate) struct Quant {
    /// Dequantise-and-scale factor of each coefficient for [`idct`],
    /// transposed like `to_coefs`.
    to_samples: [f32; 64],
    /// Scale-and-quantise factor of each coefficient for [`fdct_quantise`],
    /// transposed (`u * 8 + v` for row frequency `v`, column frequency `u`)
    /// as that transform leaves its output.
    to_coefs: [f32; 64],
}

/// Zigzag index -> place in a transposed block.
const ZIGZAG_T: [usize; 64] = {
    let mut t = [0; 64];
    let mut k = 0;
    while k < 64 {
        t[k] = ZIGZAG[k] % 8 * 8 + ZIGZAG[k] / 8;
        k += 1;
    }
    t
};

/// Place in a transposed block -> zigzag index.
const UNZIGZAG_T: [usize; 64] = {
    let mut t = [0; 64];
    let mut k = 0;
    while k < 64 {
        t[ZIGZAG_T[k]] = k;
        k += 1;
    }
    t
};

impl Quant {
    pub fn new(q: &[u16; 64]) -> Self {
        let mut quant = Quant {
            to_samples: [0.0; 64],
            to_coefs: [0.0; 64],
        };
        for (k, &z) in ZIGZAG.iter().enumerate() {
            let scale = f64::from(AAN_SCALE[z / 8]) * f64::from(AAN_SCALE[z % 8]);
            let q = f64::from(q[k]);
            quant.to_samples[ZIGZAG_T[k]] = (q * scale / 8.0) as f32;
            quant.to_coefs[ZIGZAG_T[k]] = (1.0 / (q * scale * 8.0)) as f32;
        }
        quant
    }
}

/// Eight lanes: one row of a block, the transforms working on all eight
/// columns at once.
type Lanes = [f32; 8];

#[inline(always)]
fn add(a: Lanes, b: Lanes) -> Lanes {
    std::array::from_fn(|i| a[i] + b[i])
}

#[inline(always)]
fn sub(a: Lanes, b: Lanes) -> Lanes {
    std::array::from_fn(|i| a[i] - b[i])
}

#[inline(always)]
fn mul(a: Lanes, k: f32) -> Lanes {
    std::array::from_fn(|i| a[i] * k)
}

#[inline(always)]
fn transpose(m: &[Lanes; 8]) -> [Lanes; 8] {
    std::array::from_fn(|i| std::array::from_fn(|j| m[j][i]))
}

/// Scaled 8-point forward DCT (Arai, Agui, Nakajima, as libjpeg's
/// `jfdctflt.c`) down the rows of `d`, every column at once.
#[inline(always)]
fn fdct_1d(d: &[Lanes; 8]) -> [Lanes; 8] {
    let (tmp0, tmp7) = (add(d[0], d[7]), sub(d[0], d[7]));
    let (tmp1, tmp6) = (add(d[1], d[6]), sub(d[1], d[6]));
    let (tmp2, tmp5) = (add(d[2], d[5]), sub(d[2], d[5]));
    let (tmp3, tmp4) = (add(d[3], d[4]), sub(d[3], d[4]));
    // Even part.
    let (tmp10, tmp13) = (add(tmp0, tmp3), sub(tmp0, tmp3));
    let (tmp11, tmp12) = (add(tmp1, tmp2), sub(tmp1, tmp2));
    let z1 = mul(add(tmp12, tmp13), std::f32::consts::FRAC_1_SQRT_2);
    // Odd part.
    let (o10, o11, o12) = (add(tmp4, tmp5), add(tmp5, tmp6), add(tmp6, tmp7));
    let z5 = mul(sub(o10, o12), 0.382_683_43);
    let z2 = add(mul(o10, 0.541_196_1), z5);
    let z4 = add(mul(o12, 1.306_563), z5);
    let z3 = mul(o11, std::f32::consts::FRAC_1_SQRT_2);
    let (z11, z13) = (add(tmp7, z3), sub(tmp7, z3));
    [
        add(tmp10, tmp11),
        add(z11, z4),
        add(tmp13, z1),
        sub(z13, z2),
        sub(tmp10, tmp11),
        add(z13, z2),
        sub(tmp13, z1),
        sub(z11, z4),
    ]
}

/// Scaled 8-point inverse DCT (as libjpeg's `jidctflt.c`) down the rows of
/// `d`, every column at once.
#[inline(always)]
fn idct_1d(d: &[Lanes; 8]) -> [Lanes; 8] {
    // Even part.
    let (tmp10, tmp11) = (add(d[0], d[4]), sub(d[0], d[4]));
    let tmp13 = add(d[2], d[6]);
    let tmp12 = sub(mul(sub(d[2], d[6]), std::f32::consts::SQRT_2), tmp13);
    let (tmp0, tmp3) = (add(tmp10, tmp13), sub(tmp10, tmp13));
    let (tmp1, tmp2) = (add(tmp11, tmp12), sub(tmp11, tmp12));
    // Odd part.
    let (z13, z10) = (add(d[5], d[3]), sub(d[5], d[3]));
    let (z11, z12) = (add(d[1], d[7]), sub(d[1], d[7]));
    let tmp7 = add(z11, z13);
    let o11 = mul(sub(z11, z13), std::f32::consts::SQRT_2);
    let z5 = mul(add(z10, z12), 1.847_759);
    let o10 = sub(mul(z12, 1.082_392_2), z5);
    let o12 = add(mul(z10, -2.613_126), z5);
    let tmp6 = sub(o12, tmp7);
    let tmp5 = sub(o11, tmp6);
    let tmp4 = add(o10, tmp5);
    [
        add(tmp0, tmp7),
        add(tmp1, tmp6),
        add(tmp2, tmp5),
        sub(tmp3, tmp4),
        add(tmp3, tmp4),
        sub(tmp2, tmp5),
        sub(tmp1, tmp6),
        sub(tmp0, tmp7),
    ]
}

/// Dequantises a zigzag block and returns its samples (level shift undone,
/// not rounded, not clamped) in row-major order.
#[inline(always)]
pub(crate) fn idct(coefs: &[i16; 64], q: &Quant) -> [f32; 64] {
    // Transposed (`f[u][v]`), so that the second pass leaves rows.
    let c: [i16; 64] = std::array::from_fn(|n| coefs[UNZIGZAG_T[n]]);
    let f: [Lanes; 8] = std::array::from_fn(|u| {
        std::array::from_fn(|v| f32::from(c[u * 8 + v]) * q.to_samples[u * 8 + v])
    });
    let s = idct_1d(&transpose(&idct_1d(&f)));
    let mut out = [0f32; 64];
    for (row, s) in out.chunks_exact_mut(8).zip(&s) {
        for (v, s) in row.iter_mut().zip(s) {
            *v = s + 128.0;
        }
    }
    out
}

/// Forward DCT of row-major samples, quantised (rounded) into zigzag order.
#[inline(always)]
pub(crate) fn fdct_quantise(samples: &[f32; 64], q: &Quant) -> [i16; 64] {
    let s: [Lanes; 8] =
        std::array::from_fn(|y| std::array::from_fn(|x| samples[y * 8 + x] - 128.0));
    // Down the columns, then, transposed, along the rows: `f[u][v]`.
    let f = fdct_1d(&transpose(&fdct_1d(&s)));
    let mut scaled = [0i32; 64];
    for ((out, f), q) in scaled
        .chunks_exact_mut(8)
        .zip(&f)
        .zip(q.to_coefs.chunks_exact(8))
    {
        for ((out, f), q) in out.iter_mut().zip(f).zip(q) {
            *out = round_clamped(f * q, 1023.0);
        }
    }
    let mut out: [i16; 64] = std::array::from_fn(|k| scaled[ZIGZAG_T[k]] as i16);
    // The DC alone may reach 2047.
    out[0] = round_clamped(f[0][0] * q.to_coefs[0], 2047.0) as i16;
    out
}

/// `v` clamped to `-limit..=limit` (at most 2^21) and rounded to the
/// nearest integer (halves to even), by adding 1.5 * 2^23: the integer ends
/// up in the low bits of the sum. Unlike `as i32`, this vectorises.
#[inline(always)]
fn round_clamped(v: f32, limit: f32) -> i32 {
    const MAGIC: f32 = 12_582_912.0;
    (v.max(-limit).min(limit) + MAGIC).to_bits() as i32 - MAGIC.to_bits() as i32
}

/// JFIF YCbCr -> RGB, rounded and clamped as a decoder would: whole
/// numbers in 0..=255, kept as floats so that loops over pixels vectorise.
#[inline(always)]
pub(crate) fn ycc_to_rgb(y: f32, cb: f32, cr: f32) -> [f32; 3] {
    let (cb, cr) = (cb - 128.0, cr - 128.0);
    let r = y + 1.402 * cr;
    let g = y - 0.344_136 * cb - 0.714_136 * cr;
    let b = y + 1.772 * cb;
    [round_u8(r), round_u8(g), round_u8(b)]
}

/// JFIF RGB (whole numbers in 0..=255, as floats) -> YCbCr, unrounded.
#[inline(always)]
pub(crate) fn rgb_to_ycc([r, g, b]: [f32; 3]) -> [f32; 3] {
    [
        0.299 * r + 0.587 * g + 0.114 * b,
        -0.168_736 * r - 0.331_264 * g + 0.5 * b + 128.0,
        0.5 * r - 0.418_688 * g - 0.081_312 * b + 128.0,
    ]
}

/// `v` rounded (halves up) and clamped to 0..=255, NaN to 0.
#[inline]
pub(crate) fn to_u8(v: f32) -> u8 {
    round_u8(v) as u8
}

/// [`to_u8`] as a float: what `(v.clamp(0.0, 255.0) + 0.5) as u8` gives,
/// in steps that vectorise (unlike `as`, see [`round_clamped`]).
#[inline(always)]
#[allow(clippy::manual_clamp)]
pub(crate) fn round_u8(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    // Clamped first (`max` takes NaN to 0, where `clamp` would keep it), so
    // that truncating v + 0.5 rounds half up. Adding and taking away
    // 1.5 * 2^23 rounds v + 0.5 to the nearest integer (the sum lies in
    // 2^23..2^24, where the floats are the integers); one less where that
    // rounded up.
    let v = v.max(0.0).min(255.0) + 0.5;
    let nearest = (v + MAGIC) - MAGIC;
    nearest - if nearest > v { 1.0 } else { 0.0 }
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
        let q = Quant::new(&q);
        let back = fdct_quantise(&idct(&c, &q), &q);
        assert_eq!(back, c);
    }

    #[test]
    fn a_flat_block_has_only_dc() {
        let s = [200f32; 64];
        let q = Quant::new(&[1u16; 64]);
        let c = fdct_quantise(&s, &q);
        assert_eq!(c[0], 576); // (200 - 128) * 8
        assert!(c[1..].iter().all(|&v| v == 0));
    }

    /// The DCT of the JPEG standard, straight from its definition.
    fn reference_fdct(s: &[f32; 64]) -> [f64; 64] {
        let c = |k: usize| {
            if k == 0 {
                std::f64::consts::FRAC_1_SQRT_2
            } else {
                1.0
            }
        };
        let cos = |x: usize, u: usize| {
            ((2 * x + 1) as f64 * u as f64 * std::f64::consts::PI / 16.0).cos()
        };
        std::array::from_fn(|n| {
            let (v, u) = (n / 8, n % 8);
            let mut sum = 0.0;
            for y in 0..8 {
                for x in 0..8 {
                    sum += (f64::from(s[y * 8 + x]) - 128.0) * cos(x, u) * cos(y, v);
                }
            }
            c(u) * c(v) / 4.0 * sum
        })
    }

    #[test]
    fn the_fast_transforms_agree_with_the_definition() {
        let mut x: u32 = 7;
        let mut next = || {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) % 256
        };
        let ones = Quant::new(&[1; 64]);
        for _ in 0..50 {
            let s: [f32; 64] = std::array::from_fn(|_| next() as f32);
            let reference = reference_fdct(&s);
            // Forward, with a unit table: the rounded coefficients.
            let c = fdct_quantise(&s, &ones);
            for (k, &z) in ZIGZAG.iter().enumerate() {
                assert!((f64::from(c[k]) - reference[z]).abs() <= 0.5 + 1e-3, "{k}");
            }
            // Inverse of the exact coefficients gives back the samples.
            let mut back = [0f32; 64];
            let coefs: [i16; 64] = std::array::from_fn(|k| reference[ZIGZAG[k]].round() as i16);
            let samples = idct(&coefs, &ones);
            back.copy_from_slice(&samples);
            for (a, b) in back.iter().zip(&s) {
                // Rounding the coefficients moves a sample by well under 2.
                assert!((a - b).abs() < 2.0, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn rounding_to_u8_truncates_like_a_cast() {
        let cast = |v: f32| f32::from((v.clamp(0.0, 255.0) + 0.5) as u8);
        // Every value from below 0.5 (which gives 0, as everything under
        // it) to above 255.5 (which gives 255, as everything over it).
        let (from, to) = (0.25f32.to_bits(), 256.5f32.to_bits());
        for bits in from..=to {
            let v = f32::from_bits(bits);
            assert_eq!(round_u8(v), cast(v), "{v}");
        }
        // And a sweep over all the others, signs, infinities and NaN.
        let specials = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            1e30,
            -1e30,
        ];
        let sweep = (0..=u32::MAX).step_by(997).map(f32::from_bits);
        for v in sweep.chain(specials) {
            assert_eq!(round_u8(v), cast(v), "{v}");
            assert_eq!(f32::from(to_u8(v)), cast(v), "{v}");
        }
    }

    #[test]
    fn colour_conversion_roundtrips() {
        for p in [[0u8, 0, 0], [255, 255, 255], [200, 30, 90], [12, 250, 128]] {
            let p = p.map(f32::from);
            let [y, cb, cr] = rgb_to_ycc(p);
            assert_eq!(ycc_to_rgb(y, cb, cr), p);
        }
    }
}
