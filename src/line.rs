//! Newline-delimited framing for the text port (Workerman's "text" protocol).
//!
//! A pull parser: bytes in, one complete line per call. Only the unfinished
//! tail of a read is kept, and only until its newline arrives.

use crate::sansio::Held;

/// What the splitter found.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// One line without its `\n` (and without a `\r` before it).
    Complete(&'a [u8]),
    /// A line went past the cap. Reported once, as soon as the cap is
    /// crossed; its bytes are skipped up to and including the next `\n`, so
    /// the lines after it stay in step.
    TooLong,
}

/// Bytes of an unfinished line kept between reads.
#[derive(Debug, Default)]
pub struct LineState {
    partial: Vec<u8>,
    /// Inside an over-long line: drop bytes until the next newline.
    skipping: bool,
    /// `partial` holds a line already handed out; cleared on the next call.
    joined: bool,
    /// `partial` holds a whole line put back ([`put_back`]): the next call
    /// hands it out again, as it is.
    complete: bool,
}

impl LineState {
    fn is_idle(&self) -> bool {
        self.partial.is_empty() && !self.skipping && !self.complete
    }

    /// Bytes held (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of::<LineState>() + self.partial.capacity()
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Finds the next line: returns how many bytes of `data` it consumed and the
/// line, or `None` once all of `data` is consumed without completing one
/// (the unfinished tail is then held). A pull parser: call again with the
/// rest of `data` until it returns `None`.
pub fn next<'a, H: Held<LineState>>(
    held: &'a mut H,
    data: &'a [u8],
    max_line: usize,
) -> (usize, Option<Line<'a>>) {
    let mut skipped = 0;
    if let Some(st) = held.get() {
        if st.complete {
            st.complete = false;
            st.joined = true;
            return (0, held.get().map(|st| Line::Complete(&st.partial)));
        }
        if st.joined {
            st.joined = false;
            st.partial.clear();
        }
        if !st.is_idle() {
            // First finish the line left over from earlier reads.
            match memchr::memchr(b'\n', data) {
                Some(i) if st.skipping => {
                    st.skipping = false;
                    skipped = i + 1;
                }
                Some(i) if st.partial.len() + i > max_line => {
                    st.partial = Vec::new();
                    return (i + 1, Some(Line::TooLong));
                }
                Some(i) => {
                    st.partial.extend_from_slice(&data[..i]);
                    st.joined = true;
                    return (i + 1, held_line(held));
                }
                None if st.skipping => return (data.len(), None),
                None if st.partial.len() + data.len() > max_line => {
                    st.partial = Vec::new();
                    st.skipping = true;
                    return (data.len(), Some(Line::TooLong));
                }
                None => {
                    st.partial.extend_from_slice(data);
                    return (data.len(), None);
                }
            }
        }
    }
    let rest = &data[skipped..];
    if let Some(i) = memchr::memchr(b'\n', rest) {
        let line = &rest[..i];
        let event = if line.len() > max_line {
            Line::TooLong
        } else {
            Line::Complete(strip_cr(line))
        };
        return (skipped + i + 1, Some(event));
    }
    if rest.is_empty() {
        if held.get().is_some_and(|s| s.is_idle()) {
            held.clear();
        }
        return (data.len(), None);
    }
    let st = held.get_or_insert();
    if rest.len() > max_line {
        st.skipping = true;
        return (data.len(), Some(Line::TooLong));
    }
    st.partial.extend_from_slice(rest);
    (data.len(), None)
}

/// At the end of the stream: the unfinished last line, if one is held (a
/// peer that closed instead of writing its final `\n`). It is a line like
/// any other, so a backend that forgets the newline still gets its answer.
/// Nothing when the tail was being skipped as too long (already reported)
/// or is empty.
pub fn finish<H: Held<LineState>>(held: &mut H) -> Option<Line<'_>> {
    let st = held.get()?;
    if st.complete {
        st.complete = false;
        st.joined = true;
        return held.get().map(|st| Line::Complete(&st.partial));
    }
    if st.joined || st.skipping || st.partial.is_empty() {
        return None;
    }
    st.joined = true;
    held_line(held)
}

/// Puts back `line`, which [`next`] (or [`finish`]) just handed out and the
/// application could not take now: the next call hands it out again, before
/// anything after it. The bytes `next` used for it stay used: the line is
/// held here, whole, so that what follows it is read as before.
pub fn put_back<H: Held<LineState>>(held: &mut H, line: Vec<u8>) {
    let st = held.get_or_insert();
    st.partial = line;
    st.joined = false;
    st.complete = true;
}

/// The line just joined in the state.
fn held_line<H: Held<LineState>>(held: &mut H) -> Option<Line<'_>> {
    held.get().map(|st| Line::Complete(strip_cr(&st.partial)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]], max: usize) -> (Vec<Option<String>>, bool) {
        let mut st: Option<Box<LineState>> = None;
        let mut out = Vec::new();
        for c in chunks {
            let mut pos = 0;
            loop {
                let (used, l) = next(&mut st, &c[pos..], max);
                pos += used;
                let Some(l) = l else { break };
                out.push(match l {
                    Line::Complete(b) => Some(String::from_utf8_lossy(b).into_owned()),
                    Line::TooLong => None,
                });
            }
            assert_eq!(pos, c.len());
        }
        (out, st.is_none())
    }

    #[test]
    fn pipelined_and_split_lines() {
        let (out, idle) = run(&[b"a\nbb\r\ncc", b"c\n"], 10);
        assert_eq!(
            out,
            vec![Some("a".into()), Some("bb".into()), Some("ccc".into())]
        );
        assert!(idle);
        let (out, idle) = run(&[b"abc"], 10);
        assert!(out.is_empty());
        assert!(!idle);
    }

    #[test]
    fn every_split_gives_the_same_lines() {
        let data = b"{\"uid\":\"1\"}\n\nxyz\r\nlast\n";
        let (whole, _) = run(&[data], 100);
        for i in 0..data.len() {
            for j in i..data.len() {
                let (parts, idle) = run(&[&data[..i], &data[i..j], &data[j..]], 100);
                assert_eq!(parts, whole);
                assert!(idle);
            }
        }
    }

    #[test]
    fn too_long_is_reported_once_and_framing_recovers() {
        for chunks in [
            vec![&b"0123456789abc\nok\n"[..]],
            vec![&b"0123"[..], b"456789abc", b"def\nok\n"],
            vec![&b"0123456789abcdef"[..], b"ghi", b"\nok\n"],
        ] {
            let (out, idle) = run(&chunks, 8);
            assert_eq!(out, vec![None, Some("ok".into())], "{chunks:?}");
            assert!(idle);
        }
    }

    #[test]
    fn a_line_put_back_comes_again_before_the_rest() {
        // Direct, joined from two reads, after a skipped over-long line, and
        // as the last line of the stream: each comes again, as it was.
        let mut st: Option<Box<LineState>> = None;
        let (used, l) = next(&mut st, b"a\r\r\nb\n", 10);
        assert_eq!((used, l), (4, Some(Line::Complete(b"a\r"))));
        put_back(&mut st, b"a\r".to_vec());
        assert_eq!(next(&mut st, b"b\n", 10), (0, Some(Line::Complete(b"a\r"))));
        assert_eq!(next(&mut st, b"b\n", 10), (2, Some(Line::Complete(b"b"))));
        assert_eq!(next(&mut st, b"xy", 10), (2, None));
        assert_eq!(
            next(&mut st, b"z\nq\n", 10),
            (2, Some(Line::Complete(b"xyz")))
        );
        put_back(&mut st, b"xyz".to_vec());
        assert_eq!(next(&mut st, b"q\n", 10), (0, Some(Line::Complete(b"xyz"))));
        assert_eq!(next(&mut st, b"q\n", 10), (2, Some(Line::Complete(b"q"))));
        assert_eq!(next(&mut st, b"", 10), (0, None));
        assert!(st.is_none(), "idle again");
        assert_eq!(
            next(&mut st, b"0123456789ab", 10),
            (12, Some(Line::TooLong))
        );
        assert_eq!(
            next(&mut st, b"c\nok\n", 10),
            (5, Some(Line::Complete(b"ok")))
        );
        put_back(&mut st, b"ok".to_vec());
        assert_eq!(next(&mut st, b"", 10), (0, Some(Line::Complete(b"ok"))));
        assert_eq!(next(&mut st, b"last", 10), (4, None));
        let line = match finish(&mut st) {
            Some(Line::Complete(b)) => b.to_vec(),
            other => panic!("{other:?}"),
        };
        put_back(&mut st, line);
        assert_eq!(finish(&mut st), Some(Line::Complete(b"last")));
        assert_eq!(finish(&mut st), None);
    }

    #[test]
    fn memory_stays_bounded_by_the_cap() {
        let mut st: Option<Box<LineState>> = None;
        for _ in 0..1000 {
            let mut pos = 0;
            while let (used, Some(_)) = next(&mut st, &[b'x'; 1000][pos..], 4096) {
                pos += used;
            }
        }
        assert!(st.as_ref().unwrap().partial.capacity() <= 8192);
    }

    #[test]
    fn the_last_line_ends_at_the_end_of_the_stream() {
        let mut st: Option<Box<LineState>> = None;
        assert_eq!(next(&mut st, b"a\nb", 10), (2, Some(Line::Complete(b"a"))));
        assert_eq!(next(&mut st, b"b", 10), (1, None));
        assert_eq!(next(&mut st, b"c\r", 10), (2, None));
        assert_eq!(finish(&mut st), Some(Line::Complete(b"bc")));
        assert_eq!(finish(&mut st), None, "handed out once");
        // Nothing held, or an over-long tail already reported: nothing more.
        let mut none: Option<Box<LineState>> = None;
        assert_eq!(finish(&mut none), None);
        let mut long: Option<Box<LineState>> = None;
        assert_eq!(
            next(&mut long, b"0123456789ab", 10),
            (12, Some(Line::TooLong))
        );
        assert_eq!(finish(&mut long), None);
    }
}
