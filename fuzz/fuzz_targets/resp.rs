//! `redis::resp::decode` on arbitrary bytes under limits the input picks: a
//! reply is decided by its own bytes alone (no prefix says otherwise, and
//! growing the buffer byte by byte agrees with one call), it is exactly the
//! bytes it consumed written back canonically, and it keeps to the limits;
//! `encode` round trips through `decode`.
//!
//! Input: one config byte (bits 0-1 max_bulk, 2-3 max_elements, 4-5
//! max_depth, 6-7 max_line, each an index into the tables below), then the
//! bytes, which are also split at `\n` into the arguments of a command.
#![no_main]

use herald::redis::resp::{self, Limits, Reply};
use libfuzzer_sys::fuzz_target;

const BULKS: [usize; 4] = [0, 3, 64, 8 << 20];
const ELEMENTS: [usize; 4] = [0, 2, 16, 1 << 20];
const DEPTHS: [usize; 4] = [0, 1, 3, 8];
const LINES: [usize; 4] = [0, 2, 16, 64 << 10];

/// Inputs up to this size have every prefix decoded; longer ones a few.
const EVERY_PREFIX: usize = 512;

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, bytes)) = data.split_first() else {
        return;
    };
    let pick = |shift: u8| ((cfg >> shift) & 3) as usize;
    let limits = Limits {
        max_bulk: BULKS[pick(0)],
        max_elements: ELEMENTS[pick(2)],
        max_depth: DEPTHS[pick(4)],
        max_line: LINES[pick(6)],
    };
    check_prefixes(bytes, &limits);
    check_pipeline(bytes, &limits);
    round_trip(bytes);
});

/// The answer for a prefix is `Ok(None)` until the bytes decide, and from
/// then on the answer for the whole buffer.
fn check_prefixes(bytes: &[u8], limits: &Limits) {
    let whole = resp::decode(bytes, limits);
    if let Err(e) = whole {
        let _ = e.to_string();
    }
    if let Ok(Some((_, n))) = whole {
        assert!(n > 0 && n <= bytes.len(), "consumed {n} of {}", bytes.len());
        assert_eq!(resp::decode(&bytes[..n], limits), whole, "alone");
    }
    let cuts: Vec<usize> = if bytes.len() <= EVERY_PREFIX {
        (0..bytes.len()).collect()
    } else {
        let l = bytes.len();
        let mut c = vec![0, 1, 2, l / 4, l / 2, 3 * l / 4, l - 2, l - 1];
        if let Ok(Some((_, n))) = whole {
            c.extend([n - 1, n]);
        }
        c.sort_unstable();
        c.dedup();
        c
    };
    let mut decided_at = None;
    for k in cuts {
        match resp::decode(&bytes[..k], limits) {
            Ok(None) => {
                assert_eq!(decided_at, None, "undecided at {k} after deciding");
                assert!(
                    !matches!(whole, Ok(Some((_, n))) if k >= n),
                    "the whole reply is there at {k}, yet Ok(None)"
                );
            }
            early => {
                assert_eq!(early, whole, "prefix of {k} bytes");
                decided_at.get_or_insert(k);
            }
        }
    }
}

/// Replies one after another: each one consumes bytes, is its own bytes
/// written canonically, and keeps to the limits.
fn check_pipeline(bytes: &[u8], limits: &Limits) {
    let mut rest = bytes;
    while let Ok(Some((reply, n))) = resp::decode(rest, limits) {
        assert!(n > 0 && n <= rest.len());
        let mut wire = Vec::new();
        write(&reply, &mut wire);
        assert_eq!(wire, &rest[..n], "{reply:?} is not its bytes");
        let mut elements = 0;
        within(&reply, limits, 0, &mut elements);
        rest = &rest[n..];
    }
}

/// The canonical RESP2 form of a reply. `decode` accepts only canonical
/// integers and lengths, so this is the input it came from.
fn write(r: &Reply<'_>, out: &mut Vec<u8>) {
    match r {
        Reply::Simple(s) => line(out, b'+', s),
        Reply::Error(s) => line(out, b'-', s),
        Reply::Integer(i) => line(out, b':', i.to_string().as_bytes()),
        Reply::Bulk(None) => out.extend_from_slice(b"$-1\r\n"),
        Reply::Bulk(Some(b)) => {
            line(out, b'$', b.len().to_string().as_bytes());
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        }
        Reply::Array(None) => out.extend_from_slice(b"*-1\r\n"),
        Reply::Array(Some(items)) => {
            line(out, b'*', items.len().to_string().as_bytes());
            for i in items {
                write(i, out);
            }
        }
    }
}

fn line(out: &mut Vec<u8>, kind: u8, text: &[u8]) {
    out.push(kind);
    out.extend_from_slice(text);
    out.extend_from_slice(b"\r\n");
}

fn within(r: &Reply<'_>, limits: &Limits, depth: usize, elements: &mut usize) {
    match r {
        Reply::Simple(s) | Reply::Error(s) => {
            assert!(s.len() <= limits.max_line, "line of {}", s.len());
            assert!(!s.contains(&b'\r') && !s.contains(&b'\n'));
        }
        Reply::Bulk(Some(b)) => assert!(b.len() <= limits.max_bulk, "bulk of {}", b.len()),
        Reply::Array(a) => {
            assert!(depth < limits.max_depth, "array at depth {depth}");
            for i in a.iter().flatten() {
                *elements += 1;
                within(i, limits, depth + 1, elements);
            }
            assert!(*elements <= limits.max_elements, "{elements} elements");
        }
        Reply::Integer(_) | Reply::Bulk(None) => {}
    }
}

/// A command is itself a reply: an array of its arguments as bulks, and
/// exactly as long as `encode` wrote, also with more bytes after it.
fn round_trip(bytes: &[u8]) {
    let args: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    let mut wire = Vec::new();
    resp::encode(&mut wire, &args);
    let want = Reply::Array(Some(args.iter().map(|a| Reply::Bulk(Some(a))).collect()));
    let got = resp::decode(&wire, &Limits::default());
    assert_eq!(got, Ok(Some((want.clone(), wire.len()))));
    let n = wire.len();
    wire.extend_from_slice(bytes);
    assert_eq!(resp::decode(&wire, &Limits::default()), Ok(Some((want, n))));
}
