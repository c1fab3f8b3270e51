//! RFC 6455 frame headers: decoding (checked once), unmasking, encoding.

use super::event::CloseCode;

/// Frame opcodes (RFC 6455 section 5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpCode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl OpCode {
    fn from_bits(b: u8) -> Option<OpCode> {
        Some(match b {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    pub fn bits(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// Why a frame header was refused; each maps to a close code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// RSV2 or RSV3 is set: no extension herald speaks uses them. (RSV1,
    /// which permessage-deflate uses, is the protocol layer's to judge.)
    ReservedBits,
    /// Opcode 0x3-0x7 or 0xB-0xF.
    UnknownOpcode,
    /// A client frame without the mask bit.
    Unmasked,
    /// A control frame with FIN clear or a payload over 125 bytes.
    BadControlFrame,
    /// A 16/64-bit length that would have fit a shorter form, or a 64-bit
    /// length with the most significant bit set.
    BadLength,
    /// The frame alone exceeds the configured maximum message size.
    TooBig,
}

impl FrameError {
    pub fn close_code(self) -> CloseCode {
        match self {
            FrameError::TooBig => CloseCode::TOO_BIG,
            _ => CloseCode::PROTOCOL,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            FrameError::ReservedBits => "reserved bits set",
            FrameError::UnknownOpcode => "unknown opcode",
            FrameError::Unmasked => "client frames must be masked",
            FrameError::BadControlFrame => "bad control frame",
            FrameError::BadLength => "bad payload length encoding",
            FrameError::TooBig => "frame too big",
        }
    }
}

/// A decoded, validated frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub fin: bool,
    /// RSV1: a compressed message (RFC 7692) when permessage-deflate was
    /// negotiated, else a violation; the protocol layer decides.
    pub rsv1: bool,
    pub opcode: OpCode,
    pub mask: Option<[u8; 4]>,
    pub len: u64,
}

/// Longest possible header: 2 + 8 (64-bit length) + 4 (mask).
pub const MAX_HEADER: usize = 14;

impl Header {
    /// Parses a header from the start of `buf`. `Ok(None)` means more bytes are
    /// needed (never more than [`MAX_HEADER`]); `Ok(Some((h, n)))` means the header
    /// took `n` bytes. `require_mask` is true on the server side. Frames longer
    /// than `max_len` are refused before any payload arrives.
    pub fn parse(
        buf: &[u8],
        require_mask: bool,
        max_len: u64,
    ) -> Result<Option<(Header, usize)>, FrameError> {
        if buf.len() < 2 {
            return Ok(None);
        }
        let b0 = buf[0];
        let b1 = buf[1];
        if b0 & 0x30 != 0 {
            return Err(FrameError::ReservedBits);
        }
        let opcode = OpCode::from_bits(b0 & 0x0F).ok_or(FrameError::UnknownOpcode)?;
        let fin = b0 & 0x80 != 0;
        let masked = b1 & 0x80 != 0;
        if require_mask && !masked {
            return Err(FrameError::Unmasked);
        }
        let len7 = b1 & 0x7F;
        if opcode.is_control() && (!fin || len7 > 125) {
            return Err(FrameError::BadControlFrame);
        }
        let (len, mut at) = match len7 {
            126 => {
                if buf.len() < 4 {
                    return Ok(None);
                }
                let len = u16::from_be_bytes([buf[2], buf[3]]) as u64;
                if len < 126 {
                    return Err(FrameError::BadLength);
                }
                (len, 4)
            }
            127 => {
                if buf.len() < 10 {
                    return Ok(None);
                }
                let mut b = [0u8; 8];
                b.copy_from_slice(&buf[2..10]);
                let len = u64::from_be_bytes(b);
                if len >> 63 != 0 || len <= 0xFFFF {
                    return Err(FrameError::BadLength);
                }
                (len, 10)
            }
            n => (n as u64, 2),
        };
        if len > max_len {
            return Err(FrameError::TooBig);
        }
        let mask = if masked {
            if buf.len() < at + 4 {
                return Ok(None);
            }
            let m = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
            at += 4;
            Some(m)
        } else {
            None
        };
        Ok(Some((
            Header {
                fin,
                rsv1: b0 & 0x40 != 0,
                opcode,
                mask,
                len,
            },
            at,
        )))
    }
}

/// XORs `buf` with `mask`, where `buf[0]` is payload byte number `offset`
/// of the frame. Works a machine word at a time on the aligned middle.
pub fn unmask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut m = mask;
    m.rotate_left(offset % 4);
    // Bytes before the first 8-byte boundary, one at a time.
    let (head, mid, tail) = {
        // SAFETY: u64 is plain data; align_to_mut only reinterprets the aligned middle.
        unsafe { buf.align_to_mut::<u64>() }
    };
    for (i, b) in head.iter_mut().enumerate() {
        *b ^= m[i % 4];
    }
    let m = {
        let mut rot = m;
        rot.rotate_left(head.len() % 4);
        rot
    };
    let word = u64::from_ne_bytes([m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]]);
    for w in mid.iter_mut() {
        *w ^= word;
    }
    for (i, b) in tail.iter_mut().enumerate() {
        *b ^= m[i % 4];
    }
}

/// The header of one outbound frame: the one encoder every frame herald
/// sends goes through (text, binary, ping, pong, close). `rsv1` is there for
/// a compression extension (RFC 7692 marks compressed messages with it).
#[derive(Clone, Copy, Debug)]
pub struct FrameHead {
    bytes: [u8; 10],
    len: u8,
}

impl FrameHead {
    /// A final, unextended server frame of `len` payload bytes.
    pub fn new(opcode: OpCode, len: usize) -> FrameHead {
        FrameHead::with_bits(true, false, opcode, len)
    }

    /// Any server frame header, with the shortest length encoding.
    pub fn with_bits(fin: bool, rsv1: bool, opcode: OpCode, len: usize) -> FrameHead {
        let mut bytes = [0u8; 10];
        bytes[0] = (if fin { 0x80 } else { 0 }) | (if rsv1 { 0x40 } else { 0 }) | opcode.bits();
        let n = if len < 126 {
            bytes[1] = len as u8;
            2
        } else if len <= 0xFFFF {
            bytes[1] = 126;
            bytes[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            4
        } else {
            bytes[1] = 127;
            bytes[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            10
        };
        FrameHead { bytes, len: n }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

/// Appends a whole unmasked frame to `out`: the header written once, the
/// payload copied once.
pub fn encode_frame(opcode: OpCode, payload: &[u8], out: &mut Vec<u8>) {
    let h = FrameHead::new(opcode, payload.len());
    out.reserve(h.as_bytes().len() + payload.len());
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(payload);
}

/// Appends a close frame with `code` and `reason` (truncated to fit 125 bytes
/// on a character boundary).
pub fn encode_close(code: CloseCode, reason: &str, out: &mut Vec<u8>) {
    let mut payload = [0u8; 125];
    payload[..2].copy_from_slice(&code.0.to_be_bytes());
    let mut r = reason.len().min(123);
    while !reason.is_char_boundary(r) {
        r -= 1;
    }
    payload[2..2 + r].copy_from_slice(&reason.as_bytes()[..r]);
    encode_frame(OpCode::Close, &payload[..2 + r], out);
}

/// Client side: appends a masked frame (used by tests, benches and fuzzers).
pub fn encode_masked(fin: bool, opcode: OpCode, payload: &[u8], mask: [u8; 4], out: &mut Vec<u8>) {
    let h = FrameHead::with_bits(fin, false, opcode, payload.len());
    let start = out.len();
    out.extend_from_slice(h.as_bytes());
    out[start + 1] |= 0x80;
    out.extend_from_slice(&mask);
    let body = out.len();
    out.extend_from_slice(payload);
    unmask(&mut out[body..], mask, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(b: &[u8]) -> Result<Option<(Header, usize)>, FrameError> {
        Header::parse(b, true, u64::MAX >> 1)
    }

    #[test]
    fn short_lengths_and_masks() {
        let mut v = Vec::new();
        encode_masked(true, OpCode::Text, b"hello", [1, 2, 3, 4], &mut v);
        let (h, n) = parse(&v).unwrap().unwrap();
        assert_eq!(n, 6);
        assert_eq!(h.len, 5);
        assert_eq!(h.opcode, OpCode::Text);
        assert!(h.fin);
        let mut p = v[n..].to_vec();
        unmask(&mut p, h.mask.unwrap(), 0);
        assert_eq!(&p, b"hello");
    }

    #[test]
    fn every_prefix_of_a_header_asks_for_more() {
        for len in [0usize, 125, 126, 65535, 65536] {
            let payload = vec![7u8; len];
            let mut v = Vec::new();
            encode_masked(true, OpCode::Binary, &payload, [9, 8, 7, 6], &mut v);
            let (h, n) = parse(&v).unwrap().unwrap();
            assert_eq!(h.len as usize, len);
            for cut in 0..n {
                assert_eq!(parse(&v[..cut]).unwrap(), None, "len {len} cut {cut}");
            }
        }
    }

    #[test]
    fn non_minimal_lengths_are_refused() {
        assert_eq!(
            parse(&[0x81, 0xFE, 0, 125, 0, 0, 0, 0]),
            Err(FrameError::BadLength)
        );
        let mut b = vec![0x82, 0xFF];
        b.extend_from_slice(&65535u64.to_be_bytes());
        b.extend_from_slice(&[0; 4]);
        assert_eq!(parse(&b), Err(FrameError::BadLength));
    }

    #[test]
    fn length_with_top_bit_is_refused() {
        let mut b = vec![0x82, 0xFF];
        b.extend_from_slice(&(1u64 << 63).to_be_bytes());
        b.extend_from_slice(&[0; 4]);
        assert_eq!(parse(&b), Err(FrameError::BadLength));
    }

    #[test]
    fn too_big_is_refused_before_payload() {
        let mut b = vec![0x82, 0xFF];
        b.extend_from_slice(&(1u64 << 40).to_be_bytes());
        assert_eq!(Header::parse(&b, true, 1 << 20), Err(FrameError::TooBig));
        assert_eq!(FrameError::TooBig.close_code(), CloseCode::TOO_BIG);
    }

    #[test]
    fn reserved_bits_opcodes_mask_and_control_rules() {
        assert_eq!(parse(&[0xA1, 0x80]), Err(FrameError::ReservedBits));
        assert_eq!(parse(&[0x91, 0x80]), Err(FrameError::ReservedBits));
        assert!(parse(&[0xC1, 0x80, 1, 2, 3, 4]).unwrap().unwrap().0.rsv1);
        assert_eq!(parse(&[0x83, 0x80]), Err(FrameError::UnknownOpcode));
        assert_eq!(parse(&[0x8B, 0x80]), Err(FrameError::UnknownOpcode));
        assert_eq!(parse(&[0x81, 0x05]), Err(FrameError::Unmasked));
        assert_eq!(parse(&[0x09, 0x80]), Err(FrameError::BadControlFrame));
        assert_eq!(
            parse(&[0x89, 0xFE, 0, 126]),
            Err(FrameError::BadControlFrame)
        );
        assert!(Header::parse(&[0x81, 0x05], false, 100).unwrap().is_some());
    }

    #[test]
    fn unmask_matches_bytewise_for_every_offset_and_alignment() {
        let mask = [0xA1, 0xB2, 0xC3, 0xD4];
        let data: Vec<u8> = (0..=255u8).cycle().take(300).collect();
        for start in 0..8 {
            for offset in 0..4 {
                let mut buf = data.clone();
                unmask(&mut buf[start..], mask, offset);
                for (i, b) in buf[start..].iter().enumerate() {
                    assert_eq!(*b, data[start + i] ^ mask[(i + offset) % 4]);
                }
            }
        }
    }

    #[test]
    fn encode_header_uses_minimal_lengths() {
        let len = |n| FrameHead::new(OpCode::Text, n).as_bytes().len();
        assert_eq!((len(125), len(126), len(65535), len(65536)), (2, 4, 4, 10));
        let h = FrameHead::with_bits(false, true, OpCode::Binary, 3);
        assert_eq!(h.as_bytes(), [0x42, 3]);
        let mut v = Vec::new();
        encode_close(CloseCode(1000), &"é".repeat(100), &mut v);
        assert_eq!(v[1] as usize, v.len() - 2);
        assert!(v.len() - 2 <= 125);
        assert!(std::str::from_utf8(&v[4..]).is_ok());
    }
}
