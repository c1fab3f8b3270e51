//! Many WebSocket clients and one text-port connection over one epoll: the
//! load side of every mode.
//!
//! The server's bytes (the 101 response, unmasked frames, reply lines) are
//! parsed with herald's own frame and line code; the modes only see
//! [`Event`]s and decide what to send next.

use crate::net;
use base64::Engine as _;
use herald::line::{self, Line, LineState};
use herald::sys::{self, Epoll, Ready, EV_CLOSED, EV_IN, EV_OUT};
use herald::ws::frame::{self, Header, OpCode};
use herald::ws::handshake;
use std::borrow::Cow;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::{IntoRawFd, RawFd};
use std::time::{Duration, Instant};

const TEXT_TOKEN: u64 = u64::MAX;
/// One read takes at most this much; level-triggered epoll brings the rest.
const READ_BUF: usize = 128 * 1024;
/// Reads per readiness report before moving on to the next connection.
const READS_PER_EVENT: usize = 4;
const MAX_HEAD: usize = 16 * 1024;
const MAX_FRAME: u64 = 16 << 20;
const MAX_REPLY_LINE: usize = 1 << 20;

/// Where a client is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// A slot without a socket (never connected, or finished).
    Idle,
    Connecting,
    /// Request sent, waiting for the 101 response.
    Handshake,
    Open,
    /// We sent a close frame and wait for the server's close frame, then for
    /// its end of stream (the server closes TCP first, RFC 6455 section 7.1.1,
    /// so that TIME_WAIT stays on its side and the client's ports are not
    /// used up by churn).
    Closing,
}

/// How a connection ended.
#[derive(Debug)]
pub struct End {
    /// True when we asked for the close (a completed close handshake).
    pub requested: bool,
    pub why: Cow<'static, str>,
}

/// What the server sent, as seen by the modes.
pub enum Event<'a> {
    /// Client `idx` finished its opening handshake.
    Open(usize),
    /// A complete text or binary message for client `idx`.
    Message(usize, &'a [u8]),
    /// Client `idx` is gone (its socket is closed; the slot is Idle again).
    Closed(usize, End),
    /// One reply line from the text port (without its newline).
    Line(&'a [u8]),
    /// The text port connection ended.
    TextClosed(Cow<'static, str>),
}

pub struct Client {
    fd: RawFd,
    pub state: State,
    /// Bytes not yet accepted by the kernel.
    out: Vec<u8>,
    /// Unparsed bytes (an incomplete response head or frame).
    inbuf: Vec<u8>,
    /// A fragmented message under way (servers here never fragment, but may).
    frag: Option<Vec<u8>>,
    polled_out: bool,
    rng: u32,
    key: [u8; 24],
    /// When we sent our close frame.
    closing_since: Option<Instant>,
    /// The server's close frame arrived (we wait for its end of stream).
    close_seen: bool,
}

impl Client {
    fn new(idx: usize) -> Client {
        Client {
            fd: -1,
            state: State::Idle,
            out: Vec::new(),
            inbuf: Vec::new(),
            frag: None,
            polled_out: false,
            rng: (idx as u32).wrapping_mul(2_654_435_761) | 1,
            key: [0; 24],
            closing_since: None,
            close_seen: false,
        }
    }

    fn next_rand(&mut self) -> u32 {
        // xorshift32: masks and keys only need to vary, not to be secret.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng = x;
        x
    }

    fn mask(&mut self) -> [u8; 4] {
        self.next_rand().to_ne_bytes()
    }

    fn push_frame(&mut self, opcode: OpCode, payload: &[u8]) {
        let mask = self.mask();
        frame::encode_masked(true, opcode, payload, mask, &mut self.out);
    }
}

struct TextPort {
    fd: RawFd,
    out: Vec<u8>,
    /// How much of `out` the kernel already took.
    sent: usize,
    partial: Option<Box<LineState>>,
    polled_out: bool,
}

/// A set of WebSocket clients towards one server, plus an optional text-port
/// connection to the same server, all driven by [`Fleet::poll`].
pub struct Fleet {
    ep: Epoll,
    ready: Vec<Ready>,
    clients: Vec<Client>,
    dst: SocketAddrV4,
    sources: Vec<Ipv4Addr>,
    next_source: usize,
    request_head: String,
    text: Option<TextPort>,
    buf: Vec<u8>,
    /// Clients in state Open.
    open: usize,
}

impl Fleet {
    /// `sources` empty: the kernel picks the source address of each connect.
    pub fn new(dst: SocketAddrV4, sources: Vec<Ipv4Addr>) -> io::Result<Fleet> {
        Ok(Fleet {
            ep: Epoll::new()?,
            ready: Vec::with_capacity(256),
            clients: Vec::new(),
            dst,
            sources,
            next_source: 0,
            request_head: format!(
                "GET / HTTP/1.1\r\nHost: {dst}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
            ),
            text: None,
            buf: vec![0; READ_BUF],
            open: 0,
        })
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn open_count(&self) -> usize {
        self.open
    }

    /// Adds an unconnected slot and returns its index.
    pub fn add_client(&mut self) -> usize {
        self.clients.push(Client::new(self.clients.len()));
        self.clients.len() - 1
    }

    /// Starts connecting slot `idx` (which must be Idle).
    pub fn connect(&mut self, idx: usize) -> Result<(), String> {
        debug_assert_eq!(self.clients[idx].state, State::Idle);
        let src = if self.sources.is_empty() {
            None
        } else {
            self.next_source = (self.next_source + 1) % self.sources.len();
            Some(self.sources[self.next_source])
        };
        let fd = net::connect_start(self.dst, src).map_err(|e| {
            let from = src.map_or("the default source".to_string(), |s| s.to_string());
            if net::is_port_exhaustion(&e) {
                format!(
                    "connect to {} from {from}: no ephemeral port left ({e}); \
                     spread over more source addresses with --sources K",
                    self.dst
                )
            } else if sys::is_fd_exhaustion(&e) {
                format!("connect: out of file descriptors ({e}); lower the connection count")
            } else {
                format!("connect to {} from {from}: {e}", self.dst)
            }
        })?;
        if let Err(e) = self.ep.add(fd, idx as u64, true, true) {
            sys::close(fd);
            return Err(format!("epoll add: {e}"));
        }
        let c = &mut self.clients[idx];
        c.fd = fd;
        c.state = State::Connecting;
        c.polled_out = true;
        c.out.clear();
        c.inbuf.clear();
        c.frag = None;
        Ok(())
    }

    /// Sends a text message from client `idx` (queued if the socket is full).
    pub fn send_text(&mut self, idx: usize, payload: &[u8]) {
        let c = &mut self.clients[idx];
        if c.state != State::Open {
            return;
        }
        c.push_frame(OpCode::Text, payload);
        self.flush_client(idx);
    }

    /// Sends `payloads` as text messages from client `idx` in as few writes
    /// as the kernel allows (back-to-back, as a fast sender would).
    pub fn send_texts(&mut self, idx: usize, payloads: &[Vec<u8>]) {
        let c = &mut self.clients[idx];
        if c.state != State::Open {
            return;
        }
        for p in payloads {
            c.push_frame(OpCode::Text, p);
        }
        self.flush_client(idx);
    }

    /// Starts the closing handshake of client `idx` (status 1000).
    pub fn send_close(&mut self, idx: usize) {
        let c = &mut self.clients[idx];
        if c.state != State::Open {
            return;
        }
        c.push_frame(OpCode::Close, &1000u16.to_be_bytes());
        c.state = State::Closing;
        c.closing_since = Some(Instant::now());
        c.close_seen = false;
        self.open -= 1;
        self.flush_client(idx);
    }

    /// Closes the socket of client `idx` at once, without an event.
    pub fn abort(&mut self, idx: usize) {
        let c = &mut self.clients[idx];
        if c.state == State::Idle {
            return;
        }
        if c.state == State::Open {
            self.open -= 1;
        }
        sys::close(c.fd);
        c.fd = -1;
        c.state = State::Idle;
        c.out = Vec::new();
        c.inbuf = Vec::new();
        c.frag = None;
    }

    /// Ends clients whose closing handshake has taken longer than `max`
    /// (no close frame, or no end of stream after it) as failures.
    pub fn expire_closing(&mut self, max: Duration, on: &mut dyn FnMut(Event<'_>)) {
        for idx in 0..self.clients.len() {
            let c = &self.clients[idx];
            let late =
                c.state == State::Closing && c.closing_since.is_some_and(|t| t.elapsed() > max);
            if late {
                let why = if c.close_seen {
                    "the server did not close the TCP connection after the close handshake"
                } else {
                    "the server did not answer the close frame"
                };
                self.finish(
                    idx,
                    End {
                        requested: false,
                        why: format!("{why} within {} ms", max.as_millis()).into(),
                    },
                    on,
                );
            }
        }
    }

    /// Opens the text-port connection (blocking connect, then non-blocking).
    pub fn connect_text(&mut self, addr: SocketAddrV4) -> Result<(), String> {
        let s = TcpStream::connect_timeout(&addr.into(), Duration::from_secs(5))
            .map_err(|e| format!("cannot connect to the text port {addr}: {e}"))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        let fd = s.into_raw_fd();
        if let Err(e) = self.ep.add(fd, TEXT_TOKEN, true, false) {
            sys::close(fd);
            return Err(format!("epoll add: {e}"));
        }
        self.text = Some(TextPort {
            fd,
            out: Vec::new(),
            sent: 0,
            partial: None,
            polled_out: false,
        });
        Ok(())
    }

    /// Queues bytes (whole lines) for the text port and writes what the
    /// kernel takes now.
    pub fn text_send(&mut self, bytes: &[u8]) {
        let Some(t) = self.text.as_mut() else { return };
        if t.sent > 0 && t.sent >= t.out.len() / 2 {
            t.out.drain(..t.sent);
            t.sent = 0;
        }
        t.out.extend_from_slice(bytes);
        self.flush_text();
    }

    /// Waits up to `timeout_ms` for readiness, handles one batch of it and
    /// reports what arrived to `on`.
    pub fn poll(&mut self, timeout_ms: i32, on: &mut dyn FnMut(Event<'_>)) -> Result<(), String> {
        let mut ready = std::mem::take(&mut self.ready);
        self.ep
            .wait(&mut ready, timeout_ms)
            .map_err(|e| format!("epoll_wait: {e}"))?;
        for r in &ready {
            if r.token == TEXT_TOKEN {
                self.text_ready(r.events, on);
            } else {
                self.client_ready(r.token as usize, r.events, on);
            }
        }
        self.ready = ready;
        Ok(())
    }

    /// Opens clients `first..first + count` with at most `window` handshakes
    /// in flight, and sends each its uid as soon as it is open. Returns when
    /// all are open and their uids written, or on the first failure.
    pub fn open_bound(
        &mut self,
        first: usize,
        count: usize,
        uid: &dyn Fn(usize) -> String,
        window: usize,
        deadline: Instant,
    ) -> Result<(), String> {
        while self.clients.len() < first + count {
            self.add_client();
        }
        let (mut next, mut in_flight, mut done) = (first, 0usize, 0usize);
        let mut opened = Vec::new();
        let mut failure: Option<String> = None;
        while done < count {
            while in_flight < window.max(1) && next < first + count {
                self.connect(next)?;
                next += 1;
                in_flight += 1;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "timed out opening connections: {done} of {count} open, {in_flight} in progress"
                ));
            }
            self.poll(5, &mut |ev| match ev {
                Event::Open(i) => opened.push(i),
                Event::Closed(i, end) if failure.is_none() => {
                    failure = Some(format!(
                        "connection {i} ended while opening {count} connections \
                         ({done} open so far): {}",
                        end.why
                    ))
                }
                _ => {}
            })?;
            if let Some(f) = failure {
                return Err(f);
            }
            for i in opened.drain(..) {
                self.send_text(i, uid(i).as_bytes());
                in_flight -= 1;
                done += 1;
            }
        }
        Ok(())
    }

    /// Polls once, for at most 10 ms and not past `deadline`; returns false
    /// without polling once `deadline` has passed. Modes loop on it:
    /// `while !done { if !fleet.poll_before(deadline, ..)? { break } }`.
    pub fn poll_before(
        &mut self,
        deadline: Instant,
        on: &mut dyn FnMut(Event<'_>),
    ) -> Result<bool, String> {
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        let ms = (deadline - now).as_millis().clamp(1, 10) as i32;
        self.poll(ms, on)?;
        Ok(true)
    }

    /// Keeps the connections served (pongs, replies) for `d`, reporting
    /// events to `on`.
    pub fn pump(&mut self, d: Duration, on: &mut dyn FnMut(Event<'_>)) -> Result<(), String> {
        let deadline = Instant::now() + d;
        while self.poll_before(deadline, on)? {}
        Ok(())
    }

    fn set_interest(&mut self, idx: usize) {
        let c = &mut self.clients[idx];
        let want = !c.out.is_empty() || c.state == State::Connecting;
        if want != c.polled_out && self.ep.modify(c.fd, idx as u64, true, want).is_ok() {
            c.polled_out = want;
        }
    }

    /// Writes what the kernel takes; a write error ends the client at the
    /// next readiness report (EPOLLERR/EPOLLHUP), so it is not reported here.
    fn flush_client(&mut self, idx: usize) {
        let c = &mut self.clients[idx];
        if c.state == State::Connecting || c.state == State::Idle {
            return;
        }
        let mut written = 0;
        while written < c.out.len() {
            match sys::write(c.fd, &c.out[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if written == c.out.len() {
            c.out.clear();
        } else {
            c.out.drain(..written);
        }
        self.set_interest(idx);
    }

    fn finish(&mut self, idx: usize, end: End, on: &mut dyn FnMut(Event<'_>)) {
        self.abort(idx);
        on(Event::Closed(idx, end));
    }

    fn fail(&mut self, idx: usize, why: String, on: &mut dyn FnMut(Event<'_>)) {
        let requested = self.clients[idx].state == State::Closing;
        self.finish(
            idx,
            End {
                requested,
                why: why.into(),
            },
            on,
        );
    }

    fn client_ready(&mut self, idx: usize, events: u32, on: &mut dyn FnMut(Event<'_>)) {
        let Some(c) = self.clients.get_mut(idx) else {
            return;
        };
        match c.state {
            State::Idle => return,
            State::Connecting => {
                if events & (EV_OUT | EV_CLOSED) == 0 {
                    return;
                }
                if let Err(e) = net::take_error(c.fd) {
                    let dst = self.dst;
                    return self.fail(idx, format!("connect to {dst}: {e}"), on);
                }
                let mut raw = [0u8; 16];
                for chunk in raw.chunks_mut(4) {
                    chunk.copy_from_slice(&c.next_rand().to_ne_bytes());
                }
                let n = base64::engine::general_purpose::STANDARD
                    .encode_slice(raw, &mut c.key)
                    .unwrap_or(0);
                debug_assert_eq!(n, 24);
                c.out.extend_from_slice(self.request_head.as_bytes());
                c.out.extend_from_slice(&c.key);
                c.out.extend_from_slice(b"\r\n\r\n");
                c.state = State::Handshake;
                self.flush_client(idx);
            }
            _ => {
                if events & EV_OUT != 0 {
                    self.flush_client(idx);
                }
            }
        }
        if events & (EV_IN | EV_CLOSED) != 0 {
            self.read_client(idx, on);
        }
    }

    fn read_client(&mut self, idx: usize, on: &mut dyn FnMut(Event<'_>)) {
        for _ in 0..READS_PER_EVENT {
            let fd = self.clients[idx].fd;
            let n = match sys::read(fd, &mut self.buf) {
                Ok(0) => {
                    let c = &self.clients[idx];
                    let end = if c.state == State::Closing {
                        End {
                            requested: true,
                            why: "closed".into(),
                        }
                    } else {
                        End {
                            requested: false,
                            why: format!(
                                "the server closed the connection (state {:?}, no close frame)",
                                c.state
                            )
                            .into(),
                        }
                    };
                    return self.finish(idx, end, on);
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.fail(idx, format!("read: {e}"), on),
            };
            let was_open = self.clients[idx].state == State::Open;
            let c = &mut self.clients[idx];
            let outcome = if c.inbuf.is_empty() {
                let (used, end) = process(c, idx, &self.buf[..n], on);
                if end.is_none() {
                    c.inbuf.extend_from_slice(&self.buf[used..n]);
                }
                end
            } else {
                c.inbuf.extend_from_slice(&self.buf[..n]);
                let data = std::mem::take(&mut c.inbuf);
                let (used, end) = process(c, idx, &data, on);
                c.inbuf = data;
                c.inbuf.drain(..used);
                end
            };
            let now_open = self.clients[idx].state == State::Open;
            match (was_open, now_open) {
                (false, true) => self.open += 1,
                (true, false) => self.open -= 1,
                _ => {}
            }
            if !self.clients[idx].out.is_empty() {
                self.flush_client(idx);
            }
            if let Some(end) = outcome {
                return self.finish(idx, end, on);
            }
            if n < self.buf.len() {
                return;
            }
        }
    }

    fn flush_text(&mut self) {
        let Some(t) = self.text.as_mut() else { return };
        while t.sent < t.out.len() {
            match sys::write(t.fd, &t.out[t.sent..]) {
                Ok(n) => t.sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if t.sent == t.out.len() {
            t.out.clear();
            t.sent = 0;
        }
        let want = t.sent < t.out.len();
        if want != t.polled_out && self.ep.modify(t.fd, TEXT_TOKEN, true, want).is_ok() {
            t.polled_out = want;
        }
    }

    fn text_ready(&mut self, events: u32, on: &mut dyn FnMut(Event<'_>)) {
        if events & EV_OUT != 0 {
            self.flush_text();
        }
        if events & (EV_IN | EV_CLOSED) == 0 {
            return;
        }
        for _ in 0..READS_PER_EVENT {
            let Some(t) = self.text.as_mut() else { return };
            let ended = match sys::read(t.fd, &mut self.buf) {
                Ok(0) => Some(Cow::Borrowed("the server closed the text port")),
                Ok(n) => {
                    line::split(&mut t.partial, &self.buf[..n], MAX_REPLY_LINE, &mut |l| {
                        if let Line::Complete(b) = l {
                            on(Event::Line(b));
                        }
                        true
                    });
                    if n < self.buf.len() {
                        return;
                    }
                    None
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => None,
                Err(e) => Some(Cow::Owned(format!("text port read: {e}"))),
            };
            if let Some(why) = ended {
                sys::close(t.fd);
                self.text = None;
                on(Event::TextClosed(why));
                return;
            }
        }
    }
}

impl Drop for Fleet {
    /// Resets the connections left at the end of a mode: a reset leaves no
    /// TIME_WAIT behind, so the next run (often seconds later, towards
    /// another server) finds the ephemeral ports free.
    fn drop(&mut self) {
        for c in &self.clients {
            if c.state != State::Idle {
                sys::set_linger_zero(c.fd);
                sys::close(c.fd);
            }
        }
        if let Some(t) = &self.text {
            sys::close(t.fd);
        }
    }
}

/// Checks the server's response head (without its final blank line).
fn check_response(head: &[u8], key: &[u8; 24]) -> Result<(), Cow<'static, str>> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap_or("");
    let mut parts = status.split_ascii_whitespace();
    let (version, code) = (parts.next(), parts.next());
    if !matches!(version, Some("HTTP/1.1")) || code != Some("101") {
        let shown: String = status.chars().take(120).collect();
        return Err(format!("handshake refused: {shown:?}").into());
    }
    let accept = lines.find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("sec-websocket-accept")
            .then(|| value.trim())
    });
    let expected = handshake::accept_key(key);
    match accept {
        Some(a) if a.as_bytes() == expected => Ok(()),
        Some(a) => Err(format!("wrong Sec-WebSocket-Accept {a:?}").into()),
        None => Err("101 response without Sec-WebSocket-Accept".into()),
    }
}

/// Parses what client `idx` received. Returns the bytes consumed and, when
/// the connection must end, why. Replies (pong, close) go to `c.out`.
fn process(
    c: &mut Client,
    idx: usize,
    data: &[u8],
    on: &mut dyn FnMut(Event<'_>),
) -> (usize, Option<End>) {
    let fail = |why: Cow<'static, str>| End {
        requested: false,
        why,
    };
    let mut pos = 0;
    if c.state == State::Handshake {
        let Some(end) = memchr::memmem::find(data, b"\r\n\r\n") else {
            if data.len() > MAX_HEAD {
                return (0, Some(fail("handshake response head too long".into())));
            }
            return (0, None);
        };
        if let Err(why) = check_response(&data[..end], &c.key) {
            return (0, Some(fail(why)));
        }
        c.state = State::Open;
        pos = end + 4;
        on(Event::Open(idx));
    }
    loop {
        let rest = &data[pos..];
        let (h, hl) = match Header::parse(rest, false, MAX_FRAME) {
            Ok(Some(x)) => x,
            Ok(None) => return (pos, None),
            Err(e) => {
                let why = format!("bad frame from the server: {}", e.reason());
                return (pos, Some(fail(why.into())));
            }
        };
        if h.mask.is_some() {
            return (pos, Some(fail("the server sent a masked frame".into())));
        }
        let len = h.len as usize;
        if rest.len() < hl + len {
            return (pos, None);
        }
        let payload = &rest[hl..hl + len];
        pos += hl + len;
        match h.opcode {
            OpCode::Text | OpCode::Binary if h.fin => on(Event::Message(idx, payload)),
            OpCode::Text | OpCode::Binary => c.frag = Some(payload.to_vec()),
            OpCode::Continuation => {
                let Some(f) = c.frag.as_mut() else {
                    return (pos, Some(fail("continuation without a message".into())));
                };
                f.extend_from_slice(payload);
                if h.fin {
                    let whole = c.frag.take().unwrap_or_default();
                    on(Event::Message(idx, &whole));
                }
            }
            OpCode::Ping => c.push_frame(OpCode::Pong, payload),
            OpCode::Pong => {}
            OpCode::Close => {
                if c.state == State::Closing {
                    // Done on our side; the end of stream completes it.
                    c.close_seen = true;
                    continue;
                }
                // Echo the status code, as RFC 6455 section 5.5.1 asks.
                let code = payload.get(..2).unwrap_or(&[]).to_vec();
                c.push_frame(OpCode::Close, &code);
                let status = payload
                    .get(..2)
                    .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
                let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or(&[]));
                let why = format!("the server closed the WebSocket ({status}: {reason})");
                return (pos, Some(fail(why.into())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8; 24] = b"dGhlIHNhbXBsZSBub25jZQ==";

    fn client(state: State) -> Client {
        let mut c = Client::new(7);
        c.key = *KEY;
        c.state = state;
        c
    }

    fn response(accept: &[u8]) -> Vec<u8> {
        let mut v = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                      Connection: Upgrade\r\nsec-websocket-accept: "
            .to_vec();
        v.extend_from_slice(accept);
        v.extend_from_slice(b"\r\n\r\n");
        v
    }

    fn feed(c: &mut Client, data: &[u8]) -> (usize, Option<End>, Vec<String>) {
        let mut got = Vec::new();
        let (used, end) = process(c, 7, data, &mut |ev| {
            got.push(match ev {
                Event::Open(i) => format!("open {i}"),
                Event::Message(i, m) => format!("{i}: {}", String::from_utf8_lossy(m)),
                _ => "other".into(),
            })
        });
        (used, end, got)
    }

    #[test]
    fn the_101_and_frames_arrive_the_same_in_any_split() {
        let mut data = response(&handshake::accept_key(KEY));
        frame::encode_frame(OpCode::Text, b"hello", &mut data);
        frame::encode_frame(OpCode::Text, &[b'x'; 300], &mut data);
        let mut c = client(State::Handshake);
        let (used, end, whole) = feed(&mut c, &data);
        assert!(end.is_none());
        assert_eq!(used, data.len());
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[1], "7: hello");
        for cut in 0..data.len() {
            let mut c = client(State::Handshake);
            let (mut inbuf, mut events) = (Vec::new(), Vec::new());
            for chunk in [&data[..cut], &data[cut..]] {
                inbuf.extend_from_slice(chunk);
                let (used, end, got) = feed(&mut c, &inbuf);
                assert!(end.is_none(), "cut {cut}");
                inbuf.drain(..used);
                events.extend(got);
            }
            assert_eq!(events, whole, "cut {cut}");
            assert!(inbuf.is_empty());
        }
    }

    #[test]
    fn refused_or_wrong_handshakes_end_the_client() {
        let (_, end, _) = feed(
            &mut client(State::Handshake),
            b"HTTP/1.1 503 Service Unavailable\r\n\r\n",
        );
        assert!(end.unwrap().why.contains("503"));
        let (_, end, _) = feed(&mut client(State::Handshake), &response(b"bogus"));
        assert!(end.unwrap().why.contains("Sec-WebSocket-Accept"));
    }

    #[test]
    fn pings_are_answered_and_closes_complete() {
        let mut c = client(State::Open);
        let mut data = Vec::new();
        frame::encode_frame(OpCode::Ping, b"hi", &mut data);
        let (_, end, _) = feed(&mut c, &data);
        assert!(end.is_none());
        let (h, n) = Header::parse(&c.out, true, 125).unwrap().unwrap();
        assert_eq!(h.opcode, OpCode::Pong);
        let mut payload = c.out[n..].to_vec();
        frame::unmask(&mut payload, h.mask.unwrap(), 0);
        assert_eq!(payload, b"hi");

        // We asked: the server's close frame waits for its end of stream.
        let mut c = client(State::Closing);
        let mut data = Vec::new();
        frame::encode_close(herald::ws::CloseCode(1000), "", &mut data);
        let (_, end, _) = feed(&mut c, &data);
        assert!(end.is_none() && c.close_seen);

        // The server asked: we echo the code and end.
        let mut c = client(State::Open);
        let (_, end, _) = feed(&mut c, &data);
        let end = end.unwrap();
        assert!(!end.requested && end.why.contains("1000"));
        let (h, _) = Header::parse(&c.out, true, 125).unwrap().unwrap();
        assert_eq!(h.opcode, OpCode::Close);
    }
}
