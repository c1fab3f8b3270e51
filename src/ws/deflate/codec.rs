//! The two halves of permessage-deflate, each one per server (never per
//! connection): [`Inflater`] for client messages, [`Deflater`] for the
//! frames herald sends. Both start every message from an empty window (no
//! context takeover, RFC 7692 section 7.1.1), so one object serves every
//! connection in turn. Inflating, and compressing messages over 16 KiB or
//! above level 1, is zlib-rs (through flate2's safe API); shorter messages
//! at level 1 go through herald's own encoder ([`Fast`]), which has no
//! fixed cost per message. All pure Rust, so static musl builds still link
//! with rust-lld alone.

use super::error::InflateError;
use super::fast::Fast;
use crate::ws::frame::{FrameHead, OpCode};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// What a sender strips from the end of each compressed message and the
/// receiver puts back (section 7.2.2): the empty stored block of a sync
/// flush.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// A final, empty fixed-Huffman block. Fed after [`TAIL`], it ends the
/// stream only if the message ended on a block boundary: a message cut
/// short (mid-block) never reaches the end, and is refused.
const END: [u8; 2] = [0x03, 0x00];

/// Output buffers larger than this are freed after their message.
const KEEP: usize = 64 * 1024;

/// Inflates client messages, one at a time, into a buffer of its own.
pub struct Inflater {
    d: Decompress,
    out: Vec<u8>,
    /// Messages inflated so far.
    inflated: u64,
}

impl Default for Inflater {
    fn default() -> Inflater {
        Inflater {
            d: Decompress::new(false),
            out: Vec::new(),
            inflated: 0,
        }
    }
}

impl Inflater {
    /// How many messages were inflated.
    pub fn inflated(&self) -> u64 {
        self.inflated
    }

    /// Inflates one message whose compressed payload is `parts` in order.
    /// The output never grows past `max` bytes: a message that would is
    /// refused as soon as it gets there, whatever its compressed size (a
    /// deflate bomb costs at most `max` bytes and the time to produce them).
    pub fn inflate(&mut self, parts: &[&[u8]], max: usize) -> Result<&[u8], InflateError> {
        self.d.reset(false);
        if self.out.capacity() > KEEP {
            self.out = Vec::new();
        }
        self.out.clear();
        self.inflated += 1;
        if parts.iter().all(|p| p.is_empty()) {
            // An empty message (section 7.2.3.6 sends 0x00; some senders
            // send nothing at all).
            return Ok(&self.out);
        }
        let tail: [&[u8]; 2] = [&TAIL, &END];
        for input in parts.iter().chain(tail.iter()) {
            if self.feed(input, max)? {
                return Ok(&self.out);
            }
        }
        Err(InflateError::Invalid)
    }

    /// Feeds one piece of input; true once the stream has ended.
    fn feed(&mut self, mut input: &[u8], max: usize) -> Result<bool, InflateError> {
        loop {
            if self.out.len() == self.out.capacity() {
                if self.out.len() > max {
                    return Err(InflateError::TooBig);
                }
                // Double, but never past one byte over the cap (the byte
                // that shows the cap was passed).
                let want = self.out.capacity().max(1024).min(max + 1 - self.out.len());
                self.out.reserve_exact(want);
            }
            let (in_before, out_before) = (self.d.total_in(), self.out.len());
            let status = self
                .d
                .decompress_vec(input, &mut self.out, FlushDecompress::Sync)
                .map_err(|_| InflateError::Invalid)?;
            if self.out.len() > max {
                return Err(InflateError::TooBig);
            }
            input = &input[(self.d.total_in() - in_before) as usize..];
            match status {
                Status::StreamEnd => return Ok(true),
                _ if input.is_empty() && self.out.len() < self.out.capacity() => return Ok(false),
                _ if self.out.len() == out_before && self.out.len() < self.out.capacity() => {
                    // No progress with input and room left: cannot happen
                    // with valid data; do not spin.
                    return Err(InflateError::Invalid);
                }
                _ => {}
            }
        }
    }
}

/// At level 1, messages up to this size go through herald's own encoder
/// ([`Fast`]); larger ones, and every message at other levels, through
/// zlib-rs, whose fixed cost per message is then small beside the bytes.
const FAST_MAX: usize = 16 * 1024;

/// Compresses outgoing messages into whole frames, each on its own.
pub struct Deflater {
    level: u8,
    /// zlib-rs, made on the first message it takes (about 300 KiB).
    c: Option<Compress>,
    /// The encoder for short messages, at level 1 only.
    fast: Option<Fast>,
    scratch: Vec<u8>,
    /// The parts of a message joined, for the short-message encoder.
    joined: Vec<u8>,
}

impl Deflater {
    /// A compressor at `level` (1 fastest to 9 smallest).
    pub fn new(level: u8) -> Deflater {
        let level = level.clamp(1, 9);
        Deflater {
            level,
            c: None,
            fast: (level == 1).then(Fast::default),
            scratch: Vec::new(),
            joined: Vec::new(),
        }
    }

    /// Appends one final frame of `opcode` with RSV1 set whose payload is
    /// `parts`, concatenated and compressed. Unless `always`, appends
    /// nothing and returns false when compression would not make the frame
    /// smaller: the message then goes uncompressed, which the extension
    /// allows.
    pub fn frame(
        &mut self,
        opcode: OpCode,
        parts: &[&[u8]],
        always: bool,
        out: &mut Vec<u8>,
    ) -> bool {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if self.scratch.capacity() > KEEP {
            self.scratch = Vec::new();
        }
        self.scratch.clear();
        let len = match &mut self.fast {
            Some(fast) if total <= FAST_MAX => {
                let data = match parts {
                    [one] => one,
                    _ => {
                        self.joined.clear();
                        parts.iter().for_each(|p| self.joined.extend_from_slice(p));
                        &self.joined[..]
                    }
                };
                fast.compress(data, &mut self.scratch);
                self.scratch.len()
            }
            _ => self.zlib(parts, total),
        };
        if len >= total && !always {
            return false;
        }
        let head = FrameHead::with_bits(true, true, opcode, len);
        out.reserve(head.as_bytes().len() + len);
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(&self.scratch[..len]);
        true
    }

    /// Compresses `parts` into `scratch` with zlib-rs; returns the length
    /// of the payload (the sync flush's tail left off).
    fn zlib(&mut self, parts: &[&[u8]], total: usize) -> usize {
        let level = Compression::new(u32::from(self.level));
        let c = self.c.get_or_insert_with(|| Compress::new(level, false));
        c.reset();
        self.scratch.reserve(total + total / 8 + 64);
        for (i, part) in parts.iter().enumerate() {
            let flush = if i + 1 == parts.len() {
                FlushCompress::Sync
            } else {
                FlushCompress::None
            };
            feed(c, &mut self.scratch, part, flush);
        }
        // A sync flush always ends with the empty stored block; the frame
        // carries everything before it (section 7.2.1).
        let len = self.scratch.len().saturating_sub(TAIL.len());
        debug_assert_eq!(&self.scratch[len..], &TAIL);
        len
    }
}

/// Compresses `input` into `out`, growing it as needed.
fn feed(c: &mut Compress, out: &mut Vec<u8>, mut input: &[u8], flush: FlushCompress) {
    loop {
        let before = c.total_in();
        // Raw deflate into spare capacity cannot fail: the stream is
        // valid and the level fixed.
        let _ = c.compress_vec(input, out, flush);
        input = &input[(c.total_in() - before) as usize..];
        // Done when the input is taken and the flush had room to finish.
        if input.is_empty() && out.len() < out.capacity() {
            return;
        }
        out.reserve(out.capacity().max(1024));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The payload of one whole server frame.
    fn payload(frame: &[u8]) -> &[u8] {
        let (_, n) = crate::ws::frame::Header::parse(frame, false, u64::MAX >> 1)
            .unwrap()
            .unwrap();
        &frame[n..]
    }

    fn json(n: usize) -> String {
        super::super::fast::test_json(n, 0)
    }

    #[test]
    fn a_frame_inflates_back_from_any_split_of_its_parts() {
        let mut d = Deflater::new(1);
        let mut inf = Inflater::default();
        for n in [200, 1024, 70_000] {
            let text = json(n);
            let mut f = Vec::new();
            assert!(d.frame(
                OpCode::Text,
                &[b"m all 1 5\n", text.as_bytes()],
                false,
                &mut f
            ));
            assert_eq!(f[0], 0xC1, "FIN, RSV1, text");
            let p = payload(&f);
            assert!(p.len() < n / 2, "{n} -> {}", p.len());
            let mut want = b"m all 1 5\n".to_vec();
            want.extend_from_slice(text.as_bytes());
            for cut in [0, 1, p.len() / 2, p.len()] {
                let got = inf.inflate(&[&p[..cut], &p[cut..]], 1 << 20).unwrap();
                assert_eq!(got, &want[..], "{n} cut {cut}");
            }
        }
    }

    #[test]
    fn incompressible_messages_are_left_alone() {
        let mut d = Deflater::new(1);
        let mut f = Vec::new();
        assert!(!d.frame(OpCode::Text, &[b"ok"], false, &mut f));
        assert!(f.is_empty());
        assert!(d.frame(OpCode::Text, &[b"ok"], true, &mut f));
        let mut inf = Inflater::default();
        assert_eq!(inf.inflate(&[payload(&f)], 10).unwrap(), b"ok");
        assert!(d.frame(OpCode::Text, &[b""], true, &mut f));
    }

    #[test]
    fn a_bomb_stops_at_the_cap_and_a_cut_stream_is_invalid() {
        let zeros = vec![b'a'; 10 << 20];
        let mut d = Deflater::new(9);
        let mut f = Vec::new();
        assert!(d.frame(OpCode::Text, &[&zeros], false, &mut f));
        let p = payload(&f).to_vec();
        assert!(p.len() < 20_000, "10 MiB in {} bytes", p.len());
        let mut inf = Inflater::default();
        assert_eq!(inf.inflate(&[&p], 1 << 20), Err(InflateError::TooBig));
        assert!(inf.out.capacity() <= (1 << 20) + 1);
        assert_eq!(inf.inflate(&[&p], 10 << 20).unwrap().len(), 10 << 20);

        let text = json(4000);
        let mut f = Vec::new();
        assert!(d.frame(OpCode::Text, &[text.as_bytes()], false, &mut f));
        let p = payload(&f).to_vec();
        for cut in [1, p.len() / 3, p.len() - 1] {
            assert_eq!(
                inf.inflate(&[&p[..cut]], 1 << 20),
                Err(InflateError::Invalid),
                "cut at {cut} of {}",
                p.len()
            );
        }
        assert_eq!(
            inf.inflate(&[&[0xff, 0xff, 0xff]], 100),
            Err(InflateError::Invalid)
        );
        // The inflater is fine afterwards.
        assert_eq!(inf.inflate(&[&p], 1 << 20).unwrap(), text.as_bytes());
    }

    #[test]
    fn empty_messages_and_final_blocks_from_other_senders_inflate() {
        let mut inf = Inflater::default();
        assert_eq!(inf.inflate(&[], 10).unwrap(), b"");
        assert_eq!(inf.inflate(&[&[0x00]], 10).unwrap(), b"");
        // A sender that ends each message with a final block (7.2.3.3).
        let mut c = Compress::new(Compression::new(6), false);
        let mut out = Vec::with_capacity(100);
        c.compress_vec(b"hello hello hello", &mut out, FlushCompress::Finish)
            .unwrap();
        assert_eq!(inf.inflate(&[&out], 100).unwrap(), b"hello hello hello");
    }
}
