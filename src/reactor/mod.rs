//! The one-thread epoll reactor: it moves bytes, readiness and time, and
//! nothing else. Protocols are sans-IO state machines (`ws::conn`,
//! `http::conn`, `line`); the application sees them through [`crate::App`].
//!
//! Per-connection memory is one slot plus one parser-state pointer while
//! idle: input state and the output queue exist only while bytes are
//! pending. Reads go through one shared buffer; sends queued during a loop
//! iteration leave in one `send` per connection at its end.
//!
//! Files: `slot` (kinds, flags, the slot), `context` (the API callbacks
//! use), `output` (queues, flushing, closing), `input` (reads and the
//! protocol drivers), `accept` (admission), `timer` (deadlines),
//! `outbound` (connects), `deferred` (replies answered later), `wheel`.

mod accept;
mod app;
mod context;
mod deferred;
mod id;
mod input;
mod message;
mod outbound;
mod output;
mod rate;
mod report;
mod slot;
mod stats;
mod timer;
mod wheel;

pub use app::App;
pub use context::Context;
pub use id::{ConnId, Deferred, Protocol, TimerId};
pub use message::{Message, Request, Response, Upgrade, UpgradeRequest};
pub use report::Refusal;
pub use stats::{ConnInfo, Stats};

use crate::limits::Limits;
use crate::sys::{self, Ready, EV_CLOSED, EV_IN, EV_OUT};
use crate::ws::CloseCode;
use input::{Input, Inputs};
use slot::{Flags, Kind, Slot};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use wheel::TICK_MS;

struct ListenerInfo {
    protocol: Protocol,
    addr: SocketAddr,
    slot: u32,
}

/// What an idle connection costs: its slot and its parser-state pointer.
fn bytes_per_slot() -> usize {
    std::mem::size_of::<Slot>() + std::mem::size_of::<Option<Box<Input>>>()
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
    cx: Context,
    app: A,
    events: Vec<Ready>,
    /// The one read buffer, shared by every connection.
    rbuf: Vec<u8>,
    inputs: Inputs,
    /// How long the last end-of-iteration flush took (ms): the text-port
    /// read budget follows it.
    last_flush_ms: u64,
    /// When text-port reading stops in this iteration, once one began.
    text_until: Option<u64>,
}

impl<A: App> Server<A> {
    /// Creates the reactor and raises the open-file soft limit to the hard limit.
    pub fn new(limits: Limits, app: A) -> io::Result<Server<A>> {
        let rbuf = vec![0; limits.read_buffer.max(1024)];
        Ok(Server {
            cx: Context::new(limits)?,
            app,
            events: Vec::with_capacity(256),
            rbuf,
            inputs: Inputs::default(),
            last_flush_ms: 0,
            text_until: None,
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
        if self.cx.listeners.len() >= u8::MAX as usize {
            return Err(io::Error::other("too many listeners"));
        }
        let fd = sys::listen_tcp(&addr, reuse_port, 4096)?;
        let bound = sys::local_addr(fd)?;
        let li = self.cx.listeners.len() as u8;
        let idx = self.cx.alloc(fd, Kind::Listener, li);
        self.cx
            .epoll
            .add(fd, self.cx.id(idx).as_u64(), true, false)?;
        self.cx.listeners.push(ListenerInfo {
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
        let idx = self.cx.alloc(fd, Kind::Signal, 0);
        self.cx.epoll.add(fd, self.cx.id(idx).as_u64(), true, false)
    }

    /// A handle that stops the server from another thread.
    pub fn stop_handle(&mut self) -> io::Result<StopHandle> {
        let fd = Arc::new(sys::eventfd()?);
        let raw = fd.as_raw_fd();
        let idx = self.cx.alloc(raw, Kind::Waker, 0);
        self.cx
            .epoll
            .add(raw, self.cx.id(idx).as_u64(), true, false)?;
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
        self.app.on_start(&mut self.cx);
        self.start_connects();
        self.cx.flush_dirty();
        loop {
            let timeout = self.poll_timeout();
            self.cx.epoll.wait(&mut self.events, timeout)?;
            self.cx.now_ms = sys::monotonic_ms() - self.cx.start_ms;
            self.cx.now = (self.cx.now_ms / TICK_MS) as u32;
            let events = std::mem::take(&mut self.events);
            self.text_until = None;
            for ev in &events {
                self.dispatch(*ev);
            }
            self.events = events;
            self.run_timers();
            self.start_connects();
            let before = sys::monotonic_ms();
            self.cx.flush_dirty();
            self.last_flush_ms = sys::monotonic_ms().saturating_sub(before);
            self.reap();
            self.report();
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
        let mut wait = next_tick - elapsed;
        if let Some(t) = self.next_app_timer_ms() {
            wait = wait.min(t);
        }
        wait.clamp(1, TICK_MS) as i32
    }

    /// Calls `on_close` for connections that died and frees their slots.
    fn reap(&mut self) {
        while let Some(idx) = self.cx.dead.pop() {
            let id = self.cx.id(idx);
            if self.cx.slots[idx as usize].flags.has(Flags::OPENED) {
                // Let the callback see the connection (uid included) once more.
                let s = &mut self.cx.slots[idx as usize];
                s.flags.clear(Flags::DEAD);
                s.flags.set(Flags::CLOSING);
                self.app.on_close(&mut self.cx, id);
                self.cx.slots[idx as usize].flags.set(Flags::DEAD);
            }
            self.inputs.clear_at(idx, &mut self.cx.input_bytes);
            self.cx.replies.remove(&idx);
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
            self.cx.open -= 1;
            self.cx.free_slot(idx);
        }
        // on_close callbacks may have queued output or asked for connects.
        self.start_connects();
        self.cx.flush_dirty();
    }

    fn dispatch(&mut self, ev: Ready) {
        let id = ConnId(ev.token);
        let Some(s) = self.cx.slots.get(id.idx() as usize) else {
            return;
        };
        if s.gen != id.gen() || s.flags.has(Flags::DEAD) {
            return;
        }
        let idx = id.idx();
        match s.kind {
            Kind::Free => {}
            Kind::Listener => self.accept(s.listener),
            Kind::Signal => {
                let got = sys::drain_signal_fd(s.fd);
                if got.reopen {
                    match crate::log::reopen() {
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
                        self.cx.open,
                        self.cx.limits.shutdown_grace_ms
                    );
                    self.begin_stop();
                }
            }
            Kind::Waker => {
                if sys::eventfd_drain(s.fd) {
                    self.begin_stop();
                }
            }
            Kind::Outbound if s.flags.has(Flags::CONNECTING) => self.connect_ready(idx),
            Kind::WebSocket | Kind::Text | Kind::Http | Kind::Outbound => {
                if ev.events & EV_OUT != 0 {
                    self.cx.flush(idx);
                }
                let f = self.cx.slots[idx as usize].flags;
                if ev.events & EV_CLOSED != 0
                    && f.has(Flags::CLOSE_EXCHANGED)
                    && f.has(Flags::FIN_SENT)
                {
                    // Both ends have closed the WebSocket and sent FIN:
                    // nothing left to read that matters.
                    self.cx.kill(idx, false);
                } else if ev.events & (EV_IN | EV_CLOSED) != 0 && self.cx.slots[idx as usize].live()
                {
                    self.readable(idx);
                }
            }
        }
    }

    fn begin_stop(&mut self) {
        if self.cx.stopping.is_some() {
            return;
        }
        let cx = &mut self.cx;
        cx.stopping = Some(cx.now + output::ms_to_ticks(cx.limits.shutdown_grace_ms));
        for l in std::mem::take(&mut cx.listeners) {
            sys::close(cx.slots[l.slot as usize].fd);
            cx.free_slot(l.slot);
        }
        for idx in 0..cx.slots.len() as u32 {
            let s = &cx.slots[idx as usize];
            if !s.live() {
                continue;
            }
            if s.flags.has(Flags::HANDSHAKE | Flags::CONNECTING) {
                cx.kill(idx, false);
            } else {
                let id = cx.id(idx);
                cx.close(id, CloseCode::GOING_AWAY, "server shutting down");
            }
        }
    }
}

impl Drop for Context {
    /// A dropped server releases every descriptor it owns (library users may
    /// create many servers in one process).
    fn drop(&mut self) {
        for s in &self.slots {
            let owned = match s.kind {
                Kind::Listener | Kind::Signal => true,
                // The stop handles' Arc owns a waker's descriptor.
                Kind::Waker | Kind::Free => false,
                Kind::WebSocket | Kind::Text | Kind::Http | Kind::Outbound => s.live(),
            };
            if owned && s.fd >= 0 {
                sys::close(s.fd);
            }
        }
        if self.reserve_fd >= 0 {
            sys::close(self.reserve_fd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_connection_costs_64_bytes_on_64_bit_and_52_on_32_bit() {
        // The density target depends on it: grow this only with a reason.
        // The slot and its parser-state pointer, per pointer width.
        #[cfg(target_pointer_width = "64")]
        assert_eq!((std::mem::size_of::<Slot>(), bytes_per_slot()), (56, 64));
        #[cfg(target_pointer_width = "32")]
        assert_eq!((std::mem::size_of::<Slot>(), bytes_per_slot()), (52, 56));
    }
}
