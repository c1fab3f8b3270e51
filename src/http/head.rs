//! Request heads: the one-pass push parser (no allocation) and the view it returns.

/// Most headers a request may carry; more gets 431.
pub const MAX_HEADERS: usize = 48;

/// A parsed request head borrowing from the read buffer.
#[derive(Debug)]
pub struct Head<'a> {
    pub method: &'a str,
    pub target: &'a str,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    /// The head's bytes; headers are offsets into them (`name..colon`,
    /// `value..value_end`), which keeps this struct small to move around.
    raw: &'a [u8],
    spans: [[u32; 4]; MAX_HEADERS],
    count: usize,
}

/// Why a request head was refused; each maps to an HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// The head is larger than the configured cap, or has too many headers (431).
    HeadTooLarge,
    /// The request line or a header line is malformed (400).
    Malformed(&'static str),
    /// Not HTTP/1.x (505).
    Version,
}

impl HttpError {
    pub fn status(self) -> u16 {
        match self {
            HttpError::HeadTooLarge => 431,
            HttpError::Malformed(_) => 400,
            HttpError::Version => 505,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            HttpError::HeadTooLarge => "request head too large",
            HttpError::Malformed(why) => why,
            HttpError::Version => "only HTTP/1.x is supported",
        }
    }
}

impl<'a> Head<'a> {
    /// Iterates over `(name, value)` pairs in order.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + '_ {
        self.raw_headers().map(|(n, v)| {
            // Names were checked to be token characters: ASCII.
            (std::str::from_utf8(n).unwrap_or_default(), v)
        })
    }

    fn raw_headers(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + '_ {
        let raw = self.raw;
        self.spans[..self.count]
            .iter()
            .map(move |&[n, colon, v, end]| {
                (
                    &raw[n as usize..colon as usize],
                    &raw[v as usize..end as usize],
                )
            })
    }

    /// The values of the headers called `name` (ASCII case-insensitive).
    pub fn values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a [u8]> + 's {
        self.raw_headers()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// The first header called `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.values(name).next()
    }

    /// True when a comma-separated header contains `token` (case-insensitive).
    pub fn header_has_token(&self, name: &str, token: &str) -> bool {
        let token = token.as_bytes();
        // Usually the whole value is the token (`Upgrade: websocket`).
        self.values(name).any(|v| {
            v.eq_ignore_ascii_case(token)
                || v.split(|&b| b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
        })
    }

    /// The declared body length (0 when absent). Chunked bodies are refused.
    pub fn content_length(&self) -> Result<usize, HttpError> {
        if self.header("transfer-encoding").is_some() {
            return Err(HttpError::Malformed(
                "chunked bodies are not supported; send Content-Length",
            ));
        }
        let mut found: Option<usize> = None;
        for (n, v) in self.headers() {
            if n.eq_ignore_ascii_case("content-length") {
                let s = std::str::from_utf8(v.trim_ascii())
                    .map_err(|_| HttpError::Malformed("bad Content-Length"))?;
                if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(HttpError::Malformed("bad Content-Length"));
                }
                let len = s
                    .parse::<usize>()
                    .map_err(|_| HttpError::Malformed("bad Content-Length"))?;
                if found.is_some_and(|f| f != len) {
                    return Err(HttpError::Malformed("conflicting Content-Length"));
                }
                found = Some(len);
            }
        }
        Ok(found.unwrap_or(0))
    }

    /// Whether the connection stays open after the response.
    pub fn keep_alive(&self) -> bool {
        if self.header_has_token("connection", "close") {
            return false;
        }
        self.minor >= 1 || self.header_has_token("connection", "keep-alive")
    }
}

/// RFC 9110 `tchar`, as a table: the header parser looks up every name byte.
const TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    t
};

/// Parses a request head at the start of `buf`. `Ok(None)`: incomplete (and
/// still under `max_head` bytes); `Ok(Some((head, n)))`: the head took `n` bytes.
/// Lines end in CRLF; a bare LF is tolerated.
///
/// One pass over the lines: each complete line is checked as it is found,
/// and the first fault is reported once the whole head is in (an
/// incomplete head is never an error, whatever its lines hold).
pub fn parse_head(buf: &[u8], max_head: usize) -> Result<Option<(Head<'_>, usize)>, HttpError> {
    let mut head = Head {
        method: "",
        target: "",
        minor: 0,
        raw: buf,
        spans: [[0; 4]; MAX_HEADERS],
        count: 0,
    };
    let mut fault: Option<HttpError> = None;
    let mut pos = 0;
    loop {
        let Some(i) = memchr::memchr(b'\n', &buf[pos..]) else {
            return if buf.len() >= max_head {
                Err(HttpError::HeadTooLarge)
            } else {
                Ok(None)
            };
        };
        let nl = pos + i;
        let next = nl + 1;
        let end = if nl > pos && buf[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        if pos == 0 {
            if let Err(e) = request_line(&mut head, &buf[..end]) {
                fault = Some(e);
            }
        } else if end == pos {
            // The blank line that ends the head.
            if next > max_head {
                return Err(HttpError::HeadTooLarge);
            }
            return match fault {
                Some(e) => Err(e),
                None => Ok(Some((head, next))),
            };
        } else if fault.is_none() {
            if let Err(e) = header_line(&mut head, buf, pos, end) {
                fault = Some(e);
            }
        }
        if next >= max_head {
            return Err(HttpError::HeadTooLarge);
        }
        pos = next;
    }
}

fn request_line<'a>(head: &mut Head<'a>, line: &'a [u8]) -> Result<(), HttpError> {
    const BAD: HttpError = HttpError::Malformed("malformed request line");
    let mut parts = line.splitn(3, |&b| b == b' ');
    let method = parts.next().unwrap_or_default();
    let target = parts.next().ok_or(BAD)?;
    let version = parts.next().ok_or(BAD)?;
    if method.is_empty() || !method.iter().all(|&b| TOKEN[b as usize]) {
        return Err(BAD);
    }
    if target.is_empty() || !target.iter().all(|&b| b > 0x20 && b < 0x7F) {
        return Err(BAD);
    }
    head.minor = match version {
        b"HTTP/1.1" => 1,
        b"HTTP/1.0" => 0,
        v if v.contains(&b' ') => return Err(BAD),
        v if v.starts_with(b"HTTP/") => return Err(HttpError::Version),
        _ => return Err(BAD),
    };
    // Both checked to be ASCII above.
    head.method = std::str::from_utf8(method).map_err(|_| BAD)?;
    head.target = std::str::from_utf8(target).map_err(|_| BAD)?;
    Ok(())
}

/// Checks the header line `buf[start..end]` and records it.
fn header_line(head: &mut Head<'_>, buf: &[u8], start: usize, end: usize) -> Result<(), HttpError> {
    let line = &buf[start..end];
    let name_len = line.iter().position(|&b| !TOKEN[b as usize]);
    let colon = match name_len {
        Some(n) if n > 0 && line[n] == b':' => n,
        Some(_) if memchr::memchr(b':', line).is_some() => {
            return Err(HttpError::Malformed("bad header name"))
        }
        _ => return Err(HttpError::Malformed("header line without a colon")),
    };
    let rest = &line[colon + 1..];
    let v = line.len() - rest.trim_ascii_start().len();
    let e = v + line[v..].trim_ascii_end().len();
    if memchr::memchr2(0, b'\r', &line[v..e]).is_some() {
        return Err(HttpError::Malformed("bad header value"));
    }
    if head.count == MAX_HEADERS {
        return Err(HttpError::HeadTooLarge);
    }
    let at = |i: usize| (start + i) as u32;
    head.spans[head.count] = [at(0), at(colon), at(v), at(e)];
    head.count += 1;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parses_a_complete_head_and_reports_its_length() {
        let req = b"GET /chat?x=1 HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\r\nBODY";
        let (h, n) = parse_head(req, 8192).unwrap().unwrap();
        assert_eq!(n, req.len() - 4);
        assert_eq!(h.method, "GET");
        assert_eq!(h.target, "/chat?x=1");
        assert_eq!(h.minor, 1);
        assert_eq!(h.header("HOST"), Some(&b"a"[..]));
        assert!(h.header_has_token("connection", "upgrade"));
        assert!(!h.header_has_token("connection", "close"));
    }

    #[test]
    fn incomplete_heads_ask_for_more_and_big_ones_are_refused() {
        let req = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        for cut in 0..req.len() {
            assert!(parse_head(&req[..cut], 8192).unwrap().is_none());
        }
        let big = [b'a'; 100];
        assert_eq!(parse_head(&big, 64).unwrap_err(), HttpError::HeadTooLarge);
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(200));
        assert_eq!(parse_head(long.as_bytes(), 64).unwrap_err().status(), 431);
    }

    #[test]
    fn malformed_heads_get_400_or_505() {
        for bad in [
            &b"GET\r\n\r\n"[..],
            b"GET / HTTP/1.1 extra\r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
            b"GET / FTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
            b"GET / HTTP/1.1\r\n: empty\r\n\r\n",
        ] {
            assert_eq!(
                parse_head(bad, 8192).unwrap_err().status(),
                400,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            parse_head(b"GET / HTTP/2.0\r\n\r\n", 8192)
                .unwrap_err()
                .status(),
            505
        );
    }

    #[test]
    fn content_length_rules() {
        let (h, _) = parse_head(b"POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n", 1024)
            .unwrap()
            .unwrap();
        assert_eq!(h.content_length(), Ok(12));
        let (h, _) = parse_head(b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 1024)
            .unwrap()
            .unwrap();
        assert!(h.content_length().is_err());
        let (h, _) = parse_head(
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            1024,
        )
        .unwrap()
        .unwrap();
        assert!(h.content_length().is_err());
        let (h, _) = parse_head(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            1024,
        )
        .unwrap()
        .unwrap();
        assert!(h.content_length().is_err());
    }

    #[derive(Debug, PartialEq)]
    struct Parsed {
        method: String,
        target: String,
        minor: u8,
        headers: Vec<(String, Vec<u8>)>,
    }

    fn is_token_char(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
    }

    /// The parser before it became one pass (kept to check the new one against):
    /// parses a request head at the start of `buf`. `Ok(None)`: incomplete (and
    /// still under `max_head` bytes); `Ok(Some((head, n)))`: the head took `n` bytes.
    /// Lines end in CRLF; a bare LF is tolerated.
    fn reference(buf: &[u8], max_head: usize) -> Result<Option<(Parsed, usize)>, HttpError> {
        // Find the blank line that ends the head.
        let mut end = None;
        let mut pos = 0;
        while let Some(i) = memchr::memchr(b'\n', &buf[pos..]) {
            let nl = pos + i;
            let next = nl + 1;
            if next < buf.len() && buf[next] == b'\n' {
                end = Some(next + 1);
                break;
            }
            if next + 1 < buf.len() && buf[next] == b'\r' && buf[next + 1] == b'\n' {
                end = Some(next + 2);
                break;
            }
            if next >= max_head {
                return Err(HttpError::HeadTooLarge);
            }
            pos = next;
        }
        let Some(end) = end else {
            return if buf.len() >= max_head {
                Err(HttpError::HeadTooLarge)
            } else {
                Ok(None)
            };
        };
        if end > max_head {
            return Err(HttpError::HeadTooLarge);
        }
        let text = &buf[..end];
        let mut lines = text
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        let request_line = lines.next().ok_or(HttpError::Malformed("empty request"))?;
        let mut parts = request_line.split(|&b| b == b' ');
        let method = parts
            .next()
            .filter(|m| !m.is_empty() && m.iter().all(|&b| is_token_char(b)));
        let target = parts
            .next()
            .filter(|t| !t.is_empty() && t.iter().all(|&b| b > 0x20 && b < 0x7F));
        let version = parts.next();
        let (Some(method), Some(target), Some(version), None) =
            (method, target, version, parts.next())
        else {
            return Err(HttpError::Malformed("malformed request line"));
        };
        let minor = match version {
            b"HTTP/1.1" => 1,
            b"HTTP/1.0" => 0,
            v if v.starts_with(b"HTTP/") => return Err(HttpError::Version),
            _ => return Err(HttpError::Malformed("malformed request line")),
        };
        let mut head = Parsed {
            method: String::from_utf8(method.to_vec()).unwrap(),
            target: String::from_utf8(target.to_vec()).unwrap(),
            minor,
            headers: Vec::new(),
        };
        for line in lines {
            if line.is_empty() {
                break;
            }
            let colon = memchr::memchr(b':', line)
                .ok_or(HttpError::Malformed("header line without a colon"))?;
            let name = &line[..colon];
            if name.is_empty() || !name.iter().all(|&b| is_token_char(b)) {
                return Err(HttpError::Malformed("bad header name"));
            }
            let value = line[colon + 1..].trim_ascii();
            if value.iter().any(|&b| b == 0 || b == b'\r') {
                return Err(HttpError::Malformed("bad header value"));
            }
            if head.headers.len() == MAX_HEADERS {
                return Err(HttpError::HeadTooLarge);
            }
            head.headers
                .push((String::from_utf8(name.to_vec()).unwrap(), value.to_vec()));
        }
        Ok(Some((head, end)))
    }

    fn parsed(
        r: Result<Option<(Head<'_>, usize)>, HttpError>,
    ) -> Result<Option<(Parsed, usize)>, HttpError> {
        r.map(|o| {
            o.map(|(h, n)| {
                let headers = h
                    .headers()
                    .map(|(k, v)| (k.to_string(), v.to_vec()))
                    .collect();
                let p = Parsed {
                    method: h.method.to_string(),
                    target: h.target.to_string(),
                    minor: h.minor,
                    headers,
                };
                (p, n)
            })
        })
    }

    #[test]
    fn the_one_pass_parser_agrees_with_the_previous_one() {
        // Every prefix and thousands of byte mutations of realistic heads,
        // at several size limits: same head, same length, same error.
        let seeds: [&[u8]; 4] = [
            b"GET /chat?x=1 HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\nrest",
            b"POST /push HTTP/1.0\nContent-Length: 3\n  X-A :\t v \t\n\nabc",
            b"GET / HTTP/1.1\r\n\r\n",
            b"\r\n\r\n",
        ];
        let alphabet = b" \t\r\n:/,aZ0-\x00\x7f\xc3HTTP";
        let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || crate::xorshift::next(&mut rng);
        let mut cases = 0;
        for seed in seeds {
            for max in [8, 40, 64, 8192] {
                for cut in 0..=seed.len() {
                    let input = &seed[..cut];
                    assert_eq!(
                        parsed(parse_head(input, max)),
                        reference(input, max),
                        "{input:?} max {max}"
                    );
                    cases += 1;
                }
                for _ in 0..3000 {
                    let mut input = seed.to_vec();
                    for _ in 0..1 + next() % 3 {
                        let at = (next() as usize) % input.len();
                        let b = alphabet[(next() as usize) % alphabet.len()];
                        match next() % 3 {
                            0 => input[at] = b,
                            1 => input.insert(at, b),
                            _ => {
                                input.remove(at);
                                if input.is_empty() {
                                    input.push(b);
                                }
                            }
                        }
                    }
                    assert_eq!(
                        parsed(parse_head(&input, max)),
                        reference(&input, max),
                        "{input:?} max {max}"
                    );
                    cases += 1;
                }
            }
        }
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("h{i}: v\r\n"))
            .collect();
        for n in [MAX_HEADERS, MAX_HEADERS + 1] {
            let input = format!(
                "GET / HTTP/1.1\r\n{}\r\n",
                &many[..many.match_indices("\r\n").nth(n - 1).unwrap().0 + 2]
            );
            assert_eq!(
                parsed(parse_head(input.as_bytes(), 8192)),
                reference(input.as_bytes(), 8192)
            );
        }
        assert!(cases > 40_000);
    }
}
