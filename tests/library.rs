//! herald as a library: a custom App on `Server`, driven over real sockets,
//! stopped from another thread with a `StopHandle`.

mod common;

use common::*;
use herald::push::{PushApp, PushConfig};
use herald::ws::CloseCode;
use herald::{App, ConnId, Context, Limits, Message, Protocol, Server, StopHandle};
use std::io;
use std::net::SocketAddr;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use tungstenite::Message as WsMessage;

/// What the callbacks saw.
#[derive(Default, Debug)]
struct Log {
    opened: Vec<ConnId>,
    /// Each closed connection with the uid it still had in `on_close`.
    closed: Vec<(ConnId, Option<String>)>,
    messages: usize,
}

/// A small relay: the first WebSocket text binds a uid; then
/// `to UID MSG`, `all MSG`, `count UID`, `close REASON`, anything else echoes.
/// Text-port lines `UID MSG` push MSG to UID and answer how many got it.
struct Relay {
    log: Arc<Mutex<Log>>,
}

impl App for Relay {
    fn on_open(&mut self, cx: &mut Context, conn: ConnId) {
        self.log.lock().unwrap().opened.push(conn);
        match cx.protocol(conn) {
            Some(Protocol::WebSocket) => {
                cx.send_text(conn, "hello");
            }
            Some(Protocol::Text) => {
                cx.send_line(conn, b"hello");
            }
            _ => {}
        }
    }

    fn on_message(&mut self, cx: &mut Context, conn: ConnId, msg: Message<'_>) {
        self.log.lock().unwrap().messages += 1;
        match msg {
            Message::Text(uid) if cx.uid(conn).is_none() => {
                assert!(cx.bind_uid(conn, uid));
                let reply = format!("bound {}", cx.uid(conn).unwrap_or("?"));
                cx.send_text(conn, &reply);
            }
            Message::Text(t) => {
                let reply = match t.split_once(' ') {
                    Some(("to", rest)) => {
                        let (uid, m) = rest.split_once(' ').unwrap_or((rest, ""));
                        format!("sent {}", cx.send_to_uid(uid, m))
                    }
                    Some(("all", m)) => format!("sent {}", cx.broadcast(m)),
                    Some(("count", uid)) => cx.connections_of(uid).to_string(),
                    Some(("close", reason)) => {
                        cx.close(conn, CloseCode(4000), reason);
                        return;
                    }
                    _ => t.to_string(),
                };
                cx.send_text(conn, &reply);
            }
            Message::Binary(b) => {
                cx.send_binary(conn, b);
            }
            Message::Line(line) => {
                let line = String::from_utf8_lossy(line);
                let (uid, m) = line.split_once(' ').unwrap_or((&line, ""));
                let n = cx.send_to_uid(uid, m);
                cx.send_line(conn, n.to_string().as_bytes());
            }
        }
    }

    fn on_close(&mut self, cx: &mut Context, conn: ConnId) {
        let uid = cx.uid(conn).map(str::to_owned);
        self.log.lock().unwrap().closed.push((conn, uid));
    }
}

/// A server running in its own thread; stopped (and waited for) on drop.
struct Running {
    ws: SocketAddr,
    text: SocketAddr,
    stop: StopHandle,
    done: mpsc::Receiver<io::Result<()>>,
    finished: bool,
}

impl Running {
    fn start<A: App + Send + 'static>(limits: Limits, app: A) -> Running {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        thread::spawn(move || {
            let mut server = Server::new(limits, app).expect("Server::new");
            let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
            let ws = server.listen(Protocol::WebSocket, any, false).unwrap();
            let text = server.listen(Protocol::Text, any, false).unwrap();
            assert_eq!(
                server.listeners(),
                vec![(Protocol::WebSocket, ws), (Protocol::Text, text)]
            );
            let stop = server.stop_handle().expect("stop_handle");
            ready_tx.send((ws, text, stop)).unwrap();
            let _ = done_tx.send(server.run());
        });
        let (ws, text, stop) = ready_rx
            .recv_timeout(TIMEOUT)
            .expect("the server thread did not start");
        Running {
            ws,
            text,
            stop,
            done,
            finished: false,
        }
    }

    /// Waits for `run()` to return after a stop.
    fn wait(&mut self) -> io::Result<()> {
        let res = self
            .done
            .recv_timeout(DEADLINE)
            .expect("run() did not return after stop()");
        self.finished = true;
        res
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Never signal a finished server: its descriptor number may belong
        // to another test's socket by now.
        if !self.finished && self.done.try_recv().is_err() {
            self.stop.stop();
            let _ = self.done.recv_timeout(DEADLINE);
        }
    }
}

fn relay() -> (Relay, Arc<Mutex<Log>>) {
    let log = Arc::new(Mutex::new(Log::default()));
    (Relay { log: log.clone() }, log)
}

fn join(addr: SocketAddr, uid: &str) -> Ws {
    let mut ws = ws_connect(addr);
    assert_eq!(recv_text(&mut ws), "hello", "on_open greets");
    send_text(&mut ws, uid);
    assert_eq!(recv_text(&mut ws), format!("bound {uid}"));
    ws
}

#[test]
fn a_custom_app_sees_every_callback_and_routes_by_uid() {
    let limits = Limits {
        shutdown_grace_ms: 3000,
        ..Limits::default()
    };
    let (app, log) = relay();
    let mut srv = Running::start(limits, app);
    let mut alice = join(srv.ws, "alice");
    let mut bob1 = join(srv.ws, "bob");
    let mut bob2 = join(srv.ws, "bob");

    send_text(&mut alice, "count bob");
    assert_eq!(recv_text(&mut alice), "2");

    send_text(&mut alice, "to bob hi bob");
    assert_eq!(recv_text(&mut bob1), "hi bob");
    assert_eq!(recv_text(&mut bob2), "hi bob");
    assert_eq!(recv_text(&mut alice), "sent 2");

    send_text(&mut alice, "to nobody hi");
    assert_eq!(recv_text(&mut alice), "sent 0");

    send_text(&mut bob1, "all hi all");
    assert_eq!(recv_text(&mut alice), "hi all");
    assert_eq!(recv_text(&mut bob2), "hi all");
    assert_eq!(recv_text(&mut bob1), "hi all");
    assert_eq!(recv_text(&mut bob1), "sent 3");

    send_text(&mut alice, "echo-me");
    assert_eq!(recv_text(&mut alice), "echo-me");
    let bytes = vec![0u8, 1, 2, 255];
    alice.send(WsMessage::Binary(bytes.clone())).unwrap();
    assert_eq!(alice.read().unwrap(), WsMessage::Binary(bytes));

    // The text port reaches the same uids.
    let mut backend = TextClient::connect(srv.text);
    assert_eq!(backend.reply(), "hello");
    assert_eq!(backend.request("alice from the backend"), "1");
    assert_eq!(recv_text(&mut alice), "from the backend");

    // An app-initiated close: the client gets the code and reason, and
    // on_close still sees the uid.
    send_text(&mut alice, "close see you");
    let c = recv_close(&mut alice);
    assert_eq!((c.code, c.reason.as_str()), (4000, "see you"));
    drop(alice);
    wait_until("on_close ran for alice", || {
        log.lock().unwrap().closed.len() == 1
    });
    assert_eq!(
        log.lock().unwrap().closed[0].1.as_deref(),
        Some("alice"),
        "on_close sees the uid"
    );
    send_text(&mut bob1, "count alice");
    assert_eq!(recv_text(&mut bob1), "0");
    assert_eq!(backend.request("alice anyone?"), "0");

    // Stop from this thread: clients get 1001, run() returns Ok.
    srv.stop.stop();
    for ws in [&mut bob1, &mut bob2] {
        assert_eq!(recv_close(ws).code, 1001);
    }
    assert_eq!(backend.try_reply().unwrap(), None, "text port closed");
    drop((bob1, bob2, backend));
    srv.wait().expect("run() returns Ok after stop()");

    let log = log.lock().unwrap();
    assert_eq!(log.opened.len(), 4, "{log:?}");
    assert_eq!(log.closed.len(), 4, "on_close for every on_open: {log:?}");
    let mut closed: Vec<_> = log.closed.iter().map(|(c, _)| *c).collect();
    let mut opened = log.opened.clone();
    closed.sort_by_key(|c| c.as_u64());
    opened.sort_by_key(|c| c.as_u64());
    assert_eq!(opened, closed);
    assert_eq!(log.messages, 13, "{log:?}");
}

#[test]
fn conn_ids_are_never_reused() {
    let (app, log) = relay();
    let mut srv = Running::start(Limits::default(), app);
    for i in 0..5 {
        let ws = join(srv.ws, &format!("u{i}"));
        close_ws(ws);
        wait_until("on_close ran", || log.lock().unwrap().closed.len() == i + 1);
    }
    let log = log.lock().unwrap();
    let mut ids: Vec<u64> = log.opened.iter().map(|c| c.as_u64()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 5, "a ConnId was reused: {:?}", log.opened);
    drop(log);
    srv.stop.stop();
    srv.wait().unwrap();
}

#[test]
fn limits_given_to_the_library_are_enforced() {
    let limits = Limits {
        max_message: 64,
        ..Limits::default()
    };
    let (app, _log) = relay();
    let srv = Running::start(limits, app);
    let mut ws = join(srv.ws, "small");
    send_text(&mut ws, &"x".repeat(64));
    assert_eq!(recv_text(&mut ws), "x".repeat(64));
    send_text(&mut ws, &"x".repeat(65));
    assert_eq!(recv_close(&mut ws).code, 1009);
}

#[test]
fn listen_reports_an_address_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (app, _log) = relay();
    let mut server = Server::new(Limits::default(), app).unwrap();
    let err = server
        .listen(Protocol::WebSocket, taken.local_addr().unwrap(), false)
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
}

#[test]
fn the_push_app_runs_on_the_library_api() {
    let app = PushApp::new(PushConfig {
        routing: true,
        ..PushConfig::default()
    });
    let mut srv = Running::start(Limits::default(), app);
    let mut a = ws_connect(srv.ws);
    send_text(&mut a, "a");
    let mut b = ws_connect(srv.ws);
    send_text(&mut b, "b");
    let mut t = TextClient::connect(srv.text);
    t.wait_online("a", 1);
    t.wait_online("b", 1);
    assert_eq!(t.request(r#"{"uid":"a","n":1}"#), "ok");
    assert_eq!(recv_text(&mut a), r#"{"uid":"a","n":1}"#);
    send_text(&mut a, "b:hi");
    assert_eq!(recv_text(&mut b), "hi");
    srv.stop.stop();
    assert_eq!(recv_close(&mut a).code, 1001);
    assert_eq!(recv_close(&mut b).code, 1001);
    drop((a, b, t));
    srv.wait().unwrap();
}

#[test]
fn a_server_refuses_limits_the_command_line_would_refuse() {
    struct Nothing;
    impl herald::App for Nothing {
        fn on_message(
            &mut self,
            _: &mut herald::Context,
            _: herald::ConnId,
            _: herald::Message<'_>,
        ) {
        }
    }
    let limits = herald::Limits {
        max_message: 0,
        ..herald::Limits::default()
    };
    let err = herald::Server::new(limits, Nothing).err().expect("refused");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("max_message"), "{err}");
}
