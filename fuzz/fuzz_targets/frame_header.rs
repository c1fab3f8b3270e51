//! `Header::parse` on arbitrary bytes; `encode_masked` -> `parse` -> `unmask`
//! round trips; `unmask` against a bytewise reference.
//!
//! Input: one config byte (bit 0 require_mask, bits 1-3 max_len, bits 4-6
//! where `unmask` starts, all of it the mask offset), then the header bytes.
#![no_main]

use herald::ws::frame::{
    encode_frame, encode_masked, unmask, FrameError, FrameHead, Header, OpCode, MAX_HEADER,
};
use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;

const OPCODES: [OpCode; 6] = [
    OpCode::Continuation,
    OpCode::Text,
    OpCode::Binary,
    OpCode::Close,
    OpCode::Ping,
    OpCode::Pong,
];
const MAX_LENS: [u64; 8] = [0, 1, 125, 126, 65535, 65536, 1 << 20, u64::MAX >> 1];

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, bytes)) = data.split_first() else {
        return;
    };
    let require_mask = cfg & 1 != 0;
    let max_len = MAX_LENS[(cfg >> 1) as usize % MAX_LENS.len()];
    check_parse(bytes, require_mask, max_len);
    round_trip(bytes);
    check_unmask(bytes, ((cfg >> 4) & 7) as usize, cfg as usize);
});

fn check_parse(bytes: &[u8], require_mask: bool, max_len: u64) {
    let got = Header::parse(bytes, require_mask, max_len);
    // A definite answer from a prefix never changes as bytes arrive, and
    // MAX_HEADER bytes always give one.
    for k in 0..=bytes.len().min(MAX_HEADER) {
        match Header::parse(&bytes[..k], require_mask, max_len) {
            Ok(None) => assert!(k < MAX_HEADER, "{k} bytes still ask for more"),
            early => assert_eq!(early, got, "prefix of {k} bytes"),
        }
    }
    let Ok(Some((h, n))) = got else {
        return;
    };
    assert!(
        (2..=MAX_HEADER).contains(&n) && n <= bytes.len(),
        "consumed {n}"
    );
    assert!(h.len <= max_len, "{h:?} over max_len {max_len}");
    assert_eq!(h.len >> 63, 0);
    if h.opcode.is_control() {
        assert!(h.fin && h.len <= 125, "bad control frame accepted: {h:?}");
    }
    if require_mask {
        assert!(h.mask.is_some());
    }
    // Lengths are minimal and RSV2/RSV3 are refused, so the wire form is
    // canonical: encoding the parsed header gives back the same bytes.
    let mut again = FrameHead::with_bits(h.fin, h.rsv1, h.opcode, h.len as usize)
        .as_bytes()
        .to_vec();
    if let Some(mask) = h.mask {
        again[1] |= 0x80;
        again.extend_from_slice(&mask);
    }
    assert_eq!(again, &bytes[..n]);
}

fn round_trip(bytes: &[u8]) {
    let mut u = Unstructured::new(bytes);
    let fin: bool = u.arbitrary().unwrap_or_default();
    let opcode = OPCODES[u.choose_index(OPCODES.len()).unwrap_or_default()];
    let mask: [u8; 4] = u.arbitrary().unwrap_or_default();
    // Lengths around each encoding boundary (7, 16 and 64 bits), or any.
    let len: usize = match u.choose_index(3).unwrap_or_default() {
        0 => u.int_in_range(0..=130),
        1 => u.int_in_range(65_530..=65_540),
        _ => u.int_in_range(0..=70_000),
    }
    .unwrap_or_default();
    let pattern = u.take_rest();
    let payload: Vec<u8> = (0..len)
        .map(|i| {
            pattern
                .get(i % pattern.len().max(1))
                .map_or(i as u8, |b| b ^ (i >> 8) as u8)
        })
        .collect();

    let mut wire = Vec::new();
    encode_masked(fin, opcode, &payload, mask, &mut wire);
    let parsed = Header::parse(&wire, true, u64::MAX >> 1);
    if opcode.is_control() && (!fin || len > 125) {
        assert_eq!(parsed, Err(FrameError::BadControlFrame));
        return;
    }
    let (h, n) = parsed.unwrap().expect("a whole frame is a whole header");
    let want = Header {
        fin,
        rsv1: false,
        opcode,
        mask: Some(mask),
        len: len as u64,
    };
    assert_eq!(h, want);
    assert_eq!(n + len, wire.len());
    assert_eq!(Header::parse(&wire, true, len as u64), Ok(Some((h, n))));
    if len > 0 {
        assert_eq!(
            Header::parse(&wire, true, len as u64 - 1),
            Err(FrameError::TooBig)
        );
    }
    unmask(&mut wire[n..], mask, 0);
    assert_eq!(&wire[n..], &payload[..]);

    // The server's unmasked form parses back too (on the client side).
    if fin {
        let mut plain = Vec::new();
        encode_frame(opcode, &payload, &mut plain);
        let (h, n) = Header::parse(&plain, false, u64::MAX >> 1)
            .unwrap()
            .unwrap();
        assert_eq!(h, Header { mask: None, ..want });
        assert_eq!(&plain[n..], &payload[..]);
    }
}

fn check_unmask(bytes: &[u8], start: usize, offset: usize) {
    let mask: [u8; 4] = Unstructured::new(bytes).arbitrary().unwrap_or_default();
    let start = start.min(bytes.len());
    let mut buf = bytes.to_vec();
    unmask(&mut buf[start..], mask, offset);
    for (i, b) in buf[start..].iter().enumerate() {
        assert_eq!(*b, bytes[start + i] ^ mask[(i + offset) % 4], "byte {i}");
    }
    unmask(&mut buf[start..], mask, offset);
    assert_eq!(buf, bytes, "unmask twice is not the identity");
}
