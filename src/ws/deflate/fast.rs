//! herald's own encoder for short messages: greedy LZ77 over a small hash
//! table and the fixed Huffman codes of RFC 1951 section 3.2.6, one block
//! per message, ended as a sync flush ends (section 7.2.1 of RFC 7692).
//!
//! Why not the crate for these: every general-purpose deflate clears a
//! hash table of 64-128 KiB before each independent stream, which costs
//! more than compressing a 1 KiB push. This table is never cleared: an
//! entry is a position in the message being compressed, a stale one from
//! an earlier message is either at or past the current position (refused)
//! or before it, and then it points at this message's own bytes, which
//! are compared before a match is taken. So every back-reference stays
//! inside the message, as no context takeover requires, and a message
//! costs only its own bytes. The output is plain deflate: any inflater
//! (zlib-rs in the tests and fuzz target, browsers, Autobahn) reads it.

/// log2 of the hash table's entries (4,096 `u32`s: 16 KiB). Larger tables
/// found no more matches in 1-16 KiB JSON.
const HASH_BITS: u32 = 12;
/// Matches reach at most this far back (a 15-bit window).
const WINDOW: usize = 32 * 1024;
/// Shortest match taken (the hash covers 4 bytes).
const MIN_MATCH: usize = 4;
/// Longest match deflate can code.
const MAX_MATCH: usize = 258;

/// `n` bits of `code` in reverse order: Huffman codes are sent from their
/// most significant bit, everything else from the least.
const fn reverse(code: u32, n: u32) -> u32 {
    let mut r = 0;
    let mut i = 0;
    while i < n {
        r |= ((code >> i) & 1) << (n - 1 - i);
        i += 1;
    }
    r
}

/// The fixed code of literal/length symbol `s`, reversed, and its length.
const fn fixed(s: u32) -> (u32, u32) {
    match s {
        0..=143 => (reverse(0x30 + s, 8), 8),
        144..=255 => (reverse(0x190 + s - 144, 9), 9),
        256..=279 => (reverse(s - 256, 7), 7),
        _ => (reverse(0xC0 + s - 280, 8), 8),
    }
}

/// Bits and bit count packed in one word: `bits | count << 24`.
const fn pack(bits: u32, n: u32) -> u32 {
    bits | n << 24
}

/// Each byte's literal code.
const LITERALS: [u32; 256] = {
    let mut t = [0; 256];
    let mut b = 0;
    while b < 256 {
        let (c, n) = fixed(b as u32);
        t[b] = pack(c, n);
        b += 1;
    }
    t
};

/// First length of each length symbol 257..=285, and its extra bits.
const LEN_BASE: [u32; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEN_EXTRA: [u32; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];

/// Each match length's code and extra bits, ready to send.
const LENGTHS: [u32; MAX_MATCH + 1] = {
    let mut t = [0; MAX_MATCH + 1];
    let mut len = 3;
    let mut sym = 0;
    while len <= MAX_MATCH {
        while sym + 1 < 29 && LEN_BASE[sym + 1] <= len as u32 {
            sym += 1;
        }
        let (c, n) = fixed(257 + sym as u32);
        t[len] = pack(c | (len as u32 - LEN_BASE[sym]) << n, n + LEN_EXTRA[sym]);
        len += 1;
    }
    t
};

/// A distance's fixed code (5 bits, reversed) and extra bits, packed.
fn distance(d: usize) -> u32 {
    let d = d as u32 - 1;
    if d < 4 {
        return pack(reverse(d, 5), 5);
    }
    // Two codes per power of two: the top bit's place and the bit below it.
    let top = 31 - d.leading_zeros();
    let extra = top - 1;
    let code = 2 * top + ((d >> extra) & 1);
    pack(reverse(code, 5) | (d & ((1 << extra) - 1)) << 5, 5 + extra)
}

/// Bits gathered least significant first and written out 32 at a time.
struct Bits<'o> {
    out: &'o mut Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits<'_> {
    /// Sends a packed code (at most 31 bits).
    #[inline(always)]
    fn put(&mut self, packed: u32) {
        self.acc |= u64::from(packed & 0xFF_FFFF) << self.n;
        self.n += packed >> 24;
        if self.n >= 32 {
            self.out.extend_from_slice(&(self.acc as u32).to_le_bytes());
            self.acc >>= 32;
            self.n -= 32;
        }
    }

    /// Writes what is left, padded with zero bits to a byte.
    fn finish(self) {
        let bytes = self.n.div_ceil(8) as usize;
        self.out.extend_from_slice(&self.acc.to_le_bytes()[..bytes]);
    }
}

/// The encoder: its hash table is all its state (16 KiB), kept between
/// messages and never cleared (see the module's comment).
pub struct Fast {
    table: Box<[u32]>,
}

impl Default for Fast {
    fn default() -> Fast {
        Fast {
            table: vec![0; 1 << HASH_BITS].into_boxed_slice(),
        }
    }
}

impl Fast {
    /// Appends `data` compressed as one permessage-deflate payload: a
    /// fixed-Huffman block then the header of an empty stored block, with
    /// the stored block's `00 00 ff ff` left off as the receiver adds it.
    pub fn compress(&mut self, data: &[u8], out: &mut Vec<u8>) {
        out.reserve(data.len() + data.len() / 8 + 8);
        let mut w = Bits { out, acc: 0, n: 0 };
        // BFINAL 0, BTYPE 01 (fixed codes).
        w.put(pack(0b010, 3));
        let mut from = 0;
        let mut i = 0;
        let mut misses = 0;
        while i + MIN_MATCH <= data.len() {
            let word = read32(data, i);
            let h = (word.wrapping_mul(0x9E37_79B1) >> (32 - HASH_BITS)) as usize;
            let c = self.table[h] as usize;
            self.table[h] = i as u32;
            if c < i && i - c <= WINDOW && read32(data, c) == word {
                let len = MIN_MATCH
                    + same(
                        &data[c + MIN_MATCH..],
                        &data[i + MIN_MATCH..],
                        MAX_MATCH - MIN_MATCH,
                    );
                literals(&mut w, &data[from..i]);
                w.put(LENGTHS[len]);
                w.put(distance(i - c));
                i += len;
                from = i;
                misses = 0;
            } else {
                // Data that will not match is crossed faster and faster.
                misses += 1;
                i += 1 + (misses >> 5);
            }
        }
        literals(&mut w, &data[from..]);
        // End of block (7 zero bits), then BFINAL 0, BTYPE 00: the stored
        // block whose LEN and NLEN are the tail left off.
        w.put(pack(0, 10));
        w.finish();
    }
}

#[inline(always)]
fn read32(data: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(data[at..at + 4].try_into().unwrap_or_default())
}

/// How many leading bytes of `a` and `b` agree, at most `max`.
#[inline(always)]
fn same(a: &[u8], b: &[u8], max: usize) -> usize {
    let max = max.min(a.len()).min(b.len());
    let mut n = 0;
    while n + 8 <= max {
        let x = u64::from_le_bytes(a[n..n + 8].try_into().unwrap_or_default())
            ^ u64::from_le_bytes(b[n..n + 8].try_into().unwrap_or_default());
        if x != 0 {
            return n + (x.trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    while n < max && a[n] == b[n] {
        n += 1;
    }
    n
}

#[inline(always)]
fn literals(w: &mut Bits<'_>, bytes: &[u8]) {
    for &b in bytes {
        w.put(LITERALS[b as usize]);
    }
}

/// A JSON array of `n` bytes for the tests, its ids counted from `seed`.
#[cfg(test)]
pub(super) fn test_json(n: usize, seed: usize) -> String {
    let mut s = String::from("[");
    let mut i = seed;
    while s.len() < n {
        s.push_str(&format!(
            "{{\"id\":{i},\"name\":\"item {}\",\"tags\":[\"a\",\"b\"]}},",
            i % 7
        ));
        i += 1;
    }
    s.truncate(n);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Decompress, FlushDecompress};

    /// Inflates a payload as a receiver does: the tail put back.
    fn inflate(z: &[u8], max: usize) -> Vec<u8> {
        let mut d = Decompress::new(false);
        let mut input = z.to_vec();
        input.extend_from_slice(&[0, 0, 0xff, 0xff]);
        let mut out = Vec::with_capacity(max + 64);
        d.decompress_vec(&input, &mut out, FlushDecompress::Sync)
            .expect("valid deflate");
        assert_eq!(d.total_in() as usize, input.len(), "all input read");
        out
    }

    fn json(n: usize, seed: usize) -> Vec<u8> {
        test_json(n, seed).into_bytes()
    }

    #[test]
    fn the_tables_hold_the_rfc_codes() {
        // RFC 1951 3.2.6: 'A' (65) is 0x30 + 65 in 8 bits, 255 is 0x1FF in 9,
        // end of block is 7 zero bits.
        assert_eq!(LITERALS[65], pack(reverse(0x71, 8), 8));
        assert_eq!(LITERALS[255], pack(0x1FF, 9));
        // Length 3 is symbol 257; 258 is 285 with no extra bits; 11 is 265
        // with extra bit 0, 12 the same symbol with extra bit 1.
        assert_eq!(LENGTHS[3], pack(reverse(1, 7), 7));
        assert_eq!(LENGTHS[258], pack(reverse(0xC5, 8), 8));
        assert_eq!(LENGTHS[12], pack(reverse(9, 7) | 1 << 7, 8));
        // Distance 1 is code 0; 5-6 is code 4 with one extra bit; 32768 is
        // code 29 with 13 extra bits all set.
        assert_eq!(distance(1), pack(0, 5));
        assert_eq!(distance(6), pack(reverse(4, 5) | 1 << 5, 6));
        assert_eq!(distance(32768), pack(reverse(29, 5) | 0x1FFF << 5, 18));
    }

    #[test]
    fn messages_inflate_back_whatever_came_before() {
        let mut f = Fast::default();
        let mut out = Vec::new();
        let mut inputs: Vec<Vec<u8>> = vec![Vec::new(), b"a".to_vec(), b"abcd".to_vec()];
        inputs.push(vec![b'x'; 100_000]);
        inputs.push((0..=255u8).cycle().take(70_000).collect());
        for n in [5, 64, 300, 1024, 5000, 40_000, 100_000] {
            inputs.push(json(n, n));
        }
        // The same messages again, in another order: the table now holds
        // positions from every earlier message.
        let again: Vec<Vec<u8>> = inputs.iter().rev().cloned().collect();
        for data in inputs.iter().chain(&again) {
            out.clear();
            f.compress(data, &mut out);
            assert_eq!(inflate(&out, data.len()), *data, "{} bytes", data.len());
            // A second, independent inflater (miniz_oxide) reads it too,
            // given the tail and a final empty block to end on.
            let mut tail = out.clone();
            tail.extend_from_slice(&[0, 0, 0xff, 0xff, 0x03, 0x00]);
            let other = miniz_oxide::inflate::decompress_to_vec(&tail);
            assert_eq!(
                other.ok().as_deref(),
                Some(&data[..]),
                "{} bytes",
                data.len()
            );
        }
    }

    #[test]
    fn json_shrinks_as_with_the_crate_at_level_1() {
        let mut f = Fast::default();
        let mut out = Vec::new();
        let data = json(1024, 0);
        f.compress(&data, &mut out);
        assert!(out.len() < 1024 / 3, "1 KiB -> {}", out.len());
    }

    #[test]
    fn distances_past_the_window_are_never_used() {
        // The same 1 KiB block 40 KiB apart: the second copy may not point
        // at the first (past 32 KiB), and the stream still inflates.
        let block = json(1024, 3);
        let mut data = block.clone();
        data.extend((0..40_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
        data.extend_from_slice(&block);
        let mut f = Fast::default();
        let mut out = Vec::new();
        f.compress(&data, &mut out);
        assert_eq!(inflate(&out, data.len()), data);
    }
}
