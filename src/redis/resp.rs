//! RESP2, the Redis wire protocol: commands out ([`encode`]), replies in
//! ([`Frame::decode`], and [`decode`] for a tree).
//!
//! Sans-IO like herald's other parsers: the caller owns the buffer, and a
//! decoder borrows replies from it and says how many bytes it used, or that
//! the reply is not all there yet. A reply is checked whole before anything
//! is built: a [`Frame`] then reads its parts in place (no heap for a
//! pub/sub message or a `PUBLISH` count), and a [`Reply`] tree is built only
//! from bytes received. Nothing is allocated for a length the server has
//! only announced.
//!
//! Only what Redis 7 sends a RESP2 client is accepted; RESP3 types (`_`,
//! `%`, `>`, ...) are [`RespError::BadType`], since herald never sends `HELLO 3`.

mod encode;

pub use encode::{encode, encode_command, encoded_len};
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
}

/// One reply, checked whole and read in place: taking it apart cannot fail
/// and allocates nothing, so the replies herald reads most (a `PUBLISH`
/// count, a pub/sub message) cost no heap. Made by [`Frame::decode`];
/// [`Frame::to_reply`] builds the [`Reply`] tree when one is wanted.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Frame<'a> {
    /// `+OK\r\n`: a status line.
    Simple(&'a [u8]),
    /// `-ERR unknown command\r\n`: the server refused the command.
    Error(&'a [u8]),
    /// `:3\r\n`.
    Integer(i64),
    /// `$3\r\nfoo\r\n`; `$-1\r\n` is `None`.
    Bulk(Option<&'a [u8]>),
    /// `*2\r\n...`: its elements, decoded as they are read; `*-1\r\n` is
    /// `None`.
    Array(Option<Items<'a>>),
}

/// The elements of an array [`Frame`], each decoded when it is reached.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct Items<'a> {
    /// The elements' bytes, checked with their frame.
    bytes: &'a [u8],
    /// Elements not yet read.
    left: usize,
}

impl<'a> Iterator for Items<'a> {
    type Item = Frame<'a>;

    fn next(&mut self) -> Option<Frame<'a>> {
        if self.left == 0 {
            return None;
        }
        // The bytes were checked with the frame, so every element decodes;
        // ending early is only the answer to an impossible failure.
        let Ok(Some((frame, used))) = Frame::decode(self.bytes, &Limits::CHECKED) else {
            self.left = 0;
            return None;
        };
        self.bytes = &self.bytes[used..];
        self.left -= 1;
        Some(frame)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Items<'_> {}

impl<'a> Frame<'a> {
    /// Decodes the first complete reply of `buf`:
    /// `Ok(Some((frame, consumed)))`, `Ok(None)` if `buf` holds only part
    /// of one (the caller keeps the bytes and calls again with more
    /// appended), `Err` on bytes that can never be a valid reply (the
    /// caller drops the connection).
    ///
    /// Never panics, and allocates only for arrays nested deeper than 8. A
    /// call on a partial reply starts over from its first byte: the cost
    /// is the headers and lines received so far, as bulk data is skipped by
    /// its length, never scanned. That is nothing for the replies herald
    /// reads, and for a huge array arriving over many reads it is bounded
    /// by [`Limits::max_elements`] per call.
    pub fn decode(buf: &'a [u8], limits: &Limits) -> Result<Option<(Frame<'a>, usize)>, RespError> {
        let Some((first, header_end, end)) = scan(buf, limits)? else {
            return Ok(None);
        };
        let frame = match first {
            Head::Value(frame) => frame,
            Head::Array(n) => Frame::Array(Some(Items {
                bytes: &buf[header_end..end],
                left: n,
            })),
        };
        Ok(Some((frame, end)))
    }

    /// The bytes of a status line or a non-null bulk string; `None` for an
    /// error reply too, so that an error can never pass for data.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        self.to_scalar().as_bytes()
    }

    /// The value of an integer reply.
    pub fn as_int(&self) -> Option<i64> {
        self.to_scalar().as_int()
    }

    /// The elements of a non-null array.
    pub fn items(&self) -> Option<Items<'a>> {
        match *self {
            Frame::Array(Some(items)) => Some(items),
            _ => None,
        }
    }

    /// The frame as a [`Reply`] tree. Built without recursion; the checked
    /// bytes say how many elements each array has, so each array's `Vec`
    /// is allocated once, for elements received.
    pub fn to_reply(self) -> Reply<'a> {
        let mut open: Vec<(Vec<Reply<'a>>, Items<'a>)> = Vec::new();
        let mut next = Some(self);
        loop {
            // `next` is a value to place, or `None` when the innermost
            // array has no element left (so it closes).
            let done = match next {
                Some(Frame::Array(Some(items))) => {
                    open.push((Vec::with_capacity(items.len()), items));
                    None
                }
                Some(frame) => Some(frame.to_scalar()),
                None => open.pop().map(|(items, _)| Reply::Array(Some(items))),
            };
            if let Some(reply) = done {
                match open.last_mut() {
                    Some((items, _)) => items.push(reply),
                    None => return reply,
                }
            }
            next = open.last_mut().and_then(|(_, items)| items.next());
        }
    }

    /// The reply of anything but a non-null array (whose elements are
    /// left out).
    fn to_scalar(self) -> Reply<'a> {
        match self {
            Frame::Simple(s) => Reply::Simple(s),
            Frame::Error(s) => Reply::Error(s),
            Frame::Integer(i) => Reply::Integer(i),
            Frame::Bulk(b) => Reply::Bulk(b),
            Frame::Array(a) => Reply::Array(a.map(|_| Vec::new())),
        }
    }
}

/// Limits that bound what a (possibly broken or hostile) server can make
/// herald hold.
///
/// None of them bounds a whole reply's bytes: those sit in the caller's
/// buffer, which grows while [`Frame::decode`] says `Ok(None)`. The connection that
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
    /// is also what keeps those off the end of the stack. Checking a reply
    /// up to 8 deep takes no heap.
    pub max_depth: usize,
    /// Longest status or error line. Such lines are short in practice; the
    /// bound makes a server that never sends `\r\n` an error instead of a
    /// buffer that grows forever. Default 64 KiB.
    pub max_line: usize,
}

impl Limits {
    /// No bounds at all: for bytes already checked under real ones.
    const CHECKED: Limits = Limits {
        max_bulk: usize::MAX,
        max_elements: usize::MAX,
        max_depth: usize::MAX,
        max_line: usize::MAX,
    };
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

type Step<T> = Result<Option<T>, RespError>;

/// Decodes the first complete reply of `buf` into a tree, as
/// [`Frame::decode`] does into a frame (with the same answers and errors).
pub fn decode<'a>(buf: &'a [u8], limits: &Limits) -> Result<Option<(Reply<'a>, usize)>, RespError> {
    Ok(Frame::decode(buf, limits)?.map(|(frame, used)| (frame.to_reply(), used)))
}

/// How a reply starts: a whole value, or the header of an array whose
/// elements (at least one) follow.
#[derive(Clone, Copy)]
enum Head<'a> {
    Value(Frame<'a>),
    Array(usize),
}

/// Checks the first reply of `buf` whole without building it: how it
/// starts, where that start ends and where the reply ends.
fn scan<'a>(buf: &'a [u8], limits: &Limits) -> Step<(Head<'a>, usize, usize)> {
    let mut open = Open::default();
    let mut elements = 0usize;
    let mut first = None;
    let mut pos = 0;
    loop {
        let Some((head, next)) = head(buf, pos, limits, open.depth)? else {
            return Ok(None);
        };
        let (start, start_end) = *first.get_or_insert((head, next));
        pos = next;
        let whole = match head {
            Head::Array(n) => {
                // Counted as announced, so that the limit is hit at the
                // header; nothing is reserved from it.
                if n > limits.max_elements.saturating_sub(elements) {
                    return Err(RespError::TooManyElements);
                }
                elements += n;
                open.push(n);
                false
            }
            Head::Value(_) => open.complete_one(),
        };
        if whole {
            return Ok(Some((start, start_end, pos)));
        }
    }
}

/// The value or array header at `pos`, inside `depth` open arrays.
fn head<'a>(buf: &'a [u8], pos: usize, limits: &Limits, depth: usize) -> Step<(Head<'a>, usize)> {
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    let (frame, next) = match kind {
        b'+' | b'-' => {
            let Some((line, next)) = line(buf, pos + 1, limits.max_line)? else {
                return Ok(None);
            };
            let frame = if kind == b'+' {
                Frame::Simple(line)
            } else {
                Frame::Error(line)
            };
            (frame, next)
        }
        b':' => {
            let Some((n, next)) = integer(buf, pos + 1)? else {
                return Ok(None);
            };
            (Frame::Integer(n), next)
        }
        b'$' => {
            let Some((data, next)) = bulk(buf, pos + 1, limits.max_bulk)? else {
                return Ok(None);
            };
            (Frame::Bulk(data), next)
        }
        b'*' => {
            if depth >= limits.max_depth {
                return Err(RespError::TooDeep);
            }
            let Some((n, next)) = integer(buf, pos + 1)? else {
                return Ok(None);
            };
            let empty = Items {
                bytes: &[],
                left: 0,
            };
            match n {
                -1 => (Frame::Array(None), next),
                ..=-2 => return Err(RespError::BadLength),
                0 => (Frame::Array(Some(empty)), next),
                // Past usize (a 32-bit target) is past every element limit.
                n => {
                    return Ok(Some((
                        Head::Array(n.try_into().unwrap_or(usize::MAX)),
                        next,
                    )))
                }
            }
        }
        other => return Err(RespError::BadType(other)),
    };
    Ok(Some((Head::Value(frame), next)))
}

/// The arrays under way while a reply is checked, innermost last: how many
/// elements each still expects. The first levels are held inline, so a
/// reply of ordinary depth is checked without the heap.
#[derive(Default)]
struct Open {
    inline: [usize; INLINE_DEPTH],
    deeper: Vec<usize>,
    depth: usize,
}

const INLINE_DEPTH: usize = 8;

impl Open {
    fn push(&mut self, elements: usize) {
        match self.inline.get_mut(self.depth) {
            Some(slot) => *slot = elements,
            None => self.deeper.push(elements),
        }
        self.depth += 1;
    }

    /// A value is complete: closes every array it completes. True when no
    /// array is left open, i.e. the reply is whole.
    fn complete_one(&mut self) -> bool {
        while self.depth > 0 {
            let i = self.depth - 1;
            let left = match self.inline.get_mut(i) {
                Some(left) => left,
                None => &mut self.deeper[i - INLINE_DEPTH],
            };
            *left -= 1;
            if *left > 0 {
                return false;
            }
            self.depth = i;
            if i >= INLINE_DEPTH {
                self.deeper.pop();
            }
        }
        true
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
mod tests;
