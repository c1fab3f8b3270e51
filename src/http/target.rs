//! The request target and what proxies add: path and query, query parameters,
//! the client behind `X-Forwarded-For`.

use super::head::Head;
use std::net::IpAddr;

/// Splits a request target into path and query.
pub fn split_target(target: &str) -> (&str, &str) {
    match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    }
}

/// Finds `key` in a query string and percent-decodes its value.
pub fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| percent_decode(v))
    })
}

/// `%XX` escapes decoded (a malformed escape is kept as it is).
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Most `X-Forwarded-For` entries looked at: a chain of proxies is short.
const MAX_FORWARDED: usize = 16;

/// The client address a trusted reverse proxy reports in `X-Forwarded-For`:
/// walking from the right (the entry the nearest proxy appended), the first
/// address that is not itself a trusted proxy. Entries further left were
/// written by the client and prove nothing. `None` when the header is absent
/// or an entry before the answer does not parse.
pub fn forwarded_client(head: &Head<'_>, trusted: impl Fn(IpAddr) -> bool) -> Option<IpAddr> {
    let mut entries: Vec<&[u8]> = head
        .headers()
        .filter(|(n, _)| n.eq_ignore_ascii_case("x-forwarded-for"))
        .flat_map(|(_, v)| v.split(|&b| b == b','))
        .collect();
    entries.reverse();
    for e in entries.into_iter().take(MAX_FORWARDED) {
        let text = std::str::from_utf8(e.trim_ascii()).ok()?;
        let ip = text
            .parse::<IpAddr>()
            .or_else(|_| text.parse::<std::net::SocketAddr>().map(|a| a.ip()))
            .ok()?;
        if !trusted(ip) {
            return Some(ip);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::parse_head;

    #[test]
    fn the_forwarded_client_is_the_rightmost_untrusted_entry() {
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let trusted = |ip: IpAddr| ip == proxy;
        let client = |headers: &str| {
            let raw = format!("GET / HTTP/1.1\r\nHost: h\r\n{headers}\r\n");
            let (head, _) = parse_head(raw.as_bytes(), 8192).unwrap().unwrap();
            forwarded_client(&head, trusted).map(|ip| ip.to_string())
        };
        assert_eq!(client(""), None);
        assert_eq!(
            client("X-Forwarded-For: 203.0.113.7\r\n").as_deref(),
            Some("203.0.113.7")
        );
        // A client's own X-Forwarded-For is to the left of what nginx adds.
        assert_eq!(
            client("X-Forwarded-For: 10.9.9.9, 198.51.100.2\r\n").as_deref(),
            Some("198.51.100.2")
        );
        assert_eq!(
            client("x-forwarded-for: 10.9.9.9\r\nX-Forwarded-For: 2001:db8::1, 127.0.0.1\r\n")
                .as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(
            client("X-Forwarded-For: 192.0.2.1:4711\r\n").as_deref(),
            Some("192.0.2.1")
        );
        assert_eq!(client("X-Forwarded-For: 10.0.0.1, garbage\r\n"), None);
        assert_eq!(client("X-Forwarded-For: 127.0.0.1\r\n"), None);
    }

    #[test]
    fn query_params_are_decoded() {
        let (p, q) = split_target("/online?uid=a%20b&x=1");
        assert_eq!(p, "/online");
        assert_eq!(query_param(q, "uid").as_deref(), Some("a b"));
        assert_eq!(query_param(q, "y"), None);
        assert_eq!(query_param("uid=%4", "uid").as_deref(), Some("%4"));
    }
}
