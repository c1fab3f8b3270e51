//! One HTTP API connection as a sans-IO state machine: bytes in, one
//! complete request (head and body) per call, or the error to answer with.
//! Bytes are held only while a request is incomplete.

use super::head::{parse_head, Head};
use crate::sansio::Held;

/// Bytes of incomplete requests kept between reads.
#[derive(Debug, Default)]
pub struct HttpState {
    buf: Vec<u8>,
    /// Start of the bytes not yet handed out as a request.
    pos: usize,
}

impl HttpState {
    /// Bytes held (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of::<HttpState>() + self.buf.capacity()
    }
}

/// A complete request, borrowing from the caller's buffer or the state.
pub struct Parsed<'a> {
    pub head: Head<'a>,
    pub body: &'a [u8],
}

/// What a call found.
#[allow(clippy::large_enum_variant)] // the head lives on the stack, briefly: boxing it would allocate per request
pub enum Step<'a> {
    Request(Parsed<'a>),
    /// The request is refused with this status and reason; the connection
    /// reads nothing more.
    Failed(u16, &'static str),
}

/// Sizes of the request at the start of `buf`: head and body length, or
/// `None` while incomplete.
fn measure(
    buf: &[u8],
    max_head: usize,
    max_body: usize,
) -> Result<Option<(usize, usize)>, (u16, &'static str)> {
    let (head, n) = match parse_head(buf, max_head) {
        Ok(None) => return Ok(None),
        Ok(Some(x)) => x,
        Err(e) => return Err((e.status(), e.reason())),
    };
    let len = head
        .content_length()
        .map_err(|e| (e.status(), e.reason()))?;
    if len > max_body {
        return Err((413, "request body too large"));
    }
    Ok((buf.len() - n >= len).then_some((n, len)))
}

/// The request whose sizes `measure` found.
fn request(buf: &[u8], n: usize, len: usize, max_head: usize) -> Option<Step<'_>> {
    let (head, _) = parse_head(buf, max_head).ok()??;
    Some(Step::Request(Parsed {
        head,
        body: &buf[n..n + len],
    }))
}

/// Finds the next request: returns how many bytes of `data` it consumed and
/// the request (or failure), or `None` once all of `data` is consumed
/// without completing one. Call again with the rest until `None`.
pub fn next<'a, H: Held<HttpState>>(
    held: &'a mut H,
    data: &'a [u8],
    max_head: usize,
    max_body: usize,
) -> (usize, Option<Step<'a>>) {
    let pending = match held.get() {
        Some(st) if st.pos < st.buf.len() => {
            // Bytes are already held: the new ones join them.
            st.buf.drain(..st.pos);
            st.pos = 0;
            st.buf.extend_from_slice(data);
            true
        }
        _ => false,
    };
    if pending {
        let Some(st) = held.get() else {
            return (data.len(), None);
        };
        let found = measure(&st.buf, max_head, max_body);
        return match found {
            Ok(None) => (data.len(), None),
            Err((status, reason)) => (data.len(), Some(Step::Failed(status, reason))),
            Ok(Some((n, len))) => {
                st.pos = n + len;
                (data.len(), request(&st.buf[..n + len], n, len, max_head))
            }
        };
    }
    held.clear();
    match measure(data, max_head, max_body) {
        Ok(Some((n, len))) => (n + len, request(data, n, len, max_head)),
        Err((status, reason)) => (data.len(), Some(Step::Failed(status, reason))),
        Ok(None) if data.is_empty() => (0, None),
        Ok(None) => {
            held.get_or_insert().buf.extend_from_slice(data);
            (data.len(), None)
        }
    }
}

/// Puts back the request [`next`] just returned (which used `used` bytes of
/// its `data`), so that it is returned again: returns how many of those
/// bytes stay used. A request read from the held bytes stays there (all of
/// `data` joined them); one read straight from `data` is handed in again
/// by the caller (none stay used).
pub fn put_back<H: Held<HttpState>>(held: &mut H, used: usize) -> usize {
    match held.get() {
        Some(st) if st.pos > 0 => {
            // The request starts the held bytes (they were drained up to it).
            st.pos = 0;
            used
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (method, path-and-query, body) of each request, and the failure.
    fn run(chunks: &[&[u8]]) -> (Vec<(String, String, String)>, Option<u16>, bool) {
        let mut st: Option<Box<HttpState>> = None;
        let mut out = Vec::new();
        for c in chunks {
            let mut pos = 0;
            loop {
                let (used, step) = next(&mut st, &c[pos..], 1024, 64);
                pos += used;
                match step {
                    None => break,
                    Some(Step::Failed(status, _)) => return (out, Some(status), st.is_none()),
                    Some(Step::Request(p)) => out.push((
                        p.head.method.to_string(),
                        p.head.target.to_string(),
                        String::from_utf8_lossy(p.body).into_owned(),
                    )),
                }
            }
        }
        (out, None, st.is_none())
    }

    #[test]
    fn pipelined_requests_at_every_split() {
        let wire = b"GET /online HTTP/1.1\r\n\r\nPOST /push HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /stats HTTP/1.1\r\n\r\n";
        let (whole, fail, idle) = run(&[wire]);
        assert_eq!(fail, None);
        assert!(idle);
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[1], ("POST".into(), "/push".into(), "hello".into()));
        for i in 0..wire.len() {
            for j in [i, (i + 9).min(wire.len())] {
                let (got, fail, idle) = run(&[&wire[..i], &wire[i..j], &wire[j..]]);
                assert_eq!((got, fail), (whole.clone(), None), "split {i} {j}");
                assert!(idle, "split {i} {j}");
            }
        }
    }

    #[test]
    fn a_request_put_back_comes_again_before_the_rest() {
        let wire: &[u8] = b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n";
        for split in [0, 10, 30, wire.len()] {
            let mut st: Option<Box<HttpState>> = None;
            let mut seen = Vec::new();
            let mut refused = false;
            for chunk in [&wire[..split], &wire[split..]] {
                let mut pos = 0;
                loop {
                    let (used, step) = next(&mut st, &chunk[pos..], 1024, 64);
                    let target = match step {
                        None => {
                            pos += used;
                            break;
                        }
                        Some(Step::Request(p)) => p.head.target.to_string(),
                        Some(Step::Failed(s, _)) => panic!("{s}"),
                    };
                    if target == "/b" && !refused {
                        refused = true;
                        pos += put_back(&mut st, used);
                        continue;
                    }
                    pos += used;
                    seen.push(target);
                }
                assert_eq!(pos, chunk.len(), "split {split}");
            }
            assert_eq!(seen, ["/a", "/b", "/c"], "split {split}");
        }
    }

    #[test]
    fn bodies_past_the_cap_and_bad_heads_fail() {
        let (_, fail, _) = run(&[b"POST /push HTTP/1.1\r\nContent-Length: 65\r\n\r\n"]);
        assert_eq!(fail, Some(413));
        let (_, fail, _) = run(&[b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"]);
        assert_eq!(fail, Some(400));
        let (_, fail, _) = run(&[&[b'a'; 2000]]);
        assert_eq!(fail, Some(431));
    }
}
