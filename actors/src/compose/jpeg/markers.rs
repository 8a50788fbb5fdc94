//! JPEG marker parsing up to the first scan: frame, tables, restart interval,
//! and the checks that decide whether the fast path may run at all.
//!
//! Only what the fast path can rewrite losslessly passes: baseline or
//! extended-sequential Huffman frames (SOF0/SOF1) with 8-bit samples, one or
//! three components (YCbCr or grayscale), a single scan holding every
//! component, and EXIF orientation 1 (or none).

use super::FastPathError;

/// One component of the frame and the tables its scan uses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Component {
    pub h: usize,
    pub v: usize,
    /// Quantisation table slot.
    pub tq: usize,
    /// DC Huffman table slot (from the SOS header).
    pub td: usize,
    /// AC Huffman table slot (from the SOS header).
    pub ta: usize,
}

/// A Huffman table as stored in a DHT segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HuffSpec {
    pub counts: [u8; 16],
    pub values: Vec<u8>,
}

/// Everything the scan walk needs, plus the byte ranges the rewrite needs.
#[derive(Debug)]
pub(crate) struct Header {
    pub width: usize,
    pub height: usize,
    pub comps: Vec<Component>,
    pub hmax: usize,
    pub vmax: usize,
    /// Quantisation tables in zigzag order, by slot.
    pub qt: [Option<[u16; 64]>; 4],
    pub dc: [Option<HuffSpec>; 4],
    pub ac: [Option<HuffSpec>; 4],
    /// MCUs per restart interval; 0 = no restarts.
    pub restart_interval: usize,
    /// Offset of the SOS marker (0xFF 0xDA).
    pub sos_offset: usize,
    /// Offset of the first entropy-coded byte.
    pub scan_start: usize,
    /// Byte ranges of the DHT segments (marker included), for the rewrite
    /// with fresh tables.
    pub dht_ranges: Vec<(usize, usize)>,
}

impl Header {
    /// MCU width and height in pixels.
    pub fn mcu_size(&self) -> (usize, usize) {
        if self.comps.len() == 1 {
            (8, 8)
        } else {
            (8 * self.hmax, 8 * self.vmax)
        }
    }

    /// MCUs per row and MCU rows.
    pub fn mcu_grid(&self) -> (usize, usize) {
        let (mw, mh) = self.mcu_size();
        (self.width.div_ceil(mw), self.height.div_ceil(mh))
    }

    /// Blocks one component contributes to an MCU (1 for a single-component scan).
    pub fn blocks_of(&self, c: usize) -> (usize, usize) {
        if self.comps.len() == 1 {
            (1, 1)
        } else {
            (self.comps[c].h, self.comps[c].v)
        }
    }
}

fn corrupt(what: &str) -> FastPathError {
    FastPathError::Corrupt(what.to_string())
}

fn be16(data: &[u8], at: usize) -> Result<usize, FastPathError> {
    match data.get(at..at + 2) {
        Some(b) => Ok(usize::from(b[0]) << 8 | usize::from(b[1])),
        None => Err(corrupt("truncated marker segment")),
    }
}

/// Parses from SOI up to the end of the SOS header.
pub(crate) fn parse(data: &[u8]) -> Result<Header, FastPathError> {
    if data.len() < 4 || data[0] != 0xFF || data[1] != 0xD8 {
        return Err(corrupt("not a jpeg (no start-of-image marker)"));
    }
    let mut pos = 2;
    let mut frame: Option<(usize, usize, FrameComps)> = None;
    let mut qt: [Option<[u16; 64]>; 4] = [None; 4];
    let mut dc: [Option<HuffSpec>; 4] = Default::default();
    let mut ac: [Option<HuffSpec>; 4] = Default::default();
    let mut restart_interval = 0;
    let mut dht_ranges = Vec::new();
    let mut adobe_transform: Option<u8> = None;
    loop {
        // A marker, possibly preceded by fill bytes.
        if data.get(pos) != Some(&0xFF) {
            return Err(corrupt("expected a marker"));
        }
        while data.get(pos) == Some(&0xFF) {
            pos += 1;
        }
        let Some(&code) = data.get(pos) else {
            return Err(corrupt("truncated before the scan"));
        };
        let marker_at = pos - 1;
        pos += 1;
        match code {
            0xD8 | 0x00 => return Err(corrupt("unexpected marker before the scan")),
            0xD9 => return Err(corrupt("end of image before any scan")),
            0x01 | 0xD0..=0xD7 => continue, // standalone markers, no length
            _ => {}
        }
        let len = be16(data, pos)?;
        if len < 2 || pos + len > data.len() {
            return Err(corrupt("marker segment runs past the end"));
        }
        let seg = &data[pos + 2..pos + len];
        let next = pos + len;
        match code {
            0xC0 | 0xC1 => {
                if frame.is_some() {
                    return Err(corrupt("two frame headers"));
                }
                frame = Some(parse_sof(seg)?);
            }
            0xC2 | 0xC6 | 0xCA | 0xCE => {
                return Err(FastPathError::Unsupported("progressive jpeg"))
            }
            0xC3 | 0xC7 | 0xCB | 0xCF => return Err(FastPathError::Unsupported("lossless jpeg")),
            0xC5 => return Err(FastPathError::Unsupported("hierarchical jpeg")),
            0xC9 | 0xCC => return Err(FastPathError::Unsupported("arithmetic coding")),
            0xC8 => return Err(FastPathError::Unsupported("reserved frame type")),
            0xC4 => {
                parse_dht(seg, &mut dc, &mut ac)?;
                dht_ranges.push((marker_at, next));
            }
            0xDB => parse_dqt(seg, &mut qt)?,
            0xDD => {
                if seg.len() != 2 {
                    return Err(corrupt("bad restart interval segment"));
                }
                restart_interval = usize::from(seg[0]) << 8 | usize::from(seg[1]);
            }
            0xDC => return Err(FastPathError::Unsupported("number of lines after the scan")),
            0xE1 => check_exif(seg)?,
            0xEE if seg.len() >= 12 && &seg[..5] == b"Adobe" => adobe_transform = Some(seg[11]),
            0xDA => {
                let Some((width, height, fcomps)) = frame else {
                    return Err(corrupt("scan before the frame header"));
                };
                if fcomps.len() == 3 && adobe_transform == Some(0) {
                    return Err(FastPathError::Unsupported("rgb jpeg"));
                }
                let comps = parse_sos(seg, &fcomps)?;
                for c in &comps {
                    if qt[c.tq].is_none() {
                        return Err(corrupt("missing quantisation table"));
                    }
                    if dc[c.td].is_none() || ac[c.ta].is_none() {
                        return Err(corrupt("missing huffman table"));
                    }
                }
                let hmax = comps.iter().map(|c| c.h).max().unwrap_or(1);
                let vmax = comps.iter().map(|c| c.v).max().unwrap_or(1);
                if comps.iter().any(|c| hmax % c.h != 0 || vmax % c.v != 0) {
                    return Err(FastPathError::Unsupported("fractional chroma sampling"));
                }
                return Ok(Header {
                    width,
                    height,
                    comps,
                    hmax,
                    vmax,
                    qt,
                    dc,
                    ac,
                    restart_interval,
                    sos_offset: marker_at,
                    scan_start: next,
                    dht_ranges,
                });
            }
            _ => {} // APPn, COM and others: skipped
        }
        pos = next;
    }
}

type FrameComps = Vec<(u8, usize, usize, usize)>;

fn parse_sof(seg: &[u8]) -> Result<(usize, usize, FrameComps), FastPathError> {
    if seg.len() < 6 {
        return Err(corrupt("short frame header"));
    }
    if seg[0] != 8 {
        return Err(FastPathError::Unsupported(
            "sample precision other than 8 bits",
        ));
    }
    let height = usize::from(seg[1]) << 8 | usize::from(seg[2]);
    let width = usize::from(seg[3]) << 8 | usize::from(seg[4]);
    let n = usize::from(seg[5]);
    if height == 0 {
        return Err(FastPathError::Unsupported("height defined after the scan"));
    }
    if width == 0 {
        return Err(corrupt("zero image width"));
    }
    match n {
        1 | 3 => {}
        4 => return Err(FastPathError::Unsupported("cmyk or ycck jpeg")),
        _ => {
            return Err(FastPathError::Unsupported(
                "component count other than 1 or 3",
            ))
        }
    }
    if seg.len() != 6 + 3 * n {
        return Err(corrupt("bad frame header length"));
    }
    let mut comps = Vec::with_capacity(n);
    for i in 0..n {
        let c = &seg[6 + 3 * i..9 + 3 * i];
        let (h, v, tq) = (
            usize::from(c[1] >> 4),
            usize::from(c[1] & 15),
            usize::from(c[2]),
        );
        if !(1..=4).contains(&h) || !(1..=4).contains(&v) || tq > 3 {
            return Err(corrupt("bad component in the frame header"));
        }
        comps.push((c[0], h, v, tq));
    }
    if n == 3 && comps.iter().map(|c| c.1 * c.2).sum::<usize>() > 10 {
        return Err(corrupt("more than 10 blocks per mcu"));
    }
    if n == 3 && comps.iter().map(|c| c.0).collect::<Vec<_>>() == b"RGB" {
        return Err(FastPathError::Unsupported("rgb jpeg"));
    }
    Ok((width, height, comps))
}

fn parse_sos(seg: &[u8], fcomps: &FrameComps) -> Result<Vec<Component>, FastPathError> {
    let n = usize::from(*seg.first().ok_or_else(|| corrupt("short scan header"))?);
    if seg.len() != 1 + 2 * n + 3 {
        return Err(corrupt("bad scan header length"));
    }
    if n != fcomps.len() {
        return Err(FastPathError::Unsupported("scan without every component"));
    }
    let mut comps = Vec::with_capacity(n);
    for (i, f) in fcomps.iter().enumerate() {
        let s = &seg[1 + 2 * i..3 + 2 * i];
        if s[0] != f.0 {
            return Err(FastPathError::Unsupported(
                "scan components out of frame order",
            ));
        }
        let (td, ta) = (usize::from(s[1] >> 4), usize::from(s[1] & 15));
        if td > 3 || ta > 3 {
            return Err(corrupt("bad huffman table slot"));
        }
        comps.push(Component {
            h: f.1,
            v: f.2,
            tq: f.3,
            td,
            ta,
        });
    }
    let (ss, se, a) = (seg[1 + 2 * n], seg[2 + 2 * n], seg[3 + 2 * n]);
    if ss != 0 || se != 63 || a != 0 {
        return Err(corrupt("baseline scan with spectral selection"));
    }
    Ok(comps)
}

fn parse_dht(
    mut seg: &[u8],
    dc: &mut [Option<HuffSpec>; 4],
    ac: &mut [Option<HuffSpec>; 4],
) -> Result<(), FastPathError> {
    while !seg.is_empty() {
        if seg.len() < 17 {
            return Err(corrupt("short huffman table"));
        }
        let (class, slot) = (seg[0] >> 4, usize::from(seg[0] & 15));
        if class > 1 || slot > 3 {
            return Err(corrupt("bad huffman table class or slot"));
        }
        let mut counts = [0u8; 16];
        counts.copy_from_slice(&seg[1..17]);
        let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
        if total > 256 || seg.len() < 17 + total {
            return Err(corrupt("bad huffman table size"));
        }
        let spec = HuffSpec {
            counts,
            values: seg[17..17 + total].to_vec(),
        };
        if class == 0 {
            dc[slot] = Some(spec);
        } else {
            ac[slot] = Some(spec);
        }
        seg = &seg[17 + total..];
    }
    Ok(())
}

fn parse_dqt(mut seg: &[u8], qt: &mut [Option<[u16; 64]>; 4]) -> Result<(), FastPathError> {
    while !seg.is_empty() {
        let (precision, slot) = (seg[0] >> 4, usize::from(seg[0] & 15));
        if slot > 3 || precision > 1 {
            return Err(corrupt("bad quantisation table"));
        }
        let size = if precision == 0 { 64 } else { 128 };
        if seg.len() < 1 + size {
            return Err(corrupt("short quantisation table"));
        }
        let mut table = [0u16; 64];
        for (k, t) in table.iter_mut().enumerate() {
            *t = if precision == 0 {
                u16::from(seg[1 + k])
            } else {
                u16::from(seg[1 + 2 * k]) << 8 | u16::from(seg[2 + 2 * k])
            };
            if *t == 0 {
                return Err(corrupt("zero in a quantisation table"));
            }
        }
        qt[slot] = Some(table);
        seg = &seg[1 + size..];
    }
    Ok(())
}

/// Refuses EXIF orientation other than 1: the mark must land where a person
/// sees the bottom-right, which only the full path (which rotates) can do.
fn check_exif(seg: &[u8]) -> Result<(), FastPathError> {
    if seg.len() < 6 || &seg[..6] != b"Exif\0\0" {
        return Ok(());
    }
    let unreadable = FastPathError::Unsupported("unreadable exif");
    let tiff = &seg[6..];
    if tiff.len() < 8 {
        return Err(unreadable);
    }
    let big = match &tiff[..2] {
        b"MM" => true,
        b"II" => false,
        _ => return Err(unreadable),
    };
    let u16_at = |at: usize| -> Option<u16> {
        let b = tiff.get(at..at + 2)?;
        Some(if big {
            u16::from_be_bytes([b[0], b[1]])
        } else {
            u16::from_le_bytes([b[0], b[1]])
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b = tiff.get(at..at + 4)?;
        let a = [b[0], b[1], b[2], b[3]];
        Some(if big {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        })
    };
    let ifd = u32_at(4).ok_or(FastPathError::Unsupported("unreadable exif"))? as usize;
    let Some(count) = u16_at(ifd) else {
        return Err(unreadable);
    };
    for i in 0..usize::from(count) {
        let entry = ifd + 2 + 12 * i;
        let Some(tag) = u16_at(entry) else {
            return Err(unreadable);
        };
        if tag == 0x0112 {
            return match u16_at(entry + 8) {
                Some(1) => Ok(()),
                _ => Err(FastPathError::Unsupported("exif orientation other than 1")),
            };
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    type Writers = (fn(u16) -> [u8; 2], fn(u32) -> [u8; 4]);

    fn exif(big_endian: bool, orientation: u16) -> Vec<u8> {
        let mut e = b"Exif\0\0".to_vec();
        let (u16b, u32b): Writers = if big_endian {
            e.extend_from_slice(b"MM\0*");
            (u16::to_be_bytes, u32::to_be_bytes)
        } else {
            e.extend_from_slice(b"II*\0");
            (u16::to_le_bytes, u32::to_le_bytes)
        };
        e.extend_from_slice(&u32b(8));
        e.extend_from_slice(&u16b(2));
        // An unrelated tag first, then the orientation.
        e.extend_from_slice(&u16b(0x010F));
        e.extend_from_slice(&u16b(2));
        e.extend_from_slice(&u32b(4));
        e.extend_from_slice(&u32b(0));
        e.extend_from_slice(&u16b(0x0112));
        e.extend_from_slice(&u16b(3));
        e.extend_from_slice(&u32b(1));
        e.extend_from_slice(&u16b(orientation));
        e.extend_from_slice(&[0, 0]);
        e
    }

    #[test]
    fn exif_orientation_is_read_in_both_byte_orders() {
        for big in [true, false] {
            assert_eq!(check_exif(&exif(big, 1)), Ok(()));
            assert_eq!(
                check_exif(&exif(big, 8)),
                Err(FastPathError::Unsupported("exif orientation other than 1"))
            );
        }
        assert_eq!(check_exif(b"XMP stuff"), Ok(()));
        assert_eq!(
            check_exif(b"Exif\0\0II*\0\xff\xff\0\0"),
            Err(FastPathError::Unsupported("unreadable exif"))
        );
    }

    #[test]
    fn sixteen_bit_quantisation_tables_are_read() {
        let mut seg = vec![0x11];
        for k in 0..64u16 {
            seg.extend_from_slice(&(300 + k).to_be_bytes());
        }
        let mut qt = [None; 4];
        parse_dqt(&seg, &mut qt).unwrap();
        let t = qt[1].unwrap();
        assert_eq!((t[0], t[63]), (300, 363));
        assert!(parse_dqt(&seg[..100], &mut qt).is_err());
    }

    #[test]
    fn frame_headers_are_checked() {
        // 12-bit precision.
        assert_eq!(
            parse_sof(&[12, 0, 8, 0, 8, 1, 1, 0x11, 0]).err(),
            Some(FastPathError::Unsupported(
                "sample precision other than 8 bits"
            ))
        );
        // Four components.
        let cmyk = [
            8, 0, 8, 0, 8, 4, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0, 4, 0x11, 0,
        ];
        assert_eq!(
            parse_sof(&cmyk).err(),
            Some(FastPathError::Unsupported("cmyk or ycck jpeg"))
        );
        // Length that does not match the component count.
        assert!(matches!(
            parse_sof(&[8, 0, 8, 0, 8, 1, 1, 0x11, 0, 0]),
            Err(FastPathError::Corrupt(_))
        ));
        // Sampling factor 0.
        assert!(matches!(
            parse_sof(&[8, 0, 8, 0, 8, 1, 1, 0x01, 0]),
            Err(FastPathError::Corrupt(_))
        ));
        let (w, h, comps) = parse_sof(&[8, 0, 9, 0, 17, 1, 1, 0x22, 0]).unwrap();
        assert_eq!((w, h, comps[0].1, comps[0].2), (17, 9, 2, 2));
    }

    #[test]
    fn over_subscribed_or_short_huffman_tables_are_corrupt() {
        let mut dc: [Option<HuffSpec>; 4] = Default::default();
        let mut ac: [Option<HuffSpec>; 4] = Default::default();
        // Claims 3 one-bit codes but has data for them: parsed, then refused
        // when the codes are built.
        let mut seg = vec![0x00, 3];
        seg.extend_from_slice(&[0; 15]);
        seg.extend_from_slice(&[0, 1, 2]);
        parse_dht(&seg, &mut dc, &mut ac).unwrap();
        assert!(super::super::huffman::DecodeTable::new(dc[0].as_ref().unwrap(), false).is_err());
        // Too short for its counts.
        assert!(parse_dht(&seg[..18], &mut dc, &mut ac).is_err());
        // Class 2 does not exist.
        let mut bad = seg.clone();
        bad[0] = 0x20;
        assert!(parse_dht(&bad, &mut dc, &mut ac).is_err());
    }
}
