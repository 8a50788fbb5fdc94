//! Arbitrary bytes into the JPEG fast path: it must not panic or hang, and
//! an image it returns must decode (with zune-jpeg) whenever the input did.
//!
//! The first two bytes place the mark (in steps of 4 px); the rest is the
//! JPEG. Run: `cargo fuzz run jpeg_fastpath -- -max_len=65536`.

#![no_main]

use libfuzzer_sys::fuzz_target;

// The pure module itself, not the whole `tasklet-actors` crate: the fuzz
// build then instruments only the codec, not the database stack.
#[allow(dead_code)]
#[path = "../compose/mod.rs"]
mod compose;

use compose::jpeg::stamp_baseline;
use zune_core::bytestream::ZCursor;
use zune_core::options::DecoderOptions;

const MW: u32 = 24;
const MH: u32 = 16;

fn decodes(jpeg: &[u8]) -> bool {
    let opts = DecoderOptions::default()
        .set_max_width(1 << 14)
        .set_max_height(1 << 14);
    zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(jpeg), opts)
        .decode()
        .is_ok()
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let (x, y) = (u32::from(data[0]) * 4, u32::from(data[1]) * 4);
    let jpeg = &data[2..];
    let mark: Vec<u8> = (0..MW * MH * 4).map(|i| (i * 37 % 256) as u8).collect();
    if let Ok(out) = stamp_baseline(jpeg, &mark, MW, MH, x, y, 200) {
        assert!(
            decodes(&out) || !decodes(jpeg),
            "the fast path turned a decodable jpeg into an undecodable one"
        );
    }
});
