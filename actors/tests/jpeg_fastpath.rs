//! Property tests of the JPEG fast path over many generated JPEGs.
//!
//! The inputs come from an independent encoder (`jpeg-encoder`: 4:2:0,
//! 4:2:2, 4:4:4, grayscale, restart intervals, optimised tables, sizes that
//! are not multiples of 8 or 16) and the outputs are checked with an
//! independent decoder (`zune-jpeg`).

use jpeg_encoder::{ColorType, Encoder, SamplingFactor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tasklet_actors::compose::blend::{blend_channel, effective_alpha};
use tasklet_actors::compose::jpeg::{
    read_coefficients, stamp, stamp_baseline, FastPathError, Mark,
};
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

#[derive(Debug, Clone, Copy)]
struct Params {
    width: u16,
    height: u16,
    gray: bool,
    sampling: SamplingFactor,
    restart: u16,
    optimized: bool,
    quality: u8,
}

fn photo_like(rng: &mut StdRng, w: usize, h: usize) -> Vec<u8> {
    let (fx, fy) = (
        rng.random_range(0.01..0.3f32),
        rng.random_range(0.01..0.3f32),
    );
    let base: [f32; 3] = std::array::from_fn(|_| rng.random_range(40.0..200.0));
    let mut px = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            for (c, b) in base.iter().enumerate() {
                let wave = 50.0 * ((x as f32 * fx + c as f32).sin() * (y as f32 * fy).cos());
                let edge = if (x / 13 + y / 7) % 5 == 0 { 40.0 } else { 0.0 };
                let noise = rng.random_range(-12.0..12.0f32);
                px.push((b + wave + edge + noise).clamp(0.0, 255.0) as u8);
            }
        }
    }
    px
}

fn luma(rgb: &[u8]) -> u8 {
    (0.299 * f64::from(rgb[0]) + 0.587 * f64::from(rgb[1]) + 0.114 * f64::from(rgb[2])).round()
        as u8
}

fn encode(p: &Params, rgb: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = Encoder::new(&mut out, p.quality);
    enc.set_sampling_factor(p.sampling);
    if p.restart > 0 {
        enc.set_restart_interval(p.restart);
    }
    enc.set_optimized_huffman_tables(p.optimized);
    if p.gray {
        let gray: Vec<u8> = rgb.chunks(3).map(luma).collect();
        enc.encode(&gray, p.width, p.height, ColorType::Luma)
            .unwrap();
    } else {
        enc.encode(rgb, p.width, p.height, ColorType::Rgb).unwrap();
    }
    out
}

/// Decodes to RGB (grayscale is replicated), or `None` when zune-jpeg refuses.
fn decode(jpeg: &[u8]) -> Option<(usize, usize, Vec<u8>)> {
    let opts = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut d = JpegDecoder::new_with_options(ZCursor::new(jpeg), opts);
    let px = d.decode().ok()?;
    let info = d.info()?;
    Some((usize::from(info.width), usize::from(info.height), px))
}

/// The decoder's luma plane, without colour conversion or upsampling.
fn decode_luma(jpeg: &[u8], gray: bool) -> Vec<u8> {
    let cs = if gray {
        ColorSpace::Luma
    } else {
        ColorSpace::YCbCr
    };
    let opts = DecoderOptions::default().jpeg_set_out_colorspace(cs);
    let mut d = JpegDecoder::new_with_options(ZCursor::new(jpeg), opts);
    let px = d.decode().unwrap();
    let step = if gray { 1 } else { 3 };
    px.chunks(step).map(|c| c[0]).collect()
}

fn random_mark(rng: &mut StdRng, w: usize, h: usize) -> Vec<u8> {
    let colour: [u8; 3] = std::array::from_fn(|_| rng.random());
    let mut m = Vec::with_capacity(w * h * 4);
    for y in 0..h {
        for x in 0..w {
            let a = match (x * 7 / w.max(1) + y * 3 / h.max(1)) % 4 {
                0 => 0,
                1 => 255,
                _ => rng.random_range(1..255),
            };
            let noisy = rng.random_bool(0.3);
            for c in colour {
                m.push(if noisy { rng.random() } else { c });
            }
            m.push(a);
        }
    }
    m
}

struct Outcome {
    rebuilt: bool,
}

/// Stamps and checks every promise of the fast path; panics on a breach.
fn check(input: &[u8], p: &Params, mark: &Mark<'_>, label: &str) -> Outcome {
    let stamped = stamp(input, mark).unwrap_or_else(|e| panic!("{label}: {e}"));
    let out = &stamped.jpeg;
    assert_eq!(
        out[..stamped.copied_bytes],
        input[..stamped.copied_bytes],
        "{label}"
    );

    let (w, h, before) = decode(input).expect("input decodes");
    let (w2, h2, after) = decode(out).unwrap_or_else(|| panic!("{label}: output does not decode"));
    assert_eq!((w, h), (w2, h2), "{label}");

    let cin = read_coefficients(input).unwrap();
    let cout = read_coefficients(out).unwrap();
    assert_eq!(cin.blocks.len(), cout.blocks.len(), "{label}");

    // The mark's rectangle, clipped, and the MCU-aligned box around it.
    let (x0, y0) = (mark.x as usize, mark.y as usize);
    let (x1, y1) = (
        (x0 + mark.width as usize).min(w),
        (y0 + mark.height as usize).min(h),
    );
    let (mw, mh) = (cin.mcu_width, cin.mcu_height);
    let (bx0, by0) = (x0 / mw * mw, y0 / mh * mh);
    let (bx1, by1) = ((x1 - 1) / mw * mw + mw, (y1 - 1) / mh * mh + mh);

    // Every block outside the box keeps its coefficients exactly; so does
    // every block inside that the mark's rectangle does not reach.
    for i in 0..cin.blocks.len() {
        let (_, (ax0, ay0, ax1, ay1)) = cin.block_area(i);
        let outside_box = ax1 <= bx0 || ax0 >= bx1 || ay1 <= by0 || ay0 >= by1;
        // A mark that reaches the right or bottom edge extends into the
        // padding there (invisible blocks of the edge MCUs may change).
        let (xe, ye) = (
            if x1 == w { usize::MAX } else { x1 },
            if y1 == h { usize::MAX } else { y1 },
        );
        let outside_mark = ax1 <= x0 || ax0 >= xe || ay1 <= y0 || ay0 >= ye;
        if outside_box {
            assert!(outside_mark);
        }
        if outside_mark {
            assert_eq!(cin.blocks[i], cout.blocks[i], "{label}: block {i} changed");
        }
    }

    // Pixels more than 16 px from the box are identical.
    for y in 0..h {
        for x in 0..w {
            let far = x + 16 < bx0 || x >= bx1 + 16 || y + 16 < by0 || y >= by1 + 16;
            if far {
                let k = (y * w + x) * 3;
                assert_eq!(
                    before[k..k + 3],
                    after[k..k + 3],
                    "{label}: pixel {x},{y} moved"
                );
            }
        }
    }

    // Inside the mark: about as close to the ideal blend as the full path
    // (decode -> blend -> encode with the same quality and sampling) gets.
    let mut ideal = before.clone();
    for y in y0..y1 {
        for x in x0..x1 {
            let m = &mark.rgba[((y - y0) * mark.width as usize + (x - x0)) * 4..][..4];
            let a = effective_alpha(m[3], mark.opacity);
            let k = (y * w + x) * 3;
            for c in 0..3 {
                ideal[k + c] = blend_channel(before[k + c], m[c], a);
            }
            if p.gray {
                let l = luma(&ideal[k..k + 3]);
                ideal[k..k + 3].fill(l);
            }
        }
    }
    let sampling = match cin.components[0] {
        (2, 2) => SamplingFactor::F_2_2,
        (2, 1) => SamplingFactor::F_2_1,
        (1, 2) => SamplingFactor::F_1_2,
        _ => SamplingFactor::F_1_1,
    };
    let full_params = Params {
        sampling,
        restart: 0,
        optimized: false,
        ..*p
    };
    let full_jpeg = encode(&full_params, &ideal);
    let (_, _, full) = decode(&full_jpeg).unwrap();
    // Luma straight from the decoder (before colour conversion and clamping).
    let (luma_out, luma_ref) = (decode_luma(out, p.gray), decode_luma(&full_jpeg, p.gray));
    // Luma is never subsampled: compare it for every mark. Colour only for
    // marks of 16 px and more: a thinner line of colour is not representable
    // in subsampled chroma, and the reference encoder point-samples chroma
    // where libjpeg and the fast path average it.
    let (mut luma_fast, mut luma_full, mut rgb_fast, mut rgb_full, mut n) =
        (0f64, 0f64, 0f64, 0f64, 0usize);
    for y in y0..y1 {
        for x in x0..x1 {
            let k = (y * w + x) * 3;
            let want = f64::from(luma(&ideal[k..k + 3]));
            luma_fast += (f64::from(luma_out[y * w + x]) - want).abs();
            luma_full += (f64::from(luma_ref[y * w + x]) - want).abs();
            for c in 0..3 {
                rgb_fast += (f64::from(after[k + c]) - f64::from(ideal[k + c])).abs() / 3.0;
                rgb_full += (f64::from(full[k + c]) - f64::from(ideal[k + c])).abs() / 3.0;
            }
            n += 1;
        }
    }
    let n = n as f64;
    let (luma_fast, luma_full, rgb_fast, rgb_full) =
        (luma_fast / n, luma_full / n, rgb_fast / n, rgb_full / n);
    assert!(
        luma_fast <= 1.25 * luma_full + 1.5,
        "{label}: mean luma error {luma_fast:.2} inside the mark, full path {luma_full:.2}"
    );
    if x1 - x0 >= 16 && y1 - y0 >= 16 {
        assert!(
            rgb_fast <= 1.5 * rgb_full + 3.0,
            "{label}: mean rgb error {rgb_fast:.2} inside the mark, full path {rgb_full:.2}"
        );
    }
    Outcome {
        rebuilt: stamped.rebuilt_tables,
    }
}

fn random_params(rng: &mut StdRng) -> Params {
    let sampling = [
        SamplingFactor::F_1_1,
        SamplingFactor::F_2_1,
        SamplingFactor::F_2_2,
        SamplingFactor::F_1_2,
    ][rng.random_range(0..4)];
    Params {
        width: rng.random_range(1..180),
        height: rng.random_range(1..140),
        gray: rng.random_bool(0.25),
        sampling,
        restart: [0, 0, 1, 2, 3, 5, 9][rng.random_range(0..7)],
        // jpeg-encoder writes optimised tables only with one scan per
        // component; the optimised single-scan case comes from the libjpeg
        // fixtures below.
        optimized: false,
        quality: rng.random_range(40..=95),
    }
}

#[test]
fn marks_everywhere_on_generated_jpegs_keep_everything_else_exact() {
    let mut rng = StdRng::seed_from_u64(0x7a5c1e7);
    for image in 0..70 {
        let p = random_params(&mut rng);
        let (w, h) = (usize::from(p.width), usize::from(p.height));
        let rgb = photo_like(&mut rng, w, h);
        let input = encode(&p, &rgb);
        let label = format!("image {image} {p:?}");
        check_everywhere(&input, &p, &mut rng, &label);
    }
}

/// Stamps marks at the corners, the middle and across the edges; returns
/// (cases, cases that needed fresh tables).
fn check_everywhere(input: &[u8], p: &Params, rng: &mut StdRng, image: &str) -> (usize, usize) {
    let (w, h) = (usize::from(p.width), usize::from(p.height));
    let (mut cases, mut rebuilt) = (0, 0);
    {
        let (mw, mh) = (rng.random_range(1..=60usize), rng.random_range(1..=40usize));
        let rgba = random_mark(rng, mw, mh);
        let opacity = [255u8, 255, 200, 77][rng.random_range(0..4)];
        let right = w.saturating_sub(mw);
        let bottom = h.saturating_sub(mh);
        let positions = [
            ("top-left", 0, 0),
            ("top-right", right, 0),
            ("bottom-left", 0, bottom),
            ("bottom-right", right, bottom),
            ("middle", w / 2 - w.min(mw) / 2, h / 2 - h.min(mh) / 2),
            ("across-right", w - 1 - (w - 1).min(mw / 2), bottom / 2),
            ("across-bottom", right / 2, h - 1 - (h - 1).min(mh / 2)),
            (
                "across-both",
                w - 1 - (w - 1).min(mw / 2),
                h - 1 - (h - 1).min(mh / 2),
            ),
        ];
        for (name, x, y) in positions {
            let mark = Mark {
                rgba: &rgba,
                width: mw as u32,
                height: mh as u32,
                x: x as u32,
                y: y as u32,
                opacity,
            };
            let label = format!("{image} mark {mw}x{mh} at {name} ({x},{y})");
            if check(input, p, &mark, &label).rebuilt {
                rebuilt += 1;
            }
            cases += 1;
        }
    }
    (cases, rebuilt)
}

/// Reads `(width, height)` from a JPEG's frame header.
fn dimensions(jpeg: &[u8]) -> (u16, u16) {
    let i = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    let be = |k: usize| u16::from(jpeg[k]) << 8 | u16::from(jpeg[k + 1]);
    (be(i + 7), be(i + 5))
}

#[test]
fn libjpeg_optimised_tables_with_and_without_restarts() {
    // Written by bench/python/make_jpeg_fixtures.py (Pillow/libjpeg,
    // optimize=True): one interleaved scan whose tables hold only the
    // symbols the image uses, so new blocks often need the fallback.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/jpeg");
    let mut rng = StdRng::seed_from_u64(0x0b7);
    let (mut cases, mut rebuilt, mut files) = (0, 0, 0);
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let input = std::fs::read(&path).unwrap();
        let (width, height) = dimensions(&input);
        let quality = name
            .split('_')
            .find_map(|t| t.strip_prefix('q')?.parse().ok())
            .unwrap();
        let p = Params {
            width,
            height,
            gray: name.contains("gray"),
            sampling: SamplingFactor::F_1_1,
            restart: 0,
            optimized: true,
            quality,
        };
        for round in 0..4 {
            let (c, r) = check_everywhere(&input, &p, &mut rng, &format!("{name} round {round}"));
            cases += c;
            rebuilt += r;
        }
        files += 1;
    }
    assert!(files >= 8);
    // Both ways of writing the tail ran.
    assert!(rebuilt > 0, "no case needed fresh tables");
    assert!(rebuilt < cases, "every case needed fresh tables");
}

#[test]
fn one_scan_per_component_takes_the_full_path() {
    let p = Params {
        width: 64,
        height: 40,
        gray: false,
        sampling: SamplingFactor::F_2_2,
        restart: 0,
        optimized: true,
        quality: 80,
    };
    let mut rng = StdRng::seed_from_u64(1);
    let input = encode(&p, &photo_like(&mut rng, 64, 40));
    assert_eq!(
        stamp_baseline(&input, &[0; 4], 1, 1, 0, 0, 255),
        Err(FastPathError::Unsupported("scan without every component"))
    );
}

#[test]
fn coefficients_agree_with_an_independent_decoder() {
    // Huffman codes resynchronise after a slip, so a block count proves
    // little: compare every luma block's samples (DC predictors included).
    let mut rng = StdRng::seed_from_u64(42);
    for _ in 0..25 {
        let p = random_params(&mut rng);
        let (w, h) = (usize::from(p.width), usize::from(p.height));
        let input = encode(&p, &photo_like(&mut rng, w, h));
        let coefs = read_coefficients(&input).unwrap();
        let luma = decode_luma(&input, p.gray);
        let (lh, lv) = coefs.components[0];
        let mut compared = 0;
        for i in 0..coefs.blocks.len() {
            let (c, (x0, y0, _, _)) = coefs.block_area(i);
            if c != 0 {
                continue;
            }
            let s = coefs.block_samples(i);
            for y in 0..8 {
                for x in 0..8 {
                    let (px, py) = (x0 + x, y0 + y);
                    if px < w && py < h {
                        let d = i32::from(s[y * 8 + x]) - i32::from(luma[py * w + px]);
                        assert!(
                            d.abs() <= 2,
                            "{p:?} block {i} ({lh}x{lv}) at {px},{py}: {d}"
                        );
                        compared += 1;
                    }
                }
            }
        }
        assert_eq!(compared, w * h);
    }
}

#[test]
fn zero_opacity_keeps_every_coefficient() {
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..10 {
        let p = random_params(&mut rng);
        let (w, h) = (usize::from(p.width), usize::from(p.height));
        let input = encode(&p, &photo_like(&mut rng, w, h));
        let rgba = random_mark(&mut rng, 30, 20);
        let out = stamp_baseline(&input, &rgba, 30, 20, 0, 0, 0).unwrap();
        let (a, b) = (
            read_coefficients(&input).unwrap(),
            read_coefficients(&out).unwrap(),
        );
        assert_eq!(a.blocks, b.blocks);
        assert_eq!(decode(&input).unwrap().2, decode(&out).unwrap().2);
    }
}

#[test]
fn the_seam_copies_every_byte_before_the_first_mcu_under_the_mark() {
    let p = Params {
        width: 333,
        height: 250,
        gray: false,
        sampling: SamplingFactor::F_2_2,
        restart: 0,
        optimized: false,
        quality: 85,
    };
    let mut rng = StdRng::seed_from_u64(3);
    let input = encode(&p, &photo_like(&mut rng, 333, 250));
    let rgba = vec![255u8; 50 * 20 * 4];
    let stamped = stamp(
        &input,
        &Mark {
            rgba: &rgba,
            width: 50,
            height: 20,
            x: 333 - 50,
            y: 250 - 20,
            opacity: 255,
        },
    )
    .unwrap();
    assert!(!stamped.rebuilt_tables);
    // The mark starts in the last two MCU rows of 16: nearly all is copied.
    assert!(stamped.copied_bytes > input.len() * 8 / 10, "{stamped:?}");
    assert_eq!(
        stamped.jpeg[..stamped.copied_bytes],
        input[..stamped.copied_bytes]
    );
    assert_ne!(stamped.jpeg, input);
}

fn sample_jpeg(gray: bool) -> Vec<u8> {
    let p = Params {
        width: 120,
        height: 90,
        gray,
        sampling: SamplingFactor::F_2_2,
        restart: 0,
        optimized: false,
        quality: 85,
    };
    let mut rng = StdRng::seed_from_u64(11);
    encode(&p, &photo_like(&mut rng, 120, 90))
}

fn stamp_small(jpeg: &[u8]) -> Result<Vec<u8>, FastPathError> {
    let rgba = vec![200u8; 10 * 10 * 4];
    stamp_baseline(jpeg, &rgba, 10, 10, 100, 70, 255)
}

#[test]
fn truncated_input_is_corrupt() {
    let jpeg = sample_jpeg(false);
    for cut in [3, 20, 200, jpeg.len() / 2, jpeg.len() - 40, jpeg.len() - 2] {
        match stamp_small(&jpeg[..cut]) {
            Err(FastPathError::Corrupt(_)) => {}
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn not_a_jpeg_is_corrupt() {
    for bytes in [&b""[..], b"hello world", b"\x89PNG\r\n\x1a\n0000000000"] {
        assert!(matches!(stamp_small(bytes), Err(FastPathError::Corrupt(_))));
    }
}

#[test]
fn progressive_and_cmyk_take_the_full_path() {
    let mut rng = StdRng::seed_from_u64(5);
    let rgb = photo_like(&mut rng, 64, 48);
    let mut progressive = Vec::new();
    let mut enc = Encoder::new(&mut progressive, 80);
    enc.set_progressive(true);
    enc.encode(&rgb, 64, 48, ColorType::Rgb).unwrap();
    assert_eq!(
        stamp_baseline(&progressive, &[0; 4], 1, 1, 0, 0, 255),
        Err(FastPathError::Unsupported("progressive jpeg"))
    );
    let cmyk_px: Vec<u8> = rgb.chunks(3).flat_map(|c| [c[0], c[1], c[2], 0]).collect();
    let mut cmyk = Vec::new();
    Encoder::new(&mut cmyk, 80)
        .encode(&cmyk_px, 64, 48, ColorType::Cmyk)
        .unwrap();
    assert_eq!(
        stamp_baseline(&cmyk, &[0; 4], 1, 1, 0, 0, 255),
        Err(FastPathError::Unsupported("cmyk or ycck jpeg"))
    );
}

fn exif_with_orientation(o: u16) -> Vec<u8> {
    let mut e = b"Exif\0\0II*\0\x08\0\0\0\x01\0".to_vec();
    e.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0]);
    e.extend_from_slice(&o.to_le_bytes());
    e.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    e
}

#[test]
fn exif_rotation_takes_the_full_path() {
    let mut rng = StdRng::seed_from_u64(6);
    let rgb = photo_like(&mut rng, 40, 30);
    for (o, ok) in [(1u16, true), (6, false), (3, false)] {
        let mut jpeg = Vec::new();
        let mut enc = Encoder::new(&mut jpeg, 80);
        enc.add_app_segment(1, &exif_with_orientation(o)).unwrap();
        enc.encode(&rgb, 40, 30, ColorType::Rgb).unwrap();
        let r = stamp_baseline(&jpeg, &[9; 4], 1, 1, 39, 29, 255);
        if ok {
            assert!(r.is_ok(), "{r:?}");
        } else {
            assert_eq!(
                r,
                Err(FastPathError::Unsupported("exif orientation other than 1"))
            );
        }
    }
}

#[test]
fn a_mark_outside_the_image_or_with_a_short_buffer_is_refused() {
    let jpeg = sample_jpeg(true);
    assert_eq!(
        stamp_baseline(&jpeg, &[0; 4], 1, 1, 120, 0, 255),
        Err(FastPathError::Unsupported("mark outside the image"))
    );
    assert_eq!(
        stamp_baseline(&jpeg, &[0; 3], 1, 1, 0, 0, 255),
        Err(FastPathError::Unsupported(
            "mark buffer does not match its size"
        ))
    );
}

#[test]
fn flipped_bytes_never_panic_and_never_give_an_undecodable_image() {
    let mut rng = StdRng::seed_from_u64(99);
    for round in 0..300 {
        let mut jpeg = sample_jpeg(round % 3 == 0);
        for _ in 0..rng.random_range(1..4) {
            let i = rng.random_range(2..jpeg.len());
            jpeg[i] ^= 1 << rng.random_range(0..8);
        }
        if let Ok(out) = stamp_small(&jpeg) {
            if decode(&out).is_none() {
                let err = |b: &[u8]| {
                    JpegDecoder::new(ZCursor::new(b))
                        .decode()
                        .err()
                        .map(|e| format!("{e:?}"))
                };
                panic!(
                    "round {round}: output does not decode: {:?}; input: {:?}",
                    err(&out),
                    err(&jpeg)
                );
            }
        }
    }
}
