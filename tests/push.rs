//! Pushing end to end: browsers bind uids over WebSocket, backends push through
//! the text port and the HTTP API, and (with --routing) clients message each other.

mod common;

use common::*;
use std::io::Write;
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(300);

// ----- the first seed: text port -> browser -----

#[test]
fn seed_one_a_backend_line_reaches_the_browser_verbatim() {
    let h = Herald::start(&[]);
    let mut browser = ws_connect(h.ws_addr());
    send_text(&mut browser, "uid1");
    let mut backend = h.text_client();
    backend.wait_online("uid1", 1);
    let line = r#"{"uid":"uid1","percent":"88%"}"#;
    assert_eq!(backend.request(line), "ok");
    assert_eq!(recv_text(&mut browser), line);
}

#[test]
fn a_push_to_an_offline_uid_fails() {
    let h = Herald::start(&[]);
    let mut browser = h.bind("someone");
    let mut backend = h.text_client();
    assert_eq!(backend.request(r#"{"uid":"nobody","x":1}"#), "fail");
    // The online user is not sent someone else's push.
    assert_silent(&mut browser, QUIET);
    let stats = h.stats();
    assert_eq!(stats["pushes_fail"], 1, "{stats}");
    assert_eq!(stats["pushes_ok"], 0, "{stats}");
}

#[test]
fn numeric_uids_match_their_written_form() {
    let h = Herald::start(&[]);
    let mut browser = h.bind("42");
    assert_eq!(h.push(r#"{"uid":42,"n":1}"#), "ok");
    assert_eq!(recv_text(&mut browser), r#"{"uid":42,"n":1}"#);
    assert_eq!(h.push(r#"{"uid":"42","n":2}"#), "ok");
    assert_eq!(recv_text(&mut browser), r#"{"uid":"42","n":2}"#);
    assert_eq!(h.push(r#"{"uid":43,"n":3}"#), "fail");
}

#[test]
fn a_uid_with_json_escapes_is_matched_unescaped() {
    let h = Herald::start(&[]);
    let mut browser = h.bind("über");
    let line = r#"{"uid":"\u00fcber","m":"hi"}"#;
    assert_eq!(h.push(line), "ok");
    assert_eq!(recv_text(&mut browser), line);
}

// ----- tabs and closing -----

#[test]
fn every_tab_of_a_uid_receives_the_push() {
    let h = Herald::start(&[]);
    let mut tab1 = h.bind("u");
    let mut tab2 = h.bind("u");
    let mut t = h.text_client();
    assert_eq!(t.request(r#"{"online":"u"}"#), "2");
    assert_eq!(t.request(r#"{"online":"v"}"#), "0");
    let line = r#"{"uid":"u","n":7}"#;
    assert_eq!(t.request(line), "ok");
    assert_eq!(recv_text(&mut tab1), line);
    assert_eq!(recv_text(&mut tab2), line);
}

#[test]
fn closing_an_old_tab_leaves_the_newer_one_bound() {
    let h = Herald::start(&[]);
    let a = h.bind("u");
    let mut b = h.bind("u");
    let mut t = h.text_client();
    close_ws(a);
    t.wait_online("u", 1);
    assert_eq!(t.request(r#"{"uid":"u","after":"a closed"}"#), "ok");
    assert_eq!(recv_text(&mut b), r#"{"uid":"u","after":"a closed"}"#);
    close_ws(b);
    t.wait_online("u", 0);
    assert_eq!(t.request(r#"{"uid":"u","after":"b closed"}"#), "fail");
}

/// RFC 6455 5.5.1: once both close frames are exchanged the server ends
/// the TCP stream at once (its FIN), and keeps the socket until the client's
/// FIN, so that bytes a client still sends do not draw a reset.
#[test]
fn after_the_close_handshake_the_server_ends_the_stream_and_late_bytes_get_no_reset() {
    let h = Herald::start(&["--close-timeout", "20000"]);
    let mut raw = RawWs {
        stream: tcp(h.ws_addr()),
    };
    raw.send(upgrade_request(h.ws_addr()).as_bytes());
    assert!(read_head(&mut raw.stream).starts_with("HTTP/1.1 101 "));
    let mut bytes = masked_frame(0x81, b"leaving");
    bytes.extend_from_slice(&masked_frame(0x01, b"fragment1"));
    bytes.extend_from_slice(&masked_frame(0x88, &1000u16.to_be_bytes()));
    raw.send(&bytes);
    // The server's end of stream comes at once, not after the close timeout.
    let (got, closed) = read_to_close(&mut raw.stream, Duration::from_secs(5));
    assert_eq!(
        got,
        [0x88, 2, 0x03, 0xE8],
        "the close frame echoed, then nothing"
    );
    assert!(closed, "the server did not end the stream");
    // A misbehaving client writes on after its close frame (Autobahn
    // 7.1.5). Had the server closed its socket, those bytes would be
    // answered with RST and the next write would fail.
    raw.send(&masked_frame(0x80, b"fragment2"));
    std::thread::sleep(Duration::from_millis(200));
    let late = raw.stream.write(&masked_frame(0x89, b""));
    assert!(late.is_ok(), "the server reset the connection: {late:?}");
    assert!(raw.stream.take_error().unwrap().is_none());
    // Our FIN lets the server release the connection well before the close
    // timeout: only the /stats request itself is still counted.
    raw.stream.shutdown(std::net::Shutdown::Write).unwrap();
    wait_until("the server to release the connection", || {
        h.stats()["connections"].as_u64() == Some(1)
    });
    let mut t = h.text_client();
    assert_eq!(t.request(r#"{"online":"leaving"}"#), "0");
}

#[test]
fn an_old_tab_vanishing_without_a_close_frame_leaves_the_newer_one_bound() {
    let h = Herald::start(&[]);
    let a = h.bind("u");
    let mut b = h.bind("u");
    let mut t = h.text_client();
    drop(a); // TCP close, no WebSocket close handshake
    t.wait_online("u", 1);
    assert_eq!(t.request(r#"{"uid":"u","n":1}"#), "ok");
    assert_eq!(recv_text(&mut b), r#"{"uid":"u","n":1}"#);
    // A third tab arriving later joins the surviving one.
    let mut c = h.bind("u");
    assert_eq!(t.request(r#"{"uids":["u"],"n":2}"#), "ok 2");
    assert_eq!(recv_text(&mut b), r#"{"uids":["u"],"n":2}"#);
    assert_eq!(recv_text(&mut c), r#"{"uids":["u"],"n":2}"#);
}

#[test]
fn a_later_message_does_not_rebind_the_connection() {
    let h = Herald::start(&[]);
    let mut ws = h.bind("first");
    send_text(&mut ws, "second");
    let mut t = h.text_client();
    // Give herald time to (wrongly) act on the second message.
    assert_silent(&mut ws, QUIET);
    assert_eq!(t.online("second"), 0);
    assert_eq!(t.online("first"), 1);
}

#[test]
fn unbound_connections_receive_no_broadcast() {
    let h = Herald::start(&[]);
    let mut unbound = ws_connect(h.ws_addr());
    let mut bound = h.bind("b");
    let line = r#"{"all":true,"news":"hello"}"#;
    assert_eq!(h.push(line), "ok 1");
    assert_eq!(recv_text(&mut bound), line);
    assert_silent(&mut unbound, QUIET);
    // Once it binds, it gets the next broadcast.
    send_text(&mut unbound, "late");
    h.text_client().wait_online("late", 1);
    assert_eq!(h.push(line), "ok 2");
    assert_eq!(recv_text(&mut unbound), line);
    assert_eq!(recv_text(&mut bound), line);
}

#[test]
fn a_broadcast_reaches_every_bound_client() {
    let h = Herald::start(&[]);
    let mut clients: Vec<Ws> = (0..50).map(|i| h.bind(&format!("fan{i}"))).collect();
    let line = r#"{"all":true,"news":"fan-out"}"#;
    assert_eq!(h.push(line), "ok 50");
    for (i, ws) in clients.iter_mut().enumerate() {
        assert_eq!(recv_text(ws), line, "client {i}");
    }
}

// ----- text-port commands -----

#[test]
fn uids_all_and_count_commands() {
    let h = Herald::start(&[]);
    let mut a = h.bind("a");
    let mut b1 = h.bind("b");
    let mut b2 = h.bind("b");
    let mut unbound = ws_connect(h.ws_addr());
    let mut t = h.text_client();

    let many = r#"{"uids":["a","b","zz"],"m":1}"#;
    assert_eq!(t.request(many), "ok 3");
    for ws in [&mut a, &mut b1, &mut b2] {
        assert_eq!(recv_text(ws), many);
    }
    assert_eq!(t.request(r#"{"uids":["zz","yy"],"m":2}"#), "fail");
    assert_eq!(t.request(r#"{"uids":["a"],"m":3}"#), "ok 1");
    assert_eq!(recv_text(&mut a), r#"{"uids":["a"],"m":3}"#);

    let all = r#"{"all":true,"m":4}"#;
    assert_eq!(t.request(all), "ok 3");
    for ws in [&mut a, &mut b1, &mut b2] {
        assert_eq!(recv_text(ws), all);
    }
    assert_silent(&mut unbound, QUIET);

    let count: serde_json::Value = serde_json::from_str(&t.request(r#"{"count":true}"#)).unwrap();
    assert_eq!(count, serde_json::json!({"uids": 2, "connections": 3}));
    assert_eq!(t.request(r#"{"online":"b"}"#), "2");
    assert_eq!(t.request(r#"{"online":"a"}"#), "1");
}

#[test]
fn broadcast_with_nobody_bound_fails() {
    let h = Herald::start(&[]);
    let _unbound = ws_connect(h.ws_addr());
    assert_eq!(h.push(r#"{"all":true}"#), "fail");
    let mut t = h.text_client();
    let count: serde_json::Value = serde_json::from_str(&t.request(r#"{"count":true}"#)).unwrap();
    assert_eq!(count, serde_json::json!({"uids": 0, "connections": 0}));
}

#[test]
fn pipelined_lines_are_answered_in_order() {
    let h = Herald::start(&[]);
    let mut browser = h.bind("p");
    let mut t = h.text_client();
    let mut batch = String::new();
    let mut want = Vec::new();
    for i in 0..100 {
        match i % 4 {
            0 | 1 => {
                batch.push_str(&format!("{{\"uid\":\"p\",\"n\":{i}}}\n"));
                want.push("ok".to_string());
            }
            2 => {
                batch.push_str(&format!("{{\"uid\":\"gone\",\"n\":{i}}}\n"));
                want.push("fail".to_string());
            }
            _ => {
                batch.push_str("{\"online\":\"p\"}\r\n");
                want.push("1".to_string());
            }
        }
    }
    batch.push_str("garbage\n{\"count\":true}\n");
    t.send_raw(batch.as_bytes());
    for (i, w) in want.iter().enumerate() {
        assert_eq!(&t.reply(), w, "reply {i}");
    }
    assert!(t.reply().starts_with("error "));
    assert_eq!(t.reply(), r#"{"uids":1,"connections":1}"#);
    // The browser got the pushes, in order.
    for i in (0..100).filter(|i| i % 4 < 2) {
        assert_eq!(
            recv_text(&mut browser),
            format!("{{\"uid\":\"p\",\"n\":{i}}}")
        );
    }
}

#[test]
fn a_line_split_across_writes_is_one_command() {
    let h = Herald::start(&[]);
    let mut browser = h.bind("s");
    let mut t = h.text_client();
    for part in [
        &b"{\"uid\""[..],
        b":\"s\",\"pa",
        b"rt\":\"x\"}",
        b"\r",
        b"\n{\"online\":",
        b"\"s\"}\n",
    ] {
        t.send_raw(part);
        std::thread::sleep(Duration::from_millis(60));
    }
    assert_eq!(t.reply(), "ok");
    assert_eq!(t.reply(), "1");
    // The \r of a CRLF line ending is not part of the message.
    assert_eq!(recv_text(&mut browser), r#"{"uid":"s","part":"x"}"#);
}

#[test]
fn a_last_line_without_its_newline_is_answered_at_end_of_stream() {
    // `printf '{"uid":"u"}' | nc ...`: the backend forgot the "\n".
    let h = Herald::start(&[]);
    let mut browser = h.bind("n");
    let mut t = h.text_client();
    t.send_raw(b"{\"online\":\"n\"}\n{\"uid\":\"n\",\"last\":true}");
    t.stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(t.reply(), "1");
    assert_eq!(t.reply(), "ok");
    assert_eq!(t.try_reply().unwrap(), None, "closed after the replies");
    assert_eq!(recv_text(&mut browser), r#"{"uid":"n","last":true}"#);
    // Nobody bound: the sender is told, as for any line.
    let mut t = h.text_client();
    t.send_raw(br#"{"uid":"nobody"}"#);
    t.stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(t.reply(), "fail");
}

#[test]
fn every_bad_line_gets_an_error_and_the_connection_keeps_working() {
    let h = Herald::start(&[]);
    let mut browser = h.bind("ok");
    let mut t = h.text_client();
    let cases: &[(&[u8], &str)] = &[
        (b"not json", "expected a JSON object"),
        (b"[1,2]", "expected a JSON object"),
        (b"\"uid\"", "expected a JSON object"),
        (b"{\"uid\":\"ok\"", "malformed JSON"),
        (b"{\"uid\":\"ok\",}", "malformed JSON"),
        (b"{\"uid\":\"ok\"} trailing", "malformed JSON"),
        (b"{\"percent\":\"88%\"}", "missing \"uid\""),
        (b"{}", "missing \"uid\""),
        (b"{\"uid\":null}", "\"uid\" must be a string or a number"),
        (b"{\"uid\":true}", "\"uid\" must be a string or a number"),
        (
            b"{\"uid\":[\"ok\"]}",
            "\"uid\" must be a string or a number",
        ),
        (
            b"{\"uid\":{\"a\":1}}",
            "\"uid\" must be a string or a number",
        ),
        (b"{\"uid\":\"\"}", "empty uid"),
        (b"{\"uids\":[]}", "\"uids\" is an empty list"),
        (
            b"{\"uids\":\"a\"}",
            "\"uids\" must be a list of strings or numbers",
        ),
        (b"{\"all\":false}", "\"all\" must be true"),
        (b"{\"count\":false}", "\"count\" must be true"),
        (b"{\"auth\":\"t0ken\"}", "has no API token"),
        (b"{\"uids\":[\"ok\",null]}", "must be a string or a number"),
        (b"{\"uid\":\"o\xffk\"}", "not valid UTF-8"),
        (b"\xfe\xff", "not valid UTF-8"),
        (b"{\"uid\":\"ok\",\"all\":true}", "exactly one"),
        (b"{\"uid\":\"ok\",\"uids\":[\"ok\"]}", "exactly one"),
        (b"{\"online\":\"ok\",\"count\":true}", "exactly one"),
        (b"{\"all\":1}", "\"all\" must be true"),
    ];
    for (line, want) in cases {
        let mut raw = line.to_vec();
        raw.push(b'\n');
        t.send_raw(&raw);
        let reply = t.reply();
        let shown = String::from_utf8_lossy(line);
        assert!(
            reply.starts_with("error ") && reply.contains(want),
            "{shown:?}: got {reply:?}, want an error about {want:?}"
        );
        // Nothing was delivered, and the next line still works.
        let good = r#"{"uid":"ok","after":"error"}"#;
        assert_eq!(t.request(good), "ok", "after {shown:?}");
        assert_eq!(recv_text(&mut browser), good, "after {shown:?}");
    }
    let stats = h.stats();
    assert_eq!(stats["bad_requests"], cases.len(), "{stats}");
}

// ----- bad first messages on the WebSocket -----

#[test]
fn bad_uids_are_refused_with_close_codes_while_others_keep_working() {
    let h = Herald::start(&["--max-uid", "8"]);
    let mut good = h.bind("good");
    let check_good = |good: &mut Ws| {
        let line = r#"{"uid":"good","still":true}"#;
        assert_eq!(h.push(line), "ok");
        assert_eq!(recv_text(good), line);
    };

    let mut empty = ws_connect(h.ws_addr());
    send_text(&mut empty, "");
    let c = recv_close(&mut empty);
    assert_eq!(c.code, 1008, "{c:?}");
    assert!(c.reason.contains("empty uid"), "{c:?}");
    check_good(&mut good);

    let mut long = ws_connect(h.ws_addr());
    send_text(&mut long, "123456789");
    let c = recv_close(&mut long);
    assert_eq!(c.code, 1008, "{c:?}");
    assert!(c.reason.contains("uid too long"), "{c:?}");
    assert_eq!(h.text_client().online("123456789"), 0);
    check_good(&mut good);

    let mut binary = ws_connect(h.ws_addr());
    binary.send(Message::Binary(b"uid1".to_vec())).unwrap();
    let c = recv_close(&mut binary);
    assert_eq!(c.code, 1003, "{c:?}");
    assert_eq!(h.text_client().online("uid1"), 0);
    check_good(&mut good);

    // Exactly --max-uid bytes is fine.
    let mut max = h.bind("12345678");
    assert_eq!(h.push(r#"{"uid":"12345678"}"#), "ok");
    assert_eq!(recv_text(&mut max), r#"{"uid":"12345678"}"#);
    check_good(&mut good);
}

// ----- the second seed: client routing -----

#[test]
fn seed_two_clients_route_uid_and_all_messages() {
    let h = Herald::start(&["--routing"]);
    let mut a = h.bind("a");
    let mut b = h.bind("b");

    send_text(&mut a, "b:hello");
    assert_eq!(recv_text(&mut b), "hello");

    // Split at the first colon only.
    send_text(&mut a, "b:x:y");
    assert_eq!(recv_text(&mut b), "x:y");

    send_text(&mut b, "all:hi everyone");
    assert_eq!(recv_text(&mut a), "hi everyone");
    assert_eq!(recv_text(&mut b), "hi everyone");

    send_text(&mut a, "no colon here");
    assert_eq!(
        recv_text(&mut a),
        "error expected uid:message or all:message"
    );

    send_text(&mut a, "ghost:are you there");
    assert_eq!(recv_text(&mut a), "fail ghost");

    // Nothing else reached b on the way.
    assert_silent(&mut b, QUIET);
}

#[test]
fn routing_reaches_every_tab_and_unbound_clients_stay_out() {
    let h = Herald::start(&["--routing"]);
    let mut a = h.bind("a");
    let mut b1 = h.bind("b");
    let mut b2 = h.bind("b");
    let mut unbound = ws_connect(h.ws_addr());
    send_text(&mut a, "b:to both tabs");
    assert_eq!(recv_text(&mut b1), "to both tabs");
    assert_eq!(recv_text(&mut b2), "to both tabs");
    send_text(&mut a, "all:");
    for ws in [&mut a, &mut b1, &mut b2] {
        assert_eq!(recv_text(ws), "");
    }
    assert_silent(&mut unbound, QUIET);
}

#[test]
fn without_routing_client_messages_are_ignored() {
    let h = Herald::start(&[]);
    let mut a = h.bind("a");
    let mut b = h.bind("b");
    send_text(&mut a, "b:hello");
    send_text(&mut a, "all:hello");
    send_text(&mut a, "no colon");
    assert_silent(&mut b, QUIET);
    assert_silent(&mut a, QUIET);
    // Both are still bound and reachable.
    assert_eq!(h.push(r#"{"all":true}"#), "ok 2");
    assert_eq!(recv_text(&mut a), r#"{"all":true}"#);
    assert_eq!(recv_text(&mut b), r#"{"all":true}"#);
}

// ----- the HTTP API -----

#[test]
fn http_push_delivers_the_body_and_reports_the_count() {
    let h = Herald::start(&[]);
    let mut browser = h.bind("h");
    let body = r#"{"uid":"h","percent":"42%"}"#;
    let r = http_post(h.http_addr(), "/push", body);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/json")));
    assert_eq!(r.json(), serde_json::json!({"ok": true, "delivered": 1}));
    assert_eq!(recv_text(&mut browser), body);

    // A trailing newline (curl --data-binary @file) is not delivered.
    let r = http_post(h.http_addr(), "/push", &format!("{body}\n"));
    assert_eq!(r.json(), serde_json::json!({"ok": true, "delivered": 1}));
    assert_eq!(recv_text(&mut browser), body);

    let r = http_post(h.http_addr(), "/push", r#"{"uid":"offline"}"#);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json(), serde_json::json!({"ok": false, "delivered": 0}));

    let r = http_post(h.http_addr(), "/push", r#"{"all":true,"m":1}"#);
    assert_eq!(r.json(), serde_json::json!({"ok": true, "delivered": 1}));
    assert_eq!(recv_text(&mut browser), r#"{"all":true,"m":1}"#);
}

#[test]
fn http_push_counts_every_tab_reached() {
    let h = Herald::start(&[]);
    let mut tab1 = h.bind("h");
    let mut tab2 = h.bind("h");
    let body = r#"{"uid":"h","m":1}"#;
    let r = http_post(h.http_addr(), "/push", body);
    assert_eq!(recv_text(&mut tab1), body);
    assert_eq!(recv_text(&mut tab2), body);
    assert_eq!(
        r.json(),
        serde_json::json!({"ok": true, "delivered": 2}),
        "two connections received the push"
    );
    let r = http_post(h.http_addr(), "/push", r#"{"uids":["h","x"],"m":2}"#);
    assert_eq!(r.json(), serde_json::json!({"ok": true, "delivered": 2}));
}

#[test]
fn http_push_refuses_bad_bodies_with_400() {
    let h = Herald::start(&[]);
    for body in [
        "not json",
        r#"{"uid":"h""#,
        r#"{"percent":1}"#,
        r#"{"uid":""}"#,
        "",
    ] {
        let r = http_post(h.http_addr(), "/push", body);
        assert_eq!(r.status, 400, "{body:?}: {r:?}");
        let err = r.json();
        assert!(
            err["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body:?}: {err}"
        );
    }
    // Chunked bodies are refused: herald needs Content-Length.
    let r = http_request(
        h.http_addr(),
        "POST",
        "/push",
        &["Transfer-Encoding: chunked"],
        None,
    );
    assert_eq!(r.status, 400, "{r:?}");
    // Like every other API error, a JSON body.
    assert!(
        r.json()["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{r:?}"
    );
    // An empty uid is an error here as on the text port, not "offline".
    let r = http_get(h.http_addr(), "/online?uid=");
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.json()["error"], "empty uid", "{r:?}");
}

#[test]
fn http_online_and_count() {
    let h = Herald::start(&[]);
    let _t1 = h.bind("u");
    let _t2 = h.bind("u");
    let _v = h.bind("v");
    let r = http_get(h.http_addr(), "/online?uid=u");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        serde_json::json!({"uid": "u", "online": true, "connections": 2})
    );
    let r = http_get(h.http_addr(), "/online?uid=nobody");
    assert_eq!(
        r.json(),
        serde_json::json!({"uid": "nobody", "online": false, "connections": 0})
    );
    let r = http_get(h.http_addr(), "/online");
    assert_eq!(r.json(), serde_json::json!({"uids": 2, "connections": 3}));
}

#[test]
fn http_stats_and_metrics_reflect_what_happened() {
    let h = Herald::start(&[]);
    let mut a = h.bind("a");
    let _unbound = ws_connect(h.ws_addr());
    assert_eq!(h.push(r#"{"uid":"a"}"#), "ok");
    assert_eq!(h.push(r#"{"uid":"a"}"#), "ok");
    assert_eq!(h.push(r#"{"uid":"nobody"}"#), "fail");
    recv_text(&mut a);
    recv_text(&mut a);

    let s = h.stats();
    for key in [
        "connections",
        "bound_connections",
        "uids",
        "pushes_ok",
        "pushes_fail",
        "dropped",
        "slow_consumers_closed",
        "timeouts",
        "rss_bytes",
        "rss_per_connection",
    ] {
        assert!(s[key].is_u64(), "/stats lacks {key}: {s}");
    }
    assert_eq!(s["bound_connections"], 1, "{s}");
    assert_eq!(s["uids"], 1, "{s}");
    // Two WebSockets and this HTTP request, at least.
    assert!(s["connections"].as_u64().unwrap() >= 3, "{s}");
    assert_eq!(s["pushes_ok"], 2, "{s}");
    assert_eq!(s["pushes_fail"], 1, "{s}");
    assert_eq!(s["slow_consumers_closed"], 0, "{s}");
    assert!(s["rss_bytes"].as_u64().unwrap() > 0, "{s}");

    let m = http_get(h.http_addr(), "/metrics");
    assert_eq!(m.status, 200);
    assert!(m
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/plain")));
    let value = |name: &str| -> u64 {
        m.body
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("/metrics lacks {name}:\n{}", m.body))
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(value("herald_pushes_ok_total"), 2);
    assert_eq!(value("herald_pushes_fail_total"), 1);
    assert_eq!(value("herald_bound_connections"), 1);
    assert!(value("herald_connections") >= 3);
    assert!(value("herald_resident_memory_bytes") > 0);
    assert!(
        m.body.contains("# TYPE herald_connections gauge"),
        "{}",
        m.body
    );
    assert!(
        m.body.contains("# TYPE herald_pushes_ok_total counter"),
        "{}",
        m.body
    );
}

#[test]
fn http_keep_alive_serves_several_requests_on_one_connection() {
    let h = Herald::start(&[]);
    let mut browser = h.bind("k");
    let mut c = HttpConn::connect(h.http_addr());
    for i in 0..5 {
        let body = format!("{{\"uid\":\"k\",\"n\":{i}}}");
        let r = c.request("POST", "/push", Some(&body));
        assert_eq!(r.status, 200, "request {i}");
        assert_eq!(r.header("connection"), None, "request {i} closed: {r:?}");
        assert_eq!(r.json()["delivered"], 1);
        assert_eq!(recv_text(&mut browser), body);
        let r = c.request("GET", "/online?uid=k", None);
        assert_eq!(r.json()["connections"], 1);
    }
    // Two pipelined requests, the second body split across writes.
    use std::io::Write;
    c.stream
        .write_all(b"GET /online HTTP/1.1\r\nHost: h\r\n\r\nPOST /push HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n\r\n{\"uid\":")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    c.stream.write_all(b"\"k\"}\n").unwrap();
    assert_eq!(c.read().json()["connections"], 1);
    assert_eq!(c.read().json()["delivered"], 1);
    assert_eq!(recv_text(&mut browser), r#"{"uid":"k"}"#);
}

#[test]
fn http_errors_for_unknown_paths_methods_and_big_bodies() {
    let h = Herald::start(&["--max-body", "64"]);
    let r = http_get(h.http_addr(), "/nope");
    assert_eq!(r.status, 404, "{r:?}");
    let r = http_get(h.http_addr(), "/push");
    assert_eq!(r.status, 405, "{r:?}");
    let r = http_request(h.http_addr(), "DELETE", "/stats", &[], None);
    assert_eq!(r.status, 405, "{r:?}");
    let big = format!("{{\"uid\":\"a\",\"pad\":\"{}\"}}", "x".repeat(100));
    let r = http_post(h.http_addr(), "/push", &big);
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(r.json()["error"], "request body too large", "{r:?}");
    // A body of exactly --max-body bytes is accepted.
    let fits = format!("{{\"uid\":\"a\",\"pad\":\"{}\"}}", "x".repeat(64 - 20));
    assert_eq!(fits.len(), 64);
    let r = http_post(h.http_addr(), "/push", &fits);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["ok"], false);
}

#[test]
fn a_405_says_which_method_the_path_takes_and_a_bad_limit_is_400() {
    let h = Herald::start(&[]);
    let r = http_get(h.http_addr(), "/push");
    assert_eq!(r.status, 405, "{r:?}");
    assert_eq!(r.header("allow").as_deref(), Some("POST"), "{r:?}");
    let r = http_request(h.http_addr(), "DELETE", "/stats", &[], None);
    assert_eq!(r.status, 405, "{r:?}");
    assert_eq!(r.header("allow").as_deref(), Some("GET"), "{r:?}");
    // `herald connections --limit abc` is refused; so is the API's.
    let r = http_get(h.http_addr(), "/connections?limit=abc");
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.json()["error"].as_str().unwrap().contains("limit"),
        "{r:?}"
    );
    let r = http_get(h.http_addr(), "/connections?limit=1");
    assert_eq!(r.status, 200, "{r:?}");
}
