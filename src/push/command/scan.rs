//! The JSON scanner under the text-port decoder: RFC 8259 validated in one
//! pass, values returned as spans of the line (no tree, no allocation).

use super::error::{CommandError, MAX_DEPTH};
use std::borrow::Cow;

#[derive(Clone, Copy)]
pub(super) enum Kind {
    Str { escaped: bool },
    Num,
    True,
    Other,
    Array,
}

#[derive(Clone, Copy)]
pub(super) struct Span {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) kind: Kind,
}

pub(super) struct Scanner<'a> {
    pub(super) b: &'a [u8],
    pub(super) i: usize,
}

pub(super) type Res<T> = Result<T, CommandError>;

impl<'a> Scanner<'a> {
    pub(super) fn err<T>(&self, what: &'static str) -> Res<T> {
        Err(CommandError::Malformed(what, self.i))
    }

    pub(super) fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    pub(super) fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    pub(super) fn eat(&mut self, c: u8, what: &'static str) -> Res<()> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            self.err(what)
        }
    }

    /// A string; returns the span of its contents (without quotes).
    fn string(&mut self) -> Res<Span> {
        let start = self.i + 1;
        let escaped = self.quoted()?;
        Ok(Span {
            start,
            end: self.i - 1,
            kind: Kind::Str { escaped },
        })
    }

    /// Crosses a string, quotes included; true if it holds escapes.
    fn quoted(&mut self) -> Res<bool> {
        self.eat(b'"', "expected a string")?;
        self.string_rest()
    }

    /// The rest of a string after its opening quote, through its closing
    /// one; true if it holds escapes.
    fn string_rest(&mut self) -> Res<bool> {
        let mut escaped = false;
        loop {
            self.i = plain_run(self.b, self.i);
            match self.peek() {
                None => return self.err("unterminated string"),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(escaped);
                }
                Some(b'\\') => {}
                Some(_) => return self.err("control character in string"),
            }
            escaped = true;
            self.i += 1;
            match self.peek() {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                Some(b'u') => {
                    self.i += 1;
                    let unit = self.hex4()?;
                    match unit {
                        // A high surrogate must be followed by a low one.
                        0xD800..=0xDBFF => {
                            if !self.b[self.i..].starts_with(b"\\u") {
                                return self.err("lone surrogate in \\u escape");
                            }
                            self.i += 2;
                            if !(0xDC00..=0xDFFF).contains(&self.hex4()?) {
                                return self.err("lone surrogate in \\u escape");
                            }
                        }
                        0xDC00..=0xDFFF => return self.err("lone surrogate in \\u escape"),
                        _ => {}
                    }
                }
                _ => return self.err("bad escape"),
            }
        }
    }

    /// Four hex digits of a `\\u` escape.
    fn hex4(&mut self) -> Res<u32> {
        let mut v = 0;
        for _ in 0..4 {
            match self.peek().and_then(|c| (c as char).to_digit(16)) {
                Some(d) => {
                    v = v * 16 + d;
                    self.i += 1;
                }
                None => return self.err("bad \\u escape"),
            }
        }
        Ok(v)
    }

    fn digits(&mut self) -> usize {
        let from = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        self.i - from
    }

    fn number(&mut self) -> Res<Span> {
        let start = self.i;
        self.number_rest()?;
        Ok(Span {
            start,
            end: self.i,
            kind: Kind::Num,
        })
    }

    /// Crosses a number, checked.
    fn number_rest(&mut self) -> Res<()> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return self.err("bad number"),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return self.err("bad number");
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return self.err("bad number");
            }
        }
        // Refuse what overflows a double, as serde_json (and most JSON
        // consumers behind herald) do. Short plain numbers cannot overflow.
        let text = &self.b[start..self.i];
        if text.len() > 15 || text.iter().any(|&c| c == b'e' || c == b'E') {
            let finite = std::str::from_utf8(text)
                .ok()
                .and_then(|t| t.parse::<f64>().ok())
                .is_some_and(f64::is_finite);
            if !finite {
                return Err(CommandError::Malformed("number out of range", start));
            }
        }
        Ok(())
    }

    fn literal(&mut self, word: &'static [u8]) -> Res<()> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            self.err("unexpected token")
        }
    }

    /// Any value; nested containers are validated and skipped.
    fn value(&mut self, depth: usize) -> Res<Span> {
        let start = self.i;
        let kind = match self.peek() {
            Some(b'"') => return self.string(),
            Some(b'-' | b'0'..=b'9') => return self.number(),
            Some(b't') => {
                self.literal(b"true")?;
                Kind::True
            }
            Some(b'f') => {
                self.literal(b"false")?;
                Kind::Other
            }
            Some(b'n') => {
                self.literal(b"null")?;
                Kind::Other
            }
            Some(b'[') => {
                self.skip_array(depth + 1)?;
                Kind::Array
            }
            Some(b'{') => {
                self.skip_object(depth + 1)?;
                Kind::Other
            }
            None => return self.err("unexpected end"),
            _ => return self.err("unexpected character"),
        };
        Ok(Span {
            start,
            end: self.i,
            kind,
        })
    }

    /// Crosses any value, checked; makes no span (values inside containers
    /// are never looked at, only validated).
    fn skip(&mut self, depth: usize) -> Res<()> {
        match self.peek() {
            Some(b'"') => self.quoted().map(drop),
            Some(b'-' | b'0'..=b'9') => self.number_rest(),
            Some(b'[') => self.skip_array(depth + 1),
            Some(b'{') => self.skip_object(depth + 1),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            None => self.err("unexpected end"),
            _ => self.err("unexpected character"),
        }
    }

    fn skip_array(&mut self, depth: usize) -> Res<()> {
        self.list(depth, b'[', |sc| sc.skip(depth))
    }

    fn skip_object(&mut self, depth: usize) -> Res<()> {
        self.list(depth, b'{', |sc| {
            sc.quoted()?;
            sc.colon()?;
            sc.skip(depth)
        })
    }

    pub(super) fn array(
        &mut self,
        depth: usize,
        on_item: &mut dyn FnMut(&Self, Span) -> Res<()>,
    ) -> Res<()> {
        self.list(depth, b'[', |sc| {
            let v = sc.value(depth)?;
            on_item(sc, v)
        })
    }

    pub(super) fn object(
        &mut self,
        depth: usize,
        on_member: &mut dyn FnMut(&Self, Span, Span) -> Res<()>,
    ) -> Res<()> {
        self.list(depth, b'{', |sc| {
            let k = sc.string()?;
            sc.colon()?;
            let v = sc.value(depth)?;
            on_member(sc, k, v)
        })
    }

    /// The colon after a member's name, with the white space around it.
    fn colon(&mut self) -> Res<()> {
        self.ws();
        self.eat(b':', "expected :")?;
        self.ws();
        Ok(())
    }

    /// An array (`open` is `[`) or an object (`{`): the brackets, the commas
    /// and the white space, with `item` reading each element (a member with
    /// its name, in an object).
    fn list(
        &mut self,
        depth: usize,
        open: u8,
        mut item: impl FnMut(&mut Self) -> Res<()>,
    ) -> Res<()> {
        let (close, opened, sep) = if open == b'[' {
            (b']', "expected an array", "expected , or ]")
        } else {
            (b'}', "expected an object", "expected , or }")
        };
        if depth > MAX_DEPTH {
            return self.err("nested too deep");
        }
        self.eat(open, opened)?;
        self.ws();
        if self.peek() == Some(close) {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            item(self)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(c) if c == close => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return self.err(sep),
            }
        }
    }
}

/// Where the run of plain string bytes from `i` ends: the first `"`, `\\`
/// or control character, or the end. Eight bytes at a time: a byte is
/// flagged when it equals `"` or `\\` or is under 0x20 (the usual
/// zero-byte test; its false positives only ever sit above a true one, so
/// the lowest flag is exact).
fn plain_run(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGH: u64 = ONES << 7;
    while let Some(chunk) = b.get(i..i + 8) {
        let x = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        let quote = x ^ (ONES * u64::from(b'"'));
        let slash = x ^ (ONES * u64::from(b'\\'));
        let flags = (quote.wrapping_sub(ONES) & !quote)
            | (slash.wrapping_sub(ONES) & !slash)
            | (x.wrapping_sub(ONES * 0x20) & !x);
        let flags = flags & HIGH;
        if flags != 0 {
            return i + (flags.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while b
        .get(i)
        .is_some_and(|&c| c >= 0x20 && c != b'"' && c != b'\\')
    {
        i += 1;
    }
    i
}

pub(super) fn text_of(line: &str, s: Span) -> Res<Cow<'_, str>> {
    match s.kind {
        Kind::Str { escaped: true } => {
            // Rare: let serde_json resolve escapes (including surrogate pairs).
            // An escape it refuses (a lone surrogate) is the sender's error,
            // never an empty string.
            serde_json::from_str::<String>(&line[s.start - 1..s.end + 1])
                .map(Cow::Owned)
                .map_err(|_| CommandError::Malformed("invalid escape in string", s.start))
        }
        _ => Ok(Cow::Borrowed(&line[s.start..s.end])),
    }
}

pub(super) fn uid_of<'a>(line: &'a str, s: Span, field: &'static str) -> Res<Cow<'a, str>> {
    match s.kind {
        Kind::Str { .. } | Kind::Num => {
            let t = text_of(line, s)?;
            if t.is_empty() {
                Err(CommandError::EmptyUid)
            } else {
                Ok(t)
            }
        }
        _ => Err(CommandError::BadUid(field)),
    }
}
