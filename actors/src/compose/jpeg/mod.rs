//! The JPEG fast path: stamp a mark on a baseline JPEG by re-encoding only
//! the rows from the first MCU under the mark, bit-exact elsewhere.
//!
//! How it works (see `docs/fastpath.md`):
//! 1. [`markers`] parses the header and refuses what only the full path can
//!    do ([`FastPathError::Unsupported`]).
//! 2. The scan is walked (Huffman-decoded without storing anything) up to
//!    the first MCU the mark touches; with restart intervals the walk starts
//!    at the restart marker before that MCU instead. Every byte before that
//!    bit is copied; the bits of the seam byte that belong to earlier MCUs
//!    are carried into the encoder, which stuffs 0xFF as needed.
//! 3. The MCUs under the mark are decoded into coefficients, the rest of the
//!    scan only stepped over (noting where its bits lie). Each MCU under the
//!    mark is decoded to pixels, blended with [`crate::compose::blend`] in
//!    RGB, and only the blocks whose pixels changed are transformed and
//!    quantised again with the image's own tables; every other block keeps
//!    its coefficients.
//! 4. The tail is written with the image's tables, continuing the DC
//!    predictors and the restart sequence: changed blocks are encoded, the
//!    bits of the others copied (a DC difference encoded again where the
//!    block before changed). When those (optimised) tables lack a symbol,
//!    the whole scan is re-encoded with fresh optimal tables — still
//!    lossless outside the mark.

mod dct;
mod huffman;
mod markers;

use crate::compose::blend::{blend_channel_f32, effective_alpha_f32};
use huffman::{BitReader, BitWriter, DecodeTable, EncodeTable, Frequencies};
use markers::{Header, HuffSpec};
use std::rc::Rc;

/// Why the fast path did not produce an image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FastPathError {
    /// Valid input the fast path does not cover: take the full path.
    #[error("not covered by the jpeg fast path: {0}")]
    Unsupported(&'static str),
    /// The input is not a decodable JPEG.
    #[error("corrupt jpeg: {0}")]
    Corrupt(String),
}

/// A stamped JPEG and what it took.
#[derive(Clone)]
pub struct Stamped {
    pub jpeg: Vec<u8>,
    /// `jpeg[..copied_bytes]` is the input's first `copied_bytes` bytes.
    pub copied_bytes: usize,
    /// Blocks whose coefficients were computed again from blended pixels.
    pub blocks_changed: usize,
    /// The image's Huffman tables lacked a symbol: the whole scan was
    /// re-encoded with fresh optimal tables.
    pub rebuilt_tables: bool,
}

impl std::fmt::Debug for Stamped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stamped")
            .field("jpeg_bytes", &self.jpeg.len())
            .field("copied_bytes", &self.copied_bytes)
            .field("blocks_changed", &self.blocks_changed)
            .field("rebuilt_tables", &self.rebuilt_tables)
            .finish()
    }
}

/// A straight-alpha RGBA8 mark placed with its top-left corner at `(x, y)`.
#[derive(Clone, Copy)]
pub struct Mark<'a> {
    pub rgba: &'a [u8],
    pub width: u32,
    pub height: u32,
    pub x: u32,
    pub y: u32,
    /// Opacity in 0..=255, applied on top of the mark's alpha.
    pub opacity: u8,
}

/// Stamps `mark_rgba` (straight RGBA8, `mark_w` x `mark_h`) at `(x, y)` on a
/// baseline JPEG; a mark crossing the right or bottom edge is clipped.
pub fn stamp_baseline(
    jpeg: &[u8],
    mark_rgba: &[u8],
    mark_w: u32,
    mark_h: u32,
    x: u32,
    y: u32,
    opacity_u8: u8,
) -> Result<Vec<u8>, FastPathError> {
    let mark = Mark {
        rgba: mark_rgba,
        width: mark_w,
        height: mark_h,
        x,
        y,
        opacity: opacity_u8,
    };
    stamp(jpeg, &mark).map(|s| s.jpeg)
}

/// [`stamp_baseline`] with a report of what was done.
pub fn stamp(jpeg: &[u8], mark: &Mark<'_>) -> Result<Stamped, FastPathError> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("bmi1")
        && std::arch::is_x86_feature_detected!("bmi2")
        && std::arch::is_x86_feature_detected!("lzcnt")
        && std::arch::is_x86_feature_detected!("popcnt")
    {
        // SAFETY: the CPU has every feature `stamp_x86_v3` is compiled for.
        return unsafe { stamp_x86_v3(jpeg, mark) };
    }
    stamp_portable(jpeg, mark)
}

/// [`stamp_portable`] compiled for the x86-64 CPUs of the last decade
/// (AVX2, BMI2): the blend and the transforms work on eight lanes instead
/// of four, and shifts take one instruction. The hot functions are
/// `#[inline(always)]` so that they are compiled here too. Same output to
/// the byte: the operations are the same, only wider (no FMA: the feature
/// list leaves it out, and Rust never contracts float operations anyway).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi1,bmi2,lzcnt,popcnt")]
unsafe fn stamp_x86_v3(jpeg: &[u8], mark: &Mark<'_>) -> Result<Stamped, FastPathError> {
    stamp_portable(jpeg, mark)
}

/// [`stamp`] for any CPU the build targets.
#[inline(always)]
fn stamp_portable(jpeg: &[u8], mark: &Mark<'_>) -> Result<Stamped, FastPathError> {
    let expected = mark.width as usize * mark.height as usize * 4;
    if mark.rgba.len() != expected {
        return Err(FastPathError::Unsupported(
            "mark buffer does not match its size",
        ));
    }
    let hdr = markers::parse(jpeg)?;
    let scan = Scan::new(&hdr)?;
    let (w, h) = (hdr.width, hdr.height);
    let (mx, my) = (mark.x as usize, mark.y as usize);
    if mark.width == 0 || mark.height == 0 || mx >= w || my >= h {
        return Err(FastPathError::Unsupported("mark outside the image"));
    }
    let rect = Rect {
        x0: mx,
        y0: my,
        x1: (mx + mark.width as usize).min(w),
        y1: (my + mark.height as usize).min(h),
    };
    let (mcu_w, mcu_h) = hdr.mcu_size();
    let (mcus_per_row, mcu_rows) = hdr.mcu_grid();
    let (col0, col1) = (rect.x0 / mcu_w, (rect.x1 - 1) / mcu_w);
    let (row0, row1) = (rect.y0 / mcu_h, (rect.y1 - 1) / mcu_h);
    let first = row0 * mcus_per_row + col0;
    let total = mcus_per_row * mcu_rows;
    let bpm = scan.plan.len();
    check_size(jpeg, &hdr, total * bpm)?;

    // Walk to the seam.
    let (reader, preds_at_seam) = scan.walk_to(jpeg, first)?;
    let (seam, seam_bits) = reader.position()?;

    // Go over the tail: the MCUs under the mark are decoded, the others
    // only stepped over, noting where their bits lie.
    let boxed = MarkBox {
        mcus_per_row,
        cols: (col0, col1),
        rows: (row0, row1),
    };
    let mut tail = scan.tail(reader, preds_at_seam.clone(), first, total, &boxed)?;
    let scan_end = tail.end;
    check_end_of_image(jpeg, scan_end)?;

    // Blend the MCUs under the mark.
    let mut blocks_changed = 0;
    let mut blender = Blender::new(&hdr, rect, *mark);
    for row in row0..=row1 {
        for col in col0..=col1 {
            let t = boxed.index(row * mcus_per_row + col);
            let origin = (col * mcu_w, row * mcu_h);
            let range = t * bpm..(t + 1) * bpm;
            let changed = blender.stamp_mcu(&mut tail.boxed[range.clone()], origin);
            for (b, flag) in tail.changed[range].iter_mut().enumerate() {
                *flag = changed & (1 << b) != 0;
            }
            blocks_changed += changed.count_ones() as usize;
        }
    }

    // Entropy-code the tail after the copied bytes: blocks that changed are
    // encoded, the bits of the others copied (with their DC difference
    // encoded again when the block before them changed).
    let mut out = Vec::with_capacity(jpeg.len() + 4096);
    out.extend_from_slice(&jpeg[..seam]);
    let prefix = if seam_bits > 0 {
        jpeg[seam] >> (8 - seam_bits)
    } else {
        0
    };
    let mut writer = BitWriter::new(out, prefix, seam_bits);
    let tables = scan.encode_tables(&hdr)?;
    match tail.encode(jpeg, &mut writer, &tables, preds_at_seam.clone()) {
        Ok(()) => {
            writer.pad();
            let mut out = writer.out;
            out.extend_from_slice(&jpeg[scan_end..]);
            Ok(Stamped {
                jpeg: out,
                copied_bytes: seam,
                blocks_changed,
                rebuilt_tables: false,
            })
        }
        Err(huffman::MissingSymbol) => {
            // Every coefficient of the tail is needed: decode it again and
            // put the blended MCUs in.
            let mut blocks = vec![[0i16; 64]; (total - first) * bpm];
            let mut preds = preds_at_seam;
            scan.decode(&mut reader.clone(), &mut preds, first, total, &mut blocks)?;
            for row in row0..=row1 {
                for col in col0..=col1 {
                    let m = row * mcus_per_row + col;
                    let t = boxed.index(m);
                    blocks[(m - first) * bpm..(m - first + 1) * bpm]
                        .copy_from_slice(&tail.boxed[t * bpm..(t + 1) * bpm]);
                }
            }
            let jpeg = rebuild_with_optimal_tables(jpeg, &hdr, &scan, first, &blocks, scan_end)?;
            let copied_bytes = hdr.dht_ranges.first().map_or(hdr.sos_offset, |r| r.0);
            Ok(Stamped {
                jpeg,
                copied_bytes,
                blocks_changed,
                rebuilt_tables: true,
            })
        }
    }
}

/// The MCUs the mark reaches: columns and rows, both inclusive.
struct MarkBox {
    mcus_per_row: usize,
    cols: (usize, usize),
    rows: (usize, usize),
}

impl MarkBox {
    fn contains(&self, m: usize) -> bool {
        let (row, col) = (m / self.mcus_per_row, m % self.mcus_per_row);
        (self.rows.0..=self.rows.1).contains(&row) && (self.cols.0..=self.cols.1).contains(&col)
    }

    /// The place of MCU `m` (inside the box) among the box's MCUs.
    fn index(&self, m: usize) -> usize {
        let (row, col) = (m / self.mcus_per_row, m % self.mcus_per_row);
        (row - self.rows.0) * (self.cols.1 - self.cols.0 + 1) + col - self.cols.0
    }

    /// The first MCU at or after `m` inside the box, or `None`.
    fn next_from(&self, m: usize) -> Option<usize> {
        let (row, col) = (m / self.mcus_per_row, m % self.mcus_per_row);
        let at = |r: usize| r * self.mcus_per_row + self.cols.0;
        if row < self.rows.0 {
            Some(at(self.rows.0))
        } else if row > self.rows.1 {
            None
        } else if col <= self.cols.1 {
            Some(at(row).max(m))
        } else if row < self.rows.1 {
            Some(at(row + 1))
        } else {
            None
        }
    }
}

/// Where a stretch of the tail lies in the file: bit addresses
/// (`byte * 8 + bit`, the byte being a data byte of the stuffed stream).
type BitAddr = usize;

fn bit_addr(reader: &BitReader<'_>) -> Result<BitAddr, FastPathError> {
    let (byte, bit) = reader.position()?;
    Ok(byte * 8 + bit as usize)
}

/// One piece of the tail, in scan order.
enum Piece {
    /// A block the encoder may have to touch: inside the box (its
    /// coefficients are `Tail::boxed[slot]`), or just after it (its DC
    /// difference may change).
    Block {
        comp: usize,
        start: BitAddr,
        dc_end: BitAddr,
        end: BitAddr,
        dc: i32,
        slot: Option<usize>,
    },
    /// MCUs whose bits stay as they are; the DC predictors after them.
    Run {
        start: BitAddr,
        end: BitAddr,
        preds: [i32; 4],
    },
    /// A restart marker (its number) before the next piece.
    Restart(u8),
}

/// The tail of the scan as the encoder needs it.
struct Tail {
    pieces: Vec<Piece>,
    /// Coefficients of the box's MCUs, MCU by MCU (see [`MarkBox::index`]).
    boxed: Vec<[i16; 64]>,
    /// Which of them the mark changed.
    changed: Vec<bool>,
    /// Offset of the marker that ends the scan.
    end: usize,
}

impl Tail {
    /// Writes the tail: changed blocks encoded, the rest copied bit for bit
    /// (DC difference encoded again when its predecessor's DC changed).
    #[inline(always)]
    fn encode(
        &self,
        data: &[u8],
        writer: &mut BitWriter,
        tables: &EncodeTables,
        mut preds: Vec<i32>,
    ) -> Result<(), huffman::MissingSymbol> {
        // The DC predictors of the input at the same place.
        let mut kept = preds.clone();
        let mut copy: Option<(BitAddr, BitAddr)> = None;
        let flush = |writer: &mut BitWriter, copy: &mut Option<(BitAddr, BitAddr)>| {
            if let Some((from, to)) = copy.take() {
                writer.copy_bits(data, from, to);
            }
        };
        let extend =
            |writer: &mut BitWriter, copy: &mut Option<(BitAddr, BitAddr)>, from, to| match copy {
                Some((_, end)) if *end == from => *end = to,
                _ => {
                    if let Some((a, b)) = copy.replace((from, to)) {
                        writer.copy_bits(data, a, b);
                    }
                }
            };
        for piece in &self.pieces {
            match *piece {
                Piece::Block {
                    comp,
                    start,
                    dc_end,
                    end,
                    dc,
                    slot,
                } => {
                    match slot.filter(|&s| self.changed[s]) {
                        Some(s) => {
                            flush(writer, &mut copy);
                            let block = &self.boxed[s];
                            writer.encode_block(
                                &tables.dc[comp],
                                &tables.ac[comp],
                                &mut preds[comp],
                                block,
                            )?;
                        }
                        None if preds[comp] == kept[comp] => {
                            extend(writer, &mut copy, start, end);
                            preds[comp] = dc;
                        }
                        None => {
                            flush(writer, &mut copy);
                            writer.encode_dc(&tables.dc[comp], dc - preds[comp])?;
                            extend(writer, &mut copy, dc_end, end);
                            preds[comp] = dc;
                        }
                    }
                    kept[comp] = dc;
                }
                Piece::Run {
                    start,
                    end,
                    preds: after,
                } => {
                    extend(writer, &mut copy, start, end);
                    let n = preds.len();
                    preds.copy_from_slice(&after[..n]);
                    kept.copy_from_slice(&after[..n]);
                }
                Piece::Restart(n) => {
                    flush(writer, &mut copy);
                    writer.restart(n);
                    preds.iter_mut().for_each(|p| *p = 0);
                    kept.iter_mut().for_each(|p| *p = 0);
                }
            }
        }
        flush(writer, &mut copy);
        Ok(())
    }
}

/// The decoded coefficients of a baseline JPEG, in MCU order, for tests and
/// tools (an exact view of what the fast path keeps).
#[derive(Clone)]
pub struct Coefficients {
    pub width: usize,
    pub height: usize,
    pub mcu_width: usize,
    pub mcu_height: usize,
    pub mcus_per_row: usize,
    pub mcu_rows: usize,
    /// Blocks (h, v) each component contributes to an MCU.
    pub components: Vec<(usize, usize)>,
    /// Quantisation table of each component, zigzag order.
    pub quant: Vec<[u16; 64]>,
    /// Every block, MCU by MCU, zigzag order, quantised.
    pub blocks: Vec<[i16; 64]>,
}

impl std::fmt::Debug for Coefficients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coefficients")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("components", &self.components)
            .field("blocks", &self.blocks.len())
            .finish()
    }
}

impl Coefficients {
    /// Blocks per MCU.
    pub fn blocks_per_mcu(&self) -> usize {
        self.components.iter().map(|(h, v)| h * v).sum()
    }

    /// The component of block `i` and the full-resolution pixel rectangle
    /// `(x0, y0, x1, y1)` it covers (may extend past the image).
    pub fn block_area(&self, i: usize) -> (usize, (usize, usize, usize, usize)) {
        let bpm = self.blocks_per_mcu();
        let (m, mut b) = (i / bpm, i % bpm);
        let (ox, oy) = (
            (m % self.mcus_per_row) * self.mcu_width,
            (m / self.mcus_per_row) * self.mcu_height,
        );
        for (c, &(h, v)) in self.components.iter().enumerate() {
            if b < h * v {
                let (sx, sy) = (self.mcu_width / (8 * h), self.mcu_height / (8 * v));
                let (bx, by) = (b % h, b / h);
                let x0 = ox + bx * 8 * sx;
                let y0 = oy + by * 8 * sy;
                return (c, (x0, y0, x0 + 8 * sx, y0 + 8 * sy));
            }
            b -= h * v;
        }
        (0, (ox, oy, ox, oy))
    }

    /// Row-major samples of block `i` (dequantised, IDCT, level-shifted,
    /// rounded and clamped), for comparison with a decoder's output.
    pub fn block_samples(&self, i: usize) -> [u8; 64] {
        let (c, _) = self.block_area(i);
        let s = dct::idct(&self.blocks[i], &dct::Quant::new(&self.quant[c]));
        std::array::from_fn(|k| dct::to_u8(s[k]))
    }
}

/// Decodes every coefficient of a baseline JPEG.
pub fn read_coefficients(jpeg: &[u8]) -> Result<Coefficients, FastPathError> {
    let hdr = markers::parse(jpeg)?;
    let scan = Scan::new(&hdr)?;
    let (mcus_per_row, mcu_rows) = hdr.mcu_grid();
    let total = mcus_per_row * mcu_rows;
    check_size(jpeg, &hdr, total * scan.plan.len())?;
    let mut blocks = vec![[0i16; 64]; total * scan.plan.len()];
    let mut reader = BitReader::new(jpeg, hdr.scan_start);
    let mut preds = vec![0; hdr.comps.len()];
    scan.decode(&mut reader, &mut preds, 0, total, &mut blocks)?;
    reader.check_not_overrun()?;
    let (mcu_width, mcu_height) = hdr.mcu_size();
    Ok(Coefficients {
        width: hdr.width,
        height: hdr.height,
        mcu_width,
        mcu_height,
        mcus_per_row,
        mcu_rows,
        components: (0..hdr.comps.len()).map(|c| hdr.blocks_of(c)).collect(),
        quant: hdr
            .comps
            .iter()
            .map(|c| hdr.qt[c.tq].unwrap_or([1; 64]))
            .collect(),
        blocks,
    })
}

/// Every block takes at least two bits (a DC code and an end-of-block code),
/// so a frame declaring more blocks than the data can hold is truncated:
/// refused before anything is allocated or walked.
fn check_size(jpeg: &[u8], hdr: &Header, blocks: usize) -> Result<(), FastPathError> {
    let bytes = jpeg.len().saturating_sub(hdr.scan_start);
    if blocks > bytes.saturating_mul(4) + 64 {
        return Err(FastPathError::Corrupt(format!(
            "truncated: {blocks} blocks declared in {bytes} bytes"
        )));
    }
    Ok(())
}

#[derive(Clone, Copy)]
struct Rect {
    x0: usize,
    y0: usize,
    x1: usize,
    y1: usize,
}

/// The Huffman tables of a scan and the component of each block in an MCU.
struct Scan {
    dc: Vec<Rc<DecodeTable>>,
    ac: Vec<Rc<DecodeTable>>,
    /// Component of each block of an MCU, in order.
    plan: Vec<usize>,
    restart_interval: usize,
    scan_start: usize,
}

struct EncodeTables {
    dc: Vec<EncodeTable>,
    ac: Vec<EncodeTable>,
}

fn spec(table: &Option<HuffSpec>) -> Result<&HuffSpec, FastPathError> {
    table
        .as_ref()
        .ok_or_else(|| FastPathError::Corrupt("missing huffman table".into()))
}

impl Scan {
    fn new(hdr: &Header) -> Result<Self, FastPathError> {
        let mut dc = Vec::new();
        let mut ac = Vec::new();
        let mut plan = Vec::new();
        // Components sharing a table share its (costly to build) decoder,
        // and so do stamps on this thread that bring the same table.
        let mut dc_slots: [Option<Rc<DecodeTable>>; 4] = Default::default();
        let mut ac_slots: [Option<Rc<DecodeTable>>; 4] = Default::default();
        for (c, comp) in hdr.comps.iter().enumerate() {
            for (slots, specs, slot, is_ac, tables) in [
                (&mut dc_slots, &hdr.dc, comp.td, false, &mut dc),
                (&mut ac_slots, &hdr.ac, comp.ta, true, &mut ac),
            ] {
                let table = match &slots[slot] {
                    Some(t) => Rc::clone(t),
                    None => DecodeTable::shared(spec(&specs[slot])?, is_ac)?,
                };
                slots[slot] = Some(Rc::clone(&table));
                tables.push(table);
            }
            let (h, v) = hdr.blocks_of(c);
            plan.extend(std::iter::repeat_n(c, h * v));
        }
        Ok(Scan {
            dc,
            ac,
            plan,
            restart_interval: hdr.restart_interval,
            scan_start: hdr.scan_start,
        })
    }

    fn encode_tables(&self, hdr: &Header) -> Result<EncodeTables, FastPathError> {
        let mut t = EncodeTables {
            dc: Vec::new(),
            ac: Vec::new(),
        };
        for comp in &hdr.comps {
            t.dc.push(EncodeTable::new(spec(&hdr.dc[comp.td])?)?);
            t.ac.push(EncodeTable::new(spec(&hdr.ac[comp.ta])?)?);
        }
        Ok(t)
    }

    /// A reader positioned at the first bit of MCU `target`, and the DC
    /// predictors there. With restart intervals it starts at the restart
    /// marker before `target`, without decoding the intervals before it.
    #[inline(always)]
    fn walk_to<'a>(
        &self,
        data: &'a [u8],
        target: usize,
    ) -> Result<(BitReader<'a>, Vec<i32>), FastPathError> {
        let ri = self.restart_interval;
        let (start, from) = if ri > 0 && target >= ri {
            let interval = target / ri;
            (
                after_restart_marker(data, self.scan_start, interval)?,
                interval * ri,
            )
        } else {
            (self.scan_start, 0)
        };
        let mut reader = BitReader::new(data, start);
        let mut preds = vec![0; self.dc.len()];
        for (m, n) in self.runs(from, target) {
            if m > from {
                self.restart(&mut reader, &mut preds, m)?;
            }
            reader.skip_mcus(&self.dc, &self.ac, &self.plan, &mut preds, n)?;
        }
        Ok((reader, preds))
    }

    /// Decodes MCUs `from..to` into `out` (one slot per block), crossing
    /// restart markers.
    fn decode(
        &self,
        reader: &mut BitReader<'_>,
        preds: &mut [i32],
        from: usize,
        to: usize,
        out: &mut [[i16; 64]],
    ) -> Result<(), FastPathError> {
        let bpm = self.plan.len();
        for (m, n) in self.runs(from, to) {
            if m > from {
                self.restart(reader, preds, m)?;
            }
            let slots = &mut out[(m - from) * bpm..(m - from + n) * bpm];
            reader.decode_mcus(&self.dc, &self.ac, &self.plan, preds, slots)?;
        }
        Ok(())
    }

    /// Goes over MCUs `first..total` from `reader` (at MCU `first`, with
    /// the DC predictors `preds`): the box's MCUs are decoded, the MCU after
    /// each of them stepped over block by block, the others in runs.
    #[inline(always)]
    fn tail(
        &self,
        mut reader: BitReader<'_>,
        mut preds: Vec<i32>,
        first: usize,
        total: usize,
        boxed: &MarkBox,
    ) -> Result<Tail, FastPathError> {
        let bpm = self.plan.len();
        let box_mcus = (boxed.cols.1 - boxed.cols.0 + 1) * (boxed.rows.1 - boxed.rows.0 + 1);
        let mut tail = Tail {
            pieces: Vec::new(),
            boxed: vec![[0i16; 64]; box_mcus * bpm],
            changed: vec![false; box_mcus * bpm],
            end: 0,
        };
        for (m0, n) in self.runs(first, total) {
            if m0 > first {
                let number = ((m0 / self.restart_interval - 1) % 8) as u8;
                self.restart(&mut reader, &mut preds, m0)?;
                tail.pieces.push(Piece::Restart(number));
            }
            let mut after_box = false;
            let mut m = m0;
            while m < m0 + n {
                let inside = boxed.contains(m);
                if inside || after_box {
                    for (b, &c) in self.plan.iter().enumerate() {
                        let start = bit_addr(&reader)?;
                        let slot = inside.then(|| boxed.index(m) * bpm + b);
                        reader.decode_dc(&self.dc[c], &mut preds[c])?;
                        let dc_end = bit_addr(&reader)?;
                        match slot {
                            Some(s) => {
                                let block = &mut tail.boxed[s];
                                block[0] = preds[c] as i16;
                                reader.decode_ac(&self.ac[c], block)?;
                            }
                            None => reader.skip_ac(&self.ac[c])?,
                        }
                        tail.pieces.push(Piece::Block {
                            comp: c,
                            start,
                            dc_end,
                            end: bit_addr(&reader)?,
                            dc: preds[c],
                            slot,
                        });
                    }
                    after_box = inside;
                    m += 1;
                    continue;
                }
                // (`m` is outside the box, so the next box MCU lies after it.)
                let upto = boxed
                    .next_from(m)
                    .map_or(m0 + n, |b| b.clamp(m + 1, m0 + n));
                let start = bit_addr(&reader)?;
                reader.skip_mcus(&self.dc, &self.ac, &self.plan, &mut preds, upto - m)?;
                let mut after = [0; 4];
                after[..preds.len()].copy_from_slice(&preds);
                tail.pieces.push(Piece::Run {
                    start,
                    end: bit_addr(&reader)?,
                    preds: after,
                });
                m = upto;
            }
        }
        reader.check_not_overrun()?;
        tail.end = reader.end_of_data();
        Ok(tail)
    }

    /// MCUs `from..to` as runs `(first, count)` that no restart marker
    /// interrupts.
    fn runs(&self, from: usize, to: usize) -> impl Iterator<Item = (usize, usize)> {
        let ri = self.restart_interval;
        let mut m = from;
        std::iter::from_fn(move || {
            if m >= to {
                return None;
            }
            let end = m.checked_div(ri).map_or(to, |i| (i + 1) * ri);
            let run = (m, end.min(to) - m);
            m = end.min(to);
            Some(run)
        })
    }

    /// Takes the restart marker before MCU `m` (a multiple of the interval)
    /// and resets the DC predictors.
    fn restart(
        &self,
        reader: &mut BitReader<'_>,
        preds: &mut [i32],
        m: usize,
    ) -> Result<(), FastPathError> {
        reader.restart(((m / self.restart_interval - 1) % 8) as u8)?;
        preds.iter_mut().for_each(|p| *p = 0);
        Ok(())
    }

    /// Encodes MCUs `from..to` from `blocks` (which start at MCU `from`).
    fn encode(
        &self,
        writer: &mut BitWriter,
        tables: &EncodeTables,
        preds: &mut [i32],
        from: usize,
        to: usize,
        blocks: &[[i16; 64]],
    ) -> Result<(), huffman::MissingSymbol> {
        let ri = self.restart_interval;
        let bpm = self.plan.len();
        for m in from..to {
            if ri > 0 && m > from && m % ri == 0 {
                writer.restart(((m / ri - 1) % 8) as u8);
                preds.iter_mut().for_each(|p| *p = 0);
            }
            for (b, &c) in self.plan.iter().enumerate() {
                let block = &blocks[(m - from) * bpm + b];
                writer.encode_block(&tables.dc[c], &tables.ac[c], &mut preds[c], block)?;
            }
        }
        Ok(())
    }
}

/// The offset just after the `n`-th (1-based) restart marker of the scan,
/// checking the marker sequence on the way.
fn after_restart_marker(data: &[u8], mut pos: usize, n: usize) -> Result<usize, FastPathError> {
    let mut seen = 0;
    loop {
        pos = next_ff(data, pos)
            .ok_or_else(|| FastPathError::Corrupt("missing restart marker".into()))?;
        match data.get(pos + 1) {
            Some(0) => pos += 2,
            Some(0xFF) => pos += 1,
            Some(&code) if (0xD0..=0xD7).contains(&code) => {
                if usize::from(code - 0xD0) != seen % 8 {
                    return Err(FastPathError::Corrupt("out-of-order restart marker".into()));
                }
                seen += 1;
                pos += 2;
                if seen == n {
                    return Ok(pos);
                }
            }
            _ => return Err(FastPathError::Corrupt("missing restart marker".into())),
        }
    }
}

/// The offset of the next 0xFF at or after `pos`, eight bytes at a time.
fn next_ff(data: &[u8], mut pos: usize) -> Option<usize> {
    while let Some(b) = data.get(pos..pos + 8) {
        let w = u64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        let v = !w;
        if (v.wrapping_sub(0x0101_0101_0101_0101) & w & 0x8080_8080_8080_8080) != 0 {
            break;
        }
        pos += 8;
    }
    data.get(pos..)?
        .iter()
        .position(|&b| b == 0xFF)
        .map(|i| pos + i)
}

/// After the scan only the end-of-image marker may follow (one scan only).
fn check_end_of_image(data: &[u8], scan_end: usize) -> Result<(), FastPathError> {
    let mut pos = scan_end;
    while data.get(pos) == Some(&0xFF) && data.get(pos + 1) == Some(&0xFF) {
        pos += 1;
    }
    match data.get(pos + 1) {
        None => Err(FastPathError::Corrupt(
            "truncated: no end-of-image marker".into(),
        )),
        Some(0xD9) => Ok(()),
        Some(0xD0..=0xD7) => Err(FastPathError::Corrupt(
            "restart marker after the last mcu".into(),
        )),
        Some(_) => Err(FastPathError::Unsupported("more than one scan")),
    }
}

/// Blends the mark into the MCUs under it, one MCU at a time, reusing its
/// sample planes.
struct Blender<'m> {
    mark: Mark<'m>,
    rect: Rect,
    width: usize,
    height: usize,
    mcu_w: usize,
    mcu_h: usize,
    n: usize,
    /// Per component: first block in the MCU, blocks across and down,
    /// quantisation table.
    first: [usize; 3],
    dims: [(usize, usize); 3],
    quant: [dct::Quant; 3],
    /// Per component: sample offset of each pixel column and row of the MCU.
    col: [Vec<usize>; 3],
    row: [Vec<usize>; 3],
    /// Per component: the block (index in the MCU) of each pixel row's
    /// first column, and the block offset of each pixel column.
    block_row: [Vec<usize>; 3],
    block_col: [Vec<usize>; 3],
    /// Per component: how many pixel columns share a sample, and one over
    /// how many pixels do.
    share_x: [usize; 3],
    inv_share: [f32; 3],
    /// Per component: the MCU's samples and their changes.
    planes: [Vec<f32>; 3],
    deltas: [Vec<f32>; 3],
}

impl<'m> Blender<'m> {
    fn new(hdr: &Header, rect: Rect, mark: Mark<'m>) -> Self {
        let (mcu_w, mcu_h) = hdr.mcu_size();
        let n = hdr.comps.len();
        let mut b = Blender {
            mark,
            rect,
            width: hdr.width,
            height: hdr.height,
            mcu_w,
            mcu_h,
            n,
            first: [0; 3],
            dims: [(1, 1); 3],
            quant: [dct::Quant::new(&[1; 64]); 3],
            col: Default::default(),
            row: Default::default(),
            block_row: Default::default(),
            block_col: Default::default(),
            share_x: [1; 3],
            inv_share: [1.0; 3],
            planes: Default::default(),
            deltas: Default::default(),
        };
        let mut first = 0;
        for c in 0..n {
            let (h, v) = hdr.blocks_of(c);
            let (sx, sy) = (mcu_w / (8 * h), mcu_h / (8 * v));
            b.first[c] = first;
            b.dims[c] = (h, v);
            b.quant[c] = dct::Quant::new(&hdr.qt[hdr.comps[c].tq].unwrap_or([1; 64]));
            b.col[c] = (0..mcu_w).map(|x| x / sx).collect();
            b.row[c] = (0..mcu_h).map(|y| (y / sy) * 8 * h).collect();
            b.block_col[c] = (0..mcu_w).map(|x| x / sx / 8).collect();
            b.block_row[c] = (0..mcu_h).map(|y| first + y / sy / 8 * h).collect();
            b.share_x[c] = sx;
            b.inv_share[c] = 1.0 / (sx * sy) as f32;
            b.planes[c] = vec![0.0; 64 * h * v];
            b.deltas[c] = vec![0.0; 64 * h * v];
            first += h * v;
        }
        b
    }

    /// The pixels of the MCU at `(ox, oy)` under the mark: columns
    /// `px0..px1` and rows `py0..py1`.
    fn pixels_under_mark(&self, (ox, oy): (usize, usize)) -> ((usize, usize), (usize, usize)) {
        let px0 = self.rect.x0.max(ox);
        let py0 = self.rect.y0.max(oy);
        // A mark that reaches the right or bottom edge also covers the
        // padding of the edge MCUs, as an encoder that replicates the edge
        // would: a sharp step into stale padding would ring into the
        // visible pixels.
        let px1 = if self.rect.x1 == self.width {
            ox + self.mcu_w
        } else {
            self.rect.x1.min(ox + self.mcu_w)
        };
        let py1 = if self.rect.y1 == self.height {
            oy + self.mcu_h
        } else {
            self.rect.y1.min(oy + self.mcu_h)
        };
        ((px0, px1), (py0, py1))
    }

    /// Blends into the MCU whose top-left pixel is `(ox, oy)`; returns which
    /// of its blocks changed (bit `i` for block `i`).
    #[inline(always)]
    fn stamp_mcu(&mut self, blocks: &mut [[i16; 64]], (ox, oy): (usize, usize)) -> u16 {
        let n = self.n;
        let ((px0, px1), (py0, py1)) = self.pixels_under_mark((ox, oy));
        // Decode the blocks the mark reaches.
        let mut hit = [false; 10];
        for c in 0..n {
            let (h, v) = self.dims[c];
            let (sx, sy) = (self.mcu_w / (8 * h), self.mcu_h / (8 * v));
            self.deltas[c].iter_mut().for_each(|d| *d = 0.0);
            for by in 0..v {
                for bx in 0..h {
                    let (x0, y0) = (ox + bx * 8 * sx, oy + by * 8 * sy);
                    if !(x0 < px1 && x0 + 8 * sx > px0 && y0 < py1 && y0 + 8 * sy > py0) {
                        continue;
                    }
                    let i = self.first[c] + by * h + bx;
                    hit[i] = true;
                    let s = dct::idct(&blocks[i], &self.quant[c]);
                    for y in 0..8 {
                        let at = (by * 8 + y) * 8 * h + bx * 8;
                        self.planes[c][at..at + 8].copy_from_slice(&s[y * 8..y * 8 + 8]);
                    }
                }
            }
        }
        if n == 3 {
            self.blend_pixels::<3>((ox, oy), (px0, px1), (py0, py1));
        } else {
            self.blend_pixels::<1>((ox, oy), (px0, px1), (py0, py1));
        }
        // Quantise again the blocks holding a blended pixel.
        let mut changed = 0;
        for c in 0..n {
            let (h, v) = self.dims[c];
            for by in 0..v {
                for bx in 0..h {
                    let i = self.first[c] + by * h + bx;
                    if !hit[i] {
                        continue;
                    }
                    let mut s = [0f32; 64];
                    let mut moved = false;
                    for y in 0..8 {
                        let at = (by * 8 + y) * 8 * h + bx * 8;
                        let (p, d) = (&self.planes[c][at..at + 8], &self.deltas[c][at..at + 8]);
                        for x in 0..8 {
                            s[y * 8 + x] = p[x] + d[x];
                            moved |= d[x] != 0.0;
                        }
                    }
                    // A block without a blended pixel keeps its coefficients.
                    if !moved {
                        continue;
                    }
                    let coefs = dct::fdct_quantise(&s, &self.quant[c]);
                    if coefs != blocks[i] {
                        blocks[i] = coefs;
                        changed |= 1 << i;
                    }
                }
            }
        }
        changed
    }

    /// Blends the mark into the pixels `px0..px1` x `py0..py1` of the MCU at
    /// `(ox, oy)` (`N` components), adding each sample's change to `deltas`.
    ///
    /// The pixels are taken in runs of up to [`LANES`] along a row, each
    /// run down all the rows: the old samples of a run are gathered into
    /// arrays, converted, blended and converted back in loops over the lanes
    /// (which the compiler vectorises), and the changes then added to
    /// `deltas` in the order one pixel at a time would add them.
    #[inline(always)]
    fn blend_pixels<const N: usize>(
        &mut self,
        (ox, oy): (usize, usize),
        (px0, px1): (usize, usize),
        (py0, py1): (usize, usize),
    ) {
        let mark = self.mark;
        let (mw, mx) = (mark.width as usize, mark.x as usize);
        let last = self.width - 1;
        let planes: [&[f32]; N] = std::array::from_fn(|c| &self.planes[c][..]);
        let cols: [&[usize]; N] = std::array::from_fn(|c| &self.col[c][..]);
        let rows: [&[usize]; N] = std::array::from_fn(|c| &self.row[c][..]);
        let mut deltas = self.deltas.iter_mut();
        let deltas: [&mut [f32]; N] = std::array::from_fn(|_| match deltas.next() {
            Some(d) => &mut d[..],
            None => &mut [],
        });
        let (share_x, inv_share) = (self.share_x, self.inv_share);
        // Runs of at most LANES pixels, cut at multiples of `step` from the
        // MCU's left edge: a multiple of every component's share of columns
        // (all divide mcu_w / 8), so that no sample has pixels in two runs.
        // Taking the runs one after the other, each down all the rows, then
        // adds to every sample in the same order as going row by row.
        let step = LANES - LANES % (self.mcu_w / 8);
        let mut x0 = px0;
        while x0 < px1 {
            let x1 = px1.min(ox + ((x0 - ox) / step + 1) * step);
            let (n, lx) = (x1 - x0, x0 - ox);
            // The lanes' sample columns, the same in every row.
            let lane_cols: [&[usize]; N] = std::array::from_fn(|c| &cols[c][lx..x1 - ox]);
            let spans: [std::ops::Range<usize>; N] = std::array::from_fn(|c| {
                let cols = lane_cols[c];
                cols[0]..cols[n - 1] + 1
            });
            for py in py0..py1 {
                let ey = py.min(self.height - 1);
                let (ly, ely) = (py - oy, ey - oy);
                let mrow = &mark.rgba[(ey - mark.y as usize) * mw * 4..][..mw * 4];
                // Padding pixels take the blend of the edge pixel they copy:
                // its mark pixel and its old samples.
                let padding = x1 > self.width || ey != py;
                let mut rgba = [0u32; LANES];
                if padding {
                    for (i, p) in rgba[..n].iter_mut().enumerate() {
                        let at = ((x0 + i).min(last) - mx) * 4;
                        *p = u32::from_le_bytes([
                            mrow[at],
                            mrow[at + 1],
                            mrow[at + 2],
                            mrow[at + 3],
                        ]);
                    }
                } else {
                    let from = mrow[(x0 - mx) * 4..][..n * 4].chunks_exact(4);
                    for (p, m) in rgba.iter_mut().zip(from) {
                        *p = u32::from_le_bytes([m[0], m[1], m[2], m[3]]);
                    }
                }
                // Lanes past the run keep alpha 0.
                let alpha = lanes_alpha(&rgba, mark.opacity);
                if alpha.iter().all(|&a| a == 0.0) {
                    continue;
                }
                // A transparent lane changes nothing: its change times 0.0
                // is a zero, which leaves a sum as it is (the sums start at
                // +0.0, so they are never -0.0).
                let mut keep = [0f32; LANES];
                for (k, &a) in keep.iter_mut().zip(&alpha) {
                    *k = if a == 0.0 { 0.0 } else { 1.0 };
                }
                // The old samples the lanes show (for padding, those of the
                // edge pixel), and those of their own places.
                let mut old = [[0f32; LANES]; N];
                for c in 0..N {
                    if padding {
                        let row = rows[c][ely];
                        for (i, s) in old[c][..n].iter_mut().enumerate() {
                            *s = planes[c][row + cols[c][(x0 + i).min(last) - ox]];
                        }
                    } else {
                        let row = &planes[c][rows[c][ly]..];
                        spread(
                            &mut old[c],
                            &row[spans[c].clone()],
                            lane_cols[c],
                            share_x[c],
                        );
                    }
                }
                let new = blend_lanes::<N>(&old, &rgba, &alpha);
                let padded;
                let own = if padding {
                    let mut own = [[0f32; LANES]; N];
                    for c in 0..N {
                        for (s, &col) in own[c].iter_mut().zip(lane_cols[c]) {
                            *s = planes[c][rows[c][ly] + col];
                        }
                    }
                    padded = own;
                    &padded
                } else {
                    &old
                };
                for c in 0..N {
                    let mut change = [0f32; LANES];
                    for i in 0..LANES {
                        change[i] = (new[c][i] - own[c][i]) * inv_share[c] * keep[i];
                    }
                    let row = &mut deltas[c][rows[c][ly]..];
                    let deltas = &mut row[spans[c].clone()];
                    accumulate(deltas, &change, lane_cols[c], share_x[c]);
                }
            }
            x0 = x1;
        }
    }
}

/// Pixels of a row that [`Blender::blend_pixels`] blends at once.
const LANES: usize = 16;
/// Samples under them where two columns share one.
const HALF: usize = LANES / 2;

/// Adds each lane's change to the sample of its pixel column, in pixel
/// order: `cols` are those of the lanes (`share` columns to a sample),
/// `deltas` the changes of their samples from the first lane's on.
#[inline(always)]
fn accumulate(deltas: &mut [f32], change: &[f32; LANES], cols: &[usize], share: usize) {
    match (share, deltas.len()) {
        (1, LANES) => {
            let deltas: &mut [f32; LANES] = deltas.try_into().unwrap();
            for (d, &v) in deltas.iter_mut().zip(change) {
                *d += v;
            }
        }
        // From the first column of a pair: each sample gets its pair,
        // summed as one pixel after the other would.
        (2, HALF) if cols[1] == cols[0] => {
            let deltas: &mut [f32; HALF] = deltas.try_into().unwrap();
            for (j, d) in deltas.iter_mut().enumerate() {
                *d = *d + change[2 * j] + change[2 * j + 1];
            }
        }
        _ => {
            for (&v, &col) in change.iter().zip(cols) {
                deltas[col - cols[0]] += v;
            }
        }
    }
}

/// Puts in each lane the sample of its pixel column: `cols` are those of
/// the lanes (`share` columns to a sample), `samples` those from the first
/// lane's on.
#[inline(always)]
fn spread(lanes: &mut [f32; LANES], samples: &[f32], cols: &[usize], share: usize) {
    match share {
        1 if samples.len() == LANES => lanes.copy_from_slice(samples),
        1 => lanes[..samples.len()].copy_from_slice(samples),
        // From the first column of a pair: each sample twice (the last one
        // maybe also into a lane past the run, whose change is dropped).
        2 if cols.len() == 1 || cols[1] == cols[0] => {
            for (pair, &s) in lanes.chunks_exact_mut(2).zip(samples) {
                pair.fill(s);
            }
        }
        _ => {
            for (lane, &col) in lanes.iter_mut().zip(cols) {
                *lane = samples[col - cols[0]];
            }
        }
    }
}

/// The effective alpha of each lane's mark pixel (RGBA, little-endian).
#[inline(always)]
fn lanes_alpha(rgba: &[u32; LANES], opacity: u8) -> [f32; LANES] {
    let mut alpha = [0f32; LANES];
    for (a, &p) in alpha.iter_mut().zip(rgba) {
        *a = effective_alpha_f32(f32::from((p >> 24) as u8), opacity.into());
    }
    alpha
}

/// Each lane's old samples (`N` components) taken to RGB, blended with its
/// mark pixel under `alpha`, and taken back to YCbCr (only Y counts for
/// `N` = 1): the same arithmetic as one pixel at a time.
#[inline(always)]
fn blend_lanes<const N: usize>(
    old: &[[f32; LANES]; N],
    rgba: &[u32; LANES],
    alpha: &[f32; LANES],
) -> [[f32; LANES]; 3] {
    let mut rgb = [[0f32; LANES]; 3];
    for i in 0..LANES {
        let p = if N == 3 {
            // (`% N` only to compile for N = 1, which never comes here.)
            dct::ycc_to_rgb(old[0][i], old[1 % N][i], old[2 % N][i])
        } else {
            [dct::round_u8(old[0][i]); 3]
        };
        for (c, &p) in rgb.iter_mut().zip(&p) {
            c[i] = p;
        }
    }
    let mut new = [[0f32; LANES]; 3];
    for i in 0..LANES {
        let a = alpha[i];
        let mut p = [0f32; 3];
        for (k, p) in p.iter_mut().enumerate() {
            let m = f32::from((rgba[i] >> (8 * k)) as u8);
            *p = blend_channel_f32(rgb[k][i], m, a);
        }
        let ycc = dct::rgb_to_ycc(p);
        for (c, &v) in new.iter_mut().zip(&ycc) {
            c[i] = v;
        }
    }
    new
}

/// The fallback of step 4: decode the blocks before the seam too, build
/// optimal tables from all coefficients, and write the header (DHT segments
/// replaced) and the whole scan again.
fn rebuild_with_optimal_tables(
    jpeg: &[u8],
    hdr: &Header,
    scan: &Scan,
    first: usize,
    tail: &[[i16; 64]],
    scan_end: usize,
) -> Result<Vec<u8>, FastPathError> {
    let bpm = scan.plan.len();
    let (mcus_per_row, mcu_rows) = hdr.mcu_grid();
    let total = mcus_per_row * mcu_rows;
    let mut blocks = vec![[0i16; 64]; first * bpm];
    let mut reader = BitReader::new(jpeg, hdr.scan_start);
    let mut preds = vec![0; hdr.comps.len()];
    if first > 0 {
        scan.decode(&mut reader, &mut preds, 0, first, &mut blocks)?;
    }
    blocks.extend_from_slice(tail);

    // Count symbols per table slot, as the encoder will emit them.
    let mut dc_freq: Vec<Frequencies> = (0..4).map(|_| Frequencies::new()).collect();
    let mut ac_freq: Vec<Frequencies> = (0..4).map(|_| Frequencies::new()).collect();
    let ri = hdr.restart_interval;
    let mut preds = vec![0; hdr.comps.len()];
    for m in 0..total {
        if ri > 0 && m > 0 && m % ri == 0 {
            preds.iter_mut().for_each(|p| *p = 0);
        }
        for (b, &c) in scan.plan.iter().enumerate() {
            let comp = &hdr.comps[c];
            let (dc, ac) = (&mut dc_freq[comp.td], &mut ac_freq[comp.ta]);
            huffman::count_block(dc, ac, &mut preds[c], &blocks[m * bpm + b]);
        }
    }
    let mut dht = vec![0xFF, 0xC4, 0, 0];
    let mut dc_specs: [Option<HuffSpec>; 4] = Default::default();
    let mut ac_specs: [Option<HuffSpec>; 4] = Default::default();
    for comp in &hdr.comps {
        for (class, slot, freq, specs) in [
            (0u8, comp.td, &dc_freq, &mut dc_specs),
            (1u8, comp.ta, &ac_freq, &mut ac_specs),
        ] {
            if specs[slot].is_some() {
                continue;
            }
            let spec = huffman::optimal_table(&freq[slot]);
            dht.push(class << 4 | slot as u8);
            dht.extend_from_slice(&spec.counts);
            dht.extend_from_slice(&spec.values);
            specs[slot] = Some(spec);
        }
    }
    let len = dht.len() - 2;
    dht[2] = (len >> 8) as u8;
    dht[3] = len as u8;
    let mut tables = EncodeTables {
        dc: Vec::new(),
        ac: Vec::new(),
    };
    for comp in &hdr.comps {
        tables.dc.push(EncodeTable::new(spec(&dc_specs[comp.td])?)?);
        tables.ac.push(EncodeTable::new(spec(&ac_specs[comp.ta])?)?);
    }

    let mut out = Vec::with_capacity(jpeg.len() + 4096);
    let mut pos = 0;
    for &(start, end) in &hdr.dht_ranges {
        out.extend_from_slice(&jpeg[pos..start]);
        pos = end;
    }
    out.extend_from_slice(&jpeg[pos..hdr.sos_offset]);
    out.extend_from_slice(&dht);
    out.extend_from_slice(&jpeg[hdr.sos_offset..hdr.scan_start]);
    let mut writer = BitWriter::new(out, 0, 0);
    let mut preds = vec![0; hdr.comps.len()];
    scan.encode(&mut writer, &tables, &mut preds, 0, total, &blocks)
        .map_err(|_| FastPathError::Unsupported("coefficient out of baseline range"))?;
    writer.pad();
    let mut out = writer.out;
    out.extend_from_slice(&jpeg[scan_end..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::blend::{blend_channel, effective_alpha};

    /// The blend one pixel at a time: the reference that
    /// [`Blender::blend_pixels`] must match to the bit.
    fn blend_one_by_one<const N: usize>(
        b: &mut Blender<'_>,
        (ox, oy): (usize, usize),
        (px0, px1): (usize, usize),
        (py0, py1): (usize, usize),
    ) {
        let mark = b.mark;
        let mw = mark.width as usize;
        for py in py0..py1 {
            let ey = py.min(b.height - 1);
            let (ly, ely) = (py - oy, ey - oy);
            let mrow = &mark.rgba[(ey - mark.y as usize) * mw * 4..][..mw * 4];
            for px in px0..px1 {
                let ex = px.min(b.width - 1);
                let m = &mrow[(ex - mark.x as usize) * 4..][..4];
                let alpha = effective_alpha(m[3], mark.opacity);
                if alpha == 0 {
                    continue;
                }
                let (lx, elx) = (px - ox, ex - ox);
                let (mut idx, mut old) = ([0usize; N], [0f32; N]);
                for c in 0..N {
                    idx[c] = b.row[c][ly] + b.col[c][lx];
                    old[c] = b.planes[c][b.row[c][ely] + b.col[c][elx]];
                }
                let rgb = if N == 3 {
                    dct::ycc_to_rgb(old[0], old[1 % N], old[2 % N]).map(|v| v as u8)
                } else {
                    [dct::to_u8(old[0]); 3]
                };
                let new = dct::rgb_to_ycc([
                    blend_channel(rgb[0], m[0], alpha).into(),
                    blend_channel(rgb[1], m[1], alpha).into(),
                    blend_channel(rgb[2], m[2], alpha).into(),
                ]);
                for c in 0..N {
                    let change = (new[c] - b.planes[c][idx[c]]) * b.inv_share[c];
                    b.deltas[c][idx[c]] += change;
                }
            }
        }
    }

    #[test]
    fn every_build_of_the_stamp_writes_the_same_bytes() {
        // On a CPU with AVX2 `stamp` runs `stamp_x86_v3`; elsewhere this
        // compares the portable build with itself.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/jpeg");
        let rgba: Vec<u8> = (0..37 * 23 * 4)
            .map(|i| {
                if i % 4 == 3 {
                    (i * 7 % 256) as u8
                } else {
                    (i * 13 % 251) as u8
                }
            })
            .collect();
        let mut stamped = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let jpeg = std::fs::read(entry.unwrap().path()).unwrap();
            let hdr = markers::parse(&jpeg).unwrap();
            for (x, y) in [
                (0, 0),
                (hdr.width / 3, hdr.height / 2),
                (hdr.width.saturating_sub(20), hdr.height.saturating_sub(9)),
            ] {
                let mark = Mark {
                    rgba: &rgba,
                    width: 37,
                    height: 23,
                    x: x as u32,
                    y: y as u32,
                    opacity: 200,
                };
                let out = stamp(&jpeg, &mark).unwrap();
                assert_eq!(out.jpeg, stamp_portable(&jpeg, &mark).unwrap().jpeg);
                stamped += 1;
            }
        }
        assert!(stamped >= 24, "{stamped} stamps");
    }

    #[test]
    fn lanes_blend_exactly_as_one_pixel_at_a_time() {
        // 4:2:0, 4:2:2, 4:4:4 and grayscale, with sizes that leave padding.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/jpeg");
        let mut seed: u32 = 0x5eed;
        let mut next = |n: usize| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (seed >> 8) as usize % n.max(1)
        };
        let mut files = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let jpeg = std::fs::read(entry.unwrap().path()).unwrap();
            // The file's own sampling and, in colour, wider MCUs whose rows
            // the blend takes in more than one run (one with three columns
            // to a chroma sample, which a run of 16 would split).
            let samplings = [
                None,
                Some([(4, 1), (2, 1), (2, 1)]),
                Some([(3, 2), (1, 1), (1, 1)]),
                Some([(4, 2), (1, 1), (1, 1)]),
                Some([(1, 1), (2, 2), (1, 1)]),
            ];
            for sampling in samplings {
                let mut hdr = markers::parse(&jpeg).unwrap();
                if let Some(factors) = sampling {
                    if hdr.comps.len() == 1 {
                        continue;
                    }
                    for (comp, (h, v)) in hdr.comps.iter_mut().zip(factors) {
                        (comp.h, comp.v) = (h, v);
                    }
                    hdr.hmax = factors.iter().map(|f| f.0).max().unwrap();
                    hdr.vmax = factors.iter().map(|f| f.1).max().unwrap();
                }
                let (w, h) = (hdr.width, hdr.height);
                let (mcu_w, mcu_h) = hdr.mcu_size();
                for _ in 0..12 {
                    // Often reaching the right or bottom edge, at any offset.
                    let (mw, mh) = (1 + next(w), 1 + next(h));
                    let x = if next(2) == 0 { w - mw } else { next(w) };
                    let y = if next(2) == 0 { h - mh } else { next(h) };
                    let rgba: Vec<u8> = (0..mw * mh * 4)
                        .map(|i| match (i % 4, next(4)) {
                            (3, 0) => 0,
                            _ => next(256) as u8,
                        })
                        .collect();
                    let mark = Mark {
                        rgba: &rgba,
                        width: mw as u32,
                        height: mh as u32,
                        x: x as u32,
                        y: y as u32,
                        opacity: [255, next(256) as u8][next(2)],
                    };
                    let rect = Rect {
                        x0: x,
                        y0: y,
                        x1: (x + mw).min(w),
                        y1: (y + mh).min(h),
                    };
                    let mut lanes = Blender::new(&hdr, rect, mark);
                    let mut one = Blender::new(&hdr, rect, mark);
                    for row in y / mcu_h..=(rect.y1 - 1) / mcu_h {
                        for col in x / mcu_w..=(rect.x1 - 1) / mcu_w {
                            let origin = (col * mcu_w, row * mcu_h);
                            // Samples a little past the range, as an IDCT leaves them.
                            for c in 0..lanes.n {
                                for (a, b) in lanes.planes[c].iter_mut().zip(&mut one.planes[c]) {
                                    *a = next(32_000) as f32 / 100.0 - 30.0;
                                    *b = *a;
                                }
                                lanes.deltas[c].fill(0.0);
                                one.deltas[c].fill(0.0);
                            }
                            let (xs, ys) = lanes.pixels_under_mark(origin);
                            if lanes.n == 3 {
                                lanes.blend_pixels::<3>(origin, xs, ys);
                                blend_one_by_one::<3>(&mut one, origin, xs, ys);
                            } else {
                                lanes.blend_pixels::<1>(origin, xs, ys);
                                blend_one_by_one::<1>(&mut one, origin, xs, ys);
                            }
                            for c in 0..lanes.n {
                                let bits =
                                    |d: &[f32]| d.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                                assert_eq!(bits(&lanes.deltas[c]), bits(&one.deltas[c]));
                            }
                        }
                    }
                }
            }
            files += 1;
        }
        assert!(files >= 8);
    }
}
