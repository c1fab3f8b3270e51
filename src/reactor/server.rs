//! [`Server`]: the one-thread loop. Each iteration waits on epoll, hands
//! each readiness event to its listener, signal, stop handle or connection
//! driver, fires what is due, starts the connects callbacks asked for,
//! flushes every send queue written to, and reaps the connections that
//! died.

use super::app::App;
use super::context::{Context, UidEvent};
use super::id::{ConnId, Protocol};
use super::inputs::Inputs;
use super::proto::http::Http;
use super::proto::outbound::{self, Outbound};
use super::proto::text::Text;
use super::proto::ws::Ws;
use super::slot::{Flags, Kind};
use super::wheel::{ms_to_ticks, TICK_MS};
use crate::limits::Limits;
use crate::log;
use crate::sys::{self, Ready};
use crate::ws::CloseCode;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;

/// One listener: the protocol it accepts, where it is bound, its slot.
pub(super) struct ListenerInfo {
    pub(super) protocol: Protocol,
    addr: SocketAddr,
    pub(super) slot: u32,
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

/// A server: listeners plus the application, run by [`Server::run`].
pub struct Server<A: App> {
    pub(super) cx: Context,
    pub(super) app: A,
    events: Vec<Ready>,
    /// The one read buffer, shared by every connection.
    pub(super) rbuf: Vec<u8>,
    pub(super) inputs: Inputs,
    /// How long the last end-of-iteration flush took (ms): the pipelined
    /// read budget follows it.
    pub(super) last_flush_ms: u64,
    /// When pipelined reading stops in this iteration, once one began.
    pub(super) read_until: Option<u64>,
    /// Until when WebSocket output is held back (not flushed at the end of
    /// each iteration): set for the pipelined read budget
    /// (`PIPELINED_READ_MIN_MS` to `_MAX_MS`) when a flood is under way
    /// (`Context::flood`: a pipelining backend waiting for Redis, or Redis's
    /// subscriber delivering full read buffers). Those pushes otherwise
    /// leave one write per recipient per Redis round trip or read.
    hold_until: Option<u64>,
    pub(super) listeners: Vec<ListenerInfo>,
    /// Keeps stop eventfds open as long as the server lives.
    wakers: Vec<Arc<OwnedFd>>,
}

impl<A: App> Server<A> {
    /// Creates the reactor and raises the open-file soft limit to the hard
    /// limit. Limits that [`Limits::validate`] refuses are `InvalidInput`.
    pub fn new(limits: Limits, app: A) -> io::Result<Server<A>> {
        // A library user gets the checks the command line makes.
        limits
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let rbuf = vec![0; limits.read_buffer.max(1024)];
        Ok(Server {
            cx: Context::new(limits)?,
            app,
            events: Vec::with_capacity(256),
            rbuf,
            inputs: Inputs::default(),
            last_flush_ms: 0,
            read_until: None,
            hold_until: None,
            listeners: Vec::new(),
            wakers: Vec::new(),
        })
    }

    /// Adds a listener; returns the bound address (useful with port 0).
    pub fn listen(
        &mut self,
        protocol: Protocol,
        addr: SocketAddr,
        reuse_port: bool,
    ) -> io::Result<SocketAddr> {
        if protocol == Protocol::Outbound {
            return Err(io::Error::other("outbound is not a listener protocol"));
        }
        if self.listeners.len() >= u8::MAX as usize {
            return Err(io::Error::other("too many listeners"));
        }
        let fd = sys::listen_tcp(&addr, reuse_port, 4096)?;
        let bound = sys::local_addr(fd)?;
        let li = self.listeners.len() as u8;
        let idx = self.register(fd, Kind::Listener, li)?;
        self.listeners.push(ListenerInfo {
            protocol,
            addr: bound,
            slot: idx,
        });
        Ok(bound)
    }

    /// Stops gracefully on SIGINT / SIGTERM, calls [`App::on_reload`] on
    /// SIGHUP and reopens the log file on SIGUSR1 (blocks them for this
    /// thread).
    pub fn stop_on_signals(&mut self) -> io::Result<()> {
        let fd = sys::stop_signal_fd()?;
        self.register(fd, Kind::Signal, 0).map(drop)
    }

    /// A handle that stops the server from another thread.
    pub fn stop_handle(&mut self) -> io::Result<StopHandle> {
        let fd = Arc::new(sys::eventfd()?);
        self.register(fd.as_raw_fd(), Kind::Waker, 0)?;
        self.wakers.push(fd.clone());
        Ok(StopHandle { fd })
    }

    /// A slot for a descriptor of the server's own, registered for input.
    fn register(&mut self, fd: RawFd, kind: Kind, listener: u8) -> io::Result<u32> {
        let io = &mut self.cx.io;
        let idx = io.alloc(fd, kind, listener);
        io.epoll.add(fd, io.id(idx).as_u64(), true, false)?;
        Ok(idx)
    }

    pub fn context(&mut self) -> &mut Context {
        &mut self.cx
    }

    pub fn app(&mut self) -> &mut A {
        &mut self.app
    }

    /// The listeners' protocols and bound addresses, in `listen` order.
    pub fn listeners(&self) -> Vec<(Protocol, SocketAddr)> {
        self.listeners
            .iter()
            .map(|l| (l.protocol, l.addr))
            .collect()
    }

    /// Runs until stopped; a graceful stop closes WebSockets with 1001 and
    /// flushes queued output within `shutdown_grace_ms`.
    pub fn run(&mut self) -> io::Result<()> {
        self.app.on_start(&mut self.cx);
        outbound::start(&mut self.cx, &mut self.app);
        self.report_uid_events();
        self.cx.io.flush_dirty(&mut self.cx.stats);
        loop {
            let timeout = self.poll_timeout();
            self.cx.io.epoll.wait(&mut self.events, timeout)?;
            self.cx.io.tick();
            let events = std::mem::take(&mut self.events);
            self.read_until = None;
            for ev in &events {
                self.dispatch(*ev);
                self.report_uid_events();
            }
            self.events = events;
            self.run_timers();
            self.resume_paused();
            outbound::start(&mut self.cx, &mut self.app);
            self.report_uid_events();
            self.flush_round();
            self.reap();
            let cx = &mut self.cx;
            cx.reports.report(cx.io.now, cx.nofile.0, &cx.limits);
            if let Some(deadline) = self.cx.stopping {
                if self.cx.open == 0 {
                    self.final_report();
                    return Ok(());
                }
                if self.cx.io.now >= deadline {
                    for idx in 0..self.cx.io.slots.len() as u32 {
                        self.cx.io.kill(idx, true);
                    }
                    self.reap();
                    self.final_report();
                    return Ok(());
                }
            }
        }
    }

    /// The end-of-iteration flush: everything, or all but WebSockets while
    /// output is held back (`hold_until`).
    fn flush_round(&mut self) {
        let before = sys::monotonic_ms();
        if std::mem::take(&mut self.cx.flood) && self.hold_until.is_none() {
            self.hold_until = Some(before + self.pipelined_budget_ms());
        }
        let cx = &mut self.cx;
        match self.hold_until {
            Some(until) if before < until && cx.stopping.is_none() => {
                cx.io.flush_dirty_but_websockets(&mut cx.stats);
                return;
            }
            _ => self.hold_until = None,
        }
        cx.io.flush_dirty(&mut cx.stats);
        self.last_flush_ms = sys::monotonic_ms().saturating_sub(before);
    }

    fn poll_timeout(&self) -> i32 {
        if !self.cx.io.wake.is_empty() {
            // Paused connections to look at (their output just went out).
            return 0;
        }
        let elapsed = self.cx.io.uptime_ms();
        let next_tick = (elapsed / TICK_MS + 1) * TICK_MS;
        let mut wait = next_tick - elapsed;
        if let Some(t) = self.cx.timers.next_in(self.cx.io.now_ms) {
            wait = wait.min(t);
        }
        wait.clamp(1, TICK_MS) as i32
    }

    /// Calls `on_close` for connections that died and frees their slots.
    fn reap(&mut self) {
        while let Some(idx) = self.cx.io.dead.pop() {
            let id = self.cx.io.id(idx);
            if self.cx.io.slots[idx as usize].flags.has(Flags::OPENED) {
                self.app.on_close(&mut self.cx, id);
            }
            self.inputs.clear_at(idx, &mut self.cx.input_bytes);
            self.cx.forget_pause(idx);
            self.cx.replies.remove(idx);
            self.cx.unbind_at(idx);
            self.report_uid_events();
            self.cx.io.release_out(idx);
            self.cx.per_ip.release(idx);
            self.cx.open -= 1;
            self.cx.io.free_slot(idx);
        }
        // on_close callbacks may have queued output or asked for connects.
        outbound::start(&mut self.cx, &mut self.app);
        let cx = &mut self.cx;
        if self.hold_until.is_some() {
            cx.io.flush_dirty_but_websockets(&mut cx.stats);
        } else {
            cx.io.flush_dirty(&mut cx.stats);
        }
    }

    /// What the operator reports still hold when the server stops: logged
    /// now rather than lost with the process.
    fn final_report(&mut self) {
        let cx = &mut self.cx;
        cx.reports.flush(cx.io.now, cx.nofile.0, &cx.limits);
    }

    /// Reports the binding changes queued by the callbacks that just ran
    /// (and any their reports cause), before any output leaves.
    fn report_uid_events(&mut self) {
        while !self.cx.uid_events.is_empty() {
            let mut batch = std::mem::take(&mut self.cx.uid_events);
            for event in batch.drain(..) {
                match event {
                    UidEvent::Bound(uid, first) => {
                        self.app.on_uid_bound(&mut self.cx, uid.as_str(), first)
                    }
                    UidEvent::Unbound(uid, last) => {
                        self.app.on_uid_unbound(&mut self.cx, uid.as_str(), last)
                    }
                }
            }
            if self.cx.uid_events.is_empty() {
                // Keep the queue's capacity for the next round.
                self.cx.uid_events = batch;
            }
        }
    }

    /// Hands one readiness event to its owner: the protocol driver is
    /// chosen here, once, from the slot's kind.
    fn dispatch(&mut self, ev: Ready) {
        let id = ConnId(ev.token);
        let Some(s) = self.cx.io.slots.get(id.idx() as usize) else {
            return;
        };
        if s.gen != id.gen() || s.flags.has(Flags::DEAD) {
            return;
        }
        let idx = id.idx();
        match s.kind {
            Kind::Free => {}
            Kind::Listener => self.accept(s.listener),
            Kind::Signal => self.signal(s.fd),
            Kind::Waker => {
                if sys::eventfd_drain(s.fd) {
                    self.begin_stop();
                }
            }
            Kind::Outbound if s.flags.has(Flags::CONNECTING) => {
                outbound::ready(&mut self.cx, &mut self.app, idx)
            }
            Kind::WebSocket => self.ready::<Ws>(idx, ev.events),
            Kind::Text => self.ready::<Text>(idx, ev.events),
            Kind::Http => self.ready::<Http>(idx, ev.events),
            Kind::Outbound => self.ready::<Outbound>(idx, ev.events),
        }
    }

    /// SIGUSR1 reopens the log, SIGHUP reloads, SIGINT / SIGTERM stop.
    fn signal(&mut self, fd: RawFd) {
        let got = sys::drain_signal_fd(fd);
        if got.reopen {
            match log::reopen() {
                Ok(()) => log_info!("SIGUSR1: log file reopened"),
                Err(e) => log_error!("SIGUSR1: cannot reopen the log file: {e}"),
            }
        }
        if got.reload {
            self.app.on_reload(&mut self.cx);
        }
        if let Some(sig) = got.stop {
            let name = if sig == sys::SIGINT {
                "SIGINT"
            } else {
                "SIGTERM"
            };
            log_info!(
                "{name}: stopping, {} connection(s) to close within --shutdown-grace {} ms",
                self.cx.open_connections(),
                self.cx.limits.shutdown_grace_ms
            );
            self.begin_stop();
        }
    }

    fn begin_stop(&mut self) {
        if self.cx.stopping.is_some() {
            return;
        }
        let cx = &mut self.cx;
        cx.stopping = Some(cx.io.now + ms_to_ticks(cx.limits.shutdown_grace_ms));
        for l in std::mem::take(&mut self.listeners) {
            sys::close(cx.io.slots[l.slot as usize].fd);
            cx.io.free_slot(l.slot);
        }
        for idx in 0..cx.io.slots.len() as u32 {
            let s = &cx.io.slots[idx as usize];
            if !s.live() {
                continue;
            }
            if s.flags.has(Flags::HANDSHAKE | Flags::CONNECTING) {
                cx.io.kill(idx, false);
            } else {
                let id = cx.io.id(idx);
                cx.close(id, CloseCode::GOING_AWAY, "server shutting down");
            }
        }
    }
}
