//! permessage-deflate negotiation (RFC 7692 section 5 and 7.1): which of a
//! client's offers herald accepts, and the response it sends.
//!
//! Herald compresses each outgoing message once for every recipient and
//! keeps no compression state per connection, so it accepts only offers it
//! can serve that way: it always answers with `server_no_context_takeover`
//! and `client_no_context_takeover` (the server may ask for the latter
//! even when the client did not offer it, section 7.1.1.2), and declines an
//! offer that limits the server's window below 15 bits (section 7.1.2.1
//! allows declining), since one frame goes to all recipients and it is
//! compressed with the full window. The client's window needs no limit:
//! each client message is inflated on its own into a buffer bounded by the
//! message cap.

/// The response to an accepted offer.
const RESPONSE: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
/// The same, for an offer that named `server_max_window_bits=15`: an
/// accepted window parameter must be echoed (section 7.1.2.1).
const RESPONSE_WINDOW: &str =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=15";

/// The `Sec-WebSocket-Extensions` value to answer with, for the first
/// acceptable permessage-deflate offer among the request's header lines;
/// `None` declines them all (the connection is then uncompressed).
pub fn negotiate<'a>(headers: impl IntoIterator<Item = &'a [u8]>) -> Option<&'static str> {
    headers
        .into_iter()
        .flat_map(|line| line.split(|&b| b == b','))
        .find_map(accept)
}

/// Whether the client is a browser whose permessage-deflate herald must not
/// accept: Safari 15.0 to 15.3 accepts `client_no_context_takeover` and
/// then keeps its window between messages anyway, so its later messages
/// refer to earlier ones, which herald (keeping nothing) could not inflate:
/// every such connection would end with 1007. Its offers are declined (the
/// connection works, uncompressed). Known from its `User-Agent`:
/// `... Version/15.N ... Safari/...` with N from 0 to 3.
pub fn broken_client(user_agent: Option<&[u8]>) -> bool {
    let Some(ua) = user_agent else {
        return false;
    };
    let Some(at) = memchr::memmem::find(ua, b" Version/15.") else {
        return false;
    };
    let rest = &ua[at + b" Version/15.".len()..];
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let minor_ok = matches!(&rest[..digits], [b'0'..=b'3']);
    minor_ok && memchr::memmem::find(&rest[digits..], b" Safari/").is_some()
}

/// The response for one offer (`name; param; param=value ...`), if herald
/// accepts it. Unknown, repeated or malformed parameters decline it, as
/// section 7 requires.
fn accept(offer: &[u8]) -> Option<&'static str> {
    let mut parts = offer.split(|&b| b == b';').map(<[u8]>::trim_ascii);
    if !parts.next()?.eq_ignore_ascii_case(b"permessage-deflate") {
        return None;
    }
    let mut seen = [false; 4];
    let mut window = false;
    for param in parts {
        let (name, value) = match param.iter().position(|&b| b == b'=') {
            Some(i) => (
                param[..i].trim_ascii(),
                Some(unquote(param[i + 1..].trim_ascii())?),
            ),
            None => (param, None),
        };
        let which = [
            &b"server_no_context_takeover"[..],
            b"client_no_context_takeover",
            b"server_max_window_bits",
            b"client_max_window_bits",
        ]
        .iter()
        .position(|n| name.eq_ignore_ascii_case(n))?;
        if std::mem::replace(&mut seen[which], true) {
            return None;
        }
        match (which, value) {
            (0 | 1, None) => {}
            (2, Some(v)) if window_bits(v)? == 15 => window = true,
            (2, Some(_)) => return None, // valid, but a window we do not use
            (3, None) => {}
            (3, Some(v)) => {
                window_bits(v)?;
            }
            _ => return None,
        }
    }
    Some(if window { RESPONSE_WINDOW } else { RESPONSE })
}

/// A parameter value, bare or as a quoted string (section 7.1: both are
/// allowed and mean the same).
fn unquote(v: &[u8]) -> Option<&[u8]> {
    match v {
        [b'"', inner @ .., b'"'] => Some(inner),
        [b'"', ..] => None,
        _ => Some(v),
    }
}

/// A window size: 8 to 15, as 1*DIGIT without a leading zero.
fn window_bits(v: &[u8]) -> Option<u8> {
    match v {
        [d @ b'8'..=b'9'] => Some(d - b'0'),
        [b'1', d @ b'0'..=b'5'] => Some(10 + d - b'0'),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(h: &str) -> Option<&'static str> {
        negotiate([h.as_bytes()])
    }

    #[test]
    fn browsers_offers_are_accepted_with_no_context_takeover_both_ways() {
        // Chromium and Firefox.
        assert_eq!(
            one("permessage-deflate; client_max_window_bits"),
            Some(RESPONSE)
        );
        assert_eq!(one("permessage-deflate"), Some(RESPONSE));
        // Safari and most libraries.
        assert_eq!(
            one("permessage-deflate; client_no_context_takeover; client_max_window_bits=15"),
            Some(RESPONSE)
        );
        assert_eq!(
            one("PerMessage-Deflate ; Server_No_Context_Takeover"),
            Some(RESPONSE)
        );
    }

    #[test]
    fn a_window_of_15_is_echoed_and_smaller_server_windows_are_declined() {
        assert_eq!(
            one("permessage-deflate; server_max_window_bits=15"),
            Some(RESPONSE_WINDOW)
        );
        assert_eq!(
            one("permessage-deflate; server_max_window_bits=\"15\""),
            Some(RESPONSE_WINDOW)
        );
        assert_eq!(one("permessage-deflate; server_max_window_bits=9"), None);
        // Autobahn 13.7: the first offer declined, the next one taken.
        assert_eq!(
            one("permessage-deflate; server_no_context_takeover; server_max_window_bits=9, permessage-deflate; server_no_context_takeover, permessage-deflate"),
            Some(RESPONSE)
        );
        // The client's own window is its business.
        assert_eq!(
            one("permessage-deflate; client_max_window_bits=8"),
            Some(RESPONSE)
        );
    }

    #[test]
    fn malformed_offers_are_declined() {
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=015",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; client_max_window_bits=",
            "permessage-deflate; client_max_window_bits=\"10",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; x-unknown",
            "x-webkit-deflate-frame",
            "",
        ] {
            assert_eq!(one(bad), None, "{bad}");
        }
    }

    #[test]
    fn safari_15_0_to_15_3_is_not_given_compression() {
        let safari = |v: &str| {
            format!("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{v} Safari/605.1.15")
        };
        for v in ["15.0", "15.1", "15.2", "15.3"] {
            assert!(broken_client(Some(safari(v).as_bytes())), "{v}");
        }
        for v in ["15.4", "15.6.1", "16.0", "14.1.2", "15.10"] {
            assert!(!broken_client(Some(safari(v).as_bytes())), "{v}");
        }
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";
        assert!(!broken_client(Some(chrome.as_bytes())));
        assert!(!broken_client(None));
    }

    #[test]
    fn offers_spread_over_header_lines_are_all_considered() {
        let lines: [&[u8]; 2] = [b"x-webkit-deflate-frame", b"permessage-deflate"];
        assert_eq!(negotiate(lines), Some(RESPONSE));
        assert_eq!(negotiate(std::iter::empty()), None);
    }
}
