//! The one alpha-blend formula every image path uses (full path, JPEG fast
//! path, beard placement), so that they agree to the bit.
//!
//! Straight (non-premultiplied) RGBA marks; `alpha` already includes any
//! opacity factor (see [`effective_alpha`]). Exact integer math with
//! rounding: no dark fringes, no drift between paths.

/// The mark's alpha scaled by an opacity in 0..=255 (`opacity_u8`), rounded.
#[inline]
pub fn effective_alpha(mark_alpha: u8, opacity_u8: u8) -> u8 {
    ((u32::from(mark_alpha) * u32::from(opacity_u8) + 127) / 255) as u8
}

/// An opacity in 0.0..=1.0 as 0..=255, rounded; out-of-range values clamp.
#[inline]
pub fn opacity_u8(opacity: f32) -> u8 {
    (opacity.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// `src` under `mark` with coverage `alpha` (0 keeps `src`, 255 gives `mark`).
#[inline]
pub fn blend_channel(src: u8, mark: u8, alpha: u8) -> u8 {
    let a = u32::from(alpha);
    ((u32::from(src) * (255 - a) + u32::from(mark) * a + 127) / 255) as u8
}

/// [`effective_alpha`] on whole numbers in 0..=255 held as floats, which
/// vectorises without any conversion: see [`round_over_255`].
#[inline(always)]
pub fn effective_alpha_f32(mark_alpha: f32, opacity_u8: f32) -> f32 {
    round_over_255(mark_alpha * opacity_u8)
}

/// [`blend_channel`] on whole numbers in 0..=255 held as floats, which
/// vectorises without any conversion: see [`round_over_255`].
#[inline(always)]
pub fn blend_channel_f32(src: f32, mark: f32, alpha: f32) -> f32 {
    round_over_255(src * (255.0 - alpha) + mark * alpha)
}

/// `(t + 127) / 255` rounded down, for a whole number `t` in 0..=65025
/// (exact as a float, as the sums and products above are): that is t / 255
/// rounded to the nearest, which is never a tie and at least 0.5 / 255 from
/// one, far more than the error of multiplying by 1 / 255; adding and
/// taking away 1.5 * 2^23 rounds to the nearest.
#[inline(always)]
fn round_over_255(t: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (t * (1.0 / 255.0) + MAGIC) - MAGIC
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_exact() {
        for s in [0u8, 1, 77, 128, 254, 255] {
            for m in [0u8, 3, 200, 255] {
                assert_eq!(blend_channel(s, m, 0), s);
                assert_eq!(blend_channel(s, m, 255), m);
            }
        }
    }

    #[test]
    fn half_alpha_is_the_rounded_mean() {
        assert_eq!(blend_channel(0, 255, 128), 128);
        assert_eq!(
            blend_channel(100, 200, effective_alpha(255, opacity_u8(0.5))),
            150
        );
    }

    #[test]
    fn white_over_white_stays_white_at_any_alpha() {
        // A dark fringe would show as a value below 255 here.
        for a in 0..=255u8 {
            assert_eq!(blend_channel(255, 255, a), 255);
        }
    }

    #[test]
    fn the_float_alpha_agrees_for_every_input() {
        for a in 0..=255u8 {
            for o in 0..=255u8 {
                let float = effective_alpha_f32(a.into(), o.into());
                assert_eq!(float, f32::from(effective_alpha(a, o)), "{a} {o}");
            }
        }
    }

    #[test]
    fn the_float_blend_agrees_for_every_input() {
        for s in 0..=255u8 {
            for m in 0..=255u8 {
                for a in 0..=255u8 {
                    let float = blend_channel_f32(s.into(), m.into(), a.into());
                    assert_eq!(float, f32::from(blend_channel(s, m, a)), "{s} {m} {a}");
                }
            }
        }
    }

    #[test]
    fn opacity_scales_alpha() {
        assert_eq!(effective_alpha(255, 255), 255);
        assert_eq!(effective_alpha(200, 0), 0);
        assert_eq!(effective_alpha(255, opacity_u8(0.5)), 128);
        assert_eq!(opacity_u8(2.0), 255);
        assert_eq!(opacity_u8(-1.0), 0);
    }
}
