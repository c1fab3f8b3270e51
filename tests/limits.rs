//! Limits over real sockets: frame and message caps, protocol violations, slow
//! consumers, idle peers, connection caps, line length, and graceful stop.

mod common;

use common::*;
use std::net::{Ipv4Addr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

// ----- frames -----

#[test]
fn an_oversize_frame_is_refused_with_1009_before_its_payload() {
    let h = Herald::start(&["--max-message", "1024"]);
    let mut raw = RawWs::bound(&h, "big");
    // Only the header of a 2000-byte frame: herald must not wait for the rest.
    let mut header = vec![0x81, 0x80 | 126];
    header.extend_from_slice(&2000u16.to_be_bytes());
    header.extend_from_slice(&MASK);
    raw.send(&header);
    let (code, _) = raw.expect_close();
    assert_eq!(code, 1009);
    raw.expect_eof();
    h.assert_still_serving();
}

#[test]
fn max_message_bounds_whole_messages_and_allows_exactly_the_cap() {
    let h = Herald::start(&["--max-message", "1024", "--routing"]);
    // With routing, `big:<1020 bytes>` (1024 in all) comes back to the sender.
    let mut raw = RawWs::bound(&h, "big");
    let body = "m".repeat(1020);
    raw.send_text(&format!("big:{body}"));
    let (b0, payload) = raw.read_frame().unwrap();
    assert_eq!(b0, 0x81);
    assert_eq!(payload, body.as_bytes());

    // Two fragments of 600 bytes: each under the cap, together over it.
    raw.send(&masked_frame(0x01, &[b'a'; 600]));
    raw.send(&masked_frame(0x80, &[b'b'; 600]));
    let (code, _) = raw.expect_close();
    assert_eq!(code, 1009);
    h.assert_still_serving();
}

#[test]
fn protocol_violations_close_with_1002_or_1007_and_others_keep_working() {
    let h = Herald::start(&[]);
    let with_mask = |mut head: Vec<u8>, payload: &[u8]| {
        head.extend_from_slice(&MASK);
        head.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
        head
    };
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unmasked frame", vec![0x81, 0x02, b'h', b'i'], 1002),
        ("RSV1 set", masked_frame(0xC1, b"hi"), 1002),
        ("RSV3 set", masked_frame(0x91, b"hi"), 1002),
        ("opcode 3", masked_frame(0x83, b"hi"), 1002),
        ("opcode 0xB", masked_frame(0x8B, b""), 1002),
        (
            "16-bit length for 5 bytes",
            with_mask(vec![0x81, 0x80 | 126, 0, 5], b"hello"),
            1002,
        ),
        (
            "64-bit length for 5 bytes",
            with_mask(vec![0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 5], b"hello"),
            1002,
        ),
        (
            "64-bit length with the top bit set",
            with_mask(vec![0x81, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0], b""),
            1002,
        ),
        (
            "continuation without a message",
            masked_frame(0x80, b"x"),
            1002,
        ),
        ("fragmented ping", masked_frame(0x09, b""), 1002),
        ("invalid UTF-8", masked_frame(0x81, &[0xC3, 0x28]), 1007),
        (
            "UTF-8 cut between fragments",
            [
                masked_frame(0x01, &[b'a', 0xE2, 0x82]),
                masked_frame(0x80, b"z"),
            ]
            .concat(),
            1007,
        ),
    ];
    let n = cases.len();
    for (name, bytes, want) in cases {
        let mut raw = RawWs::bound(&h, "victim");
        raw.send(&bytes);
        let (code, _) = raw.expect_close();
        assert_eq!(code, want, "{name}");
        raw.expect_eof();
        drop(raw);
        h.text_client().wait_online("victim", 0);
        h.assert_still_serving();
    }
    let stats = h.stats();
    assert!(
        stats["protocol_errors"].as_u64().unwrap() >= n as u64,
        "{stats}"
    );
}

#[test]
fn the_first_message_may_not_break_the_protocol_either() {
    let h = Herald::start(&[]);
    let mut raw = RawWs::connect(h.ws_addr());
    raw.send(&masked_frame(0x81, &[0xff, 0xfe]));
    assert_eq!(raw.expect_close().0, 1007);
    let mut raw = RawWs::connect(h.ws_addr());
    raw.send(&[0x81, 0x03, b'u', b'i', b'd']);
    assert_eq!(raw.expect_close().0, 1002);
    h.assert_still_serving();
}

// ----- slow consumers and idle peers -----

#[test]
fn a_never_reading_client_is_closed_as_a_slow_consumer_and_memory_stays_bounded() {
    let h = Herald::start(&["--max-queued", "65536", "--close-timeout", "30000"]);
    // A small receive buffer so the kernel absorbs little before herald's
    // own queue fills.
    let mut slow = ws_over(tcp_with(h.ws_addr(), None, Some(4096)), h.ws_addr());
    send_text(&mut slow, "slow");
    let mut fast = h.bind("fast");
    let mut t = h.text_client();
    t.wait_online("slow", 1);

    let reader = thread::spawn(move || {
        let mut n = 0usize;
        loop {
            let m = recv_text(&mut fast);
            if m.contains("\"end\"") {
                return n;
            }
            assert!(m.contains(&format!("\"n\":{n},")), "message {n} is {m:.60}");
            n += 1;
        }
    });

    let pad = "p".repeat(1000);
    let mut first_refused = None;
    let mut pushed = 0;
    let mut max_rss = 0;
    for n in 0..20_000usize {
        let line = format!("{{\"uids\":[\"slow\",\"fast\"],\"n\":{n},\"pad\":\"{pad}\"}}");
        let reply = t.request(&line);
        pushed += 1;
        match reply.as_str() {
            "ok 2" => assert!(
                first_refused.is_none(),
                "push {n} reached the closed client"
            ),
            "ok 1" => {
                first_refused.get_or_insert(n);
            }
            other => panic!("push {n}: {other:?} (the reading client must keep getting pushes)"),
        }
        if n % 50 == 0 {
            max_rss = max_rss.max(h.rss_bytes());
        }
        if first_refused.is_some_and(|f| n >= f + 200) {
            break;
        }
    }
    max_rss = max_rss.max(h.rss_bytes());
    let first_refused =
        first_refused.expect("20000 pushes of 1 KB and the never-reading client was not closed");
    assert_eq!(t.request(r#"{"uid":"fast","end":true}"#), "ok");
    assert_eq!(
        reader.join().expect("the reading client lost pushes"),
        pushed,
        "the reading client must receive every push"
    );
    assert!(
        max_rss < 64 << 20,
        "herald's RSS reached {max_rss} bytes during the flood"
    );
    assert_eq!(t.request(r#"{"uid":"slow","after":true}"#), "fail");

    let s = h.stats();
    assert_eq!(s["slow_consumers_closed"], 1, "{s}");
    assert!(s["dropped"].as_u64().unwrap() >= 1, "{s}");
    // The operator hears of it, once.
    wait_until("the slow consumer is reported", || {
        h.stderr()
            .contains("closed 1 WebSocket connection(s) as slow consumers")
    });

    // When the slow client finally reads, it gets every push herald accepted
    // for it, in order, then the close frame.
    let c = recv_close(&mut slow);
    assert_eq!(c.code, 1008, "{c:?}");
    assert!(c.reason.starts_with("slow consumer"), "{c:?}");
    assert_eq!(c.before, first_refused, "pushes accepted before the close");
    drop(slow);
    t.wait_online("slow", 0);
    h.assert_still_serving();
}

#[test]
fn a_dead_peer_with_pending_output_is_closed_by_the_idle_timeout() {
    let h = Herald::start(&[
        "--ping-interval",
        "1",
        "--idle-timeout",
        "3",
        "--max-queued",
        "16777216",
    ]);
    // A peer that never reads and never answers pings, with a small window.
    let mut dead = RawWs::over(tcp_with(h.ws_addr(), None, Some(4096)), h.ws_addr());
    dead.send_text("dead");
    let mut t = h.text_client();
    t.wait_online("dead", 1);
    let footprint = || h.stats()["footprint_bytes"].as_u64().unwrap();
    let base = footprint();
    let pad = "q".repeat(1000);
    let mut pending = false;
    for n in 0..8000 {
        let line = format!("{{\"uid\":\"dead\",\"n\":{n},\"pad\":\"{pad}\"}}");
        if t.request(&line) != "ok" {
            break;
        }
        if n % 50 == 49 && footprint() >= base + (64 << 10) {
            pending = true;
            break;
        }
    }
    assert!(
        pending,
        "herald never queued output for the dead peer (test precondition)"
    );
    t.wait_online("dead", 0);
    let s = h.stats();
    assert!(s["timeouts"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(s["slow_consumers_closed"], 0, "{s}");
    assert!(!h.stderr().contains("slow consumer"), "{}", h.stderr());
    let (_, closed) = read_to_close(&mut dead.stream, TIMEOUT);
    assert!(closed, "the dead peer's connection is still open");
    h.assert_still_serving();
}

#[test]
fn a_quiet_client_that_answers_pings_outlives_the_idle_timeout() {
    // Idle timeout 3 s: two ping intervals, so a pong may take up to 2 s.
    let h = Herald::start(&["--ping-interval", "1", "--idle-timeout", "3"]);
    let mut ws = h.bind("quiet");
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut pings = 0;
    let end = Instant::now() + Duration::from_millis(6500);
    while Instant::now() < end {
        // tungstenite answers each ping on the next read.
        match ws.read() {
            Ok(Message::Ping(_)) => pings += 1,
            Ok(m) => panic!("unexpected {m:?}"),
            Err(tungstenite::Error::Io(e))
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("herald dropped a client that answers pings: {e}"),
        }
    }
    assert!(pings >= 3, "{pings} pings in 6.5 s with --ping-interval 1");
    ws.get_mut().set_read_timeout(Some(TIMEOUT)).unwrap();
    assert_eq!(h.push(r#"{"uid":"quiet","still":"here"}"#), "ok");
    assert_eq!(recv_text(&mut ws), r#"{"uid":"quiet","still":"here"}"#);
}

// ----- connection caps -----

fn assert_refused_everywhere(h: &Herald, from: Option<Ipv4Addr>) {
    let connect = |addr| match from {
        Some(ip) => tcp_with(addr, Some(ip), None),
        None => tcp(addr),
    };
    let mut s = connect(h.ws_addr());
    let _ = std::io::Write::write_all(&mut s, upgrade_request(h.ws_addr()).as_bytes());
    let (resp, closed) = read_to_close(&mut s, TIMEOUT);
    let resp = String::from_utf8_lossy(&resp);
    assert_eq!(status_of(&resp), 503, "ws: {resp}");
    assert!(closed);

    let mut s = connect(h.text_addr());
    let (resp, closed) = read_to_close(&mut s, TIMEOUT);
    assert_eq!(String::from_utf8_lossy(&resp), "error server full\n");
    assert!(closed);

    let mut s = connect(h.http_addr());
    let _ = std::io::Write::write_all(&mut s, b"GET /stats HTTP/1.1\r\nHost: h\r\n\r\n");
    let (resp, closed) = read_to_close(&mut s, TIMEOUT);
    let resp = String::from_utf8_lossy(&resp);
    assert_eq!(status_of(&resp), 503, "http: {resp}");
    assert!(closed);
}

#[test]
fn max_connections_refuses_extra_connections_and_spares_the_others() {
    let h = Herald::start(&["--max-connections", "3"]);
    let mut t = h.text_client();
    let mut a = ws_connect(h.ws_addr());
    send_text(&mut a, "a");
    let mut b = ws_connect(h.ws_addr());
    send_text(&mut b, "b");
    t.wait_online("a", 1);
    t.wait_online("b", 1);

    assert_refused_everywhere(&h, None);

    // The three open connections are unaffected.
    assert_eq!(t.request(r#"{"all":true,"n":1}"#), "ok 2");
    assert_eq!(recv_text(&mut a), r#"{"all":true,"n":1}"#);
    assert_eq!(recv_text(&mut b), r#"{"all":true,"n":1}"#);

    // A slot freed is a slot available.
    close_ws(a);
    t.wait_online("a", 0);
    let mut c = ws_connect(h.ws_addr());
    send_text(&mut c, "c");
    t.wait_online("c", 1);
    assert_eq!(t.request(r#"{"uid":"c"}"#), "ok");
    assert_eq!(recv_text(&mut c), r#"{"uid":"c"}"#);

    close_ws(c);
    t.wait_online("c", 0);
    let s = h.stats();
    assert!(s["refused"].as_u64().unwrap() >= 3, "{s}");
}

#[test]
fn max_per_ip_refuses_one_address_and_serves_the_others() {
    let h = Herald::start(&["--max-per-ip", "2"]);
    let mut a = ws_connect(h.ws_addr());
    send_text(&mut a, "a");
    let mut t = h.text_client();
    t.wait_online("a", 1);

    assert_refused_everywhere(&h, None);

    // Another client address is not affected.
    let other = Ipv4Addr::new(127, 0, 0, 2);
    let mut b = ws_over(tcp_with(h.ws_addr(), Some(other), None), h.ws_addr());
    send_text(&mut b, "b");
    let mut t2 = TextClient::over(tcp_with(h.text_addr(), Some(other), None));
    t2.wait_online("b", 1);
    assert_eq!(t2.request(r#"{"all":true}"#), "ok 2");
    assert_eq!(recv_text(&mut a), r#"{"all":true}"#);
    assert_eq!(recv_text(&mut b), r#"{"all":true}"#);
    // ... until it reaches the cap itself.
    assert_refused_everywhere(&h, Some(other));

    // The first address's connections still work.
    assert_eq!(t.request(r#"{"uid":"a"}"#), "ok");
    assert_eq!(recv_text(&mut a), r#"{"uid":"a"}"#);
}

// ----- the text port -----

#[test]
fn a_line_longer_than_max_line_gets_an_error_and_framing_stays_in_step() {
    let h = Herald::start(&["--max-line", "100"]);
    let mut browser = h.bind("m");
    let mut t = h.text_client();
    let too_long = "error line too long (max 100 bytes)";

    let long = format!("{{\"uid\":\"m\",\"pad\":\"{}\"}}", "x".repeat(200));
    assert_eq!(t.request(&long), too_long);

    let fits = format!("{{\"uid\":\"m\",\"pad\":\"{}\"}}", "x".repeat(80));
    assert_eq!(fits.len(), 100);
    assert_eq!(t.request(&fits), "ok");
    assert_eq!(recv_text(&mut browser), fits);

    // A long line arriving in pieces, between good lines.
    t.send_raw(b"{\"online\":\"m\"}\n{\"uid\":\"m\",\"pad\":\"");
    for _ in 0..5 {
        t.send_raw(&[b'y'; 60]);
        thread::sleep(Duration::from_millis(30));
    }
    t.send_raw(b"\"}\n{\"uid\":\"m\",\"after\":1}\n");
    assert_eq!(t.reply(), "1");
    assert_eq!(t.reply(), too_long);
    assert_eq!(t.reply(), "ok");
    assert_eq!(recv_text(&mut browser), r#"{"uid":"m","after":1}"#);

    // One megabyte without a newline, then a good line: one error, one answer.
    let mut huge = vec![b'z'; 1 << 20];
    huge.extend_from_slice(b"\n{\"count\":true}\n");
    t.send_raw(&huge);
    assert_eq!(t.reply(), too_long);
    assert_eq!(t.reply(), r#"{"uids":1,"connections":1}"#);
    assert_silent(&mut browser, Duration::from_millis(200));
}

// ----- graceful stop -----

#[test]
fn sigterm_closes_websockets_with_1001_flushes_and_exits_0() {
    let mut h = Herald::start(&["--shutdown-grace", "3000"]);
    let ws_addr = h.ws_addr();
    let mut a = h.bind("a");
    let mut b = h.bind("b");
    let mut unbound = ws_connect(ws_addr);
    let mut t = h.text_client();
    assert_eq!(t.request(r#"{"uid":"a","last":true}"#), "ok");
    h.terminate();
    // Output queued before the signal still arrives, then the close.
    let c = recv_close(&mut a);
    assert_eq!((c.code, c.before), (1001, 1), "{c:?}");
    // Stopping: no new connections while the others finish closing.
    for addr in [ws_addr, h.text_addr(), h.http_addr()] {
        assert!(
            TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
            "{addr} still accepts connections after SIGTERM"
        );
    }
    for ws in [&mut b, &mut unbound] {
        let c = recv_close(ws);
        assert_eq!(c.code, 1001, "{c:?}");
    }
    assert_eq!(t.try_reply().expect("text port closed cleanly"), None);
    drop((a, b, unbound, t));
    let status = h
        .wait_exit(Duration::from_secs(10))
        .expect("herald still running 10 s after SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    assert!(
        TcpStream::connect_timeout(&ws_addr, Duration::from_secs(1)).is_err(),
        "the listener outlived the process"
    );
}

#[test]
fn sigint_stops_within_the_grace_period_even_with_a_stuck_client() {
    let mut h = Herald::start(&["--shutdown-grace", "1000"]);
    // A client that reads nothing and never answers the close.
    let _stuck = RawWs::bound(&h, "stuck");
    signal(h.pid(), libc::SIGINT);
    let status = h
        .wait_exit(Duration::from_secs(10))
        .expect("herald still running 10 s after SIGINT with --shutdown-grace 1000");
    assert!(status.success(), "exit status {status:?}");
}
