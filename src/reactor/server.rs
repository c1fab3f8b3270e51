//! [`Server`]: the one-thread loop. Each iteration waits on epoll, hands
//! each readiness event to its listener, signal, stop handle or connection
//! driver, fires what is due, starts the connects callbacks asked for,
//! flushes every send queue written to, and reaps the connections that
//! died.

use super::app::App;
use super::context::{Context, UidEvent};
use super::drain::{Drain, Step};
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
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::Arc;

/// One listener: the protocol it accepts, where it is bound, its slot.
pub(super) struct ListenerInfo {
    pub(super) protocol: Protocol,
    addr: SocketAddr,
    pub(super) slot: u32,
    /// Shared with other processes (adopted), registered EPOLLEXCLUSIVE.
    shared: bool,
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
    /// SIGUSR2 drains (a worker being replaced) rather than being ignored.
    drain_on_usr2: bool,
    /// The drain in progress, once SIGUSR2 began one.
    pub(super) drain: Option<Drain>,
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
            drain_on_usr2: false,
            drain: None,
        })
    }

    /// Adds a listener; returns the bound address (useful with port 0).
    pub fn listen(
        &mut self,
        protocol: Protocol,
        addr: SocketAddr,
        reuse_port: bool,
    ) -> io::Result<SocketAddr> {
        self.check_listener(protocol)?;
        let fd = sys::listen_tcp(&addr, reuse_port, 4096)?;
        self.add_listener(protocol, fd, false)
    }

    /// Adds a listener already bound and listening, shared with other
    /// processes (a supervisor's, inherited by its workers): registered with
    /// EPOLLEXCLUSIVE, so that a connection wakes one of the processes that
    /// wait on it, not all. Returns its address.
    pub fn adopt_listener(&mut self, protocol: Protocol, fd: OwnedFd) -> io::Result<SocketAddr> {
        self.check_listener(protocol)?;
        self.add_listener(protocol, fd.into_raw_fd(), true)
    }

    fn check_listener(&self, protocol: Protocol) -> io::Result<()> {
        if protocol == Protocol::Outbound {
            return Err(io::Error::other("outbound is not a listener protocol"));
        }
        if self.listeners.len() >= u8::MAX as usize {
            return Err(io::Error::other("too many listeners"));
        }
        Ok(())
    }

    /// Registers listening socket `fd`, ours from here (closed on an
    /// error); `shared` with other processes, with EPOLLEXCLUSIVE.
    fn add_listener(
        &mut self,
        protocol: Protocol,
        fd: RawFd,
        shared: bool,
    ) -> io::Result<SocketAddr> {
        let bound = match sys::local_addr(fd) {
            Ok(a) => a,
            Err(e) => {
                sys::close(fd);
                return Err(e);
            }
        };
        let li = self.listeners.len() as u8;
        let io = &mut self.cx.io;
        let idx = io.alloc(fd, Kind::Listener, li);
        let token = io.id(idx).as_u64();
        let added = if shared {
            io.epoll.add_exclusive(fd, token)
        } else {
            io.epoll.add(fd, token, true, false)
        };
        if let Err(e) = added {
            io.free_slot(idx);
            sys::close(fd);
            return Err(e);
        }
        self.listeners.push(ListenerInfo {
            protocol,
            addr: bound,
            slot: idx,
            shared,
        });
        Ok(bound)
    }

    /// Duplicates of the listeners' descriptors, close-on-exec, with their
    /// protocols: what a supervisor keeps to hand to the workers it starts
    /// (see [`Server::adopt_listener`]).
    pub fn listener_fds(&self) -> io::Result<Vec<(Protocol, OwnedFd)>> {
        self.listeners
            .iter()
            .map(|l| {
                Ok((
                    l.protocol,
                    sys::dup_cloexec(self.cx.io.slots[l.slot as usize].fd)?,
                ))
            })
            .collect()
    }

    /// Stops gracefully on SIGINT / SIGTERM, calls [`App::on_reload`] on
    /// SIGHUP and reopens the log file on SIGUSR1 (blocks them for this
    /// thread).
    pub fn stop_on_signals(&mut self) -> io::Result<()> {
        let fd = sys::stop_signal_fd()?;
        self.register(fd, Kind::Signal, 0).map(drop)
    }

    /// Handles SIGUSR2 (blocks it for this thread). With `drain`, it starts
    /// a drain, as a worker being replaced does: no more accepts (what is
    /// queued already is taken first), WebSockets closed with 1012 (Service
    /// Restart) spread evenly over `Limits::restart_drain_ms`, text-port
    /// and HTTP connections once their replies are written, then a graceful
    /// stop. Without, SIGUSR2 is logged and ignored instead of killing the
    /// process.
    pub fn handle_sigusr2(&mut self, drain: bool) -> io::Result<()> {
        let fd = sys::usr2_signal_fd()?;
        self.register(fd, Kind::Signal, 0)?;
        self.drain_on_usr2 = drain;
        Ok(())
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
            self.drain_step();
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
    pub(super) fn report_uid_events(&mut self) {
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
            Kind::Listener => {
                let li = s.listener;
                self.accept(li);
                self.requeue(li);
            }
            Kind::Signal => self.signal(s.fd),
            Kind::Waker => {
                if sys::eventfd_drain(s.fd) {
                    self.begin_stop();
                }
            }
            Kind::Outbound if s.flags.has(Flags::OPENING) => {
                outbound::ready(&mut self.cx, &mut self.app, idx)
            }
            Kind::WebSocket => self.ready::<Ws>(idx, ev.events),
            Kind::Text => self.ready::<Text>(idx, ev.events),
            Kind::Http => self.ready::<Http>(idx, ev.events),
            Kind::Outbound => self.ready::<Outbound>(idx, ev.events),
        }
    }

    /// Sends a shared listener to the back of the line after its wake-up.
    /// The kernel wakes the first idle process registered on it
    /// (EPOLLEXCLUSIVE), which would take every connection while it keeps
    /// up and leave the other workers idle; registering again puts this
    /// one last, so that connections go round the idle workers. Nothing is
    /// missed meanwhile: the queue is the socket's, and registering looks
    /// at it at once.
    fn requeue(&mut self, li: u8) {
        let Some(l) = self.listeners.get(li as usize).filter(|l| l.shared) else {
            return;
        };
        let io = &self.cx.io;
        let fd = io.slots[l.slot as usize].fd;
        let _ = io.epoll.delete(fd);
        if let Err(e) = io.epoll.add_exclusive(fd, io.id(l.slot).as_u64()) {
            log_error!(
                "{} listener: cannot register it again: {e}; not accepting here any more",
                l.protocol.name()
            );
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
        if got.drain && self.drain_on_usr2 {
            self.begin_drain();
        } else if got.drain {
            log_warn!("SIGUSR2 ignored: only a worker under a supervisor drains (rolling restarts need --workers)");
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
        self.begin_stop_with(CloseCode::GOING_AWAY, "server shutting down");
    }

    /// Stops gracefully: no more accepts, handshakes cut, WebSockets closed
    /// with `code` and `reason`, the rest once flushed, within
    /// `shutdown_grace_ms`.
    pub(super) fn begin_stop_with(&mut self, code: CloseCode, reason: &str) {
        if self.cx.stopping.is_some() {
            return;
        }
        self.close_listeners();
        let cx = &mut self.cx;
        cx.stopping = Some(cx.io.now + ms_to_ticks(cx.limits.shutdown_grace_ms));
        for idx in 0..cx.io.slots.len() as u32 {
            let s = &cx.io.slots[idx as usize];
            if !s.live() {
                continue;
            }
            if s.flags.has(Flags::OPENING) {
                cx.io.kill(idx, false);
            } else {
                let id = cx.io.id(idx);
                cx.close(id, code, reason);
            }
        }
    }

    /// Starts the drain (once; not while stopping): see
    /// [`Server::handle_sigusr2`] and `drain.rs`.
    fn begin_drain(&mut self) {
        if self.drain.is_some() || self.cx.stopping.is_some() {
            return;
        }
        // Out of the epoll set first, so that every connection arriving
        // from now on wakes another worker; then take what is queued: its
        // wake-up may have come here alone (EPOLLEXCLUSIVE), and the other
        // workers would not hear of it before the next connection. The
        // queue is shared: what is left in it is the others' to take.
        for l in &self.listeners {
            let io = &self.cx.io;
            let _ = io.epoll.delete(io.slots[l.slot as usize].fd);
        }
        for li in 0..self.listeners.len() as u8 {
            while self.accept(li) {}
        }
        self.report_uid_events();
        self.close_listeners();
        let cx = &mut self.cx;
        let mut websockets = 0;
        for idx in 0..cx.io.slots.len() as u32 {
            let s = &cx.io.slots[idx as usize];
            match s.kind {
                _ if !s.live() => {}
                Kind::WebSocket => websockets += 1,
                // Backends reconnect to the shared port: another worker.
                Kind::Text | Kind::Http => cx.io.close_after_replies(idx),
                // The application's own links (Redis) serve the drain.
                Kind::Outbound | Kind::Free | Kind::Listener | Kind::Signal | Kind::Waker => {}
            }
        }
        let period = cx.limits.restart_drain_ms;
        log_info!(
            "SIGUSR2: draining: {websockets} WebSocket(s) to close with 1012 over --restart-drain {period} ms, then stopping"
        );
        self.drain = Some(Drain::new(cx.io.now_ms, period));
        self.drain_step();
    }

    /// The drain's step for this tick: WebSockets closed with 1012, or the
    /// stop.
    fn drain_step(&mut self) {
        const REASON: &str = "service restart";
        let cx = &mut self.cx;
        let Some(d) = self.drain.as_mut() else {
            return;
        };
        if cx.stopping.is_some() || d.stepped(cx.io.now) {
            return;
        }
        // Handshakes in progress count: they are closed once open, in turn.
        let open = |s: &super::slot::Slot| {
            s.kind == Kind::WebSocket && s.live() && !s.flags.has(Flags::CLOSING)
        };
        let websockets = cx.io.slots.iter().filter(|s| open(s)).count();
        match d.step(cx.io.now_ms, cx.io.now, cx.open_connections(), websockets) {
            Step::Idle => {}
            Step::Close(mut n) => {
                for idx in 0..cx.io.slots.len() as u32 {
                    let s = &cx.io.slots[idx as usize];
                    if n == 0 {
                        break;
                    }
                    if open(s) && !s.flags.has(Flags::OPENING) {
                        let id = cx.io.id(idx);
                        cx.close(id, CloseCode::SERVICE_RESTART, REASON);
                        d.closed(1);
                        n -= 1;
                    }
                }
            }
            Step::Stop => {
                log_info!(
                    "drained: stopping, {} connection(s) left to close within --shutdown-grace {} ms",
                    cx.open_connections(),
                    cx.limits.shutdown_grace_ms
                );
                self.begin_stop_with(CloseCode::SERVICE_RESTART, REASON);
            }
        }
    }

    /// Closes the listeners. Out of the epoll set first: a listener shared
    /// with other processes stays open there, and closing this process's
    /// descriptor alone would leave it registered.
    pub(super) fn close_listeners(&mut self) {
        let io = &mut self.cx.io;
        for l in std::mem::take(&mut self.listeners) {
            let fd = io.slots[l.slot as usize].fd;
            let _ = io.epoll.delete(fd);
            sys::close(fd);
            io.free_slot(l.slot);
        }
    }
}
