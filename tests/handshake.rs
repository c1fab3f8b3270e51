//! The WebSocket opening handshake over real sockets: accepted upgrades, every
//! refusal with its HTTP status, and the slowloris deadline.

mod common;

use common::*;
use std::io::Write;
use std::time::{Duration, Instant};

const GOOD_HEAD: &str = "GET /push HTTP/1.1\r\nHost: herald\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

fn good_with(find: &str, replace: &str) -> String {
    assert!(GOOD_HEAD.contains(find), "{find:?} not in the request");
    GOOD_HEAD.replacen(find, replace, 1)
}

#[test]
fn a_valid_upgrade_gets_101_with_the_rfc_accept_key() {
    let h = Herald::start(&[]);
    let mut s = tcp(h.ws_addr());
    s.write_all(GOOD_HEAD.as_bytes()).unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert_eq!(
        header_in(&head, "sec-websocket-accept").as_deref(),
        Some(SAMPLE_ACCEPT)
    );
    assert!(header_in(&head, "upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")));
    assert!(header_in(&head, "connection").is_some_and(|v| v.eq_ignore_ascii_case("upgrade")));
    // A real client library agrees, and the connection carries pushes.
    h.assert_still_serving();
}

#[test]
fn browser_style_headers_are_accepted() {
    let h = Herald::start(&[]);
    // Firefox sends `Connection: keep-alive, Upgrade`; header names and
    // tokens are case-insensitive.
    let req = good_with("Connection: Upgrade", "connection: keep-alive, Upgrade").replacen(
        "Upgrade: websocket",
        "upgrade: WebSocket",
        1,
    );
    let mut s = tcp(h.ws_addr());
    s.write_all(req.as_bytes()).unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(head.contains(SAMPLE_ACCEPT), "{head}");
}

#[test]
fn the_uid_may_arrive_in_the_same_packet_as_the_handshake() {
    let h = Herald::start(&[]);
    let mut bytes = upgrade_request(h.ws_addr()).into_bytes();
    bytes.extend_from_slice(&masked_frame(0x81, b"eager"));
    let mut raw = RawWs {
        stream: tcp(h.ws_addr()),
    };
    raw.send(&bytes);
    let head = read_head(&mut raw.stream);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let mut t = h.text_client();
    t.wait_online("eager", 1);
    assert_eq!(t.request(r#"{"uid":"eager","n":1}"#), "ok");
    let (b0, payload) = raw.read_frame().unwrap();
    assert_eq!(b0, 0x81, "a final text frame");
    assert_eq!(payload, br#"{"uid":"eager","n":1}"#);
}

/// A refused upgrade: its name, the request, the status and a header the
/// response must carry.
type BadCase = (
    &'static str,
    String,
    u16,
    Option<(&'static str, &'static str)>,
);

/// Every malformed upgrade gets its status, the connection is closed, and a
/// good client is served right after.
#[test]
fn every_bad_upgrade_gets_its_http_error_and_others_keep_working() {
    let h = Herald::start(&[]);
    let cases: Vec<BadCase> = vec![
        (
            "POST",
            good_with("GET /push", "POST /push"),
            405,
            Some(("allow", "GET")),
        ),
        (
            "no Upgrade header",
            good_with("Upgrade: websocket\r\n", ""),
            426,
            None,
        ),
        (
            "Connection without upgrade",
            good_with("Connection: Upgrade", "Connection: keep-alive"),
            426,
            None,
        ),
        (
            "no Connection header",
            good_with("Connection: Upgrade\r\n", ""),
            426,
            None,
        ),
        (
            "version 8",
            good_with("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"),
            426,
            Some(("sec-websocket-version", "13")),
        ),
        (
            "no version",
            good_with("Sec-WebSocket-Version: 13\r\n", ""),
            426,
            Some(("sec-websocket-version", "13")),
        ),
        (
            "no key",
            good_with("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
            400,
            None,
        ),
        (
            "short key",
            good_with("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZQ=="),
            400,
            None,
        ),
        (
            "key not base64",
            good_with("dGhlIHNhbXBsZSBub25jZQ==", "!!!!!!!!!!!!!!!!!!!!!!!!"),
            400,
            None,
        ),
        (
            "HTTP/1.0",
            good_with("HTTP/1.1\r\n", "HTTP/1.0\r\n"),
            400,
            None,
        ),
        (
            "garbage request line",
            "HELLO\r\n\r\n".to_string(),
            400,
            None,
        ),
    ];
    for (name, req, status, header) in cases {
        let (resp, closed) = exchange(h.ws_addr(), req.as_bytes());
        assert_eq!(status_of(&resp), status, "{name}: {resp}");
        assert!(closed, "{name}: herald kept the connection open");
        let r = read_response(&mut resp.as_bytes());
        assert!(!r.body.trim().is_empty(), "{name}: no reason in the body");
        if let Some((k, v)) = header {
            assert_eq!(r.header(k).as_deref(), Some(v), "{name}: {resp}");
        }
        h.assert_still_serving();
    }
    let stats = h.stats();
    assert!(
        stats["handshake_failures"].as_u64().unwrap() >= 11,
        "{stats}"
    );
}

#[test]
fn an_oversize_head_gets_431() {
    let h = Herald::start(&[]);
    // A complete head over the default --max-head of 8192 bytes.
    let big = good_with(
        "Host: herald",
        &format!("Host: herald\r\nX-Pad: {}", "a".repeat(9000)),
    );
    let (resp, closed) = exchange(h.ws_addr(), big.as_bytes());
    assert_eq!(status_of(&resp), 431, "{resp}");
    assert!(closed);
    h.assert_still_serving();

    // A head that never ends is refused once past the cap, without waiting
    // for its end.
    let mut s = tcp(h.ws_addr());
    let endless = format!(
        "GET / HTTP/1.1\r\nHost: herald\r\nX-Pad: {}",
        "b".repeat(9000)
    );
    s.write_all(endless.as_bytes()).unwrap();
    let (resp, closed) = read_to_close(&mut s, TIMEOUT);
    let resp = String::from_utf8_lossy(&resp);
    assert_eq!(status_of(&resp), 431, "{resp}");
    assert!(closed);
    h.assert_still_serving();
}

#[test]
fn max_head_is_configurable() {
    let h = Herald::start(&["--max-head", "256"]);
    let big = good_with(
        "Host: herald",
        &format!("Host: herald\r\nX-Pad: {}", "a".repeat(300)),
    );
    let (resp, _) = exchange(h.ws_addr(), big.as_bytes());
    assert_eq!(status_of(&resp), 431, "{resp}");
    // The normal request fits.
    h.assert_still_serving();
}

/// Reads with short timeouts while trickling `bytes` one per 100 ms, until the
/// server closes or `within` passes. Returns what was read, whether the
/// connection ended, and when.
fn trickle(s: &mut std::net::TcpStream, bytes: &[u8], within: Duration) -> (String, bool) {
    use std::io::Read;
    let end = Instant::now() + within;
    let mut got = Vec::new();
    let mut next = 0;
    let mut buf = [0u8; 1024];
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    while Instant::now() < end {
        if next < bytes.len() && s.write_all(&bytes[next..next + 1]).is_ok() {
            next += 1;
        }
        match s.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), true),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), false)
}

#[test]
fn a_slowloris_client_gets_408_at_the_handshake_deadline() {
    let h = Herald::start(&["--handshake-timeout", "1000"]);
    let started = Instant::now();
    let mut s = tcp(h.ws_addr());
    // A head that keeps growing, one byte per 100 ms, and never ends: the
    // deadline runs from accept, not from the last byte.
    let slow = format!(
        "GET / HTTP/1.1\r\nHost: herald\r\nX-Slow: {}",
        "z".repeat(200)
    );
    let (resp, closed) = trickle(&mut s, slow.as_bytes(), Duration::from_secs(8));
    let elapsed = started.elapsed();
    assert!(
        closed,
        "herald still holds a slowloris connection after {elapsed:?}"
    );
    assert_eq!(status_of(&resp), 408, "{resp:?}");
    assert!(
        elapsed >= Duration::from_millis(800),
        "closed {elapsed:?} after connecting, before the 1000 ms deadline"
    );
    h.assert_still_serving();
    let stats = h.stats();
    assert!(stats["timeouts"].as_u64().unwrap() >= 1, "{stats}");
}

#[test]
fn a_silent_connection_gets_408_too() {
    let h = Herald::start(&["--handshake-timeout", "500"]);
    let mut s = tcp(h.ws_addr());
    let (resp, closed) = read_to_close(&mut s, Duration::from_secs(5));
    let resp = String::from_utf8_lossy(&resp);
    assert!(closed, "herald holds a connection that never sent a byte");
    assert_eq!(status_of(&resp), 408, "{resp:?}");
    h.assert_still_serving();
}

#[test]
fn a_finished_handshake_is_not_cut_by_the_handshake_deadline() {
    let h = Herald::start(&["--handshake-timeout", "500"]);
    let mut ws = h.bind("patient");
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(h.push(r#"{"uid":"patient","late":true}"#), "ok");
    assert_eq!(recv_text(&mut ws), r#"{"uid":"patient","late":true}"#);
}
