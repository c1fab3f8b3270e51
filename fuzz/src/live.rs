//! One real herald push server, started once per fuzzing process, with a
//! bound WebSocket "witness" that must keep receiving pushes whatever the
//! fuzzed connections do.

use herald::push::{PushApp, PushConfig};
use herald::ws::frame::{encode_masked, OpCode};
use herald::{Limits, Protocol, Server};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A valid upgrade request (the RFC 6455 example key).
pub const HANDSHAKE: &[u8] = b"GET /fuzz HTTP/1.1\r\nHost: herald\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

const WITNESS_UID: &str = "fuzz-witness";
/// How long one fuzzed connection may take to answer and close.
const REPLY_WAIT: Duration = Duration::from_millis(100);
/// How long a witness check may take (a healthy server needs microseconds).
const CHECK_WAIT: Duration = Duration::from_secs(2);
/// Push to the witness every this many inputs.
const CHECK_EVERY: u64 = 64;

pub struct Live {
    /// Listener addresses in `Protocol` order: WebSocket, Text, Http.
    addrs: [SocketAddr; 3],
    thread: JoinHandle<()>,
    witness: Mutex<TcpStream>,
    pusher: Mutex<BufReader<TcpStream>>,
    inputs: AtomicU64,
}

/// Small limits, so that fuzzed inputs reach them; no idle timeout, so the
/// witness stays bound; pings every second, so they interleave with input.
fn limits() -> Limits {
    Limits {
        max_message: 64 * 1024,
        max_head: 1024,
        handshake_timeout_ms: 2_000,
        max_line: 1024,
        max_body: 4096,
        max_queued: 256 * 1024,
        ping_interval_s: 1,
        idle_timeout_s: 0,
        close_timeout_ms: 1_000,
        ..Limits::default()
    }
}

/// The server, started on first use.
pub fn live() -> &'static Live {
    static LIVE: OnceLock<Live> = OnceLock::new();
    LIVE.get_or_init(Live::start)
}

impl Live {
    fn start() -> Live {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("herald".into())
            .spawn(move || {
                let app = PushApp::new(PushConfig {
                    routing: true,
                    ..PushConfig::default()
                });
                let mut server = Server::new(limits(), app).expect("reactor");
                let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
                let addrs = [Protocol::WebSocket, Protocol::Text, Protocol::Http]
                    .map(|p| server.listen(p, any, false).expect("listen"));
                tx.send(addrs).expect("fuzz thread waits");
                let res = server.run();
                // run() only returns on a stop, which nothing here asks for.
                panic!("herald's event loop ended: {res:?}");
            })
            .expect("spawn the server thread");
        let addrs = rx.recv().expect("the server thread started");

        let mut witness = TcpStream::connect(addrs[0]).expect("connect the witness");
        witness.write_all(HANDSHAKE).expect("witness handshake");
        let mut head = Vec::new();
        let mut byte = [0u8];
        while !head.ends_with(b"\r\n\r\n") {
            witness
                .read_exact(&mut byte)
                .expect("witness reads the 101");
            head.push(byte[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101 "),
            "{}",
            String::from_utf8_lossy(&head)
        );
        let mut bind = Vec::new();
        encode_masked(
            true,
            OpCode::Text,
            WITNESS_UID.as_bytes(),
            [1, 2, 3, 4],
            &mut bind,
        );
        witness.write_all(&bind).expect("witness binds its uid");
        witness.set_nonblocking(true).expect("nonblocking witness");

        let pusher = TcpStream::connect(addrs[1]).expect("connect the pusher");
        pusher.set_read_timeout(Some(CHECK_WAIT)).expect("timeout");
        Live {
            addrs,
            thread,
            witness: Mutex::new(witness),
            pusher: Mutex::new(BufReader::new(pusher)),
            inputs: AtomicU64::new(0),
        }
    }

    /// Sends `bytes` on a new connection to listener `which` (0 WebSocket,
    /// 1 text port, 2 HTTP), preceded by a valid upgrade request if
    /// `upgrade`, half-closes, and returns what the server answered before
    /// closing (or within [`REPLY_WAIT`]).
    pub fn exchange(&self, which: u8, upgrade: bool, bytes: &[u8]) -> Vec<u8> {
        let addr = self.addrs[which as usize % 3];
        let mut s = TcpStream::connect(addr).expect("the server accepts");
        let _ = s.set_nodelay(true);
        let _ = s.set_write_timeout(Some(REPLY_WAIT));
        // The server may close first: write errors are part of the game.
        if upgrade {
            let _ = s.write_all(HANDSHAKE);
        }
        let _ = s.write_all(bytes);
        let _ = s.shutdown(Shutdown::Write);
        let deadline = Instant::now() + REPLY_WAIT;
        let mut reply = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
                break;
            }
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => reply.extend_from_slice(&buf[..n]),
            }
        }
        reply
    }

    /// The server thread is alive; every [`CHECK_EVERY`] inputs, a push
    /// through the text port is answered `ok` and reaches the witness.
    pub fn check(&self) {
        assert!(!self.thread.is_finished(), "herald's server thread is gone");
        let n = self.inputs.fetch_add(1, Ordering::Relaxed);
        let mut witness = self.witness.lock().expect("witness");
        let mut seen = drain(&mut witness);
        if !n.is_multiple_of(CHECK_EVERY) {
            return;
        }
        let marker = format!("\"check\":{n}}}");
        let mut pusher = self.pusher.lock().expect("pusher");
        let line = format!("{{\"uid\":\"{WITNESS_UID}\",{marker}\n");
        pusher.get_mut().write_all(line.as_bytes()).expect("push");
        let mut reply = String::new();
        let _ = pusher.read_line(&mut reply);
        assert_eq!(reply, "ok\n", "push #{n} to the witness answered {reply:?}");
        let deadline = Instant::now() + CHECK_WAIT;
        while !contains(&seen, marker.as_bytes()) {
            assert!(
                Instant::now() < deadline,
                "push #{n} never reached the witness; it got {:?}",
                String::from_utf8_lossy(&seen[seen.len().saturating_sub(200)..])
            );
            std::thread::sleep(Duration::from_millis(1));
            seen.extend(drain(&mut witness));
        }
    }
}

/// Everything the witness has received so far (pings, routed messages).
fn drain(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => panic!("herald closed the witness connection"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return got,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("witness read failed: {e}"),
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
