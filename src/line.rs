//! Newline-delimited framing for the text port (Workerman's "text" protocol).
//!
//! A push parser: bytes in, complete lines out. Only the unfinished tail of a
//! read is kept, and only until its newline arrives.

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
}

impl LineState {
    fn is_idle(&self) -> bool {
        self.partial.is_empty() && !self.skipping
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Splits `data` into lines, calling `on_line` for each; stops early when it
/// returns false. An idle state (no unfinished line) is dropped to `None`.
pub fn split(
    state: &mut Option<Box<LineState>>,
    data: &[u8],
    max_line: usize,
    on_line: &mut dyn FnMut(Line<'_>) -> bool,
) {
    let mut rest = data;
    // First finish the line left over from earlier reads.
    if let Some(st) = state.as_deref_mut() {
        match memchr::memchr(b'\n', rest) {
            Some(i) => {
                let (head, tail) = (&rest[..i], &rest[i + 1..]);
                rest = tail;
                if st.skipping {
                    st.skipping = false;
                } else if st.partial.len() + head.len() > max_line {
                    st.partial = Vec::new();
                    if !on_line(Line::TooLong) {
                        return;
                    }
                } else {
                    let mut line = std::mem::take(&mut st.partial);
                    line.extend_from_slice(head);
                    if !on_line(Line::Complete(strip_cr(&line))) {
                        return;
                    }
                }
            }
            None => {
                if !st.skipping {
                    if st.partial.len() + rest.len() > max_line {
                        st.partial = Vec::new();
                        st.skipping = true;
                        on_line(Line::TooLong);
                    } else {
                        st.partial.extend_from_slice(rest);
                    }
                }
                return;
            }
        }
    }
    while let Some(i) = memchr::memchr(b'\n', rest) {
        let line = &rest[..i];
        rest = &rest[i + 1..];
        let event = if line.len() > max_line {
            Line::TooLong
        } else {
            Line::Complete(strip_cr(line))
        };
        if !on_line(event) {
            return;
        }
    }
    if rest.is_empty() {
        if state.as_ref().is_some_and(|s| s.is_idle()) {
            *state = None;
        }
        return;
    }
    let st = state.get_or_insert_with(Box::default);
    if rest.len() > max_line {
        st.skipping = true;
        on_line(Line::TooLong);
    } else {
        st.partial.extend_from_slice(rest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]], max: usize) -> (Vec<Option<String>>, bool) {
        let mut st = None;
        let mut out = Vec::new();
        for c in chunks {
            split(&mut st, c, max, &mut |l| {
                out.push(match l {
                    Line::Complete(b) => Some(String::from_utf8_lossy(b).into_owned()),
                    Line::TooLong => None,
                });
                true
            });
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
    fn memory_stays_bounded_by_the_cap() {
        let mut st = None;
        for _ in 0..1000 {
            split(&mut st, &[b'x'; 1000], 4096, &mut |_| true);
        }
        assert!(st.as_ref().unwrap().partial.capacity() <= 8192);
    }
}
