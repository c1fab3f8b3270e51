//! [`Context`]: what callbacks may do — send, close, bind uids, push, set
//! timers, open outbound connections, answer deferred requests — over the
//! reactor's I/O core (`Io`) and its services, each a struct of its own:
//! the uid hub, deferred replies, application timers, pending connects,
//! per-address counts and operator reports. Nothing here performs I/O:
//! sends are queued and leave at the end of the loop iteration, connects
//! start after the callback returns.

use super::app_timers::AppTimers;
use super::compress::Compression;
use super::connects::Connects;
use super::deferred::Replies;
use super::id::{ConnId, Deferred, Protocol, TimerId};
use super::io::Io;
use super::message::Response;
use super::per_ip::PerIp;
use super::report::Reports;
use super::slot::{bytes_per_slot, Flags, Kind};
use super::stats::{ConnInfo, Refusal, Stats};
use super::wheel::TICK_MS;
use crate::hub::{Hub, Uid, NIL};
use crate::limits::Limits;
use crate::sansio::Output;
use crate::sys;
use crate::ws::frame::OpCode;
use crate::ws::{conn as ws_conn, CloseCode};
use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;

/// What callbacks use to act on connections: send, close, bind uids, push.
pub struct Context {
    /// Epoll, slots, send queues, the timer wheel and the clock.
    pub(super) io: Io,
    pub(super) limits: Limits,
    pub(super) stats: Stats,
    /// Who is bound to which uid.
    pub(super) hub: Hub,
    pub(super) replies: Replies,
    pub(super) timers: AppTimers,
    pub(super) connects: Connects,
    pub(super) per_ip: PerIp,
    /// Repeatable events counted for the next operator report.
    pub(super) reports: Reports,
    /// Open client connections, all protocols; outbound links (the
    /// application's own, e.g. to Redis) are not counted.
    pub(super) open: usize,
    /// The tick by which a graceful stop ends, once one began.
    pub(super) stopping: Option<u32>,
    pub(super) nofile: (u64, u64),
    /// Heap bytes of the parser states the server holds beside the slots.
    pub(super) input_bytes: usize,
    /// Binding changes not yet reported to the application, oldest first.
    pub(super) uid_events: Vec<UidEvent>,
    /// The forms of a message being sent to many (plain, with the
    /// herald.v1 head, compressed), kept between sends while small
    /// ([`super::compress::Frames`]).
    pub(super) frames: [Vec<u8>; 5],
    /// permessage-deflate's codecs: one of each for the whole server.
    pub(super) compression: Compression,
    /// Slots paused by the application (`Context::pause`), which only it
    /// resumes.
    pub(super) paused_by_app: HashSet<u32>,
    /// A flood is under way since the loop last looked: the application
    /// paused a connection (a pipelining backend waiting for Redis), or an
    /// outbound link (Redis's subscriber) filled the read buffer
    /// (`Server::hold_until`).
    pub(super) flood: bool,
}

/// A binding change, reported to the application after the callback (or the
/// reap) that made it: `App::on_uid_bound` and `App::on_uid_unbound`.
pub(super) enum UidEvent {
    /// `first`: no other connection of the uid was bound here.
    Bound(Uid, bool),
    /// `last`: no connection of the uid is left bound here.
    Unbound(Uid, bool),
}

/// A connection's send queue (behind its outstanding deferred replies) as
/// a sans-IO [`Output`]: protocol code writes into it, the reactor flushes
/// it.
pub(super) struct SlotOut<'a> {
    cx: &'a mut Context,
    idx: u32,
}

impl Output for SlotOut<'_> {
    fn buf(&mut self) -> &mut Vec<u8> {
        self.cx.ordered_buf(self.idx)
    }
}

impl Context {
    pub(super) fn new(limits: Limits) -> io::Result<Context> {
        let nofile = sys::raise_nofile_limit()?;
        let compression = Compression::new(limits.deflate);
        Ok(Context {
            io: Io::new(&limits)?,
            per_ip: PerIp::new(&limits),
            limits,
            stats: Stats::default(),
            hub: Hub::default(),
            replies: Replies::default(),
            timers: AppTimers::default(),
            connects: Connects::default(),
            reports: Reports::default(),
            open: 0,
            stopping: None,
            nofile,
            input_bytes: 0,
            uid_events: Vec::new(),
            frames: Default::default(),
            compression,
            paused_by_app: HashSet::new(),
            flood: false,
        })
    }

    // ----- the send path -----

    /// The send queue of `idx` as an [`Output`].
    pub(super) fn output(&mut self, idx: u32) -> SlotOut<'_> {
        SlotOut { cx: self, idx }
    }

    /// Where the next bytes for `idx` go: behind outstanding deferred
    /// replies if there are any, else the send queue.
    pub(super) fn ordered_buf(&mut self, idx: u32) -> &mut Vec<u8> {
        self.replies.ordered_buf(&mut self.io, idx)
    }

    /// Queues `a` then `b` as one message, under the queue cap. Never writes:
    /// the queue is flushed at the end of the loop iteration.
    pub(super) fn queue_message(&mut self, idx: u32, a: &[u8], b: &[u8]) -> bool {
        let s = &self.io.slots[idx as usize];
        if !s.live() || s.flags.has(Flags::CLOSING) || s.handshaking() {
            self.stats.dropped += 1;
            return false;
        }
        let kind = s.kind;
        // A text-port connection's output is its replies: a peer behind on
        // them has its input paused (`pause.rs`), which bounds them, and is
        // never closed for them.
        if kind != Kind::Text && self.queued(idx) + a.len() + b.len() > self.limits.max_queued {
            self.slow_consumer(idx);
            return false;
        }
        if kind != Kind::Outbound {
            // Client figures: an outbound link's commands are not messages out.
            self.stats.messages_out += 1;
        }
        let out = self.ordered_buf(idx);
        out.reserve(a.len() + b.len());
        out.extend_from_slice(a);
        out.extend_from_slice(b);
        true
    }

    /// [`Context::queue_message`] for one encoded frame, with the fan-out's
    /// common case (no deferred reply to wait behind, room under the cap)
    /// inlined: one check of the flags, one copy.
    #[inline]
    pub(super) fn queue_frame(&mut self, idx: u32, frame: &[u8]) -> bool {
        let s = &self.io.slots[idx as usize];
        debug_assert!(s.can_send(), "the caller checks can_send");
        let queued = s.out.as_ref().map_or(0, |o| o.len());
        if s.flags.has(Flags::DEFERRED) || queued + frame.len() > self.limits.max_queued {
            return self.queue_message(idx, frame, &[]);
        }
        self.stats.messages_out += 1;
        self.io.out_buf(idx).extend_from_slice(frame);
        true
    }

    /// Closes a connection whose queue is past the cap, saying why.
    fn slow_consumer(&mut self, idx: u32) {
        self.stats.dropped += 1;
        self.stats.slow_consumers_closed += 1;
        match self.io.slots[idx as usize].kind {
            Kind::WebSocket => {
                self.reports.slow_ws += 1;
                // The close frame may go past the cap: it is small and the last.
                let reason = "slow consumer: send queue full";
                ws_conn::close(CloseCode::POLICY, reason, &mut self.output(idx));
            }
            // Text-port connections are paused instead (`queue_message`).
            Kind::Text | Kind::Http | Kind::Outbound => {}
            Kind::Free | Kind::Listener | Kind::Signal | Kind::Waker => return,
        }
        self.io.begin_close(idx);
    }

    // ----- connections -----

    /// The protocol of a live connection.
    pub fn protocol(&self, conn: ConnId) -> Option<Protocol> {
        self.io.slot_known(conn).and_then(|s| match s.kind {
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
        self.io.slots.iter().enumerate().filter_map(|(idx, s)| {
            let id = ConnId::new(idx as u32, s.gen);
            // Clients only: outbound links are the application's own.
            let protocol = self
                .protocol(id)
                .filter(|p| s.live() && *p != Protocol::Outbound)?;
            Some(ConnInfo {
                id,
                protocol,
                uid: s.uid.as_ref().map(Uid::as_str),
                age_ms: self.io.now.wrapping_sub(s.opened) as u64 * TICK_MS,
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
        sys::peer_addr(self.io.slot_of(conn)?.fd).ok()
    }

    /// Index (in `listen` order) of the listener that accepted `conn`
    /// (`None` for outbound connections).
    pub fn listener(&self, conn: ConnId) -> Option<usize> {
        self.io
            .slot_of(conn)
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

    /// Sends `line` plus a newline on a text-port connection (after any
    /// deferred replies still outstanding on it).
    pub fn send_line(&mut self, conn: ConnId, line: &[u8]) -> bool {
        match self.io.slot_of(conn) {
            Some(s) if s.kind == Kind::Text => self.queue_message(conn.idx(), line, b"\n"),
            _ => false,
        }
    }

    /// Sends raw bytes on an outbound connection; allowed while the connect
    /// is still in progress (they leave once it completes).
    pub fn send_bytes(&mut self, conn: ConnId, data: &[u8]) -> bool {
        match self.io.slot_of(conn) {
            Some(s) if s.kind == Kind::Outbound && !s.flags.has(Flags::CLOSING) => {
                self.queue_message(conn.idx(), data, &[])
            }
            _ => false,
        }
    }

    /// Closes a connection: WebSockets get a close frame with `code` and
    /// `reason`; queued output is flushed first.
    pub fn close(&mut self, conn: ConnId, code: CloseCode, reason: &str) {
        let Some(s) = self.io.slot_of(conn) else {
            return;
        };
        if s.flags.has(Flags::CLOSING) {
            return;
        }
        let idx = conn.idx();
        if s.kind == Kind::WebSocket && !s.flags.has(Flags::OPENING) {
            ws_conn::close(code, reason, &mut self.output(idx));
        }
        self.io.begin_close(idx);
    }

    /// Counts a refusal of `conn` for the next aggregated log line (the
    /// address is asked of the socket only here, on the refusal path).
    pub fn note_refusal(&mut self, conn: ConnId, why: Refusal, detail: &str) {
        let Some(s) = self.io.slot_of(conn) else {
            return;
        };
        let fd = s.fd;
        let ip = self
            .per_ip
            .of(conn.idx())
            .or_else(|| sys::peer_addr(fd).ok().map(|a| a.ip()));
        self.reports.refused(why, ip, detail);
    }

    // ----- uids -----

    /// Binds `conn` to `uid` (replacing an earlier uid of the same connection).
    /// Other connections bound to the same uid stay bound.
    pub fn bind_uid(&mut self, conn: ConnId, uid: &str) -> bool {
        if self.io.slot_of(conn).is_none() {
            return false;
        }
        let idx = conn.idx();
        self.unbind_at(idx);
        self.hub.bind(&mut self.io.slots, idx, uid);
        let s = &self.io.slots[idx as usize];
        // The new binding heads its uid's list: with nothing after it, it
        // is the uid's only connection here.
        let first = s.next == NIL;
        if let Some(uid) = s.uid.clone() {
            self.uid_events.push(UidEvent::Bound(uid, first));
        }
        true
    }

    /// Removes the binding of `conn`, if any.
    pub fn unbind_uid(&mut self, conn: ConnId) {
        if self.io.slot_of(conn).is_some() {
            self.unbind_at(conn.idx());
        }
    }

    /// Unbinds slot `idx`, if bound, and queues the event that says so.
    pub(super) fn unbind_at(&mut self, idx: u32) {
        let s = &self.io.slots[idx as usize];
        let Some(uid) = s.uid.clone() else {
            return;
        };
        let last = s.prev == NIL && s.next == NIL;
        self.hub.unbind(&mut self.io.slots, idx);
        self.uid_events.push(UidEvent::Unbound(uid, last));
    }

    /// The uid `conn` is bound to (also in its `on_close`).
    pub fn uid(&self, conn: ConnId) -> Option<&str> {
        self.io
            .slot_known(conn)
            .and_then(|s| s.uid.as_ref())
            .map(Uid::as_str)
    }

    /// True when some connection here is bound to `uid` (one map lookup).
    pub fn is_online(&self, uid: &str) -> bool {
        self.hub.head(&self.io.slots, uid).is_some()
    }

    /// Every uid bound here, once each (in slot order): what a service that
    /// mirrors presence elsewhere re-sends after a reconnect.
    pub fn uids(&self) -> impl Iterator<Item = &str> + '_ {
        // A uid's list starts at the one connection with no predecessor.
        self.io
            .slots
            .iter()
            .filter(|s| s.prev == NIL)
            .filter_map(|s| s.uid.as_ref())
            .map(Uid::as_str)
    }

    /// How many connections are bound to `uid`.
    pub fn connections_of(&self, uid: &str) -> usize {
        let mut at = self.hub.head(&self.io.slots, uid).unwrap_or(NIL);
        let mut n = 0;
        while at != NIL {
            n += 1;
            at = self.io.slots[at as usize].next;
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

    /// Open client connections, all protocols; outbound links (the
    /// application's own, e.g. to Redis) are not counted.
    pub fn open_connections(&self) -> usize {
        // Outbound connections (the application's own links, Redis) are
        // not clients: client figures leave them out.
        let outbound = self.io.slots.iter().filter(|s| s.kind == Kind::Outbound);
        self.open - outbound.count()
    }

    // ----- timers, outbound connections, deferred replies -----

    /// Calls [`crate::App::on_timer`] with `token` once, `after_ms` from now
    /// (at the earliest on the next loop iteration).
    pub fn set_timer(&mut self, after_ms: u64, token: u64) -> TimerId {
        self.timers.set(self.io.now_ms + after_ms, token)
    }

    /// Cancels a timer; false if it already fired or was cancelled.
    pub fn cancel_timer(&mut self, timer: TimerId) -> bool {
        self.timers.cancel(timer)
    }

    /// Opens a TCP connection to `addr`, without blocking: the connect starts
    /// when the callback returns. Completion arrives as
    /// [`crate::App::on_open`], failure (including a connect that takes
    /// longer than the handshake timeout) as
    /// [`crate::App::on_connect_failed`]. Bytes sent before completion are
    /// queued.
    pub fn connect(&mut self, addr: SocketAddr) -> ConnId {
        let idx = self.io.alloc(-1, Kind::Outbound, 0);
        self.io.slots[idx as usize].flags.set(Flags::OPENING);
        self.open += 1;
        self.connects.push(idx, addr);
        self.io.id(idx)
    }

    /// Reserves the next place in `conn`'s reply order (a text-port or HTTP
    /// connection) for an answer given later with [`Context::reply_line`] or
    /// [`Context::respond`]. `None` if the connection cannot take one (gone,
    /// closing, another protocol, or too many outstanding).
    pub fn defer(&mut self, conn: ConnId) -> Option<Deferred> {
        let s = self.io.slot_of(conn)?;
        if !matches!(s.kind, Kind::Text | Kind::Http) || !s.can_send() {
            return None;
        }
        self.replies
            .defer(&mut self.io, conn, self.limits.max_deferred)
    }

    /// True when [`Context::defer`] would reserve a place for `conn` now.
    pub fn can_defer(&self, conn: ConnId) -> bool {
        self.io.slot_of(conn).is_some_and(|s| {
            matches!(s.kind, Kind::Text | Kind::Http)
                && s.can_send()
                && self.replies.has_room(conn.idx(), self.limits.max_deferred)
        })
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
            crate::http::write_response(
                out,
                resp.status,
                resp.content_type,
                resp.headers,
                &resp.body,
                true,
            )
        })
    }

    fn fulfil(&mut self, d: Deferred, write: impl FnOnce(&mut Vec<u8>)) -> bool {
        let answered = self.replies.fulfil(&mut self.io, d, write);
        if answered {
            self.stats.messages_out += 1;
        }
        answered
    }

    // ----- figures -----

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The loop's clock: milliseconds since the server started, read once
    /// per loop iteration.
    pub fn now_ms(&self) -> u64 {
        self.io.now_ms
    }

    /// Seconds since the server started.
    pub fn uptime_s(&self) -> u64 {
        self.io.uptime_ms() / 1000
    }

    /// The soft and hard open-file limits in force (soft raised to hard at start).
    pub fn nofile_limit(&self) -> (u64, u64) {
        self.nofile
    }

    /// Memory herald itself holds for connections: slots, parser states, uid
    /// map, timer wheel, pending output. A computed figure; RSS is the
    /// measured one.
    pub fn footprint_bytes(&self) -> usize {
        let uids: usize = self
            .io
            .slots
            .iter()
            .map(|s| s.uid.as_ref().map_or(0, Uid::heap_bytes))
            .sum();
        self.io.heap_bytes()
            + self.hub.heap_bytes()
            + uids
            + self.input_bytes
            + self.replies.heap_bytes()
            + self.frames.iter().map(Vec::capacity).sum::<usize>()
    }

    /// Resident set size of the process.
    pub fn rss_bytes(&self) -> u64 {
        sys::rss_bytes()
    }

    /// What one connection costs while idle: its slot and its parser-state
    /// pointer.
    pub fn slot_bytes(&self) -> usize {
        bytes_per_slot()
    }
}
