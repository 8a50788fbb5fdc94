//! JPEG metadata, byte for byte: find the EXIF (APP1) and ICC (APP2)
//! segments of an upload, read and reset its EXIF orientation, remove the
//! GPS block, and put the segments back into an encoded output.
//!
//! Only the few TIFF fields the stamp needs are touched; everything else in
//! EXIF is kept as it came. A malformed EXIF block is dropped rather than
//! risk keeping a GPS position the caller asked to strip.

const EXIF_PREFIX: &[u8] = b"Exif\0\0";
const ICC_PREFIX: &[u8] = b"ICC_PROFILE\0";
const TAG_ORIENTATION: u16 = 0x0112;
const TAG_GPS_IFD: u16 = 0x8825;
/// Largest payload of one marker segment (65535 minus the length field).
const MAX_SEGMENT_PAYLOAD: usize = 65533;

/// The metadata segments of a JPEG, as their payloads (without marker and
/// length), in file order.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct JpegMetadata {
    /// The TIFF structure of the first APP1 `Exif` segment (prefix removed).
    pub exif: Option<Vec<u8>>,
    /// Every APP2 `ICC_PROFILE` segment payload, prefix included, in order.
    pub icc_segments: Vec<Vec<u8>>,
}

impl JpegMetadata {
    /// Scans the segments before the first scan (SOS). Never fails: a
    /// broken header simply yields less metadata (the decoder reports it).
    pub fn scan(jpeg: &[u8]) -> JpegMetadata {
        let mut meta = JpegMetadata::default();
        for (marker, payload) in segments(jpeg) {
            if marker == 0xE1 && payload.starts_with(EXIF_PREFIX) && meta.exif.is_none() {
                meta.exif = Some(payload[EXIF_PREFIX.len()..].to_vec());
            } else if marker == 0xE2 && payload.starts_with(ICC_PREFIX) {
                meta.icc_segments.push(payload.to_vec());
            }
        }
        meta
    }

    /// The EXIF orientation (1..=8), 1 when absent or out of range.
    pub fn orientation(&self) -> u16 {
        self.exif
            .as_deref()
            .and_then(exif_orientation)
            .filter(|o| (1..=8).contains(o))
            .unwrap_or(1)
    }

    /// The ICC profile reassembled from its segments, if any.
    pub fn icc_profile(&self) -> Option<Vec<u8>> {
        if self.icc_segments.is_empty() {
            return None;
        }
        let mut parts: Vec<&Vec<u8>> = self.icc_segments.iter().collect();
        // Byte 12 of each payload is its 1-based sequence number.
        parts.sort_by_key(|p| p.get(ICC_PREFIX.len()).copied().unwrap_or(0));
        Some(
            parts
                .iter()
                .flat_map(|p| p.get(ICC_PREFIX.len() + 2..).unwrap_or(&[]))
                .copied()
                .collect(),
        )
    }
}

/// Splits an ICC profile into APP2 payloads.
pub fn icc_segments(profile: &[u8]) -> Vec<Vec<u8>> {
    let chunk = MAX_SEGMENT_PAYLOAD - ICC_PREFIX.len() - 2;
    let chunks: Vec<&[u8]> = profile.chunks(chunk).collect();
    let count = chunks.len().min(255) as u8;
    chunks
        .iter()
        .take(255)
        .enumerate()
        .map(|(i, c)| {
            let mut p = Vec::with_capacity(ICC_PREFIX.len() + 2 + c.len());
            p.extend_from_slice(ICC_PREFIX);
            p.push(i as u8 + 1);
            p.push(count);
            p.extend_from_slice(c);
            p
        })
        .collect()
}

/// Iterates `(marker, payload)` over the segments before SOS.
fn segments(jpeg: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut pos = 2usize;
    let valid = jpeg.starts_with(&[0xFF, 0xD8]);
    std::iter::from_fn(move || {
        if !valid {
            return None;
        }
        loop {
            // Skip fill bytes before the marker.
            while jpeg.get(pos) == Some(&0xFF) && jpeg.get(pos + 1) == Some(&0xFF) {
                pos += 1;
            }
            if jpeg.get(pos) != Some(&0xFF) {
                return None;
            }
            let marker = *jpeg.get(pos + 1)?;
            match marker {
                0xD0..=0xD7 | 0x01 => {
                    pos += 2;
                    continue;
                }
                0xDA | 0xD9 => return None,
                _ => {}
            }
            let len = usize::from(u16::from_be_bytes([
                *jpeg.get(pos + 2)?,
                *jpeg.get(pos + 3)?,
            ]));
            if len < 2 {
                return None;
            }
            let payload = jpeg.get(pos + 4..pos + 2 + len)?;
            pos += 2 + len;
            return Some((marker, payload));
        }
    })
}

/// Writes `exif` (a TIFF structure) and the ICC segments into an encoded
/// JPEG, right after its SOI and JFIF APP0.
pub fn insert_segments(jpeg: &[u8], exif: Option<&[u8]>, icc_segments: &[Vec<u8>]) -> Vec<u8> {
    let mut at = 2usize;
    if let Some((0xE0, payload)) = segments(jpeg).next() {
        at += 4 + payload.len();
    }
    let at = at.min(jpeg.len());
    let extra: usize =
        exif.map_or(0, |e| e.len() + 10) + icc_segments.iter().map(|s| s.len() + 4).sum::<usize>();
    let mut out = Vec::with_capacity(jpeg.len() + extra);
    out.extend_from_slice(&jpeg[..at]);
    if let Some(tiff) = exif {
        if tiff.len() + EXIF_PREFIX.len() <= MAX_SEGMENT_PAYLOAD {
            push_segment(&mut out, 0xE1, &[EXIF_PREFIX, tiff]);
        }
    }
    for s in icc_segments {
        if s.len() <= MAX_SEGMENT_PAYLOAD {
            push_segment(&mut out, 0xE2, &[s]);
        }
    }
    out.extend_from_slice(&jpeg[at..]);
    out
}

fn push_segment(out: &mut Vec<u8>, marker: u8, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum::<usize>() + 2;
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&(len as u16).to_be_bytes());
    for p in parts {
        out.extend_from_slice(p);
    }
}

/// Byte order of a TIFF structure.
#[derive(Clone, Copy)]
struct Tiff {
    little: bool,
}

impl Tiff {
    fn open(tiff: &[u8]) -> Option<(Tiff, usize)> {
        let t = match tiff.get(..4)? {
            [b'I', b'I', 42, 0] => Tiff { little: true },
            [b'M', b'M', 0, 42] => Tiff { little: false },
            _ => return None,
        };
        let ifd0 = t.u32(tiff, 4)? as usize;
        Some((t, ifd0))
    }

    fn u16(self, b: &[u8], at: usize) -> Option<u16> {
        let s: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
        Some(if self.little {
            u16::from_le_bytes(s)
        } else {
            u16::from_be_bytes(s)
        })
    }

    fn u32(self, b: &[u8], at: usize) -> Option<u32> {
        let s: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(if self.little {
            u32::from_le_bytes(s)
        } else {
            u32::from_be_bytes(s)
        })
    }

    fn put_u16(self, b: &mut [u8], at: usize, v: u16) -> Option<()> {
        let bytes = if self.little {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        };
        b.get_mut(at..at + 2)?.copy_from_slice(&bytes);
        Some(())
    }

    /// Offsets of the 12-byte entries of the IFD at `ifd`.
    fn entries(self, b: &[u8], ifd: usize) -> Option<(usize, impl Iterator<Item = usize>)> {
        let count = usize::from(self.u16(b, ifd)?);
        b.get(ifd..ifd + 2 + 12 * count + 4)?;
        Some((count, (0..count).map(move |i| ifd + 2 + 12 * i)))
    }

    fn find(self, b: &[u8], ifd: usize, tag: u16) -> Option<usize> {
        let (_, mut entries) = self.entries(b, ifd)?;
        entries.find(|&e| self.u16(b, e) == Some(tag))
    }
}

/// The orientation tag of IFD0, if present.
pub fn exif_orientation(tiff: &[u8]) -> Option<u16> {
    let (t, ifd0) = Tiff::open(tiff)?;
    let e = t.find(tiff, ifd0, TAG_ORIENTATION)?;
    t.u16(tiff, e + 8)
}

/// Sets the orientation tag (when present) to 1: the pixels are now upright.
pub fn reset_orientation(tiff: &mut [u8]) {
    if let Some((t, ifd0)) = Tiff::open(tiff) {
        if let Some(e) = t.find(tiff, ifd0, TAG_ORIENTATION) {
            let _ = t.put_u16(tiff, e + 8, 1);
        }
    }
}

/// Removes the GPS block: zeroes the GPS IFD and the values it points to,
/// and deletes its pointer from IFD0. `None` when the structure is too
/// broken to be sure (the caller then drops EXIF altogether).
pub fn strip_gps(tiff: &mut [u8]) -> Option<()> {
    let (t, ifd0) = Tiff::open(tiff)?;
    // An unreadable IFD0 is a broken structure, not "no GPS".
    t.u16(tiff, ifd0)?;
    let Some(pointer) = t.find(tiff, ifd0, TAG_GPS_IFD) else {
        return Some(());
    };
    let gps = t.u32(tiff, pointer + 8)? as usize;
    // Zero the values stored outside the GPS IFD, then the IFD itself.
    let (count, entries) = t.entries(tiff, gps)?;
    let mut spans = Vec::new();
    for e in entries {
        let kind = t.u16(tiff, e + 2)?;
        let n = t.u32(tiff, e + 4)? as usize;
        let size = n.checked_mul(type_size(kind))?;
        if size > 4 {
            let at = t.u32(tiff, e + 8)? as usize;
            tiff.get(at..at.checked_add(size)?)?;
            spans.push(at..at + size);
        }
    }
    for s in spans {
        tiff[s].fill(0);
    }
    tiff[gps..gps + 2 + 12 * count + 4].fill(0);
    // Delete the pointer entry from IFD0: shift the later entries and the
    // next-IFD offset up by one entry.
    let (n0, _) = t.entries(tiff, ifd0)?;
    let end = ifd0 + 2 + 12 * n0 + 4;
    tiff.copy_within(pointer + 12..end, pointer);
    tiff[end - 12..end].fill(0);
    t.put_u16(tiff, ifd0, (n0 - 1) as u16)?;
    Some(())
}

fn type_size(kind: u16) -> usize {
    match kind {
        1 | 2 | 6 | 7 => 1,
        3 | 8 => 2,
        4 | 9 | 11 => 4,
        5 | 10 | 12 => 8,
        _ => 1,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A little-endian TIFF with IFD0 = {Orientation, GPS pointer, Make}
    /// and a GPS IFD holding a latitude (3 rationals, stored out of line).
    pub fn tiff_with(orientation: u16, gps: bool) -> Vec<u8> {
        let mut b = b"II*\0".to_vec();
        b.extend_from_slice(&8u32.to_le_bytes());
        let entries: u16 = if gps { 3 } else { 2 };
        b.extend_from_slice(&entries.to_le_bytes());
        // Orientation SHORT 1
        b.extend_from_slice(&TAG_ORIENTATION.to_le_bytes());
        b.extend_from_slice(&3u16.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&u32::from(orientation).to_le_bytes());
        // Make ASCII "ACME\0" -> 5 bytes, out of line (offset filled below)
        let make_entry = b.len();
        b.extend_from_slice(&0x010Fu16.to_le_bytes());
        b.extend_from_slice(&2u16.to_le_bytes());
        b.extend_from_slice(&5u32.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        let gps_entry = b.len();
        if gps {
            b.extend_from_slice(&TAG_GPS_IFD.to_le_bytes());
            b.extend_from_slice(&4u16.to_le_bytes());
            b.extend_from_slice(&1u32.to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
        }
        b.extend_from_slice(&0u32.to_le_bytes()); // no IFD1
        let make_at = b.len() as u32;
        b[make_entry + 8..make_entry + 12].copy_from_slice(&make_at.to_le_bytes());
        b.extend_from_slice(b"ACME\0");
        if gps {
            let gps_at = b.len() as u32;
            b[gps_entry + 8..gps_entry + 12].copy_from_slice(&gps_at.to_le_bytes());
            b.extend_from_slice(&1u16.to_le_bytes());
            b.extend_from_slice(&2u16.to_le_bytes()); // GPSLatitude
            b.extend_from_slice(&5u16.to_le_bytes()); // RATIONAL
            b.extend_from_slice(&3u32.to_le_bytes());
            let lat_at = gps_at + 2 + 12 + 4;
            b.extend_from_slice(&lat_at.to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
            for v in [48u32, 1, 51, 1, 24, 1] {
                b.extend_from_slice(&v.to_le_bytes());
            }
        }
        b
    }

    /// Wraps a TIFF in an APP1 segment right after SOI of `jpeg`.
    pub fn with_exif(jpeg: &[u8], tiff: &[u8]) -> Vec<u8> {
        let mut out = jpeg[..2].to_vec();
        push_segment(&mut out, 0xE1, &[EXIF_PREFIX, tiff]);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    #[test]
    fn reads_and_resets_orientation() {
        let mut t = tiff_with(6, true);
        assert_eq!(exif_orientation(&t), Some(6));
        reset_orientation(&mut t);
        assert_eq!(exif_orientation(&t), Some(1));
    }

    #[test]
    fn strips_gps_and_keeps_the_rest() {
        let mut t = tiff_with(8, true);
        let lat = [48u32, 1, 51].map(u32::to_le_bytes).concat();
        assert!(t.windows(lat.len()).any(|w| w == lat));
        strip_gps(&mut t).unwrap();
        let (tf, ifd0) = Tiff::open(&t).unwrap();
        assert!(tf.find(&t, ifd0, TAG_GPS_IFD).is_none());
        assert!(
            !t.windows(lat.len()).any(|w| w == lat),
            "latitude left behind"
        );
        assert_eq!(exif_orientation(&t), Some(8));
        assert!(t.windows(5).any(|w| w == b"ACME\0"));
        // The next-IFD offset still reads as "none".
        let (n, _) = tf.entries(&t, ifd0).unwrap();
        assert_eq!(tf.u32(&t, ifd0 + 2 + 12 * n), Some(0));
    }

    #[test]
    fn broken_tiff_is_reported() {
        let mut t = tiff_with(1, true);
        let len = t.len();
        t.truncate(len - 10);
        assert!(strip_gps(&mut t).is_none());
        assert_eq!(exif_orientation(b"nope"), None);
        assert_eq!(strip_gps(&mut b"II*\0\xff\xff\xff\xff".to_vec()), None);
    }

    #[test]
    fn scans_and_reinserts_segments() {
        let jpeg = [0xFF, 0xD8, 0xFF, 0xDA, 0, 2, 0xFF, 0xD9];
        let tiff = tiff_with(3, false);
        let icc = icc_segments(&[7u8; 100_000]);
        assert_eq!(icc.len(), 2);
        let out = insert_segments(&jpeg, Some(&tiff), &icc);
        let meta = JpegMetadata::scan(&out);
        assert_eq!(meta.exif.as_deref(), Some(&tiff[..]));
        assert_eq!(meta.orientation(), 3);
        assert_eq!(meta.icc_profile(), Some(vec![7u8; 100_000]));
        assert!(out.ends_with(&jpeg[2..]));
    }

    #[test]
    fn garbage_scans_to_nothing() {
        assert_eq!(JpegMetadata::scan(b""), JpegMetadata::default());
        assert_eq!(
            JpegMetadata::scan(&[0xFF, 0xD8, 0xFF, 0xE1, 0xFF]),
            JpegMetadata::default()
        );
        assert_eq!(JpegMetadata::default().orientation(), 1);
    }
}
