//! [`Context`]: the reactor's state, and what callbacks may do with it —
//! send, close, bind uids, push, set timers, open outbound connections and
//! answer deferred requests. Nothing here performs I/O: sends are queued and
//! leave at the end of the loop iteration, connects start after the
//! callback returns.

use super::deferred::ReplyQueue;
use super::id::{ConnId, Deferred, Protocol, TimerId};
use super::message::Response;
use super::rate::HandshakeRate;
use super::slot::{Flags, Kind, Slot};
use super::stats::{ConnInfo, Stats};
use super::wheel::{Wheel, TICK_MS};
use super::ListenerInfo;
use crate::hub::{Hub, Uid, NIL};
use crate::limits::Limits;
use crate::sys::{self, Epoll};
use crate::ws::frame::{FrameHead, OpCode};
use crate::ws::{conn as ws_conn, CloseCode};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{OwnedFd, RawFd};
use std::sync::Arc;

/// What callbacks use to act on connections: send, close, bind uids, push.
pub struct Context {
    pub(super) epoll: Epoll,
    pub(super) slots: Vec<Slot>,
    pub(super) free: Vec<u32>,
    pub(super) listeners: Vec<ListenerInfo>,
    pub(super) hub: Hub,
    pub(super) dirty: Vec<u32>,
    pub(super) dead: Vec<u32>,
    #[allow(clippy::vec_box)] // boxes move into slots as thin pointers
    pub(super) pool: Vec<Box<Vec<u8>>>,
    pub(super) wheel: Wheel,
    pub(super) limits: Limits,
    pub(super) stats: Stats,
    pub(super) start_ms: u64,
    /// Milliseconds since start, as of this loop iteration.
    pub(super) now_ms: u64,
    /// `now_ms` in wheel ticks.
    pub(super) now: u32,
    pub(super) stopping: Option<u32>,
    pub(super) reserve_fd: RawFd,
    /// Repeatable events counted for the next operator report.
    pub(super) reports: super::report::Reports,
    /// Keeps stop eventfds open as long as the server lives.
    pub(super) wakers: Vec<Arc<OwnedFd>>,
    pub(super) per_ip: HashMap<IpAddr, u32>,
    pub(super) slot_ip: HashMap<u32, IpAddr>,
    /// Handshakes per second per client address.
    pub(super) handshake_rate: HandshakeRate,
    pub(super) open: usize,
    pub(super) nofile: (u64, u64),
    /// Heap bytes of the parser states the server holds beside the slots.
    pub(super) input_bytes: usize,
    /// Application timers: (due ms, id), earliest first; cancelled ones are
    /// absent from `timer_tokens` and skipped.
    pub(super) timers: BinaryHeap<Reverse<(u64, u64)>>,
    pub(super) timer_tokens: HashMap<u64, u64>,
    pub(super) next_timer: u64,
    /// Outbound connections to start once the current callback returns.
    pub(super) connects: Vec<(u32, SocketAddr)>,
    /// Deferred replies per connection slot, only while some are outstanding.
    pub(super) replies: HashMap<u32, ReplyQueue>,
}

impl Context {
    pub(super) fn new(limits: Limits) -> io::Result<Context> {
        let nofile = sys::raise_nofile_limit()?;
        let now = 0;
        let handshake_rate = HandshakeRate::new(limits.max_handshakes_per_ip);
        Ok(Context {
            epoll: Epoll::new()?,
            slots: Vec::new(),
            free: Vec::new(),
            listeners: Vec::new(),
            hub: Hub::default(),
            dirty: Vec::new(),
            dead: Vec::new(),
            pool: Vec::new(),
            wheel: Wheel::new(now),
            limits,
            stats: Stats::default(),
            start_ms: sys::monotonic_ms(),
            now_ms: 0,
            now,
            stopping: None,
            reserve_fd: sys::open_dev_null()?,
            reports: Default::default(),
            wakers: Vec::new(),
            per_ip: HashMap::new(),
            slot_ip: HashMap::new(),
            handshake_rate,
            open: 0,
            nofile,
            input_bytes: 0,
            timers: BinaryHeap::new(),
            timer_tokens: HashMap::new(),
            next_timer: 0,
            connects: Vec::new(),
            replies: HashMap::new(),
        })
    }

    pub(super) fn id(&self, idx: u32) -> ConnId {
        ConnId::new(idx, self.slots[idx as usize].gen)
    }

    pub(super) fn slot_of(&self, conn: ConnId) -> Option<&Slot> {
        self.slots
            .get(conn.idx() as usize)
            .filter(|s| s.gen == conn.gen() && s.live())
    }

    pub(super) fn alloc(&mut self, fd: RawFd, kind: Kind, listener: u8) -> u32 {
        let slot = Slot::new(fd, kind, listener, self.now);
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

    /// Returns a slot that never opened (or whose socket is closed) to the
    /// free list; its `ConnId` stops matching.
    pub(super) fn free_slot(&mut self, idx: u32) {
        let s = &mut self.slots[idx as usize];
        s.kind = Kind::Free;
        s.gen = s.gen.wrapping_add(1);
        s.flags = Flags::default();
        self.free.push(idx);
    }

    // ----- connections -----

    /// The protocol of a live connection.
    pub fn protocol(&self, conn: ConnId) -> Option<Protocol> {
        self.slot_of(conn).and_then(|s| match s.kind {
            Kind::WebSocket => Some(Protocol::WebSocket),
            Kind::Text => Some(Protocol::Text),
            Kind::Http => Some(Protocol::Http),
            Kind::Outbound => Some(Protocol::Outbound),
            Kind::Free | Kind::Listener | Kind::Signal | Kind::Waker => None,
        })
    }

    /// Every open connection, in slot order: a snapshot for operators
    /// (`herald connections`). No syscall; see [`Context::peer_addr`].
    pub fn connections(&self) -> impl Iterator<Item = ConnInfo<'_>> + '_ {
        self.slots.iter().enumerate().filter_map(|(idx, s)| {
            let id = ConnId::new(idx as u32, s.gen);
            let protocol = self.protocol(id)?;
            Some(ConnInfo {
                id,
                protocol,
                uid: s.uid.as_ref().map(Uid::as_str),
                age_ms: self.now.wrapping_sub(s.opened) as u64 * TICK_MS,
                queued: s.out.as_ref().map_or(0, |o| o.len()),
            })
        })
    }

    /// True once a graceful stop began (connections are closing).
    pub fn is_stopping(&self) -> bool {
        self.stopping.is_some()
    }

    /// The peer's address, asked of the socket (one syscall).
    pub fn peer_addr(&self, conn: ConnId) -> Option<SocketAddr> {
        sys::peer_addr(self.slot_of(conn)?.fd).ok()
    }

    /// Index (in `listen` order) of the listener that accepted `conn`
    /// (`None` for outbound connections).
    pub fn listener(&self, conn: ConnId) -> Option<usize> {
        self.slot_of(conn)
            .filter(|s| s.kind != Kind::Outbound)
            .map(|s| s.listener as usize)
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
            Some(s) if s.kind == Kind::WebSocket => {
                let h = FrameHead::new(opcode, payload.len());
                self.queue_message(conn.idx(), h.as_bytes(), payload)
            }
            _ => false,
        }
    }

    /// Sends `line` plus a newline on a text-port connection (after any
    /// deferred replies still outstanding on it).
    pub fn send_line(&mut self, conn: ConnId, line: &[u8]) -> bool {
        match self.slot_of(conn) {
            Some(s) if s.kind == Kind::Text => self.queue_message(conn.idx(), line, b"\n"),
            _ => false,
        }
    }

    /// Sends raw bytes on an outbound connection; allowed while the connect
    /// is still in progress (they leave once it completes).
    pub fn send_bytes(&mut self, conn: ConnId, data: &[u8]) -> bool {
        match self.slot_of(conn) {
            Some(s) if s.kind == Kind::Outbound && !s.flags.has(Flags::CLOSING) => {
                self.queue_message(conn.idx(), data, &[])
            }
            _ => false,
        }
    }

    /// Closes a connection: WebSockets get a close frame with `code` and
    /// `reason`; queued output is flushed first.
    pub fn close(&mut self, conn: ConnId, code: CloseCode, reason: &str) {
        let Some(s) = self.slot_of(conn) else {
            return;
        };
        if s.flags.has(Flags::CLOSING) {
            return;
        }
        let idx = conn.idx();
        if s.kind == Kind::WebSocket && !s.flags.has(Flags::HANDSHAKE) {
            ws_conn::close(code, reason, &mut self.output(idx));
        }
        self.begin_close(idx);
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
        let h = FrameHead::new(OpCode::Text, text.len());
        let mut at = self.hub.head(&self.slots, uid).unwrap_or(NIL);
        let mut sent = 0;
        while at != NIL {
            let next = self.slots[at as usize].next;
            if self.slots[at as usize].can_send()
                && self.queue_message(at, h.as_bytes(), text.as_bytes())
            {
                sent += 1;
            }
            at = next;
        }
        sent
    }

    /// Sends a text message to every bound WebSocket; returns how many
    /// accepted it. The frame header is encoded once.
    pub fn broadcast(&mut self, text: &str) -> usize {
        let h = FrameHead::new(OpCode::Text, text.len());
        let mut sent = 0;
        for idx in 0..self.slots.len() as u32 {
            let s = &self.slots[idx as usize];
            if s.kind == Kind::WebSocket
                && s.uid.is_some()
                && s.can_send()
                && self.queue_message(idx, h.as_bytes(), text.as_bytes())
            {
                sent += 1;
            }
        }
        sent
    }

    /// How many connections are bound to `uid`.
    pub fn connections_of(&self, uid: &str) -> usize {
        let mut at = self.hub.head(&self.slots, uid).unwrap_or(NIL);
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

    /// Open connections, all protocols (outbound ones included).
    pub fn open_connections(&self) -> usize {
        self.open
    }

    // ----- timers, outbound connections, deferred replies -----

    /// Calls [`crate::App::on_timer`] with `token` once, `after_ms` from now
    /// (at the earliest on the next loop iteration).
    pub fn set_timer(&mut self, after_ms: u64, token: u64) -> TimerId {
        let id = self.next_timer;
        self.next_timer += 1;
        self.timers.push(Reverse((self.now_ms + after_ms, id)));
        self.timer_tokens.insert(id, token);
        TimerId(id)
    }

    /// Cancels a timer; false if it already fired or was cancelled.
    pub fn cancel_timer(&mut self, timer: TimerId) -> bool {
        self.timer_tokens.remove(&timer.0).is_some()
    }

    /// Opens a TCP connection to `addr`, without blocking: the connect starts
    /// when the callback returns. Completion arrives as
    /// [`crate::App::on_open`], failure (including a connect that takes
    /// longer than the handshake timeout) as
    /// [`crate::App::on_connect_failed`]. Bytes sent before completion are
    /// queued.
    pub fn connect(&mut self, addr: SocketAddr) -> ConnId {
        let idx = self.alloc(-1, Kind::Outbound, 0);
        self.slots[idx as usize].flags.set(Flags::CONNECTING);
        self.open += 1;
        self.connects.push((idx, addr));
        self.id(idx)
    }

    /// Reserves the next place in `conn`'s reply order (a text-port or HTTP
    /// connection) for an answer given later with [`Context::reply_line`] or
    /// [`Context::respond`]. `None` if the connection cannot take one (gone,
    /// closing, another protocol, or too many outstanding).
    pub fn defer(&mut self, conn: ConnId) -> Option<Deferred> {
        let s = self.slot_of(conn)?;
        if !matches!(s.kind, Kind::Text | Kind::Http) || !s.can_send() {
            return None;
        }
        let seq = self
            .replies
            .entry(conn.idx())
            .or_default()
            .reserve(self.limits.max_deferred)?;
        self.slots[conn.idx() as usize].flags.set(Flags::DEFERRED);
        Some(Deferred { conn, seq })
    }

    /// Answers a deferred text-port line with `line` plus a newline.
    pub fn reply_line(&mut self, d: Deferred, line: &[u8]) -> bool {
        self.fulfil(d, |out| {
            out.extend_from_slice(line);
            out.push(b'\n');
        })
    }

    /// Answers a deferred HTTP request.
    pub fn respond(&mut self, d: Deferred, resp: Response) -> bool {
        self.fulfil(d, |out| {
            crate::http::write_response(out, resp.status, resp.content_type, "", &resp.body, true)
        })
    }

    // ----- figures -----

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

    /// Memory herald itself holds for connections: slots, parser states, uid
    /// map, timer wheel, pending output. A computed figure; RSS is the
    /// measured one.
    pub fn footprint_bytes(&self) -> usize {
        let pending: usize = self
            .slots
            .iter()
            .map(|s| {
                s.out.as_ref().map_or(0, |o| o.capacity() + 24)
                    + s.uid.as_ref().map_or(0, Uid::heap_bytes)
            })
            .sum();
        let replies: usize = self.replies.values().map(ReplyQueue::heap_bytes).sum();
        self.slots.capacity() * super::bytes_per_slot()
            + self.free.capacity() * 4
            + self.hub.heap_bytes()
            + self.wheel.heap_bytes()
            + self.input_bytes
            + replies
            + pending
    }

    /// Resident set size of the process.
    pub fn rss_bytes(&self) -> u64 {
        sys::rss_bytes()
    }

    /// What one connection costs while idle: its slot and its parser-state
    /// pointer.
    pub fn slot_bytes(&self) -> usize {
        super::bytes_per_slot()
    }
}
