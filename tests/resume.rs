//! herald.v1 (docs/resume.md): offsets, history and resume, from one
//! node's memory and from Redis across nodes; seed clients unchanged.

mod common;

use common::redis::Redis;
use common::*;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use tungstenite::client::IntoClientRequest;

/// One message of a stream as a herald.v1 client reads it.
#[derive(Debug, PartialEq, Eq)]
struct Msg {
    stream: String,
    epoch: String,
    offset: u64,
    text: String,
}

/// A herald.v1 client that remembers its positions, as docs/resume.md
/// says a client does, and checks that offsets follow with no gap.
struct Client {
    uid: String,
    ws: Option<Ws>,
    /// stream -> (epoch, offset) of the last `s` or `m` line.
    at: HashMap<String, (String, u64)>,
    /// The `s` lines of the last hello: stream -> status.
    statuses: HashMap<String, String>,
}

impl Client {
    fn new(uid: &str) -> Client {
        Client {
            uid: uid.into(),
            ws: None,
            at: HashMap::new(),
            statuses: HashMap::new(),
        }
    }

    /// Connects to `addr` with the subprotocol, says hello with the
    /// positions held, and reads the two `s` lines (replays may follow).
    fn connect(&mut self, addr: SocketAddr) {
        let mut req = format!("ws://{addr}/").into_client_request().unwrap();
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", "herald.v1".parse().unwrap());
        let (mut ws, resp) = tungstenite::client(req, tcp(addr)).expect("v1 handshake");
        assert_eq!(resp.headers()["sec-websocket-protocol"], "herald.v1");
        let since: serde_json::Map<String, serde_json::Value> = self
            .at
            .iter()
            .map(|(s, (e, o))| (s.clone(), format!("{e}:{o}").into()))
            .collect();
        let hello = serde_json::json!({"uid": self.uid, "since": since});
        send_text(&mut ws, &hello.to_string());
        self.ws = Some(ws);
        self.statuses.clear();
    }

    /// The next line: an `s` line is taken in (and `None` returned), an
    /// `m` line checked against the position and returned.
    fn read(&mut self) -> Option<Msg> {
        let text = recv_text(self.ws.as_mut().expect("connected"));
        if let Some(s) = text.strip_prefix("s ") {
            let f: Vec<&str> = s.split(' ').collect();
            assert_eq!(f.len(), 4, "{text:?}");
            self.at
                .insert(f[0].into(), (f[1].into(), f[2].parse().unwrap()));
            self.statuses.insert(f[0].into(), f[3].into());
            return None;
        }
        let (head, body) = text.split_once('\n').unwrap_or_else(|| panic!("{text:?}"));
        let f: Vec<&str> = head
            .strip_prefix("m ")
            .expect("an m line")
            .split(' ')
            .collect();
        let m = Msg {
            stream: f[0].into(),
            epoch: f[1].into(),
            offset: f[2].parse().unwrap(),
            text: body.into(),
        };
        let (epoch, last) = self.at.get(&m.stream).cloned().expect("s line first");
        assert_eq!(
            (&m.epoch, m.offset),
            (&epoch, last + 1),
            "gap or duplicate: {m:?}"
        );
        self.at
            .insert(m.stream.clone(), (m.epoch.clone(), m.offset));
        Some(m)
    }

    /// The next `m` line's text (taking `s` lines in on the way).
    fn next_text(&mut self) -> String {
        loop {
            if let Some(m) = self.read() {
                return m.text;
            }
        }
    }

    /// Reads until both `s` lines are in.
    fn statuses(&mut self) -> (String, String) {
        let own = format!("u:{}", self.uid);
        while !(self.statuses.contains_key(&own) && self.statuses.contains_key("all")) {
            assert!(self.read().is_none(), "a message before the s lines");
        }
        (self.statuses[&own].clone(), self.statuses["all"].clone())
    }

    /// Drops the connection abruptly (a reset).
    fn reset(&mut self) {
        if let Some(ws) = self.ws.take() {
            set_linger_zero(ws.get_ref());
        }
    }
}

fn push(h: &Herald, uid: &str, n: u32) -> String {
    h.push(&format!(r#"{{"uid":"{uid}","n":{n}}}"#))
}

#[test]
fn a_resume_after_a_drop_replays_exactly_what_was_missed_in_order() {
    let h = Herald::start(&["--history", "100"]);
    let mut c = Client::new("u1");
    c.connect(h.ws_addr());
    assert_eq!(c.statuses(), ("new".into(), "new".into()));
    assert_eq!(push(&h, "u1", 1), "ok");
    assert_eq!(c.next_text(), r#"{"uid":"u1","n":1}"#);
    c.reset();
    wait_until("the drop is seen", || h.stats()["bound_connections"] == 0);
    // Kept while nobody is there; the reply is still the seeds' `fail`.
    assert_eq!(push(&h, "u1", 2), "fail");
    assert_eq!(push(&h, "u1", 3), "fail");
    assert_eq!(push(&h, "other", 9), "fail");
    assert_eq!(h.push(r#"{"all":true,"b":1}"#), "fail");
    c.connect(h.ws_addr());
    let mut got = Vec::new();
    while got.len() < 3 {
        if let Some(m) = c.read() {
            got.push((m.stream, m.text));
        }
    }
    assert_eq!(
        got,
        [
            ("u:u1".into(), r#"{"uid":"u1","n":2}"#.into()),
            ("u:u1".into(), r#"{"uid":"u1","n":3}"#.into()),
            ("all".into(), r#"{"all":true,"b":1}"#.into()),
        ]
    );
    assert_eq!(c.statuses(), ("ok".into(), "ok".into()));
    // Then live, at the next offset.
    assert_eq!(push(&h, "u1", 4), "ok");
    assert_eq!(c.next_text(), r#"{"uid":"u1","n":4}"#);
    assert_eq!(c.at["u:u1"].1, 4);
    let stats = h.stats();
    assert_eq!(stats["resumes_ok"], 2, "{stats}");
    assert_eq!(stats["replayed"], 3, "{stats}");
    assert_eq!(stats["v1_connections"], 1, "{stats}");
    assert!(stats["history_messages"].as_u64().unwrap() >= 5, "{stats}");
    assert!(stats["history_bytes"].as_u64().unwrap() > 0, "{stats}");
}

#[test]
fn trimmed_or_expired_history_is_reported_lost() {
    let h = Herald::start(&["--history", "2", "--history-ttl", "1"]);
    let mut c = Client::new("u1");
    c.connect(h.ws_addr());
    c.statuses();
    c.reset();
    wait_until("the drop is seen", || h.stats()["bound_connections"] == 0);
    for n in 1..=3 {
        push(&h, "u1", n);
    }
    c.connect(h.ws_addr());
    // Message 1 was trimmed: the client is told to reload, and is placed
    // at the latest offset, from which live messages follow.
    assert_eq!(c.statuses().0, "lost");
    assert_eq!(c.at["u:u1"].1, 3);
    push(&h, "u1", 4);
    assert_eq!(c.next_text(), r#"{"uid":"u1","n":4}"#);
    c.reset();
    wait_until("the drop is seen", || h.stats()["bound_connections"] == 0);
    push(&h, "u1", 5);
    thread::sleep(Duration::from_millis(1_300));
    c.connect(h.ws_addr());
    assert_eq!(c.statuses().0, "lost", "expired");
    assert!(h.stats()["resumes_lost"].as_u64().unwrap() >= 2);
    // A position from another epoch (another server) is lost too.
    let mut stranger = Client::new("u1");
    stranger.at.insert("u:u1".into(), ("abc".into(), 1));
    stranger.connect(h.ws_addr());
    assert_eq!(stranger.statuses().0, "lost");
}

#[test]
fn seed_clients_see_what_they_always_saw() {
    let h = Herald::start(&["--history", "10"]);
    let mut seed = h.bind("u1");
    let mut v1 = Client::new("u1");
    v1.connect(h.ws_addr());
    v1.statuses();
    assert_eq!(push(&h, "u1", 1), "ok");
    assert_eq!(h.push(r#"{"all":true,"b":1}"#), "ok 2");
    assert_eq!(recv_text(&mut seed), r#"{"uid":"u1","n":1}"#);
    assert_eq!(recv_text(&mut seed), r#"{"all":true,"b":1}"#);
    assert_eq!(v1.next_text(), r#"{"uid":"u1","n":1}"#);
    assert_eq!(v1.next_text(), r#"{"all":true,"b":1}"#);
    // Without --history: herald.v1 still works, with no offsets.
    let plain = Herald::start(&[]);
    let mut c = Client::new("u2");
    c.connect(plain.ws_addr());
    assert_eq!(c.statuses(), ("off".into(), "off".into()));
    assert_eq!(c.at["all"], ("-".into(), 0));
    // A hello that is not one closes with 1008 and says why.
    let mut req = format!("ws://{}/", h.ws_addr())
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "herald.v1".parse().unwrap());
    let (mut ws, _) = tungstenite::client(req, tcp(h.ws_addr())).unwrap();
    send_text(&mut ws, "u3");
    let closed = recv_close(&mut ws);
    assert_eq!(closed.code, 1008);
    assert!(closed.reason.contains("hello"), "{closed:?}");
}

/// While a backend pushes `total` numbered messages to `uid` through
/// `backend`, a client drops (reset or clean close) and resumes on the
/// `nodes` in turn; it must read every message once, in order.
fn resume_races_live_pushes(backend: &Herald, nodes: &[&Herald], total: u32) {
    let mut c = Client::new("racer");
    c.connect(nodes[0].ws_addr());
    c.statuses();
    let done = Arc::new(AtomicBool::new(false));
    let pusher = {
        let (done, addr) = (done.clone(), backend.text_addr());
        thread::spawn(move || {
            let mut t = TextClient::connect(addr);
            for n in 1..=total {
                t.request(&format!(r#"{{"uid":"racer","n":{n}}}"#));
                if n % 50 == 0 {
                    thread::sleep(Duration::from_millis(5));
                }
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let mut seen = 0u32;
    let mut round = 0;
    let t0 = Instant::now();
    while seen < total {
        assert!(t0.elapsed() < Duration::from_secs(60), "stuck at {seen}");
        let text = c.next_text();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        seen += 1;
        assert_eq!(v["n"], seen, "in order, no gap, no duplicate");
        if seen % 97 == 0 {
            round += 1;
            if round % 2 == 0 {
                c.reset();
            } else if let Some(ws) = c.ws.take() {
                close_ws(ws);
            }
            c.connect(nodes[round % nodes.len()].ws_addr());
        }
    }
    pusher.join().unwrap();
    assert!(done.load(Ordering::SeqCst));
    assert!(round >= 5);
}

#[test]
fn a_resume_racing_live_pushes_has_no_gap_and_no_duplicate() {
    let h = Herald::start(&["--history", "10000"]);
    resume_races_live_pushes(&h, &[&h], 1_500);
}

/// A node with history in `redis`, once joined.
fn node(redis: &Redis, prefix: &str) -> Herald {
    let url = redis.url();
    let h = Herald::start(&[
        "--redis",
        &url,
        "--redis-prefix",
        prefix,
        "--history",
        "1000",
    ]);
    wait_until("the node joined", || h.stderr().contains("redis: up"));
    h
}

#[test]
fn with_redis_a_client_resumes_on_another_node_after_its_node_died() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let p = format!("r{}", unique());
    let (mut a, b) = (node(&redis, &p), node(&redis, &p));
    let mut c = Client::new("u1");
    c.connect(a.ws_addr());
    c.statuses();
    let mut t = b.text_client();
    wait_until("b sees u1", || t.online("u1") == 1);
    assert_eq!(t.request(r#"{"uid":"u1","n":1}"#), "ok");
    assert_eq!(c.next_text(), r#"{"uid":"u1","n":1}"#);
    a.terminate();
    a.wait_exit(Duration::from_secs(10));
    c.reset();
    for n in 2..=4 {
        t.request(&format!(r#"{{"uid":"u1","n":{n}}}"#));
    }
    assert_eq!(t.request(r#"{"all":true,"b":1}"#), "fail");
    c.connect(b.ws_addr());
    let texts: Vec<String> = (0..4).map(|_| c.next_text()).collect();
    assert_eq!(
        texts,
        [
            r#"{"uid":"u1","n":2}"#,
            r#"{"uid":"u1","n":3}"#,
            r#"{"uid":"u1","n":4}"#,
            r#"{"all":true,"b":1}"#
        ]
    );
    assert_eq!(c.statuses(), ("ok".into(), "ok".into()));
    assert_eq!(t.request(r#"{"uid":"u1","n":5}"#), "ok");
    assert_eq!(c.next_text(), r#"{"uid":"u1","n":5}"#);
    assert_eq!(b.stats()["resumes_ok"], 2);
}

#[test]
fn with_redis_a_resume_racing_live_pushes_across_nodes_has_no_gap() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let p = format!("r{}", unique());
    let (a, b) = (node(&redis, &p), node(&redis, &p));
    resume_races_live_pushes(&b, &[&a, &b], 1_000);
}

#[test]
fn redis_restarted_without_its_data_gives_a_new_epoch_and_lost() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let p = format!("r{}", unique());
    let a = node(&redis, &p);
    let mut c = Client::new("u1");
    c.connect(a.ws_addr());
    c.statuses();
    let mut t = a.text_client();
    assert_eq!(t.request(r#"{"uid":"u1","n":1}"#), "ok");
    assert_eq!(c.next_text(), r#"{"uid":"u1","n":1}"#);
    let before = c.at["u:u1"].clone();
    c.reset();
    redis.kill();
    redis.restart();
    wait_until("a is back on redis", || a.stats()["redis_up"] == 1);
    assert_eq!(t.request(r#"{"uid":"u1","n":2}"#), "fail");
    c.connect(a.ws_addr());
    assert_eq!(c.statuses().0, "lost");
    assert_ne!(c.at["u:u1"].0, before.0, "a new epoch");
    assert_eq!(c.at["u:u1"].1, 1, "the new epoch's latest offset");
}
