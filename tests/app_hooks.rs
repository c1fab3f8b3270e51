//! The application hooks the reactor offers beyond messages: the upgrade
//! hook (before any 101), application timers, outbound connections with
//! failure and reconnect, and deferred replies that keep request order.

mod common;

use common::*;
use herald::{
    App, ConnId, Context, Deferred, Limits, Message, Protocol, Request, Response, Server,
    StopHandle, TimerId, Upgrade, UpgradeRequest,
};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

/// What a deferred answer is waiting for.
enum Pending {
    Line(Deferred, String),
    Http(Deferred),
    Reconnect(SocketAddr),
}

#[derive(Default)]
struct Hooks {
    /// The last text-port connection: where outbound events are reported.
    text: Option<ConnId>,
    pending: Vec<(TimerId, Pending)>,
    outbound: Option<ConnId>,
    /// Where the outbound connection goes (for reconnects).
    outbound_addr: Option<SocketAddr>,
    seen: Arc<Mutex<Vec<String>>>,
    retries: u32,
}

impl Hooks {
    fn report(&mut self, cx: &mut Context, line: &str) {
        if let Some(t) = self.text {
            cx.send_line(t, line.as_bytes());
        }
    }
}

impl App for Hooks {
    fn on_upgrade(
        &mut self,
        _cx: &mut Context,
        _conn: ConnId,
        req: &UpgradeRequest<'_>,
    ) -> Upgrade {
        let ua = req
            .header("user-agent")
            .map(|v| String::from_utf8_lossy(v).into_owned());
        self.seen.lock().unwrap().push(format!(
            "{} {} {:?} {:?}",
            req.path(),
            req.query(),
            ua,
            req.peer()
        ));
        if req.path() == "/refuse" {
            return Upgrade::Refuse(403, "not on this path".into());
        }
        match req.query_param("uid") {
            Some(uid) => Upgrade::AcceptAs(uid),
            None => Upgrade::Accept,
        }
    }

    fn on_open(&mut self, cx: &mut Context, conn: ConnId) {
        match cx.protocol(conn) {
            Some(Protocol::Text) => self.text = Some(conn),
            Some(Protocol::Outbound) => {
                cx.send_bytes(conn, b"hello\n");
                self.report(cx, "outbound open");
            }
            _ => {}
        }
    }

    fn on_message(&mut self, cx: &mut Context, conn: ConnId, msg: Message<'_>) {
        let Message::Line(line) = msg else { return };
        let line = String::from_utf8_lossy(line).into_owned();
        match line.split_once(' ') {
            Some(("later", rest)) => {
                let d = cx.defer(conn).expect("defer");
                let t = cx.set_timer(80, 0);
                self.pending.push((t, Pending::Line(d, rest.to_string())));
            }
            Some(("now", rest)) => {
                cx.send_line(conn, rest.as_bytes());
            }
            Some(("push", uid)) => {
                let n = cx.send_to_uid(uid, "pushed");
                cx.send_line(conn, n.to_string().as_bytes());
            }
            Some(("connect", addr)) => {
                let addr: SocketAddr = addr.parse().unwrap();
                self.retries = 0;
                self.outbound_addr = Some(addr);
                self.outbound = Some(cx.connect(addr));
            }
            _ => {
                cx.send_line(conn, b"?");
            }
        }
    }

    fn on_data(&mut self, cx: &mut Context, conn: ConnId, data: &[u8]) {
        assert_eq!(Some(conn), self.outbound);
        let text = format!("data {}", String::from_utf8_lossy(data).trim_end());
        self.report(cx, &text);
    }

    fn on_connect_failed(&mut self, cx: &mut Context, conn: ConnId, error: io::Error) {
        assert_eq!(Some(conn), self.outbound);
        let addr = self.outbound_addr.expect("connect was asked for");
        self.report(cx, &format!("failed {:?}", error.kind()));
        self.retries += 1;
        if self.retries < 50 {
            let t = cx.set_timer(100, 1);
            self.pending.push((t, Pending::Reconnect(addr)));
        }
    }

    fn on_request(&mut self, cx: &mut Context, conn: ConnId, req: &Request<'_>) -> Response {
        match req.path {
            "/slow" => {
                let d = cx.defer(conn).expect("defer");
                let t = cx.set_timer(80, 2);
                self.pending.push((t, Pending::Http(d)));
                Response::later(d)
            }
            path => Response::text(200, format!("fast {path}")),
        }
    }

    fn on_timer(&mut self, cx: &mut Context, timer: TimerId, _token: u64) {
        let at = self
            .pending
            .iter()
            .position(|(t, _)| *t == timer)
            .expect("known timer");
        match self.pending.remove(at).1 {
            Pending::Line(d, text) => assert!(cx.reply_line(d, text.as_bytes())),
            Pending::Http(d) => assert!(cx.respond(d, Response::text(200, "slow"))),
            Pending::Reconnect(addr) => self.outbound = Some(cx.connect(addr)),
        }
    }
}

/// A server with WebSocket, text and HTTP listeners in its own thread;
/// stopped on drop.
struct Running {
    ws: SocketAddr,
    text: SocketAddr,
    http: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    stop: StopHandle,
    thread: Option<thread::JoinHandle<()>>,
}

impl Running {
    fn start() -> Running {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = Hooks {
            seen: seen.clone(),
            ..Hooks::default()
        };
        let (tx, rx) = mpsc::channel();
        let thread = thread::spawn(move || {
            let mut server = Server::new(Limits::default(), app).expect("Server::new");
            let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
            let ws = server.listen(Protocol::WebSocket, any, false).unwrap();
            let text = server.listen(Protocol::Text, any, false).unwrap();
            let http = server.listen(Protocol::Http, any, false).unwrap();
            let stop = server.stop_handle().unwrap();
            tx.send((ws, text, http, stop)).unwrap();
            server.run().expect("run");
        });
        let (ws, text, http, stop) = rx.recv_timeout(TIMEOUT).expect("server thread started");
        Running {
            ws,
            text,
            http,
            seen,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn ws_at(addr: SocketAddr, path: &str) -> Ws {
    use tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    req.headers_mut()
        .insert("user-agent", "hooks-test/1".parse().unwrap());
    let (ws, resp) = tungstenite::client(req, tcp(addr)).expect("handshake");
    assert_eq!(resp.status().as_u16(), 101);
    ws
}

#[test]
fn the_upgrade_hook_refuses_before_any_101() {
    let s = Running::start();
    let req = format!(
        "GET /refuse HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        s.ws
    );
    let (resp, closed) = exchange(s.ws, req.as_bytes());
    assert_eq!(status_of(&resp), 403, "{resp}");
    assert!(resp.contains("not on this path"), "{resp}");
    assert!(!resp.contains("101"), "{resp}");
    assert!(closed, "the refused connection stays open");
    // The server goes on accepting others.
    let mut ws = ws_at(s.ws, "/ok");
    send_text(&mut ws, "x");
}

#[test]
fn the_upgrade_hook_sees_the_head_and_binds_a_uid() {
    let s = Running::start();
    let mut ws = ws_at(s.ws, "/push?uid=alice");
    let seen = s.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0] == ("/push uid=alice Some(\"hooks-test/1\") Some(127.0.0.1)"),
        "{seen:?}"
    );
    // Bound by the hook: a push reaches it without it sending its uid.
    let mut text = TextClient::connect(s.text);
    assert_eq!(text.request("push alice"), "1");
    assert_eq!(recv_text(&mut ws), "pushed");
    assert_eq!(text.request("push bob"), "0");
}

#[test]
fn deferred_line_replies_keep_request_order() {
    let s = Running::start();
    let mut text = TextClient::connect(s.text);
    text.send_raw(b"later a\nnow b\nlater c\nnow d\n");
    let replies: Vec<String> = (0..4).map(|_| text.reply()).collect();
    assert_eq!(replies, ["a", "b", "c", "d"]);
}

#[test]
fn deferred_http_responses_keep_pipelined_order() {
    let s = Running::start();
    let mut c = tcp(s.http);
    c.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /fast HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (bytes, closed) = read_to_close(&mut c, TIMEOUT);
    let resp = String::from_utf8_lossy(&bytes);
    assert!(closed, "{resp}");
    let slow = resp.find("\r\n\r\nslow").expect("the slow response");
    let fast = resp.find("\r\n\r\nfast /fast").expect("the fast response");
    assert!(slow < fast, "responses out of order: {resp}");
}

/// A peer for outbound connections: reads one line, answers `pong`.
fn pong_peer(listener: TcpListener) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        c.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut got = Vec::new();
        let mut b = [0u8; 64];
        while !got.ends_with(b"\n") {
            let n = c.read(&mut b).unwrap();
            assert!(n > 0, "the outbound connection closed early");
            got.extend_from_slice(&b[..n]);
        }
        c.write_all(b"pong\n").unwrap();
        // Hold the connection until the test has read the reply.
        thread::sleep(Duration::from_millis(300));
        String::from_utf8(got).unwrap()
    })
}

#[test]
fn an_outbound_connection_opens_and_carries_bytes_both_ways() {
    let s = Running::start();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = pong_peer(listener);
    let mut text = TextClient::connect(s.text);
    text.send(&format!("connect {addr}"));
    assert_eq!(text.reply(), "outbound open");
    assert_eq!(text.reply(), "data pong");
    assert_eq!(peer.join().unwrap(), "hello\n");
}

#[test]
fn a_refused_outbound_connection_is_reported_and_retried_from_a_timer() {
    let s = Running::start();
    // A port with nothing listening: bind, note it, close.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut text = TextClient::connect(s.text);
    text.send(&format!("connect {addr}"));
    assert_eq!(text.reply(), "failed ConnectionRefused");
    // Something starts listening there; the next retry gets through.
    let listener = TcpListener::bind(addr).expect("rebind the port");
    let peer = pong_peer(listener);
    loop {
        match text.reply().as_str() {
            "failed ConnectionRefused" => continue,
            "outbound open" => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(text.reply(), "data pong");
    assert_eq!(peer.join().unwrap(), "hello\n");
}
