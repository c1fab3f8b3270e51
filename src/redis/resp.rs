//! RESP2, the Redis wire protocol: commands out ([`encode`]), replies in ([`decode`]).
//!
//! Sans-IO like herald's other parsers: the caller owns the buffer, [`decode`]
//! borrows replies from it and says how many bytes it used, or that the
//! reply is not all there yet. Nothing is allocated for a length the server
//! has only announced: bulk strings are slices of the buffer, and an array
//! grows one parsed element at a time.
//!
//! Only what Redis 7 sends a RESP2 client is accepted; RESP3 types (`_`,
//! `%`, `>`, ...) are [`RespError::BadType`], since herald never sends `HELLO 3`.

use std::fmt;

/// A decoded reply, borrowing from the input buffer.
#[derive(Debug, PartialEq, Eq, Clone)]
pub enum Reply<'a> {
    /// `+OK\r\n`: a status line.
    Simple(&'a [u8]),
    /// `-ERR unknown command\r\n`: the server refused the command; the
    /// connection itself is fine.
    Error(&'a [u8]),
    /// `:3\r\n`.
    Integer(i64),
    /// `$3\r\nfoo\r\n`; `$-1\r\n` (a missing key) is `None`.
    Bulk(Option<&'a [u8]>),
    /// `*2\r\n...`; `*-1\r\n` is `None`.
    Array(Option<Vec<Reply<'a>>>),
}

impl<'a> Reply<'a> {
    /// The bytes of a status line or a non-null bulk string. `None` for an
    /// error reply too, so that an error can never pass for data.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match *self {
            Reply::Simple(b) | Reply::Bulk(Some(b)) => Some(b),
            _ => None,
        }
    }

    /// The value of an integer reply.
    pub fn as_int(&self) -> Option<i64> {
        match *self {
            Reply::Integer(i) => Some(i),
            _ => None,
        }
    }

    /// The elements of a non-null array (a pub/sub message is three bulks:
    /// `message`, the channel, the payload).
    pub fn as_array(&self) -> Option<&[Reply<'a>]> {
        match self {
            Reply::Array(Some(items)) => Some(items),
            _ => None,
        }
    }

    /// True for an error reply (`-...`).
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }
}

/// Limits that bound what a (possibly broken or hostile) server can make
/// herald hold.
///
/// None of them bounds a whole reply's bytes: those sit in the caller's
/// buffer, which grows while [`decode`] says `Ok(None)`. The connection that
/// owns the buffer caps it and drops the server when a reply is still
/// incomplete at the cap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest bulk string, decided from its `$len` header before any of it
    /// is buffered. Default 8 MiB: well past the largest WebSocket message
    /// herald delivers by default (1 MiB), so an oversized pub/sub payload
    /// is the push layer's decision (and report), not a dropped backplane.
    pub max_bulk: usize,
    /// Array elements in one reply, counted across all its nested arrays as
    /// their headers arrive. Default 1 Mi: a decoded element takes 32 bytes
    /// on a 64-bit target, so a reply's tree stays within about 32 MiB.
    pub max_elements: usize,
    /// Arrays nested inside each other (a pub/sub message needs 1, a
    /// transaction's `EXEC` of `XREAD`s 4). Default 8. Decoding does not
    /// recurse, but dropping, comparing or printing a [`Reply`] does, so this
    /// is also what keeps those off the end of the stack.
    pub max_depth: usize,
    /// Longest status or error line. Such lines are short in practice; the
    /// bound makes a server that never sends `\r\n` an error instead of a
    /// buffer that grows forever. Default 64 KiB.
    pub max_line: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_bulk: 8 << 20,
            max_elements: 1 << 20,
            max_depth: 8,
            max_line: 64 << 10,
        }
    }
}

/// Why bytes can never be a valid reply; the caller drops the connection.
///
/// Every error is decided by the bytes up to where it is found, so a
/// buffer that gives an error gives the same one with more bytes appended,
/// and a shorter prefix gives the same error or `Ok(None)`.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum RespError {
    /// A reply starts with a byte that is not one of `+ - : $ *`.
    BadType(u8),
    /// An integer, or a bulk or array length, that is not written as Redis
    /// writes them (an optional `-`, digits without leading zeros, no
    /// `-0`), or does not fit in an i64.
    BadInteger,
    /// A bulk or array length below -1.
    BadLength,
    /// A bulk string longer than [`Limits::max_bulk`].
    TooLong,
    /// A status or error line longer than [`Limits::max_line`].
    LineTooLong,
    /// More array elements in one reply than [`Limits::max_elements`].
    TooManyElements,
    /// Arrays nested deeper than [`Limits::max_depth`].
    TooDeep,
    /// A line or a bulk string not ended by `\r\n` (a bare `\n`, a `\r`
    /// followed by something else, bulk data longer than its length).
    MissingCrlf,
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RespError::BadType(b) => write!(f, "unknown RESP type byte 0x{b:02x}"),
            RespError::BadInteger => f.write_str("malformed RESP integer"),
            RespError::BadLength => f.write_str("negative RESP length other than -1"),
            RespError::TooLong => f.write_str("bulk string past the size limit"),
            RespError::LineTooLong => f.write_str("status or error line past the size limit"),
            RespError::TooManyElements => f.write_str("reply with too many array elements"),
            RespError::TooDeep => f.write_str("reply with arrays nested too deep"),
            RespError::MissingCrlf => f.write_str("RESP line not ended by CRLF"),
        }
    }
}

impl std::error::Error for RespError {}

/// Appends one command as a RESP array of bulk strings:
/// `*N\r\n$len\r\narg\r\n...`. Arguments are binary-safe.
pub fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    // Each header is a type byte, at most 20 digits and CRLF.
    let size = args
        .iter()
        .fold(23, |n: usize, a| n.saturating_add(a.len() + 25));
    out.reserve(size);
    header(out, b'*', args.len());
    for arg in args {
        header(out, b'$', arg.len());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

fn header(out: &mut Vec<u8>, kind: u8, mut n: usize) {
    // A u64 has at most 20 decimal digits.
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.push(kind);
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

type Step<T> = Result<Option<T>, RespError>;

/// Decodes the first complete reply of `buf`: `Ok(Some((reply, consumed)))`,
/// `Ok(None)` if `buf` holds only part of one (the caller keeps the bytes
/// and calls again with more appended), `Err` on bytes that can never be a
/// valid reply (the caller drops the connection).
///
/// Never panics. A call on a partial reply starts over from its first
/// byte: the cost is the headers and lines received so far, as bulk data
/// is skipped by its length, never scanned. That is nothing for the
/// replies herald reads (pub/sub messages are three bulks), and for a huge
/// array arriving over many reads it is bounded by
/// [`Limits::max_elements`] per call.
pub fn decode<'a>(buf: &'a [u8], limits: &Limits) -> Result<Option<(Reply<'a>, usize)>, RespError> {
    // Arrays under way: elements so far and how many are still to come.
    // Iterative, so a deep reply costs heap (one entry per level, each
    // from a header received), not stack.
    let mut open: Vec<(Vec<Reply<'a>>, usize)> = Vec::new();
    let mut elements = 0usize;
    let mut pos = 0;
    loop {
        let Some(&kind) = buf.get(pos) else {
            return Ok(None);
        };
        let mut reply = match kind {
            b'+' | b'-' => {
                let Some((line, next)) = line(buf, pos + 1, limits.max_line)? else {
                    return Ok(None);
                };
                pos = next;
                if kind == b'+' {
                    Reply::Simple(line)
                } else {
                    Reply::Error(line)
                }
            }
            b':' => {
                let Some((n, next)) = integer(buf, pos + 1)? else {
                    return Ok(None);
                };
                pos = next;
                Reply::Integer(n)
            }
            b'$' => {
                let Some((data, next)) = bulk(buf, pos + 1, limits.max_bulk)? else {
                    return Ok(None);
                };
                pos = next;
                Reply::Bulk(data)
            }
            b'*' => {
                if open.len() >= limits.max_depth {
                    return Err(RespError::TooDeep);
                }
                let Some((n, next)) = integer(buf, pos + 1)? else {
                    return Ok(None);
                };
                pos = next;
                match n {
                    -1 => Reply::Array(None),
                    ..=-2 => return Err(RespError::BadLength),
                    0 => Reply::Array(Some(Vec::new())),
                    n => {
                        // Counted as announced, so that the limit is hit at
                        // the header; but the Vec grows only as elements
                        // parse, never reserved from `n`.
                        if n as u64 > limits.max_elements.saturating_sub(elements) as u64 {
                            return Err(RespError::TooManyElements);
                        }
                        elements += n as usize;
                        open.push((Vec::new(), n as usize));
                        continue;
                    }
                }
            }
            other => return Err(RespError::BadType(other)),
        };
        // Hand the value to its array, closing every array it completes.
        loop {
            let Some((mut items, left)) = open.pop() else {
                return Ok(Some((reply, pos)));
            };
            items.push(reply);
            if left > 1 {
                open.push((items, left - 1));
                break;
            }
            reply = Reply::Array(Some(items));
        }
    }
}

/// A status or error line starting at `start`: its text and where the
/// next reply starts. Only the first `max_line + 1` bytes are searched, so
/// a rescan of a partial line is bounded too.
fn line(buf: &[u8], start: usize, max_line: usize) -> Step<(&[u8], usize)> {
    let rest = buf.get(start..).unwrap_or_default();
    let window = &rest[..rest.len().min(max_line.saturating_add(1))];
    match memchr::memchr2(b'\r', b'\n', window) {
        Some(i) if window[i] == b'\r' => match rest.get(i + 1) {
            None => Ok(None),
            Some(b'\n') => Ok(Some((&rest[..i], start + i + 2))),
            Some(_) => Err(RespError::MissingCrlf),
        },
        Some(_) => Err(RespError::MissingCrlf),
        // Decided at `max_line + 1` bytes whether or not a CRLF follows, so
        // the answer does not depend on how the bytes arrive.
        None if window.len() > max_line => Err(RespError::LineTooLong),
        None => Ok(None),
    }
}

/// An integer line starting at `start`, written as Redis's own
/// `string2ll` accepts it: `0`, or an optional `-` and digits not starting
/// with `0`, within i64. Read byte by byte, so the first bad byte decides
/// and a partial line is at most 20 bytes of work.
fn integer(buf: &[u8], start: usize) -> Step<(i64, usize)> {
    let mut i = start;
    let negative = buf.get(i) == Some(&b'-');
    if negative {
        i += 1;
    }
    let mut value: i64 = 0;
    let mut digits = 0;
    loop {
        let Some(&c) = buf.get(i) else {
            return Ok(None);
        };
        match c {
            b'0'..=b'9' => {
                let leading_zero = digits > 0 && value == 0;
                let minus_zero = negative && digits == 0 && c == b'0';
                if leading_zero || minus_zero {
                    return Err(RespError::BadInteger);
                }
                let d = i64::from(c - b'0');
                // Negatives accumulate downwards, so that i64::MIN fits.
                value = value
                    .checked_mul(10)
                    .and_then(|v| {
                        if negative {
                            v.checked_sub(d)
                        } else {
                            v.checked_add(d)
                        }
                    })
                    .ok_or(RespError::BadInteger)?;
                digits += 1;
                i += 1;
            }
            b'\r' if digits > 0 => {
                return match buf.get(i + 1) {
                    None => Ok(None),
                    Some(b'\n') => Ok(Some((value, i + 2))),
                    Some(_) => Err(RespError::MissingCrlf),
                };
            }
            b'\n' if digits > 0 => return Err(RespError::MissingCrlf),
            _ => return Err(RespError::BadInteger),
        }
    }
}

/// A bulk string whose `$` was at `start - 1`: its data (`None` for
/// `$-1`) and where the next reply starts.
fn bulk(buf: &[u8], start: usize, max_bulk: usize) -> Step<(Option<&[u8]>, usize)> {
    let Some((n, at)) = integer(buf, start)? else {
        return Ok(None);
    };
    let n = match n {
        -1 => return Ok(Some((None, at))),
        ..=-2 => return Err(RespError::BadLength),
        // Compared as u64: on a 32-bit target the length may not fit a usize.
        n if n as u64 > max_bulk as u64 => return Err(RespError::TooLong),
        n => n as usize,
    };
    let rest = &buf[at..];
    let Some(data) = rest.get(..n) else {
        return Ok(None);
    };
    // The CRLF after the data is checked byte by byte as it arrives, so a
    // wrong length is reported at once rather than after more buffering.
    match (rest.get(n), rest.get(n + 1)) {
        (Some(b'\r'), Some(b'\n')) => Ok(Some((Some(data), at + n + 2))),
        (Some(b'\r'), None) | (None, _) => Ok(None),
        _ => Err(RespError::MissingCrlf),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(buf: &[u8]) -> Step<(Reply<'_>, usize)> {
        decode(buf, &Limits::default())
    }

    /// The reply of a buffer holding exactly one.
    fn one(buf: &[u8]) -> Reply<'_> {
        match dec(buf) {
            Ok(Some((r, n))) if n == buf.len() => r,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    fn err(buf: &[u8], limits: &Limits) -> RespError {
        match decode(buf, limits) {
            Err(e) => e,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    fn bulk(b: &[u8]) -> Reply<'_> {
        Reply::Bulk(Some(b))
    }

    const PUBSUB: &[u8] = b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$12\r\nhello\r\nworld\r\n";

    #[test]
    fn encode_writes_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode(&mut out, &[b"SUBSCRIBE", b"news"]);
        assert_eq!(out, b"*2\r\n$9\r\nSUBSCRIBE\r\n$4\r\nnews\r\n");
        out.clear();
        encode(&mut out, &[]);
        assert_eq!(out, b"*0\r\n");
        out.clear();
        encode(&mut out, &[b"", &[b'x'; 12345]]);
        assert!(out.starts_with(b"*2\r\n$0\r\n\r\n$12345\r\nxxx"));
        // Appends: a pipeline is several calls on one buffer.
        encode(&mut out, &[b"PING"]);
        assert!(out.ends_with(b"xxx\r\n*1\r\n$4\r\nPING\r\n"));
    }

    #[test]
    fn a_command_decodes_back_to_its_arguments() {
        let cases: &[&[&[u8]]] = &[
            &[b"PUBLISH", b"news", b"{\"uid\":\"1\"}"],
            &[b"SET", b"k", b"\r\n*1\r\n$-1\r\n\x00\xff"],
            &[b""],
            &[],
        ];
        for args in cases {
            let mut out = Vec::new();
            encode(&mut out, args);
            let want = Reply::Array(Some(args.iter().map(|a| bulk(a)).collect()));
            assert_eq!(one(&out), want);
        }
    }

    #[test]
    fn every_type() {
        assert_eq!(one(b"+OK\r\n"), Reply::Simple(b"OK"));
        assert_eq!(one(b"+\r\n"), Reply::Simple(b""));
        assert_eq!(
            one(b"-ERR unknown command 'x'\r\n"),
            Reply::Error(b"ERR unknown command 'x'")
        );
        assert_eq!(one(b":0\r\n"), Reply::Integer(0));
        assert_eq!(one(b":-5\r\n"), Reply::Integer(-5));
        assert_eq!(one(b":9223372036854775807\r\n"), Reply::Integer(i64::MAX));
        assert_eq!(one(b":-9223372036854775808\r\n"), Reply::Integer(i64::MIN));
        assert_eq!(one(b"$3\r\nfoo\r\n"), bulk(b"foo"));
        assert_eq!(one(b"$0\r\n\r\n"), bulk(b""));
        assert_eq!(one(b"$4\r\n\r\n\r\n\r\n"), bulk(b"\r\n\r\n"));
        assert_eq!(one(b"*0\r\n"), Reply::Array(Some(vec![])));
    }

    #[test]
    fn nulls() {
        assert_eq!(one(b"$-1\r\n"), Reply::Bulk(None));
        assert_eq!(one(b"*-1\r\n"), Reply::Array(None));
        assert_eq!(
            one(b"*2\r\n$-1\r\n*-1\r\n"),
            Reply::Array(Some(vec![Reply::Bulk(None), Reply::Array(None)]))
        );
    }

    #[test]
    fn nested_arrays() {
        let r = one(b"*3\r\n*2\r\n:1\r\n*1\r\n+a\r\n*0\r\n$1\r\nz\r\n");
        assert_eq!(
            r,
            Reply::Array(Some(vec![
                Reply::Array(Some(vec![
                    Reply::Integer(1),
                    Reply::Array(Some(vec![Reply::Simple(b"a")])),
                ])),
                Reply::Array(Some(vec![])),
                bulk(b"z"),
            ]))
        );
    }

    #[test]
    fn a_pubsub_message_is_three_bulks() {
        let r = one(PUBSUB);
        let items = r.as_array().unwrap();
        let parts: Vec<_> = items.iter().map(|i| i.as_bytes().unwrap()).collect();
        assert_eq!(parts, [&b"message"[..], b"news", b"hello\r\nworld"]);
    }

    #[test]
    fn pipelined_replies_come_one_per_call() {
        let mut buf = b"+OK\r\n*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n".to_vec();
        buf.extend_from_slice(PUBSUB);
        buf.extend_from_slice(b"-ERR wrong\r\n$-1\r\n:4");
        let mut got = Vec::new();
        let mut pos = 0;
        while let Some((r, n)) = dec(&buf[pos..]).unwrap() {
            got.push(r);
            pos += n;
        }
        assert_eq!(&buf[pos..], b":4", "an unfinished reply is left");
        assert_eq!(got.len(), 5);
        assert_eq!(got[0], Reply::Simple(b"OK"));
        assert_eq!(
            got[1],
            Reply::Array(Some(vec![
                bulk(b"subscribe"),
                bulk(b"news"),
                Reply::Integer(1)
            ]))
        );
        assert_eq!(got[2].as_array().unwrap()[2], bulk(b"hello\r\nworld"));
        assert!(got[3].is_error());
        assert_eq!(got[4], Reply::Bulk(None));
    }

    #[test]
    fn every_cut_point_is_partial() {
        let replies: &[&[u8]] = &[
            b"+OK\r\n",
            b"-ERR x\r\n",
            b":-9223372036854775808\r\n",
            b"$5\r\nhe\r\no\r\n",
            b"$-1\r\n",
            b"*-1\r\n",
            b"*0\r\n",
            PUBSUB,
            b"*2\r\n*2\r\n:1\r\n$0\r\n\r\n*1\r\n+\r\n",
        ];
        for reply in replies {
            let whole = one(reply);
            for k in 0..reply.len() {
                assert_eq!(dec(&reply[..k]), Ok(None), "{reply:?} cut at {k}");
            }
            let mut more = reply.to_vec();
            more.extend_from_slice(b"+next\r\n");
            assert_eq!(dec(&more), Ok(Some((whole, reply.len()))));
        }
    }

    #[test]
    fn bad_type_bytes() {
        let d = Limits::default();
        for b in [b'?', b' ', b'\r', b'\n', b'0', b'_', b'>', b'%', b'#', b'~'] {
            assert_eq!(err(&[b, b'\r', b'\n'], &d), RespError::BadType(b));
        }
        assert_eq!(err(b"*2\r\n:1\r\n!x\r\n", &d), RespError::BadType(b'!'));
        assert_eq!(err(b"x", &d), RespError::BadType(b'x'), "decided at once");
    }

    #[test]
    fn integers_are_written_as_redis_writes_them() {
        let d = Limits::default();
        for bad in [
            &b":\r\n"[..],
            b":-\r\n",
            b":01\r\n",
            b":00\r\n",
            b":-0\r\n",
            b":+1\r\n",
            b": 1\r\n",
            b":1 \r\n",
            b":1x\r\n",
            b":9223372036854775808\r\n",
            b":-9223372036854775809\r\n",
            b":99999999999999999999999\r\n",
            b"$01\r\nx\r\n",
            b"*x\r\n",
            b"$\r\n",
        ] {
            assert_eq!(err(bad, &d), RespError::BadInteger, "{bad:?}");
        }
    }

    #[test]
    fn negative_lengths_other_than_minus_one() {
        let d = Limits::default();
        for bad in [
            &b"$-2\r\n"[..],
            b"*-2\r\n",
            b"$-9223372036854775808\r\n",
            b"*-100\r\n",
        ] {
            assert_eq!(err(bad, &d), RespError::BadLength, "{bad:?}");
        }
    }

    #[test]
    fn lines_end_in_crlf() {
        let d = Limits::default();
        for bad in [
            &b"+OK\n"[..],
            b"+OK\rx",
            b"-ERR\n",
            b":1\n",
            b":1\rx",
            b"$3\n",
            b"$3\r\nfooX",
            b"$3\r\nfoo\rX",
            b"$3\r\nfoo\n\r",
            b"*1\r\n$1\r\nab\r\n",
        ] {
            assert_eq!(err(bad, &d), RespError::MissingCrlf, "{bad:?}");
        }
    }

    #[test]
    fn huge_declared_lengths_are_refused_at_the_header() {
        let d = Limits::default();
        assert_eq!(err(b"$8388609\r\n", &d), RespError::TooLong);
        assert_eq!(err(b"$9223372036854775807\r\n", &d), RespError::TooLong);
        assert_eq!(err(b"*1048577\r\n", &d), RespError::TooManyElements);
        assert_eq!(
            err(b"*9223372036854775807\r\n", &d),
            RespError::TooManyElements
        );
        // Within the limits, an announced length only waits for its bytes.
        assert_eq!(dec(b"$8388608\r\nabc"), Ok(None));
        let mut many = b"*1000000\r\n".to_vec();
        for _ in 0..1000 {
            many.extend_from_slice(b":1\r\n");
        }
        assert_eq!(dec(&many), Ok(None));

        let small = Limits {
            max_bulk: 3,
            max_elements: 3,
            ..Limits::default()
        };
        assert_eq!(
            decode(b"$3\r\nabc\r\n", &small),
            Ok(Some((bulk(b"abc"), 9)))
        );
        assert_eq!(err(b"$4\r\n", &small), RespError::TooLong);
        assert!(decode(b"*3\r\n:1\r\n:2\r\n:3\r\n", &small)
            .unwrap()
            .is_some());
        // Counted across the nested arrays of one reply.
        assert_eq!(
            err(b"*2\r\n*2\r\n:1\r\n:2\r\n:3\r\n", &small),
            RespError::TooManyElements
        );
        // Each reply has its own count.
        let two = b"*3\r\n:1\r\n:2\r\n:3\r\n*3\r\n:1\r\n:2\r\n:3\r\n";
        let (_, n) = decode(two, &small).unwrap().unwrap();
        assert!(decode(&two[n..], &small).unwrap().is_some());
    }

    #[test]
    fn depth_past_the_limit() {
        let nested = |levels: usize| {
            let mut b = b"*1\r\n".repeat(levels);
            b.extend_from_slice(b":1\r\n");
            b
        };
        let d = Limits::default();
        assert!(dec(&nested(8)).unwrap().is_some());
        assert_eq!(err(&nested(9), &d), RespError::TooDeep);
        let flat = Limits {
            max_depth: 1,
            ..Limits::default()
        };
        assert!(decode(PUBSUB, &flat).unwrap().is_some());
        assert_eq!(err(b"*1\r\n*-1\r\n", &flat), RespError::TooDeep);
        let none = Limits {
            max_depth: 0,
            ..Limits::default()
        };
        assert_eq!(err(b"*0\r\n", &none), RespError::TooDeep);
        assert_eq!(decode(b":1\r\n", &none), Ok(Some((Reply::Integer(1), 4))));
        // Without a depth limit, decoding still does not recurse.
        let unbounded = Limits {
            max_depth: usize::MAX,
            ..Limits::default()
        };
        assert_eq!(decode(&b"*1\r\n".repeat(200_000), &unbounded), Ok(None));
    }

    #[test]
    fn a_line_without_crlf_is_not_buffered_forever() {
        let d = Limits::default();
        let mut long = vec![b'+'];
        long.extend_from_slice(&[b'x'; 64 << 10]);
        assert_eq!(dec(&long), Ok(None), "exactly max_line: may still end");
        long.push(b'x');
        assert_eq!(err(&long, &d), RespError::LineTooLong);
        long.extend_from_slice(b"\r\n");
        assert_eq!(err(&long, &d), RespError::LineTooLong, "also with its CRLF");

        let four = Limits {
            max_line: 4,
            ..Limits::default()
        };
        assert_eq!(
            decode(b"-abcd\r\n", &four),
            Ok(Some((Reply::Error(b"abcd"), 7)))
        );
        assert_eq!(decode(b"-abcd\r", &four), Ok(None));
        assert_eq!(err(b"-abcde", &four), RespError::LineTooLong);
        // Integer lines are bounded by their 20 digits instead.
        assert_eq!(
            decode(b":-9223372036854775808\r\n", &four),
            Ok(Some((Reply::Integer(i64::MIN), 23)))
        );
    }

    #[test]
    fn an_error_is_the_same_from_every_prefix_that_finds_it() {
        let d = Limits::default();
        for bad in [
            &b"*3\r\n$7\r\nmessage\r\n$4\r\nnewsX\r\n"[..],
            b"*2\r\n:1\r\n:01\r\n",
            b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n",
            b"$-2\r\n",
        ] {
            let e = err(bad, &d);
            for k in 0..bad.len() {
                let got = dec(&bad[..k]);
                assert!(got == Ok(None) || got == Err(e), "{bad:?} at {k}: {got:?}");
            }
        }
    }

    #[test]
    fn helpers() {
        assert_eq!(Reply::Simple(b"OK").as_bytes(), Some(&b"OK"[..]));
        assert_eq!(bulk(b"x").as_bytes(), Some(&b"x"[..]));
        assert_eq!(Reply::Bulk(None).as_bytes(), None);
        assert_eq!(Reply::Error(b"ERR").as_bytes(), None);
        assert!(Reply::Error(b"ERR").is_error());
        assert!(!Reply::Simple(b"ERR").is_error());
        assert_eq!(Reply::Integer(7).as_int(), Some(7));
        assert_eq!(bulk(b"7").as_int(), None);
        assert_eq!(Reply::Array(None).as_array(), None);
        assert_eq!(Reply::Integer(1).as_array(), None);
    }

    #[test]
    fn errors_read_well() {
        let all = [
            RespError::BadType(b'>'),
            RespError::BadInteger,
            RespError::BadLength,
            RespError::TooLong,
            RespError::LineTooLong,
            RespError::TooManyElements,
            RespError::TooDeep,
            RespError::MissingCrlf,
        ];
        let texts: std::collections::HashSet<String> = all.iter().map(|e| e.to_string()).collect();
        assert_eq!(texts.len(), all.len());
        assert_eq!(all[0].to_string(), "unknown RESP type byte 0x3e");
    }
}
