//! permessage-deflate's inflater on arbitrary compressed bytes, alone and
//! inside the frame decoder: it never panics, never gives more than the
//! message cap, holds at most the cap (plus zlib's fixed state) while it
//! works, and gives the same answer however the compressed bytes are split
//! (fragments). Deflate -> inflate round trips give back the input.
//!
//! Input: a cap selector, a split point, then the compressed bytes (also
//! the text of the round trip).
#![no_main]

use herald::ws::decode::{self, Partial};
use herald::ws::deflate::{Deflater, InflateError, Inflater};
use herald::ws::frame::{encode_masked, Header, OpCode};
use herald::ws::{CloseCode, Event};
use herald_fuzz::live_bytes;
use libfuzzer_sys::fuzz_target;

const MAX_MESSAGES: [usize; 6] = [1, 100, 1000, 8192, 65536, 1 << 20];

/// zlib's inflate state and window, and the decoder's own state: what the
/// inflater may hold besides the message.
const FIXED: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let max = MAX_MESSAGES[data[0] as usize % MAX_MESSAGES.len()];
    let z = &data[3..];
    let cut = u16::from_be_bytes([data[1], data[2]]) as usize % (z.len() + 1);

    let mut inflater = Inflater::default();
    let before = live_bytes();
    let result = inflater.inflate(&[z], max);
    // Measured before the message is copied out for the checks below.
    let held = live_bytes().saturating_sub(before);
    assert!(
        held <= max + 1 + FIXED,
        "{held} bytes held for a cap of {max}"
    );
    let whole = result.map(<[u8]>::to_vec);
    if let Ok(out) = &whole {
        assert!(out.len() <= max);
    }
    // Split input inflates to the same message. When it fails, which of
    // the two failures is seen first may differ (zlib reaches the cap or
    // the bad code first depending on where its input stops); herald
    // always inflates a message's whole body in one call anyway.
    let split = inflater
        .inflate(&[&z[..cut], &z[cut..]], max)
        .map(<[u8]>::to_vec);
    assert_eq!(
        split.is_ok(),
        whole.is_ok(),
        "the split at {cut} changed the outcome"
    );
    if whole.is_ok() {
        assert_eq!(split, whole, "the split at {cut} changed the message");
    }

    // The same bytes as a compressed message through the decoder, in one
    // frame and as two fragments: the same message or the same close code.
    let one = decoded(&[frame(true, true, OpCode::Binary, z)], max, &mut inflater);
    let mut two = frame(false, true, OpCode::Binary, &z[..cut]);
    two.extend(frame(true, false, OpCode::Continuation, &z[cut..]));
    let two = decoded(&[two], max, &mut inflater);
    assert_eq!(one, two);
    let want = match &whole {
        // A frame over the cap is refused before inflating.
        _ if z.len() > max => Err(CloseCode::TOO_BIG),
        Ok(out) => Ok(out.clone()),
        Err(InflateError::TooBig) => Err(CloseCode::TOO_BIG),
        Err(InflateError::Invalid) => Err(CloseCode::INVALID_DATA),
    };
    assert_eq!(one, want);

    // Round trip: herald's own compressed frames inflate back. Level 1
    // (herald's own encoder under 16 KiB) half the time; two messages in
    // turn, so the second meets the first one's positions in the hash
    // table the encoder never clears.
    let level = if data[1] & 1 == 0 { 1 } else { 1 + data[1] % 9 };
    let mut deflater = Deflater::new(level);
    for parts in [[&z[cut..], &z[..cut]], [&z[..cut], &z[cut..]]] {
        let mut f = Vec::new();
        if deflater.frame(OpCode::Binary, &parts, data[2] & 1 == 1, &mut f) {
            let (_, n) = Header::parse(&f, false, u64::MAX >> 1).unwrap().unwrap();
            assert_eq!(
                inflater.inflate(&[&f[n..]], z.len()).unwrap(),
                parts.concat()
            );
        }
    }
});

fn frame(fin: bool, rsv1: bool, op: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    encode_masked(fin, op, payload, [1, 2, 3, 4], &mut v);
    if rsv1 {
        v[0] |= 0x40;
    }
    v
}

/// The one data message `reads` decode to, or the close code.
fn decoded(reads: &[Vec<u8>], max: usize, inflater: &mut Inflater) -> Result<Vec<u8>, CloseCode> {
    let mut state: Option<Box<Partial>> = None;
    for read in reads {
        let mut buf = read.clone();
        let mut at = 0;
        loop {
            match decode::next(&mut state, &mut buf[at..], max, Some(&mut *inflater)) {
                Ok((_, None)) => break,
                Ok((_, Some(Event::Binary(b)))) => return Ok(b.to_vec()),
                Ok((used, Some(_))) => at += used,
                Err(f) => return Err(f.code),
            }
        }
    }
    panic!("no message and no failure from a whole message");
}
