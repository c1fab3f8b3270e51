//! The server side of the RFC 6455 opening handshake (section 4.2).

use crate::http::{self, Head, HttpError};
use base64::Engine as _;

const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Why an upgrade request was refused; each maps to an HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// The head itself is bad (400, 431, 505).
    Http(HttpError),
    /// Not GET (405).
    Method,
    /// HTTP/1.0 (505 would be wrong: 1.0 is HTTP, but upgrades need 1.1) -> 400.
    OldHttp,
    /// No `Upgrade: websocket` or no `Upgrade` token in `Connection` (426).
    NotUpgrade,
    /// `Sec-WebSocket-Version` absent or not 13 (426 with the version we speak).
    Version,
    /// `Sec-WebSocket-Key` absent or not 16 bytes of base64 (400).
    Key,
}

impl HandshakeError {
    pub fn status(self) -> u16 {
        match self {
            HandshakeError::Http(e) => e.status(),
            HandshakeError::Method => 405,
            HandshakeError::OldHttp | HandshakeError::Key => 400,
            HandshakeError::NotUpgrade | HandshakeError::Version => 426,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            HandshakeError::Http(e) => e.reason(),
            HandshakeError::Method => "WebSocket upgrades use GET",
            HandshakeError::OldHttp => "WebSocket upgrades need HTTP/1.1",
            HandshakeError::NotUpgrade => "this is a WebSocket endpoint: send Upgrade: websocket",
            HandshakeError::Version => "unsupported Sec-WebSocket-Version: 13 is spoken here",
            HandshakeError::Key => "missing or malformed Sec-WebSocket-Key",
        }
    }

    /// Appends the full HTTP error response for this refusal.
    pub fn write_response(self, out: &mut Vec<u8>) {
        let extra = match self {
            HandshakeError::Version => "Sec-WebSocket-Version: 13\r\n",
            HandshakeError::NotUpgrade => "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n",
            HandshakeError::Method => "Allow: GET\r\n",
            _ => "",
        };
        http::write_error(out, self.status(), self.reason(), extra);
    }
}

/// A request that may be upgraded; holds the computed accept key.
#[derive(Debug, PartialEq, Eq)]
pub struct Accepted {
    /// base64(SHA-1(key + GUID)): always 28 ASCII bytes.
    pub accept: [u8; 28],
    /// How many bytes of the input the request head took.
    pub consumed: usize,
}

/// The accept key for a `Sec-WebSocket-Key` value.
pub fn accept_key(key: &[u8]) -> [u8; 28] {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key);
    sha.update(GUID);
    let digest = sha.digest().bytes();
    let mut out = [0u8; 28];
    let n = base64::engine::general_purpose::STANDARD
        .encode_slice(digest, &mut out)
        .expect("20 bytes always encode to 28");
    debug_assert_eq!(n, 28);
    out
}

/// Validates an upgrade request at the start of `buf`. `Ok(None)`: the head is
/// not complete yet.
pub fn parse(buf: &[u8], max_head: usize) -> Result<Option<Accepted>, HandshakeError> {
    parse_request(buf, max_head).map(|r| r.map(|(_, a)| a))
}

/// [`parse`], also giving the request head (path, headers) for the
/// application to inspect before it accepts.
pub fn parse_request(
    buf: &[u8],
    max_head: usize,
) -> Result<Option<(Head<'_>, Accepted)>, HandshakeError> {
    let Some((head, consumed)) = http::parse_head(buf, max_head).map_err(HandshakeError::Http)?
    else {
        return Ok(None);
    };
    let accept = check(&head)?;
    Ok(Some((head, Accepted { accept, consumed })))
}

fn check(head: &Head<'_>) -> Result<[u8; 28], HandshakeError> {
    if head.method != "GET" {
        return Err(HandshakeError::Method);
    }
    if head.minor < 1 {
        return Err(HandshakeError::OldHttp);
    }
    if !head.header_has_token("upgrade", "websocket")
        || !head.header_has_token("connection", "upgrade")
    {
        return Err(HandshakeError::NotUpgrade);
    }
    if head.header("sec-websocket-version").map(<[u8]>::trim_ascii) != Some(b"13") {
        return Err(HandshakeError::Version);
    }
    let key = head
        .header("sec-websocket-key")
        .ok_or(HandshakeError::Key)?;
    let mut decoded = [0u8; 18];
    match base64::engine::general_purpose::STANDARD.decode_slice(key, &mut decoded) {
        Ok(16) => Ok(accept_key(key)),
        _ => Err(HandshakeError::Key),
    }
}

/// Appends the 101 response for an accepted upgrade, naming `protocol`
/// (a subprotocol the client offered) when one was chosen, and the
/// `extensions` accepted (a `Sec-WebSocket-Extensions` value) if any.
pub fn write_accept(
    accept: &[u8; 28],
    protocol: Option<&str>,
    extensions: Option<&str>,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    out.extend_from_slice(accept);
    if let Some(p) = protocol {
        out.extend_from_slice(b"\r\nSec-WebSocket-Protocol: ");
        out.extend_from_slice(p.as_bytes());
    }
    if let Some(e) = extensions {
        out.extend_from_slice(b"\r\nSec-WebSocket-Extensions: ");
        out.extend_from_slice(e.as_bytes());
    }
    out.extend_from_slice(b"\r\n\r\n");
}

/// Whether the request's `Sec-WebSocket-Protocol` offers `protocol` (a
/// comma-separated list, possibly over several header lines: the first
/// line is what most clients send).
pub fn offers(header: Option<&[u8]>, protocol: &str) -> bool {
    header.is_some_and(|h| {
        h.split(|&b| b == b',')
            .any(|p| p.trim_ascii() == protocol.as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

    fn with(find: &str, replace: &str) -> String {
        assert!(GOOD.contains(find));
        GOOD.replace(find, replace)
    }

    #[test]
    fn rfc_example_key() {
        assert_eq!(
            &accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let a = parse(GOOD.as_bytes(), 8192).unwrap().unwrap();
        assert_eq!(a.consumed, GOOD.len());
        let mut out = Vec::new();
        write_accept(&a.accept, None, None, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 101 "));
        assert!(text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    }

    #[test]
    fn tokens_are_case_insensitive_and_in_lists() {
        let r = with("Connection: Upgrade", "connection: keep-alive, UPGRADE");
        assert!(parse(r.as_bytes(), 8192).unwrap().is_some());
        let r = with("Upgrade: websocket", "upgrade: WebSocket");
        assert!(parse(r.as_bytes(), 8192).unwrap().is_some());
    }

    #[test]
    fn every_malformed_case_has_its_status() {
        let cases = [
            (with("GET /chat", "POST /chat"), 405),
            (with("HTTP/1.1\r\nHost", "HTTP/1.0\r\nHost"), 400),
            (with("Upgrade: websocket\r\n", ""), 426),
            (with("Connection: Upgrade", "Connection: keep-alive"), 426),
            (
                with("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"),
                426,
            ),
            (with("Sec-WebSocket-Version: 13\r\n", ""), 426),
            (
                with("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
                400,
            ),
            (with("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZQ=="), 400),
            (
                with("dGhlIHNhbXBsZSBub25jZQ==", "!!!notbase64!!!!!!!!!!!="),
                400,
            ),
            (with("GET /chat HTTP/1.1", "GET /chat HTTP/3"), 505),
        ];
        for (req, status) in cases {
            let err = parse(req.as_bytes(), 8192).unwrap_err();
            assert_eq!(err.status(), status, "{req:?}");
            let mut out = Vec::new();
            err.write_response(&mut out);
            let text = String::from_utf8(out).unwrap();
            assert!(text.starts_with(&format!("HTTP/1.1 {status} ")), "{text}");
            if status == 426 {
                assert!(text.contains("Sec-WebSocket-Version: 13\r\n"));
            }
        }
    }

    #[test]
    fn head_size_is_bounded() {
        let r = with(
            "Host: server.example.com",
            &format!("Host: {}", "x".repeat(10_000)),
        );
        assert_eq!(parse(r.as_bytes(), 8192).unwrap_err().status(), 431);
        assert_eq!(parse(&GOOD.as_bytes()[..50], 8192), Ok(None));
    }
}
