//! The text-port command decoder: one JSON object per line, scanned once.
//!
//! The whole line is validated as JSON (RFC 8259), but only the routing
//! fields are extracted, as slices of the line: no tree is built and a
//! push allocates nothing unless its uid uses JSON escapes.
//!
//! Routing fields (exactly one per line):
//! - `"uid": U` push the line to uid U (the seed's format);
//! - `"uids": [U, ...]` push the line to each uid;
//! - `"all": true` broadcast the line to every bound connection;
//! - `"online": U` ask how many connections uid U has;
//! - `"count": true` ask how many uids and connections are online.
//!
//! A uid U is a JSON string or number (a number is used as written: `42`).

use std::borrow::Cow;

/// Deepest nesting accepted; deeper input is refused, not recursed into.
pub const MAX_DEPTH: usize = 64;

/// A decoded line.
#[derive(Debug, PartialEq, Eq)]
pub enum Command<'a> {
    Push(Cow<'a, str>),
    PushMany(Vec<Cow<'a, str>>),
    Broadcast,
    Online(Cow<'a, str>),
    Count,
}

/// Why a line was refused; `Display` gives the text after `error `.
#[derive(Debug, PartialEq, Eq)]
pub enum CommandError {
    NotUtf8,
    Malformed(&'static str, usize),
    NotObject,
    NoTarget,
    BadUid(&'static str),
    EmptyUid,
    Ambiguous,
    /// `"uids"` is not a list.
    UidsNotList,
    /// `"uids"` is an empty list.
    NoUids,
    /// `"all"` or `"count"` is valid JSON but not `true`.
    NotTrue(&'static str),
    /// `{"auth":...}` and nothing to do: this herald asks for no API token.
    AuthNotNeeded,
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommandError::NotUtf8 => f.write_str("line is not valid UTF-8"),
            CommandError::Malformed(what, at) => write!(f, "malformed JSON: {what} at byte {at}"),
            CommandError::NotObject => f.write_str("expected a JSON object"),
            CommandError::NoTarget => {
                f.write_str("missing \"uid\" (or \"uids\", \"all\", \"online\", \"count\")")
            }
            CommandError::BadUid(field) => write!(f, "\"{field}\" must be a string or a number"),
            CommandError::EmptyUid => f.write_str("empty uid"),
            CommandError::Ambiguous => {
                f.write_str("use exactly one of \"uid\", \"uids\", \"all\", \"online\", \"count\"")
            }
            CommandError::UidsNotList => {
                f.write_str("\"uids\" must be a list of strings or numbers")
            }
            CommandError::NoUids => f.write_str("\"uids\" is an empty list"),
            CommandError::NotTrue(field) => write!(f, "\"{field}\" must be true"),
            CommandError::AuthNotNeeded => f.write_str(
                "this herald has no API token (--api-token-file): send commands without \"auth\"",
            ),
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Str { escaped: bool },
    Num,
    True,
    Other,
    Array,
}

#[derive(Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    kind: Kind,
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

type Res<T> = Result<T, CommandError>;

impl<'a> Scanner<'a> {
    fn err<T>(&self, what: &'static str) -> Res<T> {
        Err(CommandError::Malformed(what, self.i))
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8, what: &'static str) -> Res<()> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            self.err(what)
        }
    }

    /// A string; returns the span of its contents (without quotes).
    fn string(&mut self) -> Res<Span> {
        self.eat(b'"', "expected a string")?;
        let start = self.i;
        let mut escaped = false;
        loop {
            let Some(i) = memchr::memchr2(b'"', b'\\', &self.b[self.i..]) else {
                self.i = self.b.len();
                return self.err("unterminated string");
            };
            if self.b[self.i..self.i + i].iter().any(|&c| c < 0x20) {
                return self.err("control character in string");
            }
            self.i += i;
            if self.b[self.i] == b'"' {
                let end = self.i;
                self.i += 1;
                return Ok(Span {
                    start,
                    end,
                    kind: Kind::Str { escaped },
                });
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
        Ok(Span {
            start,
            end: self.i,
            kind: Kind::Num,
        })
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
                self.array(depth + 1, &mut |_, _| Ok(()))?;
                Kind::Array
            }
            Some(b'{') => {
                self.object(depth + 1, &mut |_, _, _| Ok(()))?;
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

    fn array(&mut self, depth: usize, on_item: &mut dyn FnMut(&Self, Span) -> Res<()>) -> Res<()> {
        if depth > MAX_DEPTH {
            return self.err("nested too deep");
        }
        self.eat(b'[', "expected an array")?;
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            let v = self.value(depth)?;
            on_item(self, v)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return self.err("expected , or ]"),
            }
        }
    }

    fn object(
        &mut self,
        depth: usize,
        on_member: &mut dyn FnMut(&Self, Span, Span) -> Res<()>,
    ) -> Res<()> {
        if depth > MAX_DEPTH {
            return self.err("nested too deep");
        }
        self.eat(b'{', "expected an object")?;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            let k = self.string()?;
            self.ws();
            self.eat(b':', "expected :")?;
            self.ws();
            let v = self.value(depth)?;
            on_member(self, k, v)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return self.err("expected , or }"),
            }
        }
    }
}

fn text_of(line: &str, s: Span) -> Res<Cow<'_, str>> {
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

fn uid_of<'a>(line: &'a str, s: Span, field: &'static str) -> Res<Cow<'a, str>> {
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

/// Decodes one text-port line (without its newline).
pub fn parse(raw: &[u8]) -> Result<Command<'_>, CommandError> {
    let line = std::str::from_utf8(raw).map_err(|_| CommandError::NotUtf8)?;
    let mut sc = Scanner { b: raw, i: 0 };
    sc.ws();
    if sc.peek() != Some(b'{') {
        return Err(CommandError::NotObject);
    }
    let mut target: Option<(&'static str, Span)> = None;
    let mut ambiguous = false;
    let mut auth = false;
    sc.object(1, &mut |sc, k, v| {
        let key = text_of(line, k)?;
        let field = match &*key {
            "uid" => "uid",
            "uids" => "uids",
            "all" => "all",
            "online" => "online",
            "count" => "count",
            "auth" => {
                auth = true;
                return Ok(());
            }
            _ => return Ok(()),
        };
        let _ = sc;
        if target.is_some() {
            ambiguous = true;
        }
        target = Some((field, v));
        Ok(())
    })?;
    sc.ws();
    if sc.i != raw.len() {
        return sc.err("trailing characters");
    }
    if ambiguous {
        return Err(CommandError::Ambiguous);
    }
    let Some((field, v)) = target else {
        // The text port asks for `{"auth":..}` only with a token set, and
        // then it never reaches the parser.
        return Err(if auth {
            CommandError::AuthNotNeeded
        } else {
            CommandError::NoTarget
        });
    };
    match field {
        "uid" => uid_of(line, v, "uid").map(Command::Push),
        "online" => uid_of(line, v, "online").map(Command::Online),
        "all" | "count" => match v.kind {
            Kind::True => Ok(if field == "all" {
                Command::Broadcast
            } else {
                Command::Count
            }),
            Kind::Str { .. } | Kind::Num | Kind::Other | Kind::Array => {
                Err(CommandError::NotTrue(field))
            }
        },
        _ => uids_of(line, raw, v).map(Command::PushMany),
    }
}

/// The `"uids"` list `v` of `line` (`raw` is its bytes).
fn uids_of<'a>(line: &'a str, raw: &'a [u8], v: Span) -> Result<Vec<Cow<'a, str>>, CommandError> {
    let Kind::Array = v.kind else {
        return Err(CommandError::UidsNotList);
    };
    let mut uids = Vec::new();
    let mut inner = Scanner { b: raw, i: v.start };
    let mut bad = None;
    inner.array(1, &mut |_, item| {
        match uid_of(line, item, "uids") {
            Ok(u) => uids.push(u),
            Err(e) => {
                if bad.is_none() {
                    bad = Some(e);
                }
            }
        }
        Ok(())
    })?;
    match bad {
        Some(e) => Err(e),
        None if uids.is_empty() => Err(CommandError::NoUids),
        None => Ok(uids),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Command<'_> {
        parse(s.as_bytes()).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn the_seed_line() {
        assert_eq!(
            ok(r#"{"uid":"uid1","percent":"88%"}"#),
            Command::Push("uid1".into())
        );
        assert!(matches!(
            ok(r#"{"uid":"uid1"}"#),
            Command::Push(Cow::Borrowed("uid1"))
        ));
        assert_eq!(
            ok(r#" { "percent" : [1, {"a": null}], "uid" : 42 } "#),
            Command::Push("42".into())
        );
        assert_eq!(ok(r#"{"uid":"\u0075id\n"}"#), Command::Push("uid\n".into()));
        assert_eq!(ok(r#"{"\u0075id":"x"}"#), Command::Push("x".into()));
    }

    #[test]
    fn other_commands() {
        assert_eq!(
            ok(r#"{"uids":["a",2,"c"],"m":1}"#),
            Command::PushMany(vec!["a".into(), "2".into(), "c".into()])
        );
        assert_eq!(ok(r#"{"all":true,"m":"hi"}"#), Command::Broadcast);
        assert_eq!(ok(r#"{"online":"u"}"#), Command::Online("u".into()));
        assert_eq!(ok(r#"{"count":true}"#), Command::Count);
    }

    #[test]
    fn bad_lines_get_clear_errors() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "expected a JSON object"),
            (b"uid1", "expected a JSON object"),
            (b"[1]", "expected a JSON object"),
            (b"{\"uid\":\"a\"", "malformed JSON"),
            (b"{\"uid\":\"a\"} x", "trailing"),
            (b"{\"uid\":01}", "malformed"),
            (b"{\"uid\":\"a\",}", "malformed"),
            (b"{\"uid\":tru}", "malformed"),
            (b"{\"uid\":\"a\x01\"}", "control character"),
            (b"{\"uid\":\"\\x\"}", "bad escape"),
            (b"{\"uid\":\"\xff\"}", "not valid UTF-8"),
            (b"{\"percent\":1}", "missing \"uid\""),
            (b"{\"uid\":null}", "must be a string or a number"),
            (b"{\"uid\":[\"a\"]}", "must be a string or a number"),
            (b"{\"uid\":\"\"}", "empty uid"),
            (b"{\"uid\":\"a\",\"all\":true}", "exactly one"),
            (b"{\"uids\":[]}", "\"uids\" is an empty list"),
            (b"{\"uids\":\"a\"}", "\"uids\" must be a list"),
            (b"{\"all\":false}", "\"all\" must be true"),
            (b"{\"count\":false}", "\"count\" must be true"),
            (b"{\"auth\":\"t\"}", "no API token"),
            (b"{\"uids\":[\"a\",{}]}", "must be a string"),
            (b"{\"all\":1}", "\"all\" must be true"),
        ];
        for (line, want) in cases {
            let err = parse(line).unwrap_err().to_string();
            assert!(
                err.contains(want),
                "{:?}: {err}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn deep_nesting_is_refused_without_recursing_far() {
        let deep = format!(
            "{{\"uid\":\"a\",\"x\":{}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(parse(deep.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("too deep"));
        let fine = format!(
            "{{\"uid\":\"a\",\"x\":{}{}}}",
            "[".repeat(60),
            "]".repeat(60)
        );
        assert!(parse(fine.as_bytes()).is_ok());
    }

    #[test]
    fn agrees_with_serde_json_on_validity() {
        for s in [
            r#"{"uid":"a","n":-0.5e+3}"#,
            r#"{"uid":"a","n":1.}"#,
            r#"{"uid":"a","n":-}"#,
            r#"{"uid":"a","s":"\ud83d\ude00"}"#,
            r#"{"uid":"a","s":"\ud800"}"#,
            r#"{"uid":"a","n":1e400}"#,
            r#"{"uid":"a","n":1e-400}"#,
            r#"{"uid":"a","n":-1.5E+300}"#,
            r#"{"uid":"a","s":"\ude00x"}"#,
            r#"{"uid":"a","s":"\ud800\u0041"}"#,
            r#"{"uid":"a","o":{"k":[true,false,null]}}"#,
            r#"{"uid":"a" "b":1}"#,
        ] {
            let ours = parse(s.as_bytes()).is_ok();
            let theirs = serde_json::from_str::<serde_json::Value>(s).is_ok();
            assert_eq!(ours, theirs, "{s}");
        }
    }

    #[test]
    fn an_escape_that_does_not_decode_is_an_error_not_an_empty_uid() {
        for bad in [
            &br#"{"uid":"\ud800"}"#[..],
            br#"{"\udc00":"x"}"#,
            br#"{"uid":"\q"}"#,
        ] {
            let err = parse(bad).unwrap_err();
            assert!(matches!(err, CommandError::Malformed(..)), "{err}");
        }
    }
}
