//! Huffman decoding and encoding of baseline JPEG scans.
//!
//! The reader keeps a 64-bit left-aligned bit buffer, refilled eight bytes at
//! a time when the next eight bytes hold no 0xFF (one unaligned load), byte by
//! byte otherwise (to unstuff 0xFF00 and stop at markers). Symbols come from
//! an 11-bit first-level table; for AC tables a second 11-bit table also
//! carries the run and the already-extended value when code and value bits
//! fit, so most coefficients cost one lookup and one shift. Blocks that are
//! only stepped over take their AC symbols several at a time from a 13-bit
//! table of packs (bits, index moved, end of block). The reader can say where
//! in the file the next bit lies, which is how the seam is found and how the
//! writer copies the bits of unchanged blocks.

use super::markers::HuffSpec;
use super::FastPathError;
use std::rc::Rc;

const FAST_BITS: u32 = 11;

/// Width of the walk table, which packs several AC symbols per entry.
const WALK_BITS: u32 = 13;

/// In a `walk` entry: bits 0..6 the bits taken (so that a shift by the whole
/// entry, which the hardware masks to six bits, is a shift by them), bit 6
/// the pack ends with an end-of-block, bits 7.. how far the pack moves the
/// coefficient index (plus one for an end-of-block, which needs the index
/// still inside the block).
const WALK_USED: u16 = (1 << 6) - 1;
const WALK_EOB: u16 = 1 << 6;
const WALK_NEED_SHIFT: u16 = 7;
/// A `walk` entry for bits that do not hold one whole symbol.
const WALK_NONE: u16 = 127 << WALK_NEED_SHIFT;

/// Flag in a `fast` entry: the symbol is an end-of-block.
const FAST_EOB: i32 = 1 << 8;

/// Canonical codes of a table: `(code, length)` per symbol, `length` 0 when
/// the table lacks the symbol.
fn canonical_codes(spec: &HuffSpec) -> Result<[(u16, u8); 256], FastPathError> {
    let mut codes = [(0u16, 0u8); 256];
    let mut code: u32 = 0;
    let mut k = 0;
    for len in 1..=16u8 {
        for _ in 0..spec.counts[usize::from(len - 1)] {
            let sym = spec.values[k];
            if codes[usize::from(sym)].1 != 0 {
                return Err(FastPathError::Corrupt(
                    "huffman table repeats a symbol".into(),
                ));
            }
            codes[usize::from(sym)] = (code as u16, len);
            code += 1;
            k += 1;
        }
        if code > (1u32 << len) {
            return Err(FastPathError::Corrupt(
                "over-subscribed huffman table".into(),
            ));
        }
        code <<= 1;
    }
    Ok(codes)
}

/// A decoding table built from one DHT table.
pub(crate) struct DecodeTable {
    /// `len << 8 | symbol` for codes up to `FAST_BITS` long, 0 otherwise.
    lookup: [u16; 1 << FAST_BITS],
    /// `value << 16 | eob << 8 | run << 4 | total_bits` when code and value
    /// bits fit in `FAST_BITS` (for DC, run is 0 and value the difference;
    /// for AC a ZRL is run 15 with value 0), 0 otherwise.
    fast: [i32; 1 << FAST_BITS],
    /// For AC tables, the AC symbols (code and value bits) that the next
    /// `WALK_BITS` bits hold, packed for a walk that does not keep values
    /// (see `WALK_EOB`); `WALK_NONE` when not even one symbol fits.
    walk: [u16; 1 << WALK_BITS],
    /// Largest code of each length (-1 when none), for codes longer than `FAST_BITS`.
    maxcode: [i32; 17],
    /// Index into `values` minus the first code of each length.
    delta: [i32; 17],
    values: Vec<u8>,
}

/// How many decoding tables a thread keeps for reuse.
const CACHED_TABLES: usize = 8;

thread_local! {
    /// Decoding tables built lately on this thread, most recent first, with
    /// the DHT table and class each was built from. Most photos carry the
    /// example tables of the JPEG standard (libjpeg's defaults), and a
    /// camera or encoder keeps its own from one photo to the next, so a
    /// stamp seldom has to build one.
    static RECENT_TABLES: std::cell::RefCell<Vec<(bool, HuffSpec, Rc<DecodeTable>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

impl DecodeTable {
    /// The decoding table of `spec`, from this thread's recent tables when
    /// one was built from the same table before (see `RECENT_TABLES`).
    pub fn shared(spec: &HuffSpec, is_ac: bool) -> Result<Rc<Self>, FastPathError> {
        RECENT_TABLES.with(|recent| {
            let mut recent = recent.borrow_mut();
            let hit = recent
                .iter()
                .position(|(ac, s, _)| *ac == is_ac && s == spec);
            let entry = match hit {
                Some(i) => recent.remove(i),
                None => {
                    let table = Rc::new(DecodeTable::new(spec, is_ac)?);
                    recent.truncate(CACHED_TABLES - 1);
                    (is_ac, spec.clone(), table)
                }
            };
            let table = Rc::clone(&entry.2);
            recent.insert(0, entry);
            Ok(table)
        })
    }

    pub fn new(spec: &HuffSpec, is_ac: bool) -> Result<Self, FastPathError> {
        let codes = canonical_codes(spec)?;
        let mut lookup = [0u16; 1 << FAST_BITS];
        let mut fast = [0i32; 1 << FAST_BITS];
        for (sym, &(code, len)) in codes.iter().enumerate() {
            let len = u32::from(len);
            if len == 0 || len > FAST_BITS {
                continue;
            }
            let shift = FAST_BITS - len;
            let first = usize::from(code) << shift;
            for i in first..first + (1 << shift) {
                lookup[i] = (len as u16) << 8 | sym as u16;
                let (run, size) = if is_ac {
                    ((sym >> 4) as u32, (sym & 15) as u32)
                } else {
                    (0, sym as u32)
                };
                if size > 15 || len + size > FAST_BITS {
                    continue;
                }
                let bits = ((i >> (FAST_BITS - len - size)) & ((1 << size) - 1)) as i32;
                let value = extend(bits, size);
                // Run/size pairs with size 0 other than ZRL end the block,
                // as in libjpeg.
                let eob = if is_ac && size == 0 && run != 15 {
                    FAST_EOB
                } else {
                    0
                };
                fast[i] = value << 16 | eob | (run as i32) << 4 | (len + size) as i32;
            }
        }
        let mut maxcode = [-1i32; 17];
        let mut delta = [0i32; 17];
        let mut code = 0i32;
        let mut k = 0i32;
        for len in 1..=16 {
            let n = i32::from(spec.counts[len - 1]);
            if n > 0 {
                delta[len] = k - code;
                maxcode[len] = code + n - 1;
            }
            code = (code + n) << 1;
            k += n;
        }
        let mut table = DecodeTable {
            lookup,
            fast,
            walk: [0u16; 1 << WALK_BITS],
            maxcode,
            delta,
            values: spec.values.clone(),
        };
        if is_ac {
            table.build_walk();
        }
        Ok(table)
    }

    /// Fills `walk`: the pack of a window is its first symbol followed by
    /// the pack of the bits after it, so packs are built for windows of 0,
    /// 1, … `WALK_BITS` bits in turn, each from a shorter one.
    fn build_walk(&mut self) {
        // `packs[(1 << a) + r]`: the pack of the `a`-bit window `r`.
        let mut packs = vec![0u16; 2 << WALK_BITS];
        for avail in 1..=WALK_BITS {
            for window in 0..1u32 << avail {
                let pack = match self.walk_step(window, avail) {
                    None => 0,
                    Some((used, need, true)) => need << WALK_NEED_SHIFT | WALK_EOB | used,
                    Some((used, need, false)) => {
                        let left = avail - u32::from(used);
                        let rest = packs[(1 << left) + (window & ((1 << left) - 1)) as usize];
                        let rest_need = rest >> WALK_NEED_SHIFT;
                        if rest == 0 || need + rest_need > 64 {
                            need << WALK_NEED_SHIFT | used
                        } else {
                            (need + rest_need) << WALK_NEED_SHIFT
                                | (rest & WALK_EOB)
                                | (used + (rest & WALK_USED))
                        }
                    }
                };
                packs[(1 << avail) + window as usize] = pack;
            }
        }
        for (entry, &pack) in self.walk.iter_mut().zip(&packs[1 << WALK_BITS..]) {
            // An empty pack needs more than any block has, so that one
            // comparison sends it to the one-symbol path.
            *entry = if pack == 0 { WALK_NONE } else { pack };
        }
    }

    /// The first AC symbol held whole (code and value bits) in the `avail`
    /// bits of `window`, as the walk takes it: bits used, how far it moves
    /// the index (its run plus one, 16 for a ZRL, 1 for an end-of-block,
    /// which must still be inside the block), whether it ends the block.
    /// Values above 10 bits, which are corrupt, are left to the one-symbol
    /// path.
    fn walk_step(&self, window: u32, avail: u32) -> Option<(u16, u16, bool)> {
        let (rs, len) = self.symbol_in(window, avail)?;
        let (run, size) = (u32::from(rs >> 4), u32::from(rs & 15));
        let eob = size == 0 && run != 15;
        if size > 10 || len + size > avail {
            return None;
        }
        let need = if eob { 1 } else { run + 1 };
        Some(((len + size) as u16, need as u16, eob))
    }

    /// The symbol whose code starts the last `avail` bits of `window`, and
    /// its code length, when that code is at most `avail` (and `FAST_BITS`)
    /// long. The bits after them are taken as zeros: a code that fits is
    /// found whatever follows it.
    fn symbol_in(&self, window: u32, avail: u32) -> Option<(u8, u32)> {
        let rest = window & ((1 << avail) - 1);
        let index = if avail >= FAST_BITS {
            rest >> (avail - FAST_BITS)
        } else {
            rest << (FAST_BITS - avail)
        };
        let e = self.lookup[index as usize];
        let len = u32::from(e >> 8);
        (e != 0 && len <= avail).then_some((e as u8, len))
    }
}

#[inline(always)]
fn extend(bits: i32, size: u32) -> i32 {
    if size == 0 {
        0
    } else if bits < (1 << (size - 1)) {
        bits - (1 << size) + 1
    } else {
        bits
    }
}

#[inline(always)]
fn has_ff_byte(w: u64) -> bool {
    let v = !w;
    (v.wrapping_sub(0x0101_0101_0101_0101) & w & 0x8080_8080_8080_8080) != 0
}

/// Reads entropy-coded bits from one restart interval (or the whole scan).
///
/// `Copy` so that a block is decoded on a local copy whose fields stay in
/// registers (only the cold byte-wise refill takes it by value).
#[derive(Clone, Copy)]
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Next raw byte to load.
    pos: usize,
    buf: u64,
    bits: u32,
    /// Zero bytes loaded past a marker or the end of the data.
    fake: u32,
    marker_hit: bool,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8], pos: usize) -> Self {
        BitReader {
            data,
            pos,
            buf: 0,
            bits: 0,
            fake: 0,
            marker_hit: false,
        }
    }

    /// Makes sure more than 32 bits are buffered (fake zeros past the data).
    #[inline(always)]
    fn refill(&mut self) {
        if self.bits > 32 {
            return;
        }
        if !self.refill_word() {
            *self = self.refill_slow();
        }
    }

    /// Tops the buffer up to 56..=63 bits from the next eight bytes when
    /// none of them is 0xFF (and no marker was seen); false otherwise.
    ///
    /// Without a branch on the bit count: the word is shifted in under the
    /// buffered bits, the whole bytes among them are counted, and the part
    /// of the next byte that also landed is that byte's own bits, which the
    /// next refill writes again. `bits` stays below 64.
    #[inline(always)]
    fn refill_word(&mut self) -> bool {
        if self.fake != 0 {
            return false;
        }
        let Some(b) = self.data.get(self.pos..self.pos + 8) else {
            return false;
        };
        let w = u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        if has_ff_byte(w) {
            return false;
        }
        self.buf |= w >> self.bits;
        self.pos += ((63 - self.bits) >> 3) as usize;
        self.bits |= 56;
        true
    }

    /// The walk's refill: at least 52 bits buffered afterwards, whatever
    /// the bits taken before, so that three packs need no check between
    /// them; byte by byte only when it must be.
    #[inline(always)]
    fn refill_walk(&mut self) {
        if !self.refill_word() && self.bits < 52 {
            *self = self.refill_slow();
        }
    }

    #[cold]
    #[inline(never)]
    fn refill_slow(mut self) -> Self {
        while self.bits <= 55 {
            let byte = if self.marker_hit || self.pos >= self.data.len() {
                self.fake += 1;
                0
            } else {
                let b = self.data[self.pos];
                if b != 0xFF {
                    self.pos += 1;
                    b
                } else if self.data.get(self.pos + 1) == Some(&0) {
                    self.pos += 2;
                    0xFF
                } else {
                    self.marker_hit = true;
                    self.fake += 1;
                    0
                }
            };
            self.buf |= u64::from(byte) << (56 - self.bits);
            self.bits += 8;
        }
        self
    }

    #[inline(always)]
    fn consume(&mut self, n: u32) {
        self.buf <<= n;
        self.bits -= n;
    }

    #[inline(always)]
    fn decode(&mut self, t: &DecodeTable) -> Result<u8, FastPathError> {
        let e = t.lookup[(self.buf >> (64 - FAST_BITS)) as usize];
        if e != 0 {
            self.consume(u32::from(e >> 8));
            return Ok(e as u8);
        }
        let code16 = (self.buf >> 48) as i32;
        for len in FAST_BITS as usize + 1..=16 {
            let code = code16 >> (16 - len);
            if code <= t.maxcode[len] {
                self.consume(len as u32);
                let k = (code + t.delta[len]) as usize;
                return t
                    .values
                    .get(k)
                    .copied()
                    .ok_or_else(|| FastPathError::Corrupt("bad huffman code".into()));
            }
        }
        Err(FastPathError::Corrupt("bad huffman code".into()))
    }

    #[inline(always)]
    fn receive_extend(&mut self, size: u32) -> i32 {
        if size == 0 {
            return 0;
        }
        let bits = (self.buf >> (64 - size)) as i32;
        self.consume(size);
        extend(bits, size)
    }

    /// Decodes one block into `out` (zigzag order; `out` must be zero on entry
    /// when its values matter), updating the DC predictor.
    #[cfg(test)]
    pub fn decode_block(
        &mut self,
        dc: &DecodeTable,
        ac: &DecodeTable,
        pred: &mut i32,
        out: &mut [i16; 64],
    ) -> Result<(), FastPathError> {
        self.decode_block_here::<true>(dc, ac, pred, out)
    }

    /// Decodes `out.len() / plan.len()` MCUs into `out` (zero on entry), one
    /// slot per block; `plan` gives each block's component, which indexes
    /// `dc`, `ac` and `preds`. No restart marker may fall inside.
    pub fn decode_mcus(
        &mut self,
        dc: &[Rc<DecodeTable>],
        ac: &[Rc<DecodeTable>],
        plan: &[usize],
        preds: &mut [i32],
        out: &mut [[i16; 64]],
    ) -> Result<(), FastPathError> {
        // A local copy whose fields stay in registers across blocks.
        let mut r = *self;
        let mut result = Ok(());
        'mcus: for mcu in out.chunks_exact_mut(plan.len()) {
            for (&c, block) in plan.iter().zip(mcu) {
                result = r.decode_block_here::<true>(&dc[c], &ac[c], &mut preds[c], block);
                if result.is_err() {
                    break 'mcus;
                }
            }
        }
        *self = r;
        result
    }

    /// Steps over `mcus` MCUs keeping only the DC predictors: runs of AC
    /// symbols are taken several at a time and their values never formed.
    #[inline(always)]
    pub fn skip_mcus(
        &mut self,
        dc: &[Rc<DecodeTable>],
        ac: &[Rc<DecodeTable>],
        plan: &[usize],
        preds: &mut [i32],
        mcus: usize,
    ) -> Result<(), FastPathError> {
        let mut r = *self;
        let mut result = Ok(());
        let mut scratch = [0i16; 64];
        'mcus: for _ in 0..mcus {
            for &c in plan {
                result = r.decode_block_here::<false>(&dc[c], &ac[c], &mut preds[c], &mut scratch);
                if result.is_err() {
                    break 'mcus;
                }
            }
        }
        *self = r;
        result
    }

    /// Decodes one block; with `STORE` false the AC values are not kept
    /// (`out` gets only the DC).
    #[inline(always)]
    fn decode_block_here<const STORE: bool>(
        &mut self,
        dc: &DecodeTable,
        ac: &DecodeTable,
        pred: &mut i32,
        out: &mut [i16; 64],
    ) -> Result<(), FastPathError> {
        self.dc_here(dc, pred)?;
        out[0] = *pred as i16;
        self.ac_here::<STORE>(ac, out)
    }

    /// Decodes a DC difference into the predictor.
    #[inline(always)]
    fn dc_here(&mut self, dc: &DecodeTable, pred: &mut i32) -> Result<(), FastPathError> {
        self.refill();
        let e = dc.fast[(self.buf >> (64 - FAST_BITS)) as usize];
        if e != 0 {
            self.consume((e & 15) as u32);
            *pred += e >> 16;
        } else {
            let s = u32::from(self.decode(dc)?);
            if s > 11 {
                return Err(FastPathError::Corrupt("dc difference out of range".into()));
            }
            *pred += self.receive_extend(s);
        }
        if !(-32768..=32767).contains(pred) {
            return Err(FastPathError::Corrupt("dc value out of range".into()));
        }
        Ok(())
    }

    /// Decodes the AC coefficients of a block into `out` (kept only when
    /// `STORE`).
    #[inline(always)]
    fn ac_here<const STORE: bool>(
        &mut self,
        ac: &DecodeTable,
        out: &mut [i16; 64],
    ) -> Result<(), FastPathError> {
        let mut k = 1usize;
        if !STORE {
            self.refill_walk();
            let mut w = ac.walk[(self.buf >> (64 - WALK_BITS)) as usize];
            // A pack is valid as long as every symbol in it starts inside
            // the block; otherwise the one-symbol path below decides (and
            // reports a corrupt run).
            'walk: loop {
                // Three packs per refill: each takes at most `WALK_BITS`
                // bits, so the 52 a refill leaves cover three and the
                // lookup after them.
                for _ in 0..3 {
                    if k + usize::from(w >> WALK_NEED_SHIFT) > 64 {
                        break 'walk;
                    }
                    self.buf = self.buf.wrapping_shl(u32::from(w));
                    self.bits -= u32::from(w & WALK_USED);
                    if w & WALK_EOB != 0 {
                        return Ok(());
                    }
                    k += usize::from(w >> WALK_NEED_SHIFT);
                    w = ac.walk[(self.buf >> (64 - WALK_BITS)) as usize];
                }
                // Looked up before the refill: a refill only adds bits
                // below those buffered, so the lookup need not wait for it.
                self.refill_walk();
            }
        }
        while k < 64 {
            self.refill();
            let e = ac.fast[(self.buf >> (64 - FAST_BITS)) as usize];
            if e != 0 {
                self.consume((e & 15) as u32);
                if e & FAST_EOB != 0 {
                    break;
                }
                k += ((e >> 4) & 15) as usize;
                if k > 63 {
                    return Err(FastPathError::Corrupt(
                        "ac coefficient past the block".into(),
                    ));
                }
                if STORE {
                    out[k] = (e >> 16) as i16;
                }
                k += 1;
                continue;
            }
            let rs = self.decode(ac)?;
            let (run, size) = (usize::from(rs >> 4), u32::from(rs & 15));
            if size == 0 {
                if run == 15 {
                    k += 16;
                    continue;
                }
                break;
            }
            if size > 10 {
                return Err(FastPathError::Corrupt("ac value out of range".into()));
            }
            k += run;
            if k > 63 {
                return Err(FastPathError::Corrupt(
                    "ac coefficient past the block".into(),
                ));
            }
            let v = self.receive_extend(size) as i16;
            if STORE {
                out[k] = v;
            }
            k += 1;
        }
        Ok(())
    }

    /// Decodes the DC difference of one block into `pred`.
    #[inline(always)]
    pub fn decode_dc(&mut self, dc: &DecodeTable, pred: &mut i32) -> Result<(), FastPathError> {
        let mut r = *self;
        let result = r.dc_here(dc, pred);
        *self = r;
        result
    }

    /// Decodes the AC coefficients of one block into `out` (zero on entry).
    #[inline(always)]
    pub fn decode_ac(
        &mut self,
        ac: &DecodeTable,
        out: &mut [i16; 64],
    ) -> Result<(), FastPathError> {
        let mut r = *self;
        let result = r.ac_here::<true>(ac, out);
        *self = r;
        result
    }

    /// Steps over the AC coefficients of one block.
    #[inline(always)]
    pub fn skip_ac(&mut self, ac: &DecodeTable) -> Result<(), FastPathError> {
        let mut r = *self;
        let result = r.ac_here::<false>(ac, &mut [0; 64]);
        *self = r;
        result
    }

    /// Errs when the bits decoded so far ran past the real data (a truncated
    /// or corrupt interval).
    pub fn check_not_overrun(&self) -> Result<(), FastPathError> {
        if self.fake * 8 > self.bits {
            Err(FastPathError::Corrupt(
                "entropy-coded data truncated".into(),
            ))
        } else {
            Ok(())
        }
    }

    /// The file offset of the byte holding the next unread bit, and how many
    /// of that byte's bits (from the top) are already read.
    pub fn position(&self) -> Result<(usize, u32), FastPathError> {
        self.check_not_overrun()?;
        let pending = self.bits.div_ceil(8);
        let real_back = pending - self.fake;
        let mut pos = self.pos;
        for _ in 0..real_back {
            pos -= 1;
            if self.data[pos] == 0 && pos > 0 && self.data[pos - 1] == 0xFF {
                pos -= 1;
            }
        }
        Ok((pos, (8 - self.bits % 8) % 8))
    }

    /// Where the entropy-coded data of this interval ends: the offset of the
    /// marker that follows (its first 0xFF), or the end of the data.
    pub fn end_of_data(&self) -> usize {
        let (mut pos, _) = match self.position() {
            Ok(p) => p,
            Err(_) => (self.pos, 0),
        };
        while pos < self.data.len() {
            if self.data[pos] == 0xFF {
                match self.data.get(pos + 1) {
                    Some(0) => pos += 2,
                    _ => return pos,
                }
            } else {
                pos += 1;
            }
        }
        self.data.len()
    }

    /// Skips the restart marker that must end this interval and resets the
    /// reader to the byte after it.
    pub fn restart(&mut self, expected: u8) -> Result<(), FastPathError> {
        self.check_not_overrun()?;
        let mut pos = self.end_of_data();
        while self.data.get(pos) == Some(&0xFF) && self.data.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        if self.data.get(pos + 1) != Some(&(0xD0 + expected)) {
            return Err(FastPathError::Corrupt(
                "missing or out-of-order restart marker".into(),
            ));
        }
        *self = BitReader::new(self.data, pos + 2);
        Ok(())
    }
}

/// An encoding table: code and length per symbol (length 0 = missing).
pub(crate) struct EncodeTable {
    codes: [(u16, u8); 256],
}

impl EncodeTable {
    pub fn new(spec: &HuffSpec) -> Result<Self, FastPathError> {
        Ok(EncodeTable {
            codes: canonical_codes(spec)?,
        })
    }
}

/// A symbol the table lacks, or a value that no baseline code can carry.
#[derive(Debug)]
pub(crate) struct MissingSymbol;

/// Writes entropy-coded bits with 0xFF00 stuffing.
pub(crate) struct BitWriter {
    pub out: Vec<u8>,
    acc: u64,
    nbits: u32,
}

#[inline(always)]
fn category(v: i32) -> u32 {
    32 - v.unsigned_abs().leading_zeros()
}

impl BitWriter {
    /// A writer that continues after `out`, with `prefix_len` bits of
    /// `prefix` (right-aligned) already in the current byte.
    pub fn new(out: Vec<u8>, prefix: u8, prefix_len: u32) -> Self {
        BitWriter {
            out,
            acc: u64::from(prefix) & ((1 << prefix_len) - 1),
            nbits: prefix_len,
        }
    }

    /// Appends `len` (at most 32) bits; whole 32-bit words go out at once,
    /// byte by byte only when one of their bytes is 0xFF (to stuff it).
    #[inline(always)]
    fn put(&mut self, code: u32, len: u32) {
        self.acc = (self.acc << len) | u64::from(code);
        self.nbits += len;
        if self.nbits >= 32 {
            self.nbits -= 32;
            let w = (self.acc >> self.nbits) as u32;
            let bytes = w.to_be_bytes();
            if (!w).wrapping_sub(0x0101_0101) & w & 0x8080_8080 == 0 {
                self.out.extend_from_slice(&bytes);
            } else {
                for b in bytes {
                    self.out.push(b);
                    if b == 0xFF {
                        self.out.push(0);
                    }
                }
            }
        }
    }

    /// Pads the last byte with 1-bits and writes out every pending byte.
    pub fn pad(&mut self) {
        let fill = (8 - self.nbits % 8) % 8;
        self.acc = (self.acc << fill) | ((1 << fill) - 1);
        self.nbits += fill;
        while self.nbits >= 8 {
            self.nbits -= 8;
            let b = (self.acc >> self.nbits) as u8;
            self.out.push(b);
            if b == 0xFF {
                self.out.push(0);
            }
        }
    }

    /// Pads and writes a restart marker.
    pub fn restart(&mut self, n: u8) {
        self.pad();
        self.out.extend_from_slice(&[0xFF, 0xD0 + (n & 7)]);
    }

    /// Encodes one DC difference.
    pub fn encode_dc(&mut self, dc: &EncodeTable, diff: i32) -> Result<(), MissingSymbol> {
        let s = category(diff);
        if s > 11 {
            return Err(MissingSymbol);
        }
        let (code, len) = dc.codes[s as usize];
        if len == 0 {
            return Err(MissingSymbol);
        }
        self.put(
            u32::from(code) << s | value_bits(diff, s),
            u32::from(len) + s,
        );
        Ok(())
    }

    /// Appends the entropy-coded bits of `data` from bit address `from` to
    /// `to` (`byte * 8 + bit`, bits counted from the top of a data byte;
    /// a stuffed 0x00 after a 0xFF is skipped). The stretch must lie inside
    /// data the reader went through (no marker in it).
    #[inline(always)]
    pub fn copy_bits(&mut self, data: &[u8], from: usize, to: usize) {
        let (mut p, b) = (from / 8, (from % 8) as u32);
        let (q, e) = (to / 8, (to % 8) as u32);
        let next = |p: usize| p + 1 + usize::from(data[p] == 0xFF);
        if p == q {
            if e > b {
                self.put(u32::from(data[p] >> (8 - e)) & ((1 << (e - b)) - 1), e - b);
            }
            return;
        }
        if b > 0 {
            self.put(u32::from(data[p]) & ((1 << (8 - b)) - 1), 8 - b);
            p = next(p);
        }
        while p < q {
            if let Some(w) = data.get(p..p + 8).filter(|_| p + 8 <= q) {
                let w = u64::from_be_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
                if !has_ff_byte(w) {
                    self.put((w >> 32) as u32, 32);
                    self.put(w as u32, 32);
                    p += 8;
                    continue;
                }
            }
            self.put(u32::from(data[p]), 8);
            p = next(p);
        }
        if e > 0 {
            self.put(u32::from(data[q] >> (8 - e)), e);
        }
    }

    /// Encodes one block (zigzag order) and updates the DC predictor.
    #[inline(always)]
    pub fn encode_block(
        &mut self,
        dc: &EncodeTable,
        ac: &EncodeTable,
        pred: &mut i32,
        block: &[i16; 64],
    ) -> Result<(), MissingSymbol> {
        let diff = i32::from(block[0]) - *pred;
        *pred = i32::from(block[0]);
        self.encode_dc(dc, diff)?;
        // Visit only the non-zero coefficients.
        let mut nonzero = 0u64;
        for (k, &c) in block.iter().enumerate().skip(1) {
            nonzero |= u64::from(c != 0) << k;
        }
        let mut last = 0u32;
        while nonzero != 0 {
            let k = nonzero.trailing_zeros();
            nonzero &= nonzero - 1;
            let mut run = k - last - 1;
            last = k;
            while run >= 16 {
                self.put_symbol(ac, 0xF0)?;
                run -= 16;
            }
            let v = i32::from(block[k as usize]);
            let s = category(v);
            if s > 10 {
                return Err(MissingSymbol);
            }
            let (code, len) = ac.codes[(run << 4 | s) as usize];
            if len == 0 {
                return Err(MissingSymbol);
            }
            self.put(u32::from(code) << s | value_bits(v, s), u32::from(len) + s);
        }
        if last < 63 {
            self.put_symbol(ac, 0x00)?;
        }
        Ok(())
    }

    #[inline(always)]
    fn put_symbol(&mut self, t: &EncodeTable, sym: u8) -> Result<(), MissingSymbol> {
        let (code, len) = t.codes[usize::from(sym)];
        if len == 0 {
            return Err(MissingSymbol);
        }
        self.put(u32::from(code), u32::from(len));
        Ok(())
    }
}

#[inline(always)]
fn value_bits(v: i32, s: u32) -> u32 {
    let v = if v < 0 { v - 1 } else { v };
    (v as u32) & ((1 << s) - 1)
}

/// Symbol counts of one table, for building optimal codes.
pub(crate) struct Frequencies(pub [u32; 256]);

impl Frequencies {
    pub fn new() -> Self {
        Frequencies([0; 256])
    }
}

/// Counts the symbols a block will need (DC into `dc`, AC into `ac`).
pub(crate) fn count_block(
    dc: &mut Frequencies,
    ac: &mut Frequencies,
    pred: &mut i32,
    block: &[i16; 64],
) {
    let diff = i32::from(block[0]) - *pred;
    *pred = i32::from(block[0]);
    dc.0[category(diff).min(15) as usize] += 1;
    let mut run = 0u32;
    for &c in &block[1..] {
        if c == 0 {
            run += 1;
            continue;
        }
        while run >= 16 {
            ac.0[0xF0] += 1;
            run -= 16;
        }
        ac.0[(run << 4 | category(i32::from(c)).min(15)) as usize] += 1;
        run = 0;
    }
    if run > 0 {
        ac.0[0] += 1;
    }
}

/// Optimal code lengths limited to 16 bits (JPEG Annex K.2, as in libjpeg).
pub(crate) fn optimal_table(freq: &Frequencies) -> HuffSpec {
    let mut f = [0i64; 257];
    for (i, &c) in freq.0.iter().enumerate() {
        f[i] = i64::from(c);
    }
    if f.iter().all(|&c| c == 0) {
        f[0] = 1;
    }
    f[256] = 1; // reserved so that no code is all ones
    let mut codesize = [0usize; 257];
    let mut others = [-1i32; 257];
    loop {
        let mut c1: i32 = -1;
        let mut v = i64::MAX;
        for (i, &fi) in f.iter().enumerate() {
            if fi > 0 && fi <= v {
                v = fi;
                c1 = i as i32;
            }
        }
        let mut c2: i32 = -1;
        v = i64::MAX;
        for (i, &fi) in f.iter().enumerate() {
            if fi > 0 && fi <= v && i as i32 != c1 {
                v = fi;
                c2 = i as i32;
            }
        }
        if c2 < 0 {
            break;
        }
        let (mut a, mut b) = (c1 as usize, c2 as usize);
        f[a] += f[b];
        f[b] = 0;
        codesize[a] += 1;
        while others[a] >= 0 {
            a = others[a] as usize;
            codesize[a] += 1;
        }
        others[a] = c2;
        codesize[b] += 1;
        while others[b] >= 0 {
            b = others[b] as usize;
            codesize[b] += 1;
        }
    }
    let mut bits = [0i32; 33];
    for &cs in codesize.iter() {
        if cs > 0 {
            bits[cs.min(32)] += 1;
        }
    }
    let mut i = 32;
    while i > 16 {
        while bits[i] > 0 {
            let mut j = i - 2;
            while bits[j] == 0 {
                j -= 1;
            }
            bits[i] -= 2;
            bits[i - 1] += 1;
            bits[j + 1] += 2;
            bits[j] -= 1;
        }
        i -= 1;
    }
    while bits[i] == 0 {
        i -= 1;
    }
    bits[i] -= 1; // drop the reserved code
    let mut counts = [0u8; 16];
    for (l, c) in counts.iter_mut().enumerate() {
        *c = bits[l + 1] as u8;
    }
    let mut values = Vec::new();
    for len in 1..=32 {
        for (sym, &cs) in codesize.iter().enumerate().take(256) {
            if cs == len {
                values.push(sym as u8);
            }
        }
    }
    HuffSpec { counts, values }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(blocks: &[[i16; 64]], spec_dc: &HuffSpec, spec_ac: &HuffSpec) {
        let (edc, eac) = (
            EncodeTable::new(spec_dc).unwrap(),
            EncodeTable::new(spec_ac).unwrap(),
        );
        let mut w = BitWriter::new(vec![0xAA], 0, 0);
        let mut pred = 0;
        for b in blocks {
            w.encode_block(&edc, &eac, &mut pred, b).unwrap();
        }
        w.pad();
        w.out.extend_from_slice(&[0xFF, 0xD9]);
        let (ddc, dac) = (
            DecodeTable::new(spec_dc, false).unwrap(),
            DecodeTable::new(spec_ac, true).unwrap(),
        );
        let mut r = BitReader::new(&w.out, 1);
        let mut pred = 0;
        for b in blocks {
            let mut out = [0i16; 64];
            r.decode_block(&ddc, &dac, &mut pred, &mut out).unwrap();
            assert_eq!(&out, b);
        }
        r.check_not_overrun().unwrap();
        assert_eq!(r.end_of_data(), w.out.len() - 2);
    }

    fn sample_blocks() -> Vec<[i16; 64]> {
        let mut blocks = Vec::new();
        let mut x: u32 = 12345;
        for i in 0..300 {
            let mut b = [0i16; 64];
            for (k, c) in b.iter_mut().enumerate() {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let r = (x >> 16) % 1000;
                if r < 60 / (k as u32 / 8 + 1) + 5 {
                    *c = ((x >> 8) % 2047) as i16 - 1023;
                } else if r < 300 && k < 20 {
                    *c = ((x >> 8) % 7) as i16 - 3;
                }
            }
            b[0] = (i as i16 % 200) * 5 - 500;
            if i % 7 == 0 {
                b[63] = -1;
            }
            blocks.push(b);
        }
        blocks
    }

    /// Optimal DC and AC tables for `blocks`, one component.
    fn optimal_tables_for(blocks: &[[i16; 64]]) -> (HuffSpec, HuffSpec) {
        let (mut dc, mut ac) = (Frequencies::new(), Frequencies::new());
        let mut pred = 0;
        for b in blocks {
            count_block(&mut dc, &mut ac, &mut pred, b);
        }
        (optimal_table(&dc), optimal_table(&ac))
    }

    #[test]
    fn optimal_tables_roundtrip_every_block() {
        let blocks = sample_blocks();
        let (sdc, sac) = optimal_tables_for(&blocks);
        assert!(sdc.counts.iter().map(|&c| usize::from(c)).sum::<usize>() == sdc.values.len());
        roundtrip(&blocks, &sdc, &sac);
    }

    #[test]
    fn a_table_seen_lately_on_the_thread_is_built_once() {
        let blocks = sample_blocks();
        let (sdc, sac) = optimal_tables_for(&blocks);
        let first = DecodeTable::shared(&sac, true).unwrap();
        assert!(Rc::ptr_eq(
            &first,
            &DecodeTable::shared(&sac, true).unwrap()
        ));
        // The class is part of the key: the same DHT table read as DC
        // decodes differently.
        assert!(!Rc::ptr_eq(
            &first,
            &DecodeTable::shared(&sac, false).unwrap()
        ));
        assert!(!Rc::ptr_eq(
            &first,
            &DecodeTable::shared(&sdc, true).unwrap()
        ));
        // Once more tables than the thread keeps came after it, it is built
        // anew.
        for n in 0..CACHED_TABLES {
            let mut other = sdc.clone();
            other.values[0] = 200 + n as u8;
            DecodeTable::shared(&other, false).unwrap();
        }
        assert!(!Rc::ptr_eq(
            &first,
            &DecodeTable::shared(&sac, true).unwrap()
        ));
    }

    #[test]
    fn skipping_blocks_stops_where_decoding_them_does() {
        let blocks = sample_blocks();
        let (sdc, sac) = optimal_tables_for(&blocks);
        let (edc, eac) = (
            EncodeTable::new(&sdc).unwrap(),
            EncodeTable::new(&sac).unwrap(),
        );
        let mut w = BitWriter::new(Vec::new(), 0, 0);
        let mut pred = 0;
        for b in &blocks {
            w.encode_block(&edc, &eac, &mut pred, b).unwrap();
        }
        w.pad();
        w.out.extend_from_slice(&[0xFF, 0xD9]);
        let ddc = vec![Rc::new(DecodeTable::new(&sdc, false).unwrap())];
        let dac = vec![Rc::new(DecodeTable::new(&sac, true).unwrap())];
        let (mut decoder, mut skipper) = (BitReader::new(&w.out, 0), BitReader::new(&w.out, 0));
        let (mut decoded, mut skipped) = ([0], [0]);
        for _ in &blocks {
            let mut out = [[0i16; 64]];
            decoder
                .decode_mcus(&ddc, &dac, &[0], &mut decoded, &mut out)
                .unwrap();
            skipper
                .skip_mcus(&ddc, &dac, &[0], &mut skipped, 1)
                .unwrap();
            assert_eq!(skipped, decoded);
            assert_eq!(skipper.position().unwrap(), decoder.position().unwrap());
        }
    }

    #[test]
    fn copied_bits_are_the_source_bits_restuffed() {
        // Data bytes with many 0xFF, stuffed as in a scan.
        let mut x: u32 = 99;
        let data: Vec<u8> = (0..200)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                if (x >> 20).is_multiple_of(4) {
                    0xFF
                } else {
                    (x >> 16) as u8
                }
            })
            .collect();
        let mut stuffed = Vec::new();
        let mut at = Vec::new(); // stuffed offset of each data byte
        for &b in &data {
            at.push(stuffed.len());
            stuffed.push(b);
            if b == 0xFF {
                stuffed.push(0);
            }
        }
        at.push(stuffed.len());
        let bit = |i: usize| (data[i / 8] >> (7 - i % 8)) & 1;
        let addr = |i: usize| at[i / 8] * 8 + i % 8;
        for (from, to) in [
            (0, 1600),
            (3, 5),
            (3, 11),
            (7, 8),
            (13, 1021),
            (64, 64),
            (5, 1599),
        ] {
            let mut w = BitWriter::new(Vec::new(), 0, 0);
            w.copy_bits(&stuffed, addr(from), addr(to));
            w.pad();
            let mut out = Vec::new();
            let mut i = 0;
            while i < w.out.len() {
                out.push(w.out[i]);
                i += if w.out[i] == 0xFF { 2 } else { 1 };
            }
            for k in 0..to - from {
                assert_eq!(
                    (out[k / 8] >> (7 - k % 8)) & 1,
                    bit(from + k),
                    "{from}..{to} at {k}"
                );
            }
            assert_eq!(out.len(), (to - from).div_ceil(8));
        }
    }

    #[test]
    fn optimal_codes_never_exceed_16_bits_for_skewed_counts() {
        let mut f = Frequencies::new();
        for i in 0..200 {
            // Fibonacci-like counts force deep trees.
            f.0[i] = if i < 30 { 1u32 << i.min(30) } else { 1 };
        }
        let spec = optimal_table(&f);
        assert_eq!(spec.values.len(), 200);
        let codes = canonical_codes(&spec).unwrap();
        assert!(codes.iter().all(|&(_, l)| l <= 16));
        // No code is all ones.
        assert!(codes
            .iter()
            .all(|&(c, l)| l == 0 || u32::from(c) != (1u32 << l) - 1));
    }

    #[test]
    fn a_missing_symbol_is_reported_not_encoded() {
        let spec = HuffSpec {
            counts: [0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            values: vec![0],
        };
        let t = EncodeTable::new(&spec).unwrap();
        let mut w = BitWriter::new(Vec::new(), 0, 0);
        let mut b = [0i16; 64];
        let mut pred = 0;
        assert!(w.encode_block(&t, &t, &mut pred, &b).is_ok());
        b[5] = 3;
        assert!(w.encode_block(&t, &t, &mut pred, &b).is_err());
    }

    #[test]
    fn the_position_of_a_bit_skips_stuffed_zeros() {
        // Bytes: 0x12, 0xFF 0x00 (data 0xFF), 0x34, then a marker.
        let data = [0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD9];
        let mut r = BitReader::new(&data, 0);
        r.refill();
        r.consume(12);
        assert_eq!(r.position().unwrap(), (1, 4));
        r.consume(4);
        assert_eq!(r.position().unwrap(), (3, 0));
        r.consume(3);
        assert_eq!(r.position().unwrap(), (3, 3));
        assert_eq!(r.end_of_data(), 4);
        r.consume(6);
        assert!(r.check_not_overrun().is_err());
    }
}
