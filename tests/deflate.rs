//! permessage-deflate (RFC 7692) as clients see it: what is negotiated,
//! pushes compressed once and framed right for compressed and plain
//! clients alike, and compressed client messages bounded and checked
//! (a deflate bomb, a cut or corrupt stream). The clients here compress
//! and inflate with flate2 themselves; `python_websockets_...` uses an
//! independent implementation.
#![cfg(feature = "deflate")]

mod common;

use common::*;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::time::Duration;

const CHROMIUM_OFFER: &str = "permessage-deflate; client_max_window_bits";

/// A client offering `offer`; the response head and the client.
fn offering(addr: SocketAddr, offer: &str) -> (String, RawWs) {
    upgrade_with(addr, &format!("Sec-WebSocket-Extensions: {offer}\r\n"))
}

/// A client whose upgrade request carries `headers` too (each ending in
/// CRLF); the response head and the client.
fn upgrade_with(addr: SocketAddr, headers: &str) -> (String, RawWs) {
    let mut stream = tcp(addr);
    let req = format!(
        "GET /push HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n{headers}\r\n"
    );
    stream.write_all(req.as_bytes()).unwrap();
    let head = read_head(&mut stream);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    (head, RawWs { stream })
}

/// A compressing client bound to `uid`.
fn bound_deflate(h: &Herald, uid: &str) -> RawWs {
    let mut t = h.text_client();
    let before = t.online(uid);
    let (head, mut ws) = offering(h.ws_addr(), CHROMIUM_OFFER);
    assert!(
        head.contains(
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"
        ),
        "{head}"
    );
    ws.send_text(uid);
    t.wait_online(uid, before + 1);
    ws
}

/// What a client sends: raw deflate, sync flush, the 4-byte tail removed.
fn deflate(data: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::new(9), false);
    let mut out = Vec::with_capacity(data.len() + 1024);
    c.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

/// What a client does with a compressed message.
fn inflate(payload: &[u8]) -> String {
    let mut d = Decompress::new(false);
    let mut data = payload.to_vec();
    data.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(1 << 20);
    d.decompress_vec(&data, &mut out, FlushDecompress::Sync)
        .unwrap();
    String::from_utf8(out).unwrap()
}

/// A JSON push of about `n` bytes, as backends send them.
fn json_push(uid: &str, n: usize) -> String {
    let mut items = String::new();
    let mut i = 0;
    while items.len() < n {
        items.push_str(&format!(
            r#"{{"id":{i},"name":"item {i}","price":"{}.99","tags":["new","sale"]}},"#,
            i * 7 % 100
        ));
        i += 1;
    }
    items.pop();
    format!(r#"{{"uid":"{uid}","items":[{items}]}}"#)
}

#[test]
fn compressed_and_plain_clients_of_one_uid_each_get_a_push_once() {
    let h = Herald::start(&[]);
    let mut z = bound_deflate(&h, "u1");
    let mut plain = RawWs::bound(&h, "u1");
    let push = json_push("u1", 1024);
    assert_eq!(h.push(&push), "ok");

    let (b0, payload) = z.read_frame().unwrap();
    assert_eq!(b0, 0xC1, "FIN, RSV1 (compressed), text");
    assert!(payload.len() < push.len() / 2, "{} bytes", payload.len());
    assert_eq!(inflate(&payload), push);
    let (b0, payload) = plain.read_frame().unwrap();
    assert_eq!((b0, String::from_utf8(payload).unwrap()), (0x81, push));

    // A short push is not worth compressing: it goes plain to both.
    assert_eq!(h.push(r#"{"uid":"u1","percent":"88%"}"#), "ok");
    for ws in [&mut z, &mut plain] {
        let (b0, payload) = ws.read_frame().unwrap();
        assert_eq!(
            (b0, &payload[..]),
            (0x81, &br#"{"uid":"u1","percent":"88%"}"#[..])
        );
    }
    let stats = h.stats();
    assert_eq!(stats["deflate_connections"], 1, "{stats}");
    assert_eq!(stats["compressed_messages"], 1, "{stats}");
    for mut ws in [z, plain] {
        ws.stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        assert!(ws.read_frame().is_err(), "each push arrives once");
    }
}

#[test]
fn pushes_of_every_size_inflate_on_their_own_through_both_encoders() {
    // Up to 16 KiB herald's own encoder compresses (its table keeps the
    // positions of the messages before), past it zlib-rs: each message
    // must inflate alone, from an empty window, as a client reads it.
    let h = Herald::start(&[]);
    let mut z = bound_deflate(&h, "u1");
    let sizes = [300, 2000, 700, 16_000, 16_500, 5000, 60_000, 1024];
    for n in sizes {
        let push = json_push("u1", n);
        assert_eq!(h.push(&push), "ok");
        let (b0, payload) = z.read_frame().unwrap();
        assert_eq!(b0, 0xC1, "{n}: FIN, RSV1 (compressed), text");
        assert!(
            payload.len() < push.len() / 2,
            "{n}: {} bytes",
            payload.len()
        );
        assert_eq!(inflate(&payload), push, "{n}");
    }
    assert_eq!(h.stats()["compressed_messages"], sizes.len());
}

#[test]
fn a_broadcast_is_compressed_once_for_all_its_recipients() {
    let h = Herald::start(&["--routing"]);
    let mut zs: Vec<RawWs> = (0..5)
        .map(|i| bound_deflate(&h, &format!("z{i}")))
        .collect();
    let mut plains: Vec<RawWs> = (0..2).map(|i| RawWs::bound(&h, &format!("p{i}"))).collect();
    let text = json_push("all", 2048);
    zs[0].send(&masked_frame(0x81, format!("all:{text}").as_bytes()));
    let mut first = None;
    for ws in &mut zs {
        let (b0, payload) = ws.read_frame().unwrap();
        assert_eq!(b0, 0xC1);
        // The very same bytes for every compressed recipient.
        assert_eq!(first.get_or_insert_with(|| payload.clone()), &payload);
        assert_eq!(inflate(&payload), text);
    }
    for ws in &mut plains {
        let (b0, payload) = ws.read_frame().unwrap();
        assert_eq!(
            (b0, String::from_utf8(payload).unwrap()),
            (0x81, text.clone())
        );
    }
    assert_eq!(h.stats()["compressed_messages"], 1);
}

#[test]
fn a_push_to_many_uids_is_compressed_once_for_all_of_them() {
    let h = Herald::start(&[]);
    let mut zs: Vec<RawWs> = (0..4)
        .map(|i| bound_deflate(&h, &format!("m{i}")))
        .collect();
    let mut plain = RawWs::bound(&h, "m4");
    let line =
        json_push("x", 1500).replacen(r#""uid":"x""#, r#""uids":["m0","m1","m2","m3","m4"]"#, 1);
    assert_eq!(h.push(&line), "ok 5");
    let mut first = None;
    for ws in &mut zs {
        let (b0, payload) = ws.read_frame().unwrap();
        assert_eq!(b0, 0xC1);
        assert_eq!(first.get_or_insert_with(|| payload.clone()), &payload);
        assert_eq!(inflate(&payload), line);
    }
    let (b0, payload) = plain.read_frame().unwrap();
    assert_eq!((b0, String::from_utf8(payload).unwrap()), (0x81, line));
    assert_eq!(h.stats()["compressed_messages"], 1);
}

#[test]
fn compressed_client_messages_are_inflated_and_routed() {
    let h = Herald::start(&["--routing"]);
    let mut from = bound_deflate(&h, "from");
    let mut to = RawWs::bound(&h, "to");
    let text = json_push("to", 3000);
    // One frame, then the same message in three fragments (RSV1 on the
    // first only).
    let z = deflate(format!("to:{text}").as_bytes());
    from.send(&masked_frame(0xC1, &z));
    let third = z.len() / 3;
    from.send(&masked_frame(0x41, &z[..third]));
    from.send(&masked_frame(0x00, &z[third..2 * third]));
    from.send(&masked_frame(0x80, &z[2 * third..]));
    for _ in 0..2 {
        let (b0, payload) = to.read_frame().unwrap();
        assert_eq!(
            (b0, String::from_utf8(payload).unwrap()),
            (0x81, text.clone())
        );
    }
    assert_eq!(h.stats()["inflated_messages"], 2);
}

#[test]
fn a_deflate_bomb_is_closed_with_1009_before_the_memory_is_spent() {
    let h = Herald::start(&["--max-message", "65536"]);
    let mut ws = bound_deflate(&h, "bomb");
    // 32 MiB of one byte in about 32 KiB: under the cap as sent, 512 times
    // over it inflated.
    let z = deflate(&vec![b'a'; 32 << 20]);
    assert!(z.len() < 65536, "{}", z.len());
    let rss = h.rss_bytes();
    ws.send(&masked_frame(0xC1, &z));
    assert_eq!(ws.expect_close().0, 1009);
    ws.expect_eof();
    let grew = h.rss_bytes().saturating_sub(rss);
    assert!(grew < 4 << 20, "RSS grew {grew} bytes for a 32 MiB bomb");
    h.assert_still_serving();
}

#[test]
fn cut_or_corrupt_compressed_data_is_closed_with_1007() {
    let h = Herald::start(&[]);
    let z = deflate(json_push("x", 2000).as_bytes());
    let cases: [(&str, Vec<u8>); 3] = [
        ("cut short", z[..z.len() / 2].to_vec()),
        ("garbage", vec![0xff; 40]),
        (
            "not UTF-8 once inflated",
            deflate(&[0xc3, 0x28, b'a', b'b', b'c']),
        ),
    ];
    for (what, payload) in cases {
        let mut ws = bound_deflate(&h, "bad");
        ws.send(&masked_frame(0xC1, &payload));
        assert_eq!(ws.expect_close().0, 1007, "{what}");
    }
    h.assert_still_serving();
}

#[test]
fn rsv1_is_refused_where_nothing_was_negotiated() {
    let h = Herald::start(&[]);
    let mut ws = RawWs::bound(&h, "plain");
    ws.send(&masked_frame(0xC1, &deflate(b"hello")));
    assert_eq!(ws.expect_close().0, 1002);
    // A compressing client's control frames and continuations never
    // carry it either.
    let mut ws = bound_deflate(&h, "z");
    ws.send(&masked_frame(0xC9, b""));
    assert_eq!(ws.expect_close().0, 1002);
}

#[test]
fn offers_herald_cannot_serve_are_declined_and_off_means_off() {
    let h = Herald::start(&[]);
    // A server window under 15 bits: declined, the connection is plain.
    let (head, _) = offering(h.ws_addr(), "permessage-deflate; server_max_window_bits=10");
    assert!(!head.contains("Sec-WebSocket-Extensions"), "{head}");
    // The next offer in the list is taken.
    let (head, _) = offering(
        h.ws_addr(),
        "permessage-deflate; server_max_window_bits=10, permessage-deflate; server_max_window_bits=15",
    );
    assert!(
        head.contains("client_no_context_takeover; server_max_window_bits=15\r\n"),
        "{head}"
    );
    // Safari 15.0-15.3 keeps its window despite client_no_context_takeover:
    // it gets no compression (15.4 fixed it).
    for (version, accepted) in [("15.2", false), ("15.4", true)] {
        let ua = format!(
            "User-Agent: Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 \
             (KHTML, like Gecko) Version/{version} Safari/605.1.15\r\n"
        );
        let (head, _) = upgrade_with(
            h.ws_addr(),
            &format!("{ua}Sec-WebSocket-Extensions: permessage-deflate\r\n"),
        );
        assert_eq!(
            head.contains("permessage-deflate"),
            accepted,
            "Safari {version}: {head}"
        );
    }
    let off = Herald::start(&["--deflate", "off"]);
    let (head, _) = offering(off.ws_addr(), CHROMIUM_OFFER);
    assert!(!head.contains("Sec-WebSocket-Extensions"), "{head}");
}

/// The `websockets` library from PyPI (as `.ci/run` installs it): an
/// independent permessage-deflate implementation. It negotiates, inflates
/// a push herald compressed and compresses what it sends.
#[test]
fn python_websockets_exchanges_compressed_messages_with_herald() {
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
    let python = [
        std::env::var("HERALD_PYTHON").ok(),
        Some(venv.into()),
        Some("python3".into()),
    ]
    .into_iter()
    .flatten()
    .find(|py| {
        std::process::Command::new(py)
            .args(["-c", "import websockets.sync.client"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let Some(python) = python else {
        return skip("Python with the websockets package (pip install websockets)");
    };
    let h = Herald::start(&["--routing"]);
    let mut echo = RawWs::bound(&h, "peer");
    let push = json_push("py", 1500);
    let script = format!(
        r#"
import sys, json
from websockets.sync.client import connect
with connect("ws://{ws}/", max_size=None, open_timeout=5) as ws:
    print(ws.response.headers.get("Sec-WebSocket-Extensions"), flush=True)
    ws.send("py")
    sys.stdin.readline()            # the test pushes now
    print(len(ws.recv(timeout=5)), flush=True)
    ws.send("peer:" + "x" * 5000)   # compressed by the library
    sys.stdin.readline()
"#,
        ws = h.ws_addr()
    );
    let mut child = std::process::Command::new(&python)
        .args(["-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("permessage-deflate"), "{line:?}");
    h.text_client().wait_online("py", 1);
    assert_eq!(h.push(&push), "ok");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"\n").unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), push.len().to_string());
    let (b0, payload) = echo.read_frame().unwrap();
    assert_eq!((b0, payload.len()), (0x81, 5000));
    stdin.write_all(b"\n").unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(h.stats()["compressed_messages"], 1);
    // The library compresses all it sends: its uid and its message.
    assert_eq!(h.stats()["inflated_messages"], 2);
}
