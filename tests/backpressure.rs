//! Backpressure, not refusal: a text-port backend or HTTP client that
//! herald cannot serve at its pace (it does not read its replies, or the
//! Redis backlog is full) is read more slowly, never answered `error` nor
//! disconnected, and herald's memory stays bounded.

mod common;

use common::*;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

/// Reads text messages on `ws` in a thread until `n` arrived (or none came
/// for a read timeout); returns how many did.
fn count_messages(mut ws: Ws, n: usize) -> thread::JoinHandle<usize> {
    // Quiet while herald waits for the backend: longer than one read.
    let _ = ws.get_mut().set_read_timeout(Some(Duration::from_secs(30)));
    thread::spawn(move || {
        let mut got = 0;
        while got < n {
            match ws.read() {
                Ok(Message::Text(_)) => got += 1,
                Ok(_) => {}
                Err(e) => {
                    eprintln!("after {got} messages: {e}");
                    break;
                }
            }
        }
        got
    })
}

/// Writes `bytes` on a clone of `stream` in a thread (it blocks while
/// herald does not read).
fn write_in_thread(stream: &TcpStream, bytes: Vec<u8>) -> thread::JoinHandle<()> {
    let mut w = stream.try_clone().expect("clone stream");
    w.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
    thread::spawn(move || w.write_all(&bytes).expect("herald takes every line"))
}

#[test]
fn a_backend_that_reads_no_reply_for_a_while_is_paused_not_disconnected() {
    let h = Herald::start(&[]);
    let here = h.bind("here");
    // A small receive window: unread replies pile up in herald, not in
    // the client's kernel.
    let mut t = TextClient::over(tcp_with(h.text_addr(), None, Some(4096)));
    assert_eq!(t.request(r#"{"uid":"here","warm":1}"#), "ok");
    let delivered = count_messages(here, 1 + 66_667 + 1);
    let rss0 = h.rss_bytes();
    // 200,000 pushes, one in three to a bound uid, the others to nobody,
    // each followed by a `count` whose longer reply fills herald's socket
    // buffer (up to 4 MiB) sooner: the replies say ok, count, fail, count,
    // fail, count, ... in order.
    let count = r#"{"uids":1,"connections":1}"#;
    let mut lines = Vec::new();
    for i in 0..200_000 {
        let uid = if i % 3 == 0 { "here" } else { "nobody" };
        writeln!(lines, r#"{{"uid":"{uid}","n":{i}}}"#).unwrap();
        writeln!(lines, r#"{{"count":true}}"#).unwrap();
    }
    let input = lines.len() as u64;
    let writer = write_in_thread(&t.stream, lines);
    // Not a single reply read for a while: herald stops reading us.
    thread::sleep(Duration::from_secs(3));
    let s = h.stats();
    assert_eq!(s["paused_connections"], 1, "{s}");
    assert!(s["pauses"].as_u64().unwrap() >= 1, "{s}");
    let grown = h.rss_bytes().saturating_sub(rss0);
    assert!(
        grown < input / 4,
        "RSS grew by {grown} bytes for {input} bytes of unread requests"
    );
    for i in 0..200_000 {
        let want = if i % 3 == 0 { "ok" } else { "fail" };
        assert_eq!(t.reply(), want, "reply {i}");
        assert_eq!(t.reply(), count, "count {i}");
    }
    writer.join().unwrap();
    assert_eq!(t.request(r#"{"uid":"here","last":1}"#), "ok");
    assert_eq!(delivered.join().unwrap(), 1 + 66_667 + 1);
    let s = h.stats();
    assert_eq!(s["slow_consumers_closed"], 0, "{s}");
    assert_eq!(s["paused_connections"], 0, "{s}");
    assert!(!h.stderr().contains("slow consumer"), "{}", h.stderr());
}

#[test]
fn an_http_client_pipelining_without_reading_gets_every_answer() {
    let h = Herald::start(&["--max-queued", "65536"]);
    let _here = h.bind("here");
    let stream = tcp_with(h.http_addr(), None, Some(4096));
    let n = 30_000;
    let mut wire = Vec::new();
    for i in 0..n {
        let uid = if i % 2 == 0 { "nobody" } else { "nobody-else" };
        let body = format!(r#"{{"uid":"{uid}","n":{i}}}"#);
        write!(
            wire,
            "POST /push HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
    }
    let writer = write_in_thread(&stream, wire);
    thread::sleep(Duration::from_secs(2));
    let mut r = BufReader::new(stream);
    for i in 0..n {
        let resp = read_response(&mut r);
        assert_eq!(
            (resp.status, resp.body.as_str()),
            (200, r#"{"ok":false,"delivered":0}"#),
            "response {i}"
        );
    }
    writer.join().unwrap();
    let s = h.stats();
    assert_eq!(s["slow_consumers_closed"], 0, "{s}");
    assert!(s["pauses"].as_u64().unwrap() >= 1, "{s}");
}

/// A node on `redis` with `flags`, once its Redis connections are up.
fn node(redis: &Redis, prefix: &str, flags: &[&str]) -> Herald {
    let url = redis.url();
    let mut args = vec!["--redis", &url, "--redis-prefix", prefix];
    args.extend_from_slice(flags);
    let h = Herald::start(&args);
    wait_until("the node joined", || h.stderr().contains("redis: up"));
    h
}

#[test]
fn a_full_redis_backlog_makes_a_bulk_job_wait_and_every_push_arrives() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let p = format!("bp{}", unique());
    // Room for about a hundred PUBLISH commands awaiting replies.
    let small = ["--redis-max-pending", "16384"];
    let (a, b) = (node(&redis, &p, &small), node(&redis, &p, &small));
    let uids = ["u0", "u1", "u2", "u3"];
    let mut readers = Vec::new();
    let mut t = b.text_client();
    for uid in uids {
        let ws = a.bind(uid);
        wait_until("b sees the binding", || t.online(uid) == 1);
        readers.push(count_messages(ws, 100_000 / uids.len()));
    }
    let mut lines = Vec::new();
    for i in 0..100_000 {
        writeln!(lines, r#"{{"uid":"{}","n":{i}}}"#, uids[i % uids.len()]).unwrap();
    }
    let start = Instant::now();
    let writer = write_in_thread(&t.stream, lines);
    for i in 0..100_000 {
        assert_eq!(t.reply(), "ok", "reply {i}");
    }
    writer.join().unwrap();
    for (uid, r) in uids.iter().zip(readers) {
        assert_eq!(r.join().unwrap(), 100_000 / uids.len(), "{uid} on a");
    }
    let s = b.stats();
    assert!(s["pauses"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(s["redis_backlog_refused"], 0, "{s}");
    assert!(s["redis_pending_bytes"].as_u64().unwrap() <= 16384, "{s}");
    eprintln!("100,000 cross-node pushes in {:?}", start.elapsed());
}
