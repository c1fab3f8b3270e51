//! Helpers shared by the behaviour tests: herald as a child process on
//! ephemeral loopback ports, and small blocking clients for each protocol.
//!
//! Every read has a timeout and every wait a deadline, so a misbehaving
//! server fails a test instead of hanging it.
#![allow(dead_code)] // each test file uses its own subset

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub use tungstenite::Message;

mod raw_ws;
pub mod redis;
pub mod v1;
#[allow(unused_imports)] // each test file uses its own subset
pub use raw_ws::*;
#[allow(unused_imports)] // each test file uses its own subset
pub use redis::*;

/// A blocking WebSocket client (tungstenite over a plain TcpStream).
pub type Ws = tungstenite::WebSocket<TcpStream>;

/// How long one read may block.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// How long a polled condition may take to come true.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// The RFC 6455 sample key and the accept value it must produce.
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The herald binary under test: this build's, or `HERALD_BIN` (e.g. a
/// cross-built one), run through `HERALD_RUNNER` when set (e.g.
/// `qemu-aarch64`). `.ci/embedded.sh` runs the seed-flow tests that way.
pub fn herald_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("HERALD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_herald").to_string())
    })
}

fn herald_command() -> Command {
    match std::env::var("HERALD_RUNNER") {
        Ok(runner) if !runner.is_empty() => {
            let mut c = Command::new(runner);
            c.arg(herald_bin());
            c
        }
        _ => Command::new(herald_bin()),
    }
}

/// Polls `cond` every 20 ms until it holds; panics with `what` after [`DEADLINE`].
/// Records that a test could not run here because `needs` is missing, or
/// fails it under CI (which installs everything). The line goes straight
/// to stderr, past the test harness's capture, so that a plain `cargo test`
/// shows what did not run instead of counting it silently as passed.
pub fn skip(needs: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must have {needs} (see .ci/run)"
    );
    let test = thread::current().name().unwrap_or("a test").to_string();
    let line = format!("\nSKIPPED {test}: did not run, needs {needs}\n");
    // Not eprintln!: the harness captures that and shows it only on failure.
    let _ = io::stderr().write_all(line.as_bytes());
}

pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// True while `pid` exists and is not a zombie.
pub fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(s) => !s
            .lines()
            .any(|l| l.starts_with("State:") && l.contains("Z")),
        Err(_) => false,
    }
}

/// Sends `sig` to `pid`.
pub fn signal(pid: i32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// VmRSS of a process in bytes, from /proc/PID/status.
pub fn rss_of(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/status: {e}"));
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kb * 1024
}

// ----- the server process -----

/// A running herald child process; killed when dropped.
pub struct Herald {
    child: Child,
    pub ws: Option<SocketAddr>,
    pub text: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    stderr: Arc<Mutex<String>>,
}

impl Herald {
    /// Starts herald with all three listeners on ephemeral loopback ports,
    /// then `flags` (a later `--ws off` etc. overrides the default listener).
    pub fn start(flags: &[&str]) -> Herald {
        let mut args = vec![
            "--ws",
            "127.0.0.1:0",
            "--text",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(flags);
        Herald::spawn(&args)
    }

    /// Starts herald with exactly `args` and waits for its listening lines.
    pub fn spawn(args: &[&str]) -> Herald {
        let mut child = spawn_piped(args);
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr_pipe = child.stderr.take().expect("piped stderr");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            // The log (stderr): kept for the test, start lines sent on.
            // Keeps draining after the test stopped listening.
            let mut r = BufReader::new(stderr_pipe);
            let mut line = String::new();
            while r.read_line(&mut line).is_ok_and(|n| n > 0) {
                sink.lock().unwrap().push_str(&line);
                let _ = tx.send(line.trim_end().to_string());
                line.clear();
            }
        });
        thread::spawn(move || {
            // Nothing is expected on stdout while serving; drain it anyway.
            for line in BufReader::new(stdout).lines() {
                if line.is_err() {
                    break;
                }
            }
        });
        let mut h = Herald {
            child,
            ws: None,
            text: None,
            http: None,
            stderr,
        };
        let end = Instant::now() + DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(l) => l,
                Err(e) => {
                    thread::sleep(Duration::from_millis(100));
                    panic!(
                        "herald {args:?} did not report its listeners ({e}); stderr: {}",
                        h.stderr()
                    );
                }
            };
            if line.contains("open-file limit") {
                break;
            }
            if let Some(rest) = log_message(&line).strip_prefix("listening ") {
                let (proto, addr) = rest.split_once(' ').expect("`listening PROTO ADDR`");
                let addr: SocketAddr = addr.parse().expect("listener address");
                match proto {
                    "ws" => h.ws = Some(addr),
                    "text" => h.text = Some(addr),
                    "http" => h.http = Some(addr),
                    other => panic!("unknown listener {other}"),
                }
            }
        }
        h
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn ws_addr(&self) -> SocketAddr {
        self.ws.expect("the ws listener is off")
    }

    pub fn text_addr(&self) -> SocketAddr {
        self.text.expect("the text listener is off")
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http.expect("the http listener is off")
    }

    /// What herald wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn rss_bytes(&self) -> u64 {
        rss_of(self.pid())
    }

    /// Sends SIGTERM (graceful stop).
    pub fn terminate(&self) {
        signal(self.pid(), libc::SIGTERM);
    }

    /// Waits up to `within` for herald to exit.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + within;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return Some(st);
            }
            if Instant::now() >= end {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn text_client(&self) -> TextClient {
        TextClient::connect(self.text_addr())
    }

    /// A WebSocket client that has sent `uid` and is bound (checked through
    /// the text port, so a push sent next is sure to find it).
    pub fn bind(&self, uid: &str) -> Ws {
        let mut t = self.text_client();
        let before = t.online(uid);
        let mut ws = ws_connect(self.ws_addr());
        send_text(&mut ws, uid);
        t.wait_online(uid, before + 1);
        ws
    }

    /// One line pushed through a fresh text-port connection; returns the reply.
    pub fn push(&self, line: &str) -> String {
        self.text_client().request(line)
    }

    /// GET /stats as JSON.
    pub fn stats(&self) -> serde_json::Value {
        let r = http_request(self.http_addr(), "GET", "/stats", &[], None);
        assert_eq!(r.status, 200, "GET /stats: {}", r.body);
        r.json()
    }

    /// Asserts that good clients are still served: bind a new uid and push to it.
    pub fn assert_still_serving(&self) {
        let uid = format!("probe-{}", unique());
        let mut ws = self.bind(&uid);
        let line = format!("{{\"uid\":\"{uid}\",\"probe\":true}}");
        assert_eq!(self.push(&line), "ok", "push to a fresh client");
        assert_eq!(recv_text(&mut ws), line);
    }
}

impl Drop for Herald {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
            if self.wait_exit(Duration::from_millis(500)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// A number unique within this test process.
/// A log line's message: `2026-12-03T11:43:56.123Z INFO listening ws ...`
/// -> `listening ws ...` (the timestamp and level checked on the way).
pub fn log_message(line: &str) -> &str {
    let mut parts = line.splitn(3, ' ');
    let (Some(ts), Some(level), Some(msg)) = (parts.next(), parts.next(), parts.next()) else {
        return "";
    };
    let levels = ["ERROR", "WARN", "INFO", "DEBUG"];
    if ts.len() == 24 && ts.ends_with('Z') && levels.contains(&level) {
        msg
    } else {
        ""
    }
}

pub fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

// ----- sockets -----

/// A TCP connection with read and write timeouts.
pub fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, TIMEOUT)
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    set_timeouts(&s);
    s
}

fn set_timeouts(s: &TcpStream) {
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_write_timeout(Some(TIMEOUT)).unwrap();
    let _ = s.set_nodelay(true);
}

/// A TCP connection made with socket options std cannot set before
/// connecting: a local source address (another loopback IP, for per-IP
/// limits) and a small receive buffer (a peer whose window fills fast).
pub fn tcp_with(addr: SocketAddr, local: Option<Ipv4Addr>, rcvbuf: Option<i32>) -> TcpStream {
    use std::os::fd::FromRawFd;
    let SocketAddr::V4(to) = addr else {
        panic!("IPv4 only")
    };
    fn sockaddr(ip: Ipv4Addr, port: u16) -> libc::sockaddr_in {
        libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(ip).to_be(),
            },
            sin_zero: [0; 8],
        }
    }
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: socket has no memory-safety preconditions.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", io::Error::last_os_error());
    // SAFETY: fd is a fresh socket owned by nothing else; the stream closes it.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    if let Some(n) = rcvbuf {
        // SAFETY: the option value points to a c_int of the given size.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&n as *const i32).cast(),
                std::mem::size_of::<i32>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "SO_RCVBUF: {}", io::Error::last_os_error());
    }
    if let Some(ip) = local {
        let a = sockaddr(ip, 0);
        // SAFETY: `a` is a valid sockaddr_in of length `len`.
        let rc = unsafe { libc::bind(fd, (&a as *const libc::sockaddr_in).cast(), len) };
        assert_eq!(rc, 0, "bind {ip}: {}", io::Error::last_os_error());
    }
    let a = sockaddr(*to.ip(), to.port());
    // SAFETY: `a` is a valid sockaddr_in of length `len`.
    let rc = unsafe { libc::connect(fd, (&a as *const libc::sockaddr_in).cast(), len) };
    assert_eq!(rc, 0, "connect {addr}: {}", io::Error::last_os_error());
    set_timeouts(&stream);
    stream
}

/// Reads until the peer closes (EOF or reset) or `within` passes. Returns the
/// bytes and whether the connection ended.
pub fn read_to_close(s: &mut TcpStream, within: Duration) -> (Vec<u8>, bool) {
    let end = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (got, false);
        }
        s.set_read_timeout(Some(left.min(TIMEOUT))).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut => {
            }
            Err(_) => return (got, true),
        }
    }
}

/// Connects, writes `request` (write errors ignored: the server may already
/// have answered and closed), and reads until the server closes.
pub fn exchange(addr: SocketAddr, request: &[u8]) -> (String, bool) {
    let mut s = tcp(addr);
    let _ = s.write_all(request);
    let (bytes, closed) = read_to_close(&mut s, TIMEOUT);
    (String::from_utf8_lossy(&bytes).into_owned(), closed)
}

/// The status code of a raw HTTP response.
pub fn status_of(resp: &str) -> u16 {
    resp.strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP/1.1 response: {resp:?}"))
}

// ----- WebSocket: tungstenite -----

/// A WebSocket client on `stream`, after a successful handshake.
pub fn ws_over(stream: TcpStream, addr: SocketAddr) -> Ws {
    let (ws, resp) = tungstenite::client(format!("ws://{addr}/"), stream)
        .unwrap_or_else(|e| panic!("WebSocket handshake with {addr} failed: {e}"));
    assert_eq!(resp.status().as_u16(), 101);
    ws
}

pub fn ws_connect(addr: SocketAddr) -> Ws {
    ws_over(tcp(addr), addr)
}

pub fn send_text(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text))
        .unwrap_or_else(|e| panic!("send {text:?}: {e}"));
}

/// The next text message, skipping pings and pongs.
pub fn recv_text(ws: &mut Ws) -> String {
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => return t,
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Ok(other) => panic!("expected a text message, got {other:?}"),
            Err(e) => panic!("expected a text message, got error {e}"),
        }
    }
}

/// How a server closed a WebSocket.
#[derive(Debug)]
pub struct Closed {
    pub code: u16,
    pub reason: String,
    /// Data messages received before the close frame.
    pub before: usize,
}

/// Reads until the server's close frame, counting data messages on the way.
pub fn recv_close(ws: &mut Ws) -> Closed {
    let mut before = 0;
    loop {
        match ws.read() {
            Ok(Message::Close(Some(f))) => {
                return Closed {
                    code: u16::from(f.code),
                    reason: f.reason.into_owned(),
                    before,
                }
            }
            Ok(Message::Close(None)) => panic!("close frame without a code"),
            Ok(Message::Text(_) | Message::Binary(_)) => before += 1,
            Ok(_) => {}
            Err(e) => panic!("expected a close frame, got error {e} after {before} messages"),
        }
    }
}

/// Asserts that no data message arrives for `quiet` (pings are allowed).
pub fn assert_silent(ws: &mut Ws, quiet: Duration) {
    let end = Instant::now() + quiet;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        ws.get_mut().set_read_timeout(Some(left)).unwrap();
        match ws.read() {
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Ok(m) => panic!("expected silence, got {m:?}"),
            Err(tungstenite::Error::Io(e))
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                break
            }
            Err(e) => panic!("expected silence, got error {e}"),
        }
    }
    ws.get_mut().set_read_timeout(Some(TIMEOUT)).unwrap();
}

/// Closes cleanly: close frame, then wait for the server to end the TCP stream.
pub fn close_ws(mut ws: Ws) {
    let _ = ws.close(None);
    let end = Instant::now() + TIMEOUT;
    while Instant::now() < end {
        match ws.read() {
            Ok(_) => {}
            Err(_) => break,
        }
    }
}

// ----- the text port -----

/// A text-port client: one line out, one reply line back.
pub struct TextClient {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl TextClient {
    pub fn connect(addr: SocketAddr) -> TextClient {
        TextClient::over(tcp(addr))
    }

    pub fn over(stream: TcpStream) -> TextClient {
        let reader = BufReader::new(stream.try_clone().expect("clone stream"));
        TextClient { stream, reader }
    }

    /// Writes `line` and a newline.
    pub fn send(&mut self, line: &str) {
        let mut b = Vec::with_capacity(line.len() + 1);
        b.extend_from_slice(line.as_bytes());
        b.push(b'\n');
        self.send_raw(&b);
    }

    /// [`TextClient::send`], saying whether the write went through.
    pub fn try_send(&mut self, line: &str) -> bool {
        self.stream
            .write_all(format!("{line}\n").as_bytes())
            .is_ok()
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .expect("write to the text port");
    }

    /// The next reply line (without its newline); `None` when herald closed.
    pub fn try_reply(&mut self) -> io::Result<Option<String>> {
        let mut line = Vec::new();
        let n = self.reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(None);
        }
        assert!(
            line.ends_with(b"\n"),
            "reply cut short: {:?}",
            String::from_utf8_lossy(&line)
        );
        line.pop();
        Ok(Some(String::from_utf8(line).expect("UTF-8 reply")))
    }

    pub fn reply(&mut self) -> String {
        match self.try_reply() {
            Ok(Some(l)) => l,
            Ok(None) => panic!("herald closed the text connection instead of replying"),
            Err(e) => panic!("no reply from the text port: {e}"),
        }
    }

    pub fn request(&mut self, line: &str) -> String {
        self.send(line);
        self.reply()
    }

    /// `{"online": uid}`: how many connections `uid` has.
    pub fn online(&mut self, uid: &str) -> usize {
        let q = serde_json::json!({ "online": uid }).to_string();
        let r = self.request(&q);
        r.parse()
            .unwrap_or_else(|_| panic!("online reply is not a number: {r:?}"))
    }

    pub fn wait_online(&mut self, uid: &str, n: usize) {
        wait_until(&format!("{uid} has {n} connections"), || {
            self.online(uid) == n
        });
    }
}

// ----- HTTP -----

/// A header value in a raw response head (name case-insensitive).
pub fn header_in(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl HttpResponse {
    /// A header value (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        header_in(&self.head, name)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }
}

/// Reads one response, its body delimited by Content-Length.
pub fn read_response(r: &mut impl BufRead) -> HttpResponse {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        let n = r
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("reading an HTTP response: {e}; got {head:?}"));
        assert!(n > 0, "connection closed inside the response: {head:?}");
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let status = status_of(&head);
    let mut resp = HttpResponse {
        status,
        head,
        body: String::new(),
    };
    let len: usize = resp
        .header("content-length")
        .expect("Content-Length")
        .parse()
        .expect("numeric Content-Length");
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).expect("response body");
    resp.body = String::from_utf8(body).expect("UTF-8 body");
    resp
}

fn request_bytes(method: &str, path: &str, headers: &[&str], body: Option<&str>) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: herald\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    if let Some(b) = body {
        req.push_str(b);
    }
    req.into_bytes()
}

/// One request on a new connection (`Connection: close`).
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
    body: Option<&str>,
) -> HttpResponse {
    let mut all = vec!["Connection: close"];
    all.extend_from_slice(headers);
    let mut s = tcp(addr);
    s.write_all(&request_bytes(method, path, &all, body))
        .expect("write request");
    read_response(&mut BufReader::new(s))
}

pub fn http_get(addr: SocketAddr, path: &str) -> HttpResponse {
    http_request(addr, "GET", path, &[], None)
}

pub fn http_post(addr: SocketAddr, path: &str, body: &str) -> HttpResponse {
    http_request(addr, "POST", path, &[], Some(body))
}

/// A keep-alive HTTP connection.
pub struct HttpConn {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl HttpConn {
    pub fn connect(addr: SocketAddr) -> HttpConn {
        let stream = tcp(addr);
        let reader = BufReader::new(stream.try_clone().expect("clone stream"));
        HttpConn { stream, reader }
    }

    pub fn request(&mut self, method: &str, path: &str, body: Option<&str>) -> HttpResponse {
        self.stream
            .write_all(&request_bytes(method, path, &[], body))
            .expect("write request");
        self.read()
    }

    pub fn read(&mut self) -> HttpResponse {
        read_response(&mut self.reader)
    }
}

// ----- one-shot command runs -----

/// What a finished command printed.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Starts herald with `args`, stdin closed, stdout and stderr piped.
fn spawn_piped(args: &[&str]) -> Child {
    herald_command()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn herald")
}

/// Runs herald with `args` to completion, killing it (and failing) if it is
/// still running after [`DEADLINE`]. Output is collected by threads, so a
/// descendant that keeps a pipe open cannot hang the test either.
pub fn run_herald(args: &[&str]) -> Run {
    let child = spawn_piped(args);
    run_bounded(child, DEADLINE, &format!("herald {args:?}"))
}

/// Waits for `child` (stdout and stderr piped), killing it (and failing)
/// if it is still running after `within`. Output is collected by threads,
/// so a descendant that keeps a pipe open cannot hang the test either.
pub fn run_bounded(mut child: Child, within: Duration, what: &str) -> Run {
    let collect = |mut pipe: Box<dyn Read + Send>| {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut s = Vec::new();
            let _ = pipe.read_to_end(&mut s);
            let _ = tx.send(String::from_utf8_lossy(&s).into_owned());
        });
        rx
    };
    let out = collect(Box::new(child.stdout.take().unwrap()));
    let err = collect(Box::new(child.stderr.take().unwrap()));
    let end = Instant::now() + within;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} still running after {within:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let take = |rx: mpsc::Receiver<String>, name: &str| {
        rx.recv_timeout(TIMEOUT)
            .unwrap_or_else(|_| panic!("{what} exited but its {name} stayed open"))
    };
    Run {
        status,
        stdout: take(out, "stdout"),
        stderr: take(err, "stderr"),
    }
}

/// A file holding `text` in the temp dir, for the flags that read secrets
/// from a file.
pub fn secret_file(text: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("herald-secret-{}-{}", std::process::id(), unique()));
    std::fs::write(&p, text).unwrap();
    p
}

/// Makes closing `s` a reset (RST) instead of a FIN: an abrupt drop.
pub fn set_linger_zero(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `s` is an open socket; `l` is a valid `linger` that outlives
    // the call, and its size is passed with it.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER: {}", io::Error::last_os_error());
}
