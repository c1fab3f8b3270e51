//! Topics (docs/topics.md): backend joins and publishes on the text port
//! and the HTTP API, presence, membership across a uid's reconnects,
//! herald.v1 clients subscribing themselves (as their token allows),
//! kicks, and heartbeats.

mod common;

use base64::Engine as _;
use common::*;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tungstenite::client::IntoClientRequest;

const KEY: &str = "topics-test-key-0123456789abcdef0123";

fn token(claims: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let signed = format!(
        "{}.{}",
        b64.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
        b64.encode(claims)
    );
    let sig = hmac_sha256::HMAC::mac(signed.as_bytes(), KEY.as_bytes());
    format!("{signed}.{}", b64.encode(sig))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A herald.v1 connection that sent `hello` (no lines read yet).
fn v1(h: &Herald, hello: serde_json::Value) -> Ws {
    let addr = h.ws_addr();
    let mut req = format!("ws://{addr}/").into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "herald.v1".parse().unwrap());
    let (mut ws, _) = tungstenite::client(req, tcp(addr)).expect("v1 handshake");
    send_text(&mut ws, &hello.to_string());
    ws
}

/// Reads lines until one starts with `prefix`; the lines before it too.
fn until(ws: &mut Ws, prefix: &str) -> (String, Vec<String>) {
    let mut before = Vec::new();
    loop {
        let t = recv_text(ws);
        if t.starts_with(prefix) {
            return (t, before);
        }
        before.push(t);
    }
}

#[test]
fn backend_joins_publishes_and_asks_presence_on_the_text_port() {
    let h = Herald::start(&[]);
    let mut a1 = h.bind("u1");
    let mut a2 = h.bind("u1");
    let mut b = h.bind("u2");
    let mut c = h.bind("u3");
    let mut t = h.text_client();
    assert_eq!(t.request(r#"{"join":"news","uid":"u1"}"#), "ok 2");
    assert_eq!(t.request(r#"{"join":"news","uids":["u2"]}"#), "ok 1");
    let line = r#"{"topic":"news","title":"hello"}"#;
    assert_eq!(t.request(line), "ok 3");
    for ws in [&mut a1, &mut a2, &mut b] {
        assert_eq!(recv_text(ws), line);
    }
    assert_silent(&mut c, Duration::from_millis(200));
    assert_eq!(
        t.request(r#"{"presence":"news"}"#),
        r#"{"topic":"news","connections":3,"uids":2}"#
    );
    assert_eq!(
        t.request(r#"{"members":"news","limit":1}"#),
        r#"{"topic":"news","uids":["u1"],"next":"u1"}"#
    );
    assert_eq!(
        t.request(r#"{"members":"news","after":"u1","limit":1}"#),
        r#"{"topic":"news","uids":["u2"],"next":null}"#
    );
    assert_eq!(t.request(r#"{"leave":"news","uid":"u2"}"#), "ok 1");
    assert_eq!(t.request(r#"{"topic":"news","n":2}"#), "ok 2");
    assert_eq!(recv_text(&mut a1), r#"{"topic":"news","n":2}"#);
    assert_silent(&mut b, Duration::from_millis(200));
    assert_eq!(t.request(r#"{"drop":"news"}"#), "ok 2");
    assert_eq!(t.request(r#"{"topic":"news","n":3}"#), "fail");
    assert_eq!(
        t.request(r#"{"presence":"news"}"#),
        r#"{"topic":"news","connections":0,"uids":0}"#
    );
    // Bad input gets a clear error and nothing else changes.
    for (bad, says) in [
        (r#"{"topic":"a b"}"#, "must be a topic name"),
        (r#"{"topic":""}"#, "must be a topic name"),
        (r#"{"join":"news"}"#, "need \"uid\" or \"uids\""),
        (r#"{"join":"news","uid":"u1","topic":"x"}"#, "exactly one"),
        (r#"{"members":"news","limit":0}"#, "\"limit\""),
    ] {
        let reply = t.request(bad);
        assert!(
            reply.starts_with("error ") && reply.contains(says),
            "{bad}: {reply}"
        );
    }
    h.assert_still_serving();
}

#[test]
fn a_joined_uid_stays_in_its_topics_across_reconnects() {
    let h = Herald::start(&[]);
    let mut t = h.text_client();
    // Joined while away: kept for when it comes.
    assert_eq!(t.request(r#"{"join":"room","uid":"u1"}"#), "ok 0");
    assert_eq!(t.request(r#"{"topic":"room","n":1}"#), "fail");
    for n in 2..4 {
        let mut ws = h.bind("u1");
        let line = format!(r#"{{"topic":"room","n":{n}}}"#);
        assert_eq!(t.request(&line), "ok 1");
        assert_eq!(recv_text(&mut ws), line);
        close_ws(ws);
        t.wait_online("u1", 0);
    }
    assert_eq!(t.request(r#"{"leave":"room","uid":"u1"}"#), "ok 0");
    let mut ws = h.bind("u1");
    assert_eq!(t.request(r#"{"topic":"room","n":4}"#), "fail");
    assert_silent(&mut ws, Duration::from_millis(200));
}

#[test]
fn the_http_api_has_the_same_commands() {
    let h = Herald::start(&[]);
    let mut ws = h.bind("u1");
    let http = h.http_addr();
    let r = http_post(http, "/topics", r#"{"join":"news","uid":"u1"}"#);
    assert_eq!((r.status, r.json()["connections"].as_u64()), (200, Some(1)));
    let line = r#"{"topic":"news","via":"http"}"#;
    let r = http_post(http, "/push", line);
    assert_eq!(r.json()["delivered"], 1);
    assert_eq!(recv_text(&mut ws), line);
    let r = http_get(http, "/presence?topic=news");
    assert_eq!(r.json()["connections"], 1);
    assert_eq!(r.json()["uids"], 1);
    let r = http_get(http, "/members?topic=news&limit=10");
    assert_eq!(r.json()["uids"], serde_json::json!(["u1"]));
    assert_eq!(http_get(http, "/presence?topic=a%20b").status, 400);
    assert_eq!(http_post(http, "/topics", r#"{"uid":"u1"}"#).status, 400);
    assert_eq!(
        http_post(http, "/kick", r#"{"join":"x","uid":"u1"}"#).status,
        400
    );
    let r = http_post(http, "/kick", r#"{"kick":"u1"}"#);
    assert_eq!(r.json()["connections"], 1);
    let closed = recv_close(&mut ws);
    assert_eq!((closed.code, closed.reason.as_str()), (4500, "kicked"));
}

#[test]
fn herald_v1_clients_subscribe_themselves_and_get_tagged_messages() {
    let h = Herald::start(&[]);
    let mut ws = v1(
        &h,
        serde_json::json!({"uid":"u1","topics":["news","bad topic"]}),
    );
    let (news, _) = until(&mut ws, "s t:news ");
    assert_eq!(news, "s t:news - 0 off");
    let (bad, _) = until(&mut ws, "s t:bad");
    assert!(bad.ends_with(" - 0 denied"), "{bad}");
    let line = r#"{"topic":"news","n":1}"#;
    assert_eq!(h.push(line), "ok 1");
    assert_eq!(recv_text(&mut ws), format!("m t:news - 0\n{line}"));
    send_text(&mut ws, r#"{"sub":"sport"}"#);
    assert_eq!(recv_text(&mut ws), "s t:sport - 0 off");
    send_text(&mut ws, r#"{"unsub":"news"}"#);
    assert_eq!(recv_text(&mut ws), "u t:news");
    assert_eq!(h.push(line), "fail");
    assert_eq!(h.push(r#"{"topic":"sport","n":2}"#), "ok 1");
    assert_eq!(
        recv_text(&mut ws),
        "m t:sport - 0\n{\"topic\":\"sport\",\"n\":2}"
    );
    send_text(&mut ws, r#"{"nonsense":1}"#);
    assert!(recv_text(&mut ws).starts_with("error expected"));
    // Closing leaves every topic.
    close_ws(ws);
    wait_until("the close is seen", || h.stats()["bound_connections"] == 0);
    assert_eq!(h.push(r#"{"topic":"sport","n":3}"#), "fail");
}

#[test]
fn a_token_says_which_topics_its_client_may_subscribe_to() {
    let f = secret_file(&format!("{KEY}\n"));
    let h = Herald::start(&["--auth-secret-file", f.to_str().unwrap()]);
    let tok = token(&format!(
        r#"{{"sub":"u1","exp":{},"topics":["room.*","news"]}}"#,
        now() + 300
    ));
    let mut ws = v1(
        &h,
        serde_json::json!({"token": tok, "topics":["room.7","news","admin"]}),
    );
    let mut statuses = Vec::new();
    while statuses.len() < 3 {
        let t = recv_text(&mut ws);
        if t.starts_with("s t:") {
            statuses.push(t);
        }
    }
    assert_eq!(
        statuses,
        [
            "s t:room.7 - 0 off",
            "s t:news - 0 off",
            "s t:admin - 0 denied"
        ]
    );
    send_text(&mut ws, r#"{"sub":"room"}"#);
    assert_eq!(recv_text(&mut ws), "s t:room - 0 denied");
    assert_eq!(h.push(r#"{"topic":"admin"}"#), "fail");
    assert_eq!(h.push(r#"{"topic":"room.7"}"#), "ok 1");
    // A token without the claim may subscribe to nothing itself; a
    // backend can still join its uid.
    let plain = token(&format!(r#"{{"sub":"u2","exp":{}}}"#, now() + 300));
    let mut ws2 = v1(&h, serde_json::json!({"token": plain, "topics":["news"]}));
    assert_eq!(until(&mut ws2, "s t:").0, "s t:news - 0 denied");
    assert_eq!(h.push(r#"{"join":"news","uid":"u2"}"#), "ok 1");
    // An expired token is closed with 4401: fetch a fresh one.
    let old = token(&format!(r#"{{"sub":"u3","exp":{}}}"#, now() - 100));
    let mut ws3 = v1(&h, serde_json::json!({ "token": old }));
    let closed = recv_close(&mut ws3);
    assert_eq!(closed.code, 4401, "{}", closed.reason);
}

#[test]
fn a_kick_closes_every_connection_of_the_uid_not_to_reconnect() {
    let h = Herald::start(&[]);
    let mut seed = h.bind("u1");
    let mut v = v1(&h, serde_json::json!({"uid":"u1"}));
    let mut t = h.text_client();
    t.wait_online("u1", 2);
    let mut other = h.bind("u2");
    assert_eq!(t.request(r#"{"kick":"u1"}"#), "ok 2");
    for ws in [&mut seed, &mut v] {
        let closed = recv_close(ws);
        assert_eq!((closed.code, closed.reason.as_str()), (4500, "kicked"));
    }
    t.wait_online("u1", 0);
    assert_eq!(t.request(r#"{"kick":"u1"}"#), "ok 0");
    assert_eq!(t.request(r#"{"uid":"u2","still":true}"#), "ok");
    assert_eq!(recv_text(&mut other), r#"{"uid":"u2","still":true}"#);
}

#[test]
fn clients_that_ask_get_heartbeats_at_the_announced_interval() {
    let h = Herald::start(&["--ping-interval", "1"]);
    let mut ws = v1(&h, serde_json::json!({"uid":"u1","heartbeat":true}));
    let (announce, _) = until(&mut ws, "h ");
    assert_eq!(announce, "h 1");
    let started = std::time::Instant::now();
    assert_eq!(until(&mut ws, "h").0, "h");
    assert!(started.elapsed() < Duration::from_millis(2500));
    // One that did not ask gets none (pings aside).
    let mut quiet = v1(&h, serde_json::json!({"uid":"u2"}));
    until(&mut quiet, "s all ");
    assert_silent(&mut quiet, Duration::from_millis(1500));
    // A client's own `h` is taken quietly.
    send_text(&mut ws, "h");
    assert_eq!(h.push(r#"{"uid":"u1","n":1}"#), "ok");
    assert_eq!(
        until(&mut ws, "m u:u1").0,
        "m u:u1 - 0\n{\"uid\":\"u1\",\"n\":1}"
    );
}

/// A node on `redis` with `prefix`, once its Redis links are up.
fn node(redis: &common::redis::Redis, prefix: &str) -> Herald {
    let url = redis.url();
    let h = Herald::start(&["--redis", &url, "--redis-prefix", prefix]);
    wait_until("the node joined", || h.stderr().contains("redis: up"));
    h
}

/// Publishes `line` through `via` until it reaches `want` (`ok N`): a node
/// listens to a topic's channel a moment after it gains a member.
fn publish_until(via: &Herald, line: &str, want: &str) {
    let mut t = via.text_client();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let got = t.request(line);
        if got == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{line}: {got}, expected {want}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn topics_and_kicks_reach_every_node_of_a_cluster() {
    let Some(redis) = common::redis::Redis::start() else {
        return;
    };
    let p = format!("tp{}", unique());
    let (a, b) = (node(&redis, &p), node(&redis, &p));
    let mut on_a = h_bind_seen(&a, &b, "u1");
    // Joined through the other node: u1's connection on a is in.
    assert_eq!(b.push(r#"{"join":"news","uid":"u1"}"#), "ok 1");
    let line = r#"{"topic":"news","n":1}"#;
    publish_until(&b, line, "ok 1");
    assert_eq!(recv_text(&mut on_a), line);
    // A herald.v1 client on b subscribes itself: a publish on a reaches
    // both nodes once each.
    let mut v = v1(&b, serde_json::json!({"uid":"u2","topics":["news"]}));
    assert_eq!(until(&mut v, "s t:news").0, "s t:news - 0 off");
    let line = r#"{"topic":"news","n":2}"#;
    publish_until(&a, line, "ok 2");
    // Earlier tries may have reached a only.
    loop {
        let got = recv_text(&mut on_a);
        if got == line {
            break;
        }
    }
    assert_eq!(until(&mut v, "m t:news").0, format!("m t:news - 0\n{line}"));
    // Presence is the cluster's (each node reports within a heartbeat).
    for via in [&a, &b] {
        let mut t = via.text_client();
        wait_until("both nodes' members are counted", || {
            t.request(r#"{"presence":"news"}"#) == r#"{"topic":"news","connections":2,"uids":2}"#
        });
        assert_eq!(
            t.request(r#"{"members":"news","limit":1}"#),
            r#"{"topic":"news","uids":["u1"],"next":"u1"}"#
        );
        assert_eq!(
            t.request(r#"{"members":"news","limit":1,"after":"u1"}"#),
            r#"{"topic":"news","uids":["u2"],"next":null}"#
        );
    }
    // The join is kept on every node: u1 reconnecting to b is in too.
    close_ws(on_a);
    let mut t = b.text_client();
    t.wait_online("u1", 0);
    let mut on_b = h_bind_seen(&b, &a, "u1");
    let line = r#"{"topic":"news","n":3}"#;
    assert_eq!(a.push(line), "ok 1", "a has no member; b took it");
    assert_eq!(recv_text(&mut on_b), line);
    // A kick through a closes u1's connections on both nodes.
    let mut again_a = h_bind_seen(&a, &b, "u1");
    wait_until("both are counted", || t.online("u1") == 2);
    assert_eq!(a.push(r#"{"kick":"u1"}"#), "ok 2");
    for ws in [&mut on_b, &mut again_a] {
        let closed = recv_close(ws);
        assert_eq!((closed.code, closed.reason.as_str()), (4500, "kicked"));
    }
    t.wait_online("u1", 0);
    let mut ta = a.text_client();
    wait_until("the kicked uid leaves the presence", || {
        ta.request(r#"{"presence":"news"}"#) == r#"{"topic":"news","connections":1,"uids":1}"#
    });
    // A node that dies takes its members out of the presence once its
    // heartbeat key expires (6 s).
    common::signal(b.pid(), 9);
    wait_until("the dead node's members are gone", || {
        ta.request(r#"{"presence":"news"}"#) == r#"{"topic":"news","connections":0,"uids":0}"#
    });
    drop(v);
}

/// Binds `uid` on `h` and waits until `via` sees it online.
fn h_bind_seen(h: &Herald, via: &Herald, uid: &str) -> Ws {
    let mut ws = ws_connect(h.ws_addr());
    send_text(&mut ws, uid);
    let mut t = via.text_client();
    wait_until("the cluster sees the binding", || t.online(uid) >= 1);
    ws
}

#[test]
fn with_history_a_topic_is_a_stream_a_client_resumes() {
    let h = Herald::start(&["--history", "100"]);
    let mut ws = v1(&h, serde_json::json!({"uid":"u1","topics":["news"]}));
    let (s, _) = until(&mut ws, "s t:news ");
    let f: Vec<&str> = s.split(' ').collect();
    assert_eq!((f[3], f[4]), ("0", "new"), "{s}");
    let epoch = f[2].to_string();
    assert_ne!(epoch, "-");
    for n in 1..=2 {
        assert_eq!(h.push(&format!(r#"{{"topic":"news","n":{n}}}"#)), "ok 1");
        let got = recv_text(&mut ws);
        assert_eq!(
            got,
            format!("m t:news {epoch} {n}\n{{\"topic\":\"news\",\"n\":{n}}}")
        );
    }
    close_ws(ws);
    wait_until("the close is seen", || h.stats()["bound_connections"] == 0);
    // Kept while nobody is in the topic; the reply says nobody took it.
    for n in 3..=5 {
        assert_eq!(h.push(&format!(r#"{{"topic":"news","n":{n}}}"#)), "fail");
    }
    let since = format!("{epoch}:2");
    let mut ws = v1(
        &h,
        serde_json::json!({"uid":"u1","topics":["news"],"since":{"t:news": since}}),
    );
    assert_eq!(
        until(&mut ws, "s t:news ").0,
        format!("s t:news {epoch} 2 ok")
    );
    for n in 3..=5 {
        let got = recv_text(&mut ws);
        assert_eq!(
            got,
            format!("m t:news {epoch} {n}\n{{\"topic\":\"news\",\"n\":{n}}}")
        );
    }
    // A subscription later resumes the same way; a position of another
    // epoch is lost, and the client carries on from the latest.
    send_text(&mut ws, r#"{"unsub":"news"}"#);
    assert_eq!(recv_text(&mut ws), "u t:news");
    send_text(&mut ws, &format!(r#"{{"sub":"news","since":"{epoch}:4"}}"#));
    assert_eq!(recv_text(&mut ws), format!("s t:news {epoch} 4 ok"));
    assert!(recv_text(&mut ws).starts_with(&format!("m t:news {epoch} 5\n")));
    send_text(&mut ws, r#"{"unsub":"news"}"#);
    assert_eq!(recv_text(&mut ws), "u t:news");
    send_text(&mut ws, r#"{"sub":"news","since":"zzz:4"}"#);
    assert_eq!(recv_text(&mut ws), format!("s t:news {epoch} 5 lost"));
    send_text(&mut ws, r#"{"sub":"news","since":"nonsense"}"#);
    assert!(recv_text(&mut ws).starts_with("error \"since\""));
}

#[test]
fn with_redis_history_a_topic_resumes_on_any_node() {
    let Some(redis) = common::redis::Redis::start() else {
        return;
    };
    let p = format!("th{}", unique());
    let url = redis.url();
    let flags = ["--redis", &url, "--redis-prefix", &p, "--history", "100"];
    let (a, b) = (Herald::start(&flags), Herald::start(&flags));
    for h in [&a, &b] {
        wait_until("the node joined", || h.stderr().contains("redis: up"));
    }
    let mut ws = v1(&b, serde_json::json!({"uid":"u1","topics":["news"]}));
    let (s, _) = until(&mut ws, "s t:news ");
    let f: Vec<&str> = s.split(' ').collect();
    assert_eq!((f[3], f[4]), ("0", "new"), "{s}");
    let epoch = f[2].to_string();
    // Delivered by b when Redis hands it back: one node took it.
    publish_until(&a, r#"{"topic":"news","n":1}"#, "ok 1");
    let got = until(&mut ws, "m t:news").0;
    assert_eq!(
        got,
        format!("m t:news {epoch} 1\n{{\"topic\":\"news\",\"n\":1}}")
    );
    close_ws(ws);
    let mut t = b.text_client();
    t.wait_online("u1", 0);
    for n in 2..=3 {
        let line = format!(r#"{{"topic":"news","n":{n}}}"#);
        publish_until(&a, &line, "fail");
    }
    // Back on the other node, from where it was.
    let since = format!("{epoch}:1");
    let mut ws = v1(
        &a,
        serde_json::json!({"uid":"u1","topics":["news"],"since":{"t:news": since}}),
    );
    assert_eq!(
        until(&mut ws, "s t:news ").0,
        format!("s t:news {epoch} 1 ok")
    );
    for n in 2..=3 {
        let got = until(&mut ws, "m t:news").0;
        assert_eq!(
            got,
            format!("m t:news {epoch} {n}\n{{\"topic\":\"news\",\"n\":{n}}}")
        );
    }
    // Then live, with the next offset.
    publish_until(&b, r#"{"topic":"news","n":4}"#, "ok 1");
    let got = until(&mut ws, "m t:news").0;
    assert_eq!(
        got,
        format!("m t:news {epoch} 4\n{{\"topic\":\"news\",\"n\":4}}")
    );
}

#[test]
fn a_node_started_after_a_join_learns_it_from_redis() {
    let Some(redis) = common::redis::Redis::start() else {
        return;
    };
    let p = format!("tj{}", unique());
    let a = node(&redis, &p);
    assert_eq!(a.push(r#"{"join":"room","uid":"late"}"#), "ok 0");
    assert_eq!(a.push(r#"{"join":"gone","uid":"late"}"#), "ok 0");
    assert_eq!(a.push(r#"{"drop":"gone"}"#), "ok 0");
    // Started afterwards: it was not there to hear the join.
    let c = node(&redis, &p);
    let mut ws = h_bind_seen(&c, &a, "late");
    let line = r#"{"topic":"room","n":1}"#;
    publish_until(&a, line, "ok 1");
    assert_eq!(recv_text(&mut ws), line);
    // The dropped topic was forgotten in Redis too.
    assert_eq!(
        c.push(r#"{"presence":"gone"}"#),
        r#"{"topic":"gone","connections":0,"uids":0}"#
    );
    assert_eq!(a.push(r#"{"topic":"gone"}"#), "fail");
    // Leaving is written down as well.
    assert_eq!(a.push(r#"{"leave":"room","uid":"late"}"#), "ok 1");
    let d = node(&redis, &p);
    let mut ws2 = h_bind_seen(&d, &a, "late");
    let mut t = a.text_client();
    wait_until("presence settles", || {
        t.request(r#"{"presence":"room"}"#) == r#"{"topic":"room","connections":0,"uids":0}"#
    });
    assert_eq!(a.push(r#"{"topic":"room","n":2}"#), "fail");
    assert_silent(&mut ws2, Duration::from_millis(200));
}

#[test]
fn a_client_cannot_subscribe_to_more_than_64_topics() {
    let h = Herald::start(&[]);
    let names: Vec<String> = (0..64).map(|i| format!("t{i}")).collect();
    let mut ws = v1(&h, serde_json::json!({"uid":"u1","topics":names}));
    until(&mut ws, "s t:t63 ");
    send_text(&mut ws, r#"{"sub":"t64"}"#);
    assert!(recv_text(&mut ws).starts_with("error too many topics"));
    assert_eq!(recv_text(&mut ws), "s t:t64 - 0 denied");
    // Asking again for one it has is fine, and leaving makes room.
    send_text(&mut ws, r#"{"sub":"t0"}"#);
    assert_eq!(recv_text(&mut ws), "s t:t0 - 0 off");
    send_text(&mut ws, r#"{"unsub":"t1"}"#);
    assert_eq!(recv_text(&mut ws), "u t:t1");
    send_text(&mut ws, r#"{"sub":"t64"}"#);
    assert_eq!(recv_text(&mut ws), "s t:t64 - 0 off");
    assert_eq!(h.push(r#"{"topic":"t64"}"#), "ok 1");
}
