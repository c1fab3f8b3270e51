//! `ws::handshake::parse` and `http::parse_head` on arbitrary bytes with a
//! small max_head: no panic, consumed within the input and the cap, and
//! prefix-stable (once a prefix gives a definite answer, more bytes never
//! change it).
//!
//! Input: max_head selector ((b + 1) * 4 bytes: 4 to 1024), a prefix
//! length selector, then the request bytes.
#![no_main]

use herald::http::{self, HttpError};
use herald::ws::handshake::{self, Accepted, HandshakeError};
use libfuzzer_sys::fuzz_target;

/// What a parse says, without the borrowed head.
fn head(buf: &[u8], max_head: usize) -> Result<Option<usize>, HttpError> {
    let (h, n) = match http::parse_head(buf, max_head)? {
        None => {
            assert!(
                buf.len() < max_head,
                "{} bytes, max_head {max_head}: still Partial",
                buf.len()
            );
            return Ok(None);
        }
        Some(x) => x,
    };
    assert!(
        n <= buf.len() && n <= max_head,
        "consumed {n} of {} (max_head {max_head})",
        buf.len()
    );
    assert!(buf[..n].ends_with(b"\n\n") || buf[..n].ends_with(b"\n\r\n"));
    assert!(!h.method.is_empty() && !h.target.is_empty() && h.minor <= 1);
    assert!(h.headers().count() <= http::MAX_HEADERS);
    let _ = (h.content_length(), h.keep_alive(), h.header("host"));
    Ok(Some(n))
}

fn upgrade(buf: &[u8], max_head: usize) -> Result<Option<Accepted>, HandshakeError> {
    let got = handshake::parse(buf, max_head)?;
    if let Some(a) = &got {
        assert!(a.consumed <= buf.len() && a.consumed <= max_head);
        assert!(a
            .accept
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(b)));
        assert_eq!(head(buf, max_head), Ok(Some(a.consumed)));
    }
    Ok(got)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let max_head = (data[0] as usize + 1) * 4;
    let buf = &data[2..];
    let full_head = head(buf, max_head);
    let full_upgrade = upgrade(buf, max_head);

    // Prefixes where the answer may change: a fuzz-chosen one, and around
    // the end of the head.
    let mut cuts = vec![
        data[1] as usize * buf.len() / 255,
        buf.len().saturating_sub(1),
    ];
    if let Ok(Some(n)) = full_head {
        cuts.extend([n - 1, n, n + 1]);
    }
    for k in cuts.into_iter().filter(|&k| k <= buf.len()) {
        let prefix = &buf[..k];
        match head(prefix, max_head) {
            Ok(None) => {}
            early => assert_eq!(early, full_head, "parse_head: prefix of {k} bytes"),
        }
        match upgrade(prefix, max_head) {
            Ok(None) => {}
            early => assert_eq!(early, full_upgrade, "handshake: prefix of {k} bytes"),
        }
    }
});
