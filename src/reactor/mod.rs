//! The one-thread epoll reactor: listeners, connection slots, timers, output
//! queues, and the [`App`] callbacks that give them meaning.
//!
//! Per-connection memory is one [`Slot`] while idle: input state and the
//! output queue exist only while bytes are pending. Reads go through one
//! shared buffer; sends queued during a loop iteration leave in one `send`
//! per connection at its end.

mod wheel;

use crate::http::{self, HttpError};
use crate::hub::{Hub, Member, Uid, NIL};
use crate::limits::Limits;
use crate::line::{self, Line, LineState};
use crate::sys::{self, Epoll, Ready, EV_CLOSED, EV_IN, EV_OUT};
use crate::ws::{self, frame, frame::OpCode, handshake, CloseCode, Event, Partial};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use wheel::{Wheel, TICK_MS};

/// Identifies a connection for as long as it lives; never reused for another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId(u64);

impl ConnId {
    fn new(idx: u32, gen: u32) -> ConnId {
        ConnId(((gen as u64) << 32) | idx as u64)
    }
    fn idx(self) -> u32 {
        self.0 as u32
    }
    fn gen(self) -> u32 {
        (self.0 >> 32) as u32
    }
    /// A number for logs.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

/// The protocol a listener speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// RFC 6455 WebSocket.
    WebSocket,
    /// Newline-delimited text lines (Workerman's `text://`).
    Text,
    /// HTTP/1.1 requests answered by [`App::on_request`].
    Http,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::WebSocket => "ws",
            Protocol::Text => "text",
            Protocol::Http => "http",
        }
    }
}

/// A received message.
#[derive(Debug)]
pub enum Message<'a> {
    /// A WebSocket text message (valid UTF-8).
    Text(&'a str),
    /// A WebSocket binary message.
    Binary(&'a [u8]),
    /// One text-port line, without its newline; not checked for UTF-8.
    Line(&'a [u8]),
}

/// An HTTP API request.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub body: &'a [u8],
}

/// An HTTP API response.
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(status: u16, body: String) -> Response {
        Response {
            status,
            content_type: "application/json",
            body: body.into_bytes(),
        }
    }
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        let mut b: String = body.into();
        b.push('\n');
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: b.into_bytes(),
        }
    }
}

/// The application: Workerman's `onConnect` / `onMessage` / `onClose`, for
/// every listener of the process, sharing one state.
pub trait App {
    /// A WebSocket finished its handshake, or a text-port client connected.
    fn on_open(&mut self, _cx: &mut Context, _conn: ConnId) {}
    /// A WebSocket message or a text-port line arrived.
    fn on_message(&mut self, cx: &mut Context, conn: ConnId, msg: Message<'_>);
    /// The connection is gone (only called after `on_open`). Its uid binding,
    /// if any, is removed right after this returns.
    fn on_close(&mut self, _cx: &mut Context, _conn: ConnId) {}
    /// An HTTP API request.
    fn on_request(&mut self, _cx: &mut Context, _conn: ConnId, _req: &Request<'_>) -> Response {
        Response::text(404, "not found")
    }
}

/// Counters reported by /stats and /metrics.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub accepted: u64,
    pub refused: u64,
    pub handshake_failures: u64,
    pub messages_in: u64,
    pub messages_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Sends refused because the connection was closing or over its queue cap.
    pub dropped: u64,
    pub slow_consumers_closed: u64,
    pub timeouts: u64,
    pub protocol_errors: u64,
}

// Slot kinds.
const FREE: u8 = 0;
const LISTENER: u8 = 1;
const SIGNAL: u8 = 2;
const WAKER: u8 = 3;
const WS: u8 = 4;
const TEXT: u8 = 5;
const HTTP: u8 = 6;

// Slot flags.
const HANDSHAKE: u16 = 1 << 0;
const OPENED: u16 = 1 << 1;
const CLOSING: u16 = 1 << 2;
const FIN_SENT: u16 = 1 << 3;
const PEER_EOF: u16 = 1 << 4;
const WANT_OUT: u16 = 1 << 5;
const DIRTY: u16 = 1 << 6;
const PINGED: u16 = 1 << 7;
const DEAD: u16 = 1 << 8;

/// Input kept between reads, only while incomplete. The slot holds it as
/// `Option<Box<Input>>`: one thin pointer per idle connection.
enum Input {
    /// Handshake or HTTP bytes not yet forming a whole request.
    Bytes(Vec<u8>),
    Ws(Box<Partial>),
    Lines(Box<LineState>),
}

/// One connection (or listener). Kept small: this is the per-connection cost.
struct Slot {
    fd: RawFd,
    gen: u32,
    /// Tick of the last event that matters for timers: accept (handshake),
    /// last input (open), close start (closing).
    t: u32,
    /// Tick of this slot's one valid timer-wheel entry.
    due: u32,
    flags: u16,
    kind: u8,
    listener: u8,
    prev: u32,
    next: u32,
    #[allow(clippy::box_collection)] // 8 bytes per idle slot instead of 24
    out: Option<Box<Vec<u8>>>,
    input: Option<Box<Input>>,
    uid: Option<Uid>,
}

impl Member for Slot {
    fn uid(&self) -> Option<&Uid> {
        self.uid.as_ref()
    }
    fn set_uid(&mut self, uid: Option<Uid>) {
        self.uid = uid;
    }
    fn links(&self) -> (u32, u32) {
        (self.prev, self.next)
    }
    fn set_links(&mut self, prev: u32, next: u32) {
        self.prev = prev;
        self.next = next;
    }
}

impl Slot {
    fn live(&self) -> bool {
        self.kind >= WS && self.flags & DEAD == 0
    }
    fn can_send(&self) -> bool {
        self.live() && self.flags & (CLOSING | HANDSHAKE) == 0
    }
}

struct ListenerInfo {
    protocol: Protocol,
    addr: SocketAddr,
    slot: u32,
}

/// Stops a running server from another thread. The eventfd it signals stays
/// open while any handle (or the server) exists, so a late `stop` after the
/// server is gone writes to nothing else.
#[derive(Clone)]
pub struct StopHandle {
    fd: Arc<OwnedFd>,
}

impl StopHandle {
    /// Asks the server to stop gracefully (as SIGTERM does).
    pub fn stop(&self) {
        sys::eventfd_signal(self.fd.as_raw_fd());
    }
}

/// What callbacks use to act on connections: send, close, bind uids, push.
pub struct Context {
    epoll: Epoll,
    slots: Vec<Slot>,
    free: Vec<u32>,
    listeners: Vec<ListenerInfo>,
    hub: Hub,
    rbuf: Vec<u8>,
    dirty: Vec<u32>,
    dead: Vec<u32>,
    #[allow(clippy::vec_box)] // boxes move into slots as thin pointers
    pool: Vec<Box<Vec<u8>>>,
    wheel: Wheel,
    limits: Limits,
    stats: Stats,
    start_ms: u64,
    now: u32,
    stopping: Option<u32>,
    reserve_fd: RawFd,
    /// Keeps stop eventfds open as long as the server lives.
    wakers: Vec<Arc<OwnedFd>>,
    per_ip: HashMap<IpAddr, u32>,
    slot_ip: HashMap<u32, IpAddr>,
    open: usize,
    nofile: (u64, u64),
}

const READ_BUF: usize = 64 * 1024;
/// Full-buffer reads handled per readiness event before output is flushed.
const MAX_READS_PER_EVENT: usize = 16;
/// Messages at least this big skip the send queue when it is empty.
const DIRECT_WRITE_MIN: usize = 16 * 1024;
/// Send buffers kept for reuse: bounded in count and size (at most 1 MiB).
const POOL_MAX: usize = 128;
const POOL_BUF_MAX: usize = 8 * 1024;

fn ms_to_ticks(ms: u64) -> u32 {
    ms.div_ceil(TICK_MS).min(u32::MAX as u64 / 2) as u32
}

impl Context {
    fn new(limits: Limits) -> io::Result<Context> {
        let nofile = sys::raise_nofile_limit()?;
        let now = 0;
        Ok(Context {
            epoll: Epoll::new()?,
            slots: Vec::new(),
            free: Vec::new(),
            listeners: Vec::new(),
            hub: Hub::default(),
            rbuf: vec![0; READ_BUF],
            dirty: Vec::new(),
            dead: Vec::new(),
            pool: Vec::new(),
            wheel: Wheel::new(now),
            limits,
            stats: Stats::default(),
            start_ms: sys::monotonic_ms(),
            now,
            stopping: None,
            reserve_fd: sys::open_dev_null()?,
            wakers: Vec::new(),
            per_ip: HashMap::new(),
            slot_ip: HashMap::new(),
            open: 0,
            nofile,
        })
    }

    fn id(&self, idx: u32) -> ConnId {
        ConnId::new(idx, self.slots[idx as usize].gen)
    }

    fn slot_of(&self, conn: ConnId) -> Option<&Slot> {
        self.slots
            .get(conn.idx() as usize)
            .filter(|s| s.gen == conn.gen() && s.live())
    }

    fn alloc(&mut self, fd: RawFd, kind: u8, listener: u8) -> u32 {
        let slot = Slot {
            fd,
            gen: 0,
            t: self.now,
            due: 0,
            flags: 0,
            kind,
            listener,
            prev: NIL,
            next: NIL,
            out: None,
            input: None,
            uid: None,
        };
        match self.free.pop() {
            Some(idx) => {
                let gen = self.slots[idx as usize].gen;
                self.slots[idx as usize] = Slot { gen, ..slot };
                idx
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        }
    }

    // ----- public API for callbacks -----

    /// The protocol of a live connection.
    pub fn protocol(&self, conn: ConnId) -> Option<Protocol> {
        self.slot_of(conn).map(|s| match s.kind {
            WS => Protocol::WebSocket,
            TEXT => Protocol::Text,
            _ => Protocol::Http,
        })
    }

    /// Index (in `listen` order) of the listener that accepted `conn`.
    pub fn listener(&self, conn: ConnId) -> Option<usize> {
        self.slot_of(conn).map(|s| s.listener as usize)
    }

    /// The limits this server runs with.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Sends a text message on a WebSocket. False when it could not be queued.
    pub fn send_text(&mut self, conn: ConnId, text: &str) -> bool {
        self.send_frame(conn, OpCode::Text, text.as_bytes())
    }

    /// Sends a binary message on a WebSocket.
    pub fn send_binary(&mut self, conn: ConnId, data: &[u8]) -> bool {
        self.send_frame(conn, OpCode::Binary, data)
    }

    fn send_frame(&mut self, conn: ConnId, opcode: OpCode, payload: &[u8]) -> bool {
        match self.slot_of(conn) {
            Some(s) if s.kind == WS => {
                let mut h = [0u8; 10];
                let n = frame::encode_header(true, opcode, payload.len(), &mut h);
                self.queue_message(conn.idx(), &h[..n], payload)
            }
            _ => false,
        }
    }

    /// Sends `line` plus a newline on a text-port connection.
    pub fn send_line(&mut self, conn: ConnId, line: &[u8]) -> bool {
        match self.slot_of(conn) {
            Some(s) if s.kind == TEXT => self.queue_message(conn.idx(), line, b"\n"),
            _ => false,
        }
    }

    /// Closes a connection: WebSockets get a close frame with `code` and
    /// `reason`; queued output is flushed first.
    pub fn close(&mut self, conn: ConnId, code: CloseCode, reason: &str) {
        if let Some(s) = self.slot_of(conn) {
            if s.flags & CLOSING != 0 {
                return;
            }
            let idx = conn.idx();
            if s.kind == WS && s.flags & HANDSHAKE == 0 {
                let mut v = Vec::with_capacity(130);
                frame::encode_close(code, reason, &mut v);
                self.queue_raw(idx, &v);
            }
            self.begin_close(idx);
        }
    }

    /// Binds `conn` to `uid` (replacing an earlier uid of the same connection).
    /// Other connections bound to the same uid stay bound.
    pub fn bind_uid(&mut self, conn: ConnId, uid: &str) -> bool {
        if self.slot_of(conn).is_none() {
            return false;
        }
        let idx = conn.idx();
        self.hub.unbind(&mut self.slots, idx);
        self.hub.bind(&mut self.slots, idx, uid);
        true
    }

    /// Removes the binding of `conn`, if any.
    pub fn unbind_uid(&mut self, conn: ConnId) {
        if self.slot_of(conn).is_some() {
            self.hub.unbind(&mut self.slots, conn.idx());
        }
    }

    /// The uid `conn` is bound to.
    pub fn uid(&self, conn: ConnId) -> Option<&str> {
        self.slot_of(conn)
            .and_then(|s| s.uid.as_ref())
            .map(Uid::as_str)
    }

    /// Sends a text message to every connection bound to `uid`; returns how
    /// many accepted it into their queues.
    pub fn send_to_uid(&mut self, uid: &str, text: &str) -> usize {
        let mut h = [0u8; 10];
        let n = frame::encode_header(true, OpCode::Text, text.len(), &mut h);
        let mut at = self.hub.head(uid).unwrap_or(NIL);
        let mut sent = 0;
        while at != NIL {
            let next = self.slots[at as usize].next;
            if self.slots[at as usize].can_send()
                && self.queue_message(at, &h[..n], text.as_bytes())
            {
                sent += 1;
            }
            at = next;
        }
        sent
    }

    /// Sends a text message to every bound WebSocket; returns how many
    /// accepted it. The frame is encoded once.
    pub fn broadcast(&mut self, text: &str) -> usize {
        let mut h = [0u8; 10];
        let n = frame::encode_header(true, OpCode::Text, text.len(), &mut h);
        let mut sent = 0;
        for idx in 0..self.slots.len() as u32 {
            let s = &self.slots[idx as usize];
            if s.kind == WS
                && s.uid.is_some()
                && s.can_send()
                && self.queue_message(idx, &h[..n], text.as_bytes())
            {
                sent += 1;
            }
        }
        sent
    }

    /// How many connections are bound to `uid`.
    pub fn connections_of(&self, uid: &str) -> usize {
        let mut at = self.hub.head(uid).unwrap_or(NIL);
        let mut n = 0;
        while at != NIL {
            n += 1;
            at = self.slots[at as usize].next;
        }
        n
    }

    /// Distinct uids online.
    pub fn online_uids(&self) -> usize {
        self.hub.uids()
    }

    /// Connections bound to some uid.
    pub fn bound_connections(&self) -> usize {
        self.hub.connections()
    }

    /// Open connections, all protocols.
    pub fn open_connections(&self) -> usize {
        self.open
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Seconds since the server started.
    pub fn uptime_s(&self) -> u64 {
        (sys::monotonic_ms() - self.start_ms) / 1000
    }

    /// The soft and hard open-file limits in force (soft raised to hard at start).
    pub fn nofile_limit(&self) -> (u64, u64) {
        self.nofile
    }

    /// Memory herald itself holds for connections: slots, uid map, timer
    /// wheel, pending input/output. A computed figure; RSS is the measured one.
    pub fn footprint_bytes(&self) -> usize {
        let pending: usize = self
            .slots
            .iter()
            .map(|s| {
                s.out.as_ref().map_or(0, |o| o.capacity() + 24)
                    + s.uid.as_ref().map_or(0, Uid::heap_bytes)
                    + match s.input.as_deref() {
                        None => 0,
                        Some(Input::Bytes(b)) => b.capacity() + 32,
                        Some(Input::Ws(p)) => p.heap_bytes() + 32,
                        Some(Input::Lines(_)) => std::mem::size_of::<LineState>() + 32,
                    }
            })
            .sum();
        self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.free.capacity() * 4
            + self.hub.heap_bytes()
            + self.wheel.heap_bytes()
            + pending
    }

    /// Resident set size of the process.
    pub fn rss_bytes(&self) -> u64 {
        sys::rss_bytes()
    }

    /// Size of one connection slot.
    pub fn slot_bytes(&self) -> usize {
        std::mem::size_of::<Slot>()
    }

    // ----- output -----

    /// Queues `a` then `b` as one message, under the queue cap.
    fn queue_message(&mut self, idx: u32, a: &[u8], b: &[u8]) -> bool {
        let s = &self.slots[idx as usize];
        if !s.can_send() {
            self.stats.dropped += 1;
            return false;
        }
        let queued = s.out.as_ref().map_or(0, |o| o.len());
        if queued + a.len() + b.len() > self.limits.max_queued {
            self.slow_consumer(idx);
            return false;
        }
        self.stats.messages_out += 1;
        let (a, b) = if s.out.is_none() && a.len() + b.len() >= DIRECT_WRITE_MIN {
            // Nothing queued before it: send a big message straight from the
            // caller's buffer (header and payload gathered in one sendmsg) and
            // copy only what the socket did not take.
            match sys::write2(s.fd, a, b) {
                Ok(n) => {
                    self.stats.bytes_out += n as u64;
                    if n >= a.len() {
                        (&[][..], &b[n - a.len()..])
                    } else {
                        (&a[n..], b)
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => (a, b),
                Err(_) => {
                    self.kill(idx, false);
                    return false;
                }
            }
        } else {
            (a, b)
        };
        if a.is_empty() && b.is_empty() {
            return true;
        }
        let out = self.out_buf(idx);
        out.reserve(a.len() + b.len());
        out.extend_from_slice(a);
        out.extend_from_slice(b);
        true
    }

    fn slow_consumer(&mut self, idx: u32) {
        self.stats.dropped += 1;
        self.stats.slow_consumers_closed += 1;
        let s = &mut self.slots[idx as usize];
        if s.kind == WS {
            let mut v = Vec::with_capacity(64);
            frame::encode_close(CloseCode::POLICY, "slow consumer: send queue full", &mut v);
            // The close frame may go past the cap: it is small and the last.
            self.queue_raw(idx, &v);
        } else if s.kind == TEXT {
            self.queue_raw(idx, b"error slow consumer: send queue full\n");
        }
        self.begin_close(idx);
    }

    /// Appends raw bytes to a live connection's queue, ignoring the cap.
    fn queue_raw(&mut self, idx: u32, bytes: &[u8]) {
        if self.slots[idx as usize].live() {
            self.out_buf(idx).extend_from_slice(bytes);
        }
    }

    fn out_buf(&mut self, idx: u32) -> &mut Vec<u8> {
        let s = &mut self.slots[idx as usize];
        if s.flags & (DIRTY | WANT_OUT) == 0 {
            s.flags |= DIRTY;
            self.dirty.push(idx);
        }
        let s = &mut self.slots[idx as usize];
        if s.out.is_none() {
            s.out = Some(self.pool.pop().unwrap_or_default());
        }
        s.out.as_mut().expect("just set")
    }

    fn release_out(&mut self, idx: u32) {
        if let Some(mut b) = self.slots[idx as usize].out.take() {
            if self.pool.len() < POOL_MAX && b.capacity() <= POOL_BUF_MAX {
                b.clear();
                self.pool.push(b);
            }
        }
    }

    /// Writes as much queued output as the socket takes.
    fn flush(&mut self, idx: u32) {
        let s = &mut self.slots[idx as usize];
        s.flags &= !DIRTY;
        if !s.live() {
            return;
        }
        let fd = s.fd;
        let mut written = 0;
        let mut failed = false;
        if let Some(out) = s.out.as_mut() {
            while written < out.len() {
                match sys::write(fd, &out[written..]) {
                    Ok(n) => written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            self.stats.bytes_out += written as u64;
            if written < out.len() && !failed {
                out.drain(..written);
                if s.flags & WANT_OUT == 0 {
                    s.flags |= WANT_OUT;
                    let want_in = s.flags & PEER_EOF == 0;
                    let _ = self
                        .epoll
                        .modify(fd, ConnId::new(idx, s.gen).0, want_in, true);
                }
                return;
            }
        }
        if failed {
            self.kill(idx, false);
            return;
        }
        self.release_out(idx);
        let s = &mut self.slots[idx as usize];
        if s.flags & WANT_OUT != 0 {
            s.flags &= !WANT_OUT;
            let want_in = s.flags & PEER_EOF == 0;
            let _ = self
                .epoll
                .modify(fd, ConnId::new(idx, s.gen).0, want_in, false);
        }
        self.after_drained(idx);
    }

    /// Output is empty: finish a close in progress.
    fn after_drained(&mut self, idx: u32) {
        let s = &mut self.slots[idx as usize];
        if s.flags & PEER_EOF != 0 {
            self.kill(idx, false);
        } else if s.flags & CLOSING != 0 && s.flags & FIN_SENT == 0 {
            // Half-close and wait for the peer's end of stream: closing with
            // unread input would send RST and could destroy our last bytes.
            s.flags |= FIN_SENT;
            sys::shutdown_write(s.fd);
        }
    }

    fn flush_dirty(&mut self) {
        let mut i = 0;
        while i < self.dirty.len() {
            let idx = self.dirty[i];
            self.flush(idx);
            i += 1;
        }
        self.dirty.clear();
    }

    // ----- closing -----

    /// Stops reading input, flushes output, then half-closes and waits for the
    /// peer to finish (bounded by `close_timeout_ms`).
    fn begin_close(&mut self, idx: u32) {
        let s = &mut self.slots[idx as usize];
        if !s.live() || s.flags & CLOSING != 0 {
            return;
        }
        s.flags |= CLOSING;
        s.t = self.now;
        s.input = None;
        let due = self.now + ms_to_ticks(self.limits.close_timeout_ms);
        self.schedule(idx, due);
        let empty = s_out_empty(&self.slots[idx as usize]);
        if empty && self.slots[idx as usize].flags & DIRTY == 0 {
            self.after_drained(idx);
        }
    }

    /// Closes the socket now. `abort` sends RST (dead or hostile peers with
    /// output queued), freeing kernel buffers at once.
    fn kill(&mut self, idx: u32, abort: bool) {
        let s = &mut self.slots[idx as usize];
        if !s.live() {
            return;
        }
        if abort {
            sys::set_linger_zero(s.fd);
        }
        sys::close(s.fd);
        s.flags |= DEAD;
        s.input = None;
        self.dead.push(idx);
    }

    fn schedule(&mut self, idx: u32, due: u32) {
        let token = self.id(idx).0;
        let due = self.wheel.schedule(token, due);
        self.slots[idx as usize].due = due;
    }
}

impl Drop for Context {
    /// A dropped server releases every descriptor it owns (library users may
    /// create many servers in one process).
    fn drop(&mut self) {
        for s in &self.slots {
            if matches!(s.kind, LISTENER | SIGNAL) || s.live() {
                sys::close(s.fd);
            }
        }
        if self.reserve_fd >= 0 {
            sys::close(self.reserve_fd);
        }
    }
}

fn s_out_empty(s: &Slot) -> bool {
    s.out.as_ref().is_none_or(|o| o.is_empty())
}

/// A server: listeners plus the application, run by [`Server::run`].
pub struct Server<A: App> {
    cx: Context,
    app: A,
    events: Vec<Ready>,
}

impl<A: App> Server<A> {
    /// Creates the reactor and raises the open-file soft limit to the hard limit.
    pub fn new(limits: Limits, app: A) -> io::Result<Server<A>> {
        Ok(Server {
            cx: Context::new(limits)?,
            app,
            events: Vec::with_capacity(256),
        })
    }

    /// Adds a listener; returns the bound address (useful with port 0).
    pub fn listen(
        &mut self,
        protocol: Protocol,
        addr: SocketAddr,
        reuse_port: bool,
    ) -> io::Result<SocketAddr> {
        if self.cx.listeners.len() >= u8::MAX as usize {
            return Err(io::Error::other("too many listeners"));
        }
        let fd = sys::listen_tcp(&addr, reuse_port, 4096)?;
        let bound = sys::local_addr(fd)?;
        let li = self.cx.listeners.len() as u8;
        let idx = self.cx.alloc(fd, LISTENER, li);
        self.cx.epoll.add(fd, self.cx.id(idx).0, true, false)?;
        self.cx.listeners.push(ListenerInfo {
            protocol,
            addr: bound,
            slot: idx,
        });
        Ok(bound)
    }

    /// Stops gracefully on SIGINT / SIGTERM (blocks them for this thread).
    pub fn stop_on_signals(&mut self) -> io::Result<()> {
        let fd = sys::stop_signal_fd()?;
        let idx = self.cx.alloc(fd, SIGNAL, 0);
        self.cx.epoll.add(fd, self.cx.id(idx).0, true, false)
    }

    /// A handle that stops the server from another thread.
    pub fn stop_handle(&mut self) -> io::Result<StopHandle> {
        let fd = Arc::new(sys::eventfd()?);
        let raw = fd.as_raw_fd();
        let idx = self.cx.alloc(raw, WAKER, 0);
        self.cx.epoll.add(raw, self.cx.id(idx).0, true, false)?;
        self.cx.wakers.push(fd.clone());
        Ok(StopHandle { fd })
    }

    pub fn context(&mut self) -> &mut Context {
        &mut self.cx
    }

    pub fn app(&mut self) -> &mut A {
        &mut self.app
    }

    /// The listeners' protocols and bound addresses, in `listen` order.
    pub fn listeners(&self) -> Vec<(Protocol, SocketAddr)> {
        self.cx
            .listeners
            .iter()
            .map(|l| (l.protocol, l.addr))
            .collect()
    }

    /// Runs until stopped; a graceful stop closes WebSockets with 1001 and
    /// flushes queued output within `shutdown_grace_ms`.
    pub fn run(&mut self) -> io::Result<()> {
        loop {
            let timeout = self.poll_timeout();
            self.cx.epoll.wait(&mut self.events, timeout)?;
            self.cx.now = ((sys::monotonic_ms() - self.cx.start_ms) / TICK_MS) as u32;
            let events = std::mem::take(&mut self.events);
            for ev in &events {
                self.dispatch(*ev);
            }
            self.events = events;
            self.run_timers();
            self.cx.flush_dirty();
            self.reap();
            if let Some(deadline) = self.cx.stopping {
                if self.cx.open == 0 {
                    return Ok(());
                }
                if self.cx.now >= deadline {
                    for idx in 0..self.cx.slots.len() as u32 {
                        self.cx.kill(idx, true);
                    }
                    self.reap();
                    return Ok(());
                }
            }
        }
    }

    fn poll_timeout(&self) -> i32 {
        let elapsed = sys::monotonic_ms() - self.cx.start_ms;
        let next_tick = (elapsed / TICK_MS + 1) * TICK_MS;
        (next_tick - elapsed).clamp(1, TICK_MS) as i32
    }

    /// Calls `on_close` for connections that died and frees their slots.
    fn reap(&mut self) {
        while let Some(idx) = self.cx.dead.pop() {
            let id = self.cx.id(idx);
            let flags = self.cx.slots[idx as usize].flags;
            if flags & OPENED != 0 {
                // Let the callback see the connection (uid included) once more.
                self.cx.slots[idx as usize].flags &= !DEAD;
                self.cx.slots[idx as usize].flags |= CLOSING;
                self.app.on_close(&mut self.cx, id);
                self.cx.slots[idx as usize].flags |= DEAD;
            }
            self.cx.hub.unbind(&mut self.cx.slots, idx);
            self.cx.release_out(idx);
            if let Some(ip) = self.cx.slot_ip.remove(&idx) {
                if let Some(n) = self.cx.per_ip.get_mut(&ip) {
                    *n -= 1;
                    if *n == 0 {
                        self.cx.per_ip.remove(&ip);
                    }
                }
            }
            let s = &mut self.cx.slots[idx as usize];
            s.kind = FREE;
            s.gen = s.gen.wrapping_add(1);
            s.input = None;
            s.flags = 0;
            self.cx.open -= 1;
            self.cx.free.push(idx);
        }
        // on_close callbacks may have queued output.
        self.cx.flush_dirty();
    }

    fn dispatch(&mut self, ev: Ready) {
        let id = ConnId(ev.token);
        let Some(s) = self.cx.slots.get(id.idx() as usize) else {
            return;
        };
        if s.gen != id.gen() || s.flags & DEAD != 0 {
            return;
        }
        let idx = id.idx();
        match s.kind {
            FREE => {}
            LISTENER => self.accept(s.listener),
            SIGNAL => {
                if sys::drain_signal_fd(s.fd) {
                    self.begin_stop();
                }
            }
            WAKER => {
                if sys::eventfd_drain(s.fd) {
                    self.begin_stop();
                }
            }
            _ => {
                if ev.events & EV_OUT != 0 {
                    self.cx.flush(idx);
                }
                if ev.events & (EV_IN | EV_CLOSED) != 0 && self.cx.slots[idx as usize].live() {
                    self.readable(idx);
                }
            }
        }
    }

    fn accept(&mut self, li: u8) {
        let (lfd, protocol) = {
            let l = &self.cx.listeners[li as usize];
            (self.cx.slots[l.slot as usize].fd, l.protocol)
        };
        for _ in 0..256 {
            match sys::accept(lfd) {
                Ok(Some((fd, ip))) => self.admit(li, protocol, fd, ip),
                Ok(None) => return,
                Err(e) if sys::is_fd_exhaustion(&e) => {
                    // Shed one pending connection with the spare descriptor so
                    // the listener does not stay readable forever.
                    sys::close(self.cx.reserve_fd);
                    if let Ok(Some((fd, _))) = sys::accept(lfd) {
                        refuse(protocol, fd);
                    }
                    self.cx.stats.refused += 1;
                    self.cx.reserve_fd = sys::open_dev_null().unwrap_or(-1);
                    eprintln!(
                        "herald: out of file descriptors (limit {}): refusing connections",
                        self.cx.nofile.0
                    );
                    return;
                }
                Err(_) => return,
            }
        }
    }

    fn admit(&mut self, li: u8, protocol: Protocol, fd: RawFd, ip: IpAddr) {
        let cx = &mut self.cx;
        let over_total = cx.limits.max_connections > 0 && cx.open >= cx.limits.max_connections;
        let over_ip = cx.limits.max_per_ip > 0
            && cx.per_ip.get(&ip).copied().unwrap_or(0) as usize >= cx.limits.max_per_ip;
        if cx.stopping.is_some() || over_total || over_ip {
            cx.stats.refused += 1;
            refuse(protocol, fd);
            return;
        }
        let kind = match protocol {
            Protocol::WebSocket => WS,
            Protocol::Text => TEXT,
            Protocol::Http => HTTP,
        };
        let idx = cx.alloc(fd, kind, li);
        if cx.epoll.add(fd, cx.id(idx).0, true, false).is_err() {
            sys::close(fd);
            let s = &mut cx.slots[idx as usize];
            s.kind = FREE;
            s.gen = s.gen.wrapping_add(1);
            cx.free.push(idx);
            return;
        }
        cx.open += 1;
        cx.stats.accepted += 1;
        if cx.limits.max_per_ip > 0 {
            *cx.per_ip.entry(ip).or_insert(0) += 1;
            cx.slot_ip.insert(idx, ip);
        }
        match kind {
            WS => {
                cx.slots[idx as usize].flags |= HANDSHAKE;
                let due = cx.now + ms_to_ticks(cx.limits.handshake_timeout_ms);
                cx.schedule(idx, due);
            }
            TEXT => {
                cx.slots[idx as usize].flags |= OPENED;
                let id = cx.id(idx);
                self.app.on_open(&mut self.cx, id);
            }
            _ => {
                if cx.limits.idle_timeout_s > 0 {
                    let due = cx.now + cx.limits.idle_timeout_s * (1000 / TICK_MS as u32);
                    cx.schedule(idx, due);
                }
            }
        }
    }

    /// Reads and handles input. A read that fills the whole buffer is
    /// followed by another (up to `MAX_READS_PER_EVENT`) before output is
    /// flushed: a backend pipelining thousands of pushes then reaches each
    /// recipient with one write for all of its messages, not one per message.
    fn readable(&mut self, idx: u32) {
        let fd = self.cx.slots[idx as usize].fd;
        let mut buf = std::mem::take(&mut self.cx.rbuf);
        for _ in 0..MAX_READS_PER_EVENT {
            let n = match sys::read(fd, &mut buf) {
                Ok(0) => {
                    self.peer_eof(idx);
                    break;
                }
                Ok(n) => n,
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::Interrupted =>
                {
                    break
                }
                Err(_) => {
                    self.cx.kill(idx, true);
                    break;
                }
            };
            self.cx.stats.bytes_in += n as u64;
            let s = &mut self.cx.slots[idx as usize];
            if s.flags & CLOSING != 0 {
                // Draining a closing connection: input is discarded.
            } else {
                if s.flags & HANDSHAKE == 0 {
                    s.t = self.cx.now;
                    s.flags &= !PINGED;
                }
                match s.kind {
                    WS => self.ws_input(idx, &mut buf[..n]),
                    TEXT => self.text_input(idx, &buf[..n]),
                    _ => self.http_input(idx, &buf[..n]),
                }
            }
            let s = &self.cx.slots[idx as usize];
            // A short read usually means the socket is drained. A backend on
            // the text port that pipelines keeps writing while we read, so
            // there we read on until EAGAIN: one more syscall per event buys
            // more messages per recipient write.
            if !s.live() || (n < buf.len() && s.kind != TEXT) {
                break;
            }
        }
        self.cx.rbuf = buf;
    }

    fn peer_eof(&mut self, idx: u32) {
        let cx = &mut self.cx;
        let s = &mut cx.slots[idx as usize];
        if s_out_empty(s) && s.flags & DIRTY == 0 {
            cx.kill(idx, false);
            return;
        }
        // Let queued replies reach a peer that only half-closed (`nc -q`).
        s.flags |= PEER_EOF | CLOSING;
        s.input = None;
        let token = ConnId::new(idx, s.gen).0;
        let want_out = s.flags & WANT_OUT != 0;
        let _ = cx.epoll.modify(s.fd, token, false, want_out);
        let due = cx.now + ms_to_ticks(cx.limits.close_timeout_ms);
        cx.schedule(idx, due);
    }

    fn begin_stop(&mut self) {
        if self.cx.stopping.is_some() {
            return;
        }
        let cx = &mut self.cx;
        cx.stopping = Some(cx.now + ms_to_ticks(cx.limits.shutdown_grace_ms));
        for l in std::mem::take(&mut cx.listeners) {
            let s = &mut cx.slots[l.slot as usize];
            sys::close(s.fd);
            s.kind = FREE;
            s.gen = s.gen.wrapping_add(1);
        }
        for idx in 0..cx.slots.len() as u32 {
            let s = &cx.slots[idx as usize];
            if !s.live() {
                continue;
            }
            if s.flags & HANDSHAKE != 0 {
                cx.kill(idx, false);
            } else {
                let id = cx.id(idx);
                cx.close(id, CloseCode::GOING_AWAY, "server shutting down");
            }
        }
    }

    // ----- timers -----

    fn run_timers(&mut self) {
        while let Some((tick, due)) = self.cx.wheel.next_due(self.cx.now) {
            for &token in &due {
                let id = ConnId(token);
                let ok = self
                    .cx
                    .slots
                    .get(id.idx() as usize)
                    .is_some_and(|s| s.gen == id.gen() && s.live() && s.due == tick);
                if ok {
                    self.timer_fired(id.idx());
                }
            }
            self.cx.wheel.recycle(tick, due);
        }
    }

    fn timer_fired(&mut self, idx: u32) {
        let cx = &mut self.cx;
        let now = cx.now;
        let s = &cx.slots[idx as usize];
        let (flags, t, kind) = (s.flags, s.t, s.kind);
        let per_s = (1000 / TICK_MS) as u32;
        if flags & (CLOSING | PEER_EOF) != 0 {
            let deadline = t + ms_to_ticks(cx.limits.close_timeout_ms);
            if now >= deadline {
                cx.stats.timeouts += 1;
                cx.kill(idx, true);
            } else {
                cx.schedule(idx, deadline);
            }
            return;
        }
        if flags & HANDSHAKE != 0 {
            let deadline = t + ms_to_ticks(cx.limits.handshake_timeout_ms);
            if now >= deadline {
                cx.stats.timeouts += 1;
                cx.stats.handshake_failures += 1;
                let mut v = Vec::new();
                http::write_error(&mut v, 408, "handshake took too long", "");
                let _ = sys::write(cx.slots[idx as usize].fd, &v);
                cx.kill(idx, true);
            } else {
                cx.schedule(idx, deadline);
            }
            return;
        }
        let idle_limit = cx.limits.idle_timeout_s * per_s;
        let ping_after = cx.limits.ping_interval_s * per_s;
        let idle = now.saturating_sub(t);
        if idle_limit > 0 && idle >= idle_limit {
            // Dead or silent peer: cut it even with output pending.
            cx.stats.timeouts += 1;
            cx.kill(idx, true);
            return;
        }
        let mut next = if idle_limit > 0 {
            t + idle_limit
        } else {
            u32::MAX
        };
        if kind == WS && ping_after > 0 {
            if idle >= ping_after {
                if flags & PINGED == 0 {
                    cx.slots[idx as usize].flags |= PINGED;
                    // An empty ping: two bytes, no allocation.
                    cx.queue_raw(idx, &[0x80 | OpCode::Ping.bits(), 0]);
                }
                // Look again one interval on: by then the peer has answered
                // (moving `t`) or the idle deadline decides.
                next = next.min(now + ping_after);
            } else {
                next = next.min(t + ping_after);
            }
        }
        if next != u32::MAX {
            cx.schedule(idx, next);
        }
    }

    fn schedule_heartbeat(&mut self, idx: u32) {
        let cx = &mut self.cx;
        let per_s = (1000 / TICK_MS) as u32;
        let mut next = u32::MAX;
        if cx.limits.ping_interval_s > 0 {
            next = next.min(cx.now + cx.limits.ping_interval_s * per_s);
        }
        if cx.limits.idle_timeout_s > 0 {
            next = next.min(cx.now + cx.limits.idle_timeout_s * per_s);
        }
        if next != u32::MAX {
            cx.schedule(idx, next);
        }
    }

    // ----- protocols -----

    fn ws_input(&mut self, idx: u32, data: &mut [u8]) {
        if self.cx.slots[idx as usize].flags & HANDSHAKE != 0 {
            self.ws_handshake(idx, data);
            return;
        }
        let mut partial = match self.cx.slots[idx as usize].input.take().map(|b| *b) {
            Some(Input::Ws(p)) => Some(p),
            _ => None,
        };
        let id = self.cx.id(idx);
        let max = self.cx.limits.max_message;
        let res = ws::decode(&mut partial, data, max, &mut |ev| {
            self.ws_event(idx, id, ev)
        });
        match res {
            Err(f) => {
                self.cx.stats.protocol_errors += 1;
                self.cx.close(id, f.code, f.reason);
            }
            Ok(()) => {
                let s = &mut self.cx.slots[idx as usize];
                if s.live() && s.flags & CLOSING == 0 {
                    if let Some(p) = partial {
                        s.input = Some(Box::new(Input::Ws(p)));
                    }
                }
            }
        }
    }

    fn ws_event(&mut self, idx: u32, id: ConnId, ev: Event<'_>) -> bool {
        match ev {
            Event::Text(t) => {
                self.cx.stats.messages_in += 1;
                self.app.on_message(&mut self.cx, id, Message::Text(t));
            }
            Event::Binary(b) => {
                self.cx.stats.messages_in += 1;
                self.app.on_message(&mut self.cx, id, Message::Binary(b));
            }
            Event::Ping(p) => {
                let mut h = [0u8; 10];
                let n = frame::encode_header(true, OpCode::Pong, p.len(), &mut h);
                self.cx.queue_raw(idx, &h[..n]);
                self.cx.queue_raw(idx, p);
            }
            Event::Pong(_) => {}
            Event::Close(code, _reason) => {
                let mut v = Vec::with_capacity(4);
                match code {
                    Some(c) => frame::encode_close(c, "", &mut v),
                    None => frame::encode_frame(OpCode::Close, &[], &mut v),
                }
                self.cx.queue_raw(idx, &v);
                self.cx.begin_close(idx);
                return false;
            }
        }
        self.cx.slots[idx as usize].can_send()
    }

    fn ws_handshake(&mut self, idx: u32, data: &mut [u8]) {
        let max_head = self.cx.limits.max_head;
        let mut held = match self.cx.slots[idx as usize].input.take().map(|b| *b) {
            Some(Input::Bytes(b)) => Some(b),
            _ => None,
        };
        if let Some(h) = held.as_mut() {
            h.extend_from_slice(data);
        }
        let src: &mut [u8] = match held.as_mut() {
            Some(h) => &mut h[..],
            None => data,
        };
        match handshake::parse(src, max_head) {
            Ok(None) => {
                let bytes = match held {
                    Some(h) => h,
                    None => data.to_vec(),
                };
                self.cx.slots[idx as usize].input = Some(Box::new(Input::Bytes(bytes)));
            }
            Err(e) => {
                self.cx.stats.handshake_failures += 1;
                let mut v = Vec::new();
                e.write_response(&mut v);
                self.cx.queue_raw(idx, &v);
                self.cx.begin_close(idx);
            }
            Ok(Some(acc)) => {
                // Written straight into the send queue: no transient copy.
                handshake::write_accept(&acc.accept, self.cx.out_buf(idx));
                let s = &mut self.cx.slots[idx as usize];
                s.flags &= !HANDSHAKE;
                s.flags |= OPENED;
                s.t = self.cx.now;
                self.schedule_heartbeat(idx);
                let id = self.cx.id(idx);
                self.app.on_open(&mut self.cx, id);
                let rest_start = acc.consumed;
                if rest_start < src.len() && self.cx.slots[idx as usize].can_send() {
                    let rest = &mut src[rest_start..];
                    self.ws_input(idx, rest);
                }
            }
        }
    }

    fn text_input(&mut self, idx: u32, data: &[u8]) {
        let mut st = match self.cx.slots[idx as usize].input.take().map(|b| *b) {
            Some(Input::Lines(l)) => Some(l),
            _ => None,
        };
        let id = self.cx.id(idx);
        let max = self.cx.limits.max_line;
        line::split(&mut st, data, max, &mut |l| {
            match l {
                Line::Complete(bytes) => {
                    self.cx.stats.messages_in += 1;
                    self.app.on_message(&mut self.cx, id, Message::Line(bytes));
                }
                Line::TooLong => {
                    let msg = format!("error line too long (max {max} bytes)");
                    self.cx.send_line(id, msg.as_bytes());
                }
            }
            self.cx.slots[idx as usize].can_send()
        });
        let s = &mut self.cx.slots[idx as usize];
        if s.live() && s.flags & CLOSING == 0 {
            if let Some(l) = st {
                s.input = Some(Box::new(Input::Lines(l)));
            }
        }
    }

    fn http_input(&mut self, idx: u32, data: &[u8]) {
        let limits = self.cx.limits.clone();
        let mut held = match self.cx.slots[idx as usize].input.take().map(|b| *b) {
            Some(Input::Bytes(b)) => Some(b),
            _ => None,
        };
        if let Some(h) = held.as_mut() {
            h.extend_from_slice(data);
        }
        let src: &[u8] = match held.as_ref() {
            Some(h) => &h[..],
            None => data,
        };
        let id = self.cx.id(idx);
        let mut pos = 0;
        loop {
            if pos == src.len() {
                break;
            }
            let (head, n) = match http::parse_head(&src[pos..], limits.max_head) {
                Ok(None) => break,
                Ok(Some(x)) => x,
                Err(e) => {
                    self.http_fail(idx, e.status(), e.reason());
                    return;
                }
            };
            let len = match head.content_length() {
                Ok(l) => l,
                Err(e) => {
                    self.http_fail(idx, e.status(), e.reason());
                    return;
                }
            };
            if len > limits.max_body {
                self.http_fail(idx, 413, "request body too large");
                return;
            }
            if src.len() - pos - n < len {
                break;
            }
            let body = &src[pos + n..pos + n + len];
            let keep_alive = head.keep_alive();
            let (path, query) = http::split_target(head.target);
            let req = Request {
                method: head.method,
                path,
                query,
                body,
            };
            self.cx.stats.messages_in += 1;
            let resp = self.app.on_request(&mut self.cx, id, &req);
            let mut out = Vec::with_capacity(resp.body.len() + 128);
            http::write_response(
                &mut out,
                resp.status,
                resp.content_type,
                "",
                &resp.body,
                keep_alive,
            );
            self.cx.queue_raw(idx, &out);
            pos += n + len;
            if !keep_alive {
                self.cx.begin_close(idx);
                return;
            }
        }
        if pos < src.len() {
            let rest = match held {
                Some(mut h) => {
                    h.drain(..pos);
                    h
                }
                None => src[pos..].to_vec(),
            };
            self.cx.slots[idx as usize].input = Some(Box::new(Input::Bytes(rest)));
        }
    }

    fn http_fail(&mut self, idx: u32, status: u16, reason: &str) {
        let mut v = Vec::new();
        http::write_error(&mut v, status, reason, "");
        self.cx.queue_raw(idx, &v);
        self.cx.begin_close(idx);
    }
}

/// Turns away a connection past a limit with a protocol-appropriate answer.
fn refuse(protocol: Protocol, fd: RawFd) {
    let msg: &[u8] = match protocol {
        Protocol::Text => b"error server full\n",
        _ => b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n\r\nserver full\n",
    };
    let _ = sys::write(fd, msg);
    sys::shutdown_write(fd);
    sys::close(fd);
}

impl From<HttpError> for Response {
    fn from(e: HttpError) -> Response {
        Response::text(e.status(), e.reason())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_connection_costs_one_64_byte_slot() {
        // The density target depends on it: grow this only with a reason.
        assert_eq!(std::mem::size_of::<Slot>(), 64);
    }
}
