//! Input: a connection's readiness event, its reads into the one shared
//! buffer, and the hand-over of each read to the connection's protocol
//! driver (`proto`). Chosen once per event, the driver is a type parameter
//! here: nothing below branches on the protocol.

use super::app::App;
use super::inputs::Input;
use super::proto::http::Http;
use super::proto::text::Text;
use super::proto::{Conn, Driver};
use super::server::Server;
use super::slot::{Flags, Kind};
use crate::sys::{self, EV_CLOSED, EV_IN, EV_OUT};
use std::io;

/// A backend that keeps writing (pipelining faster than herald delivers:
/// the text port's, `Driver::PIPELINED`) is read for longer before output
/// is flushed, so that each recipient gets many messages per write: on
/// loopback a write costs 5-10 us of kernel time whatever it carries, so a
/// flood's throughput is set by how many flush rounds it takes. Bounded so
/// that one busy backend cannot starve the others or hold latency hostage:
/// - in bytes: at most `Driver::READS_PER_EVENT` reads per event (256 for
///   the text port, 16 MiB with the default read buffer);
/// - in time, per loop iteration (shared by every pipelining connection
///   read in it): no new read once the iteration has read for as long as
///   its last flush took, at least `PIPELINED_READ_MIN_MS` and at most
///   `PIPELINED_READ_MAX_MS`. Reading then takes at most about half of a
///   flood's time, and other connections wait at most
///   `PIPELINED_READ_MAX_MS` beyond the flush itself.
///
/// A backend that is not flooding is unaffected: its reads end at EAGAIN.
/// Measured (BENCHMARKS.md, 10,000 recipients, 300,000 pipelined pushes):
/// a fixed 20 ms gave 8-9 flush rounds and about 330 k pushes/s; this rule
/// 2-3 rounds.
const PIPELINED_READ_MIN_MS: u64 = 20;
const PIPELINED_READ_MAX_MS: u64 = 100;

impl<A: App> Server<A> {
    /// A readiness event on an open connection speaking `P`.
    pub(super) fn ready<P: Driver>(&mut self, idx: u32, events: u32) {
        if events & EV_OUT != 0 {
            self.cx.io.flush(idx, &mut self.cx.stats);
        }
        let f = self.cx.io.slots[idx as usize].flags;
        if events & EV_CLOSED != 0 && f.has(Flags::CLOSE_EXCHANGED) && f.has(Flags::FIN_SENT) {
            // Both ends have closed the WebSocket and sent FIN:
            // nothing left to read that matters.
            self.cx.io.kill(idx, false);
        } else if events & (EV_IN | EV_CLOSED) != 0 && self.cx.io.slots[idx as usize].live() {
            self.readable::<P>(idx);
        }
    }

    /// Reads and handles input. A read that fills the whole buffer is
    /// followed by another (up to `P::READS_PER_EVENT`) before output is
    /// flushed: a backend pipelining thousands of pushes then reaches each
    /// recipient with one write for all of its messages, not one per message.
    pub(super) fn readable<P: Driver>(&mut self, idx: u32) {
        let s = &self.cx.io.slots[idx as usize];
        if s.flags.has(Flags::PAUSED) && !s.flags.has(Flags::CLOSING) {
            // Not read until it resumes, which reads what waits meanwhile
            // (edge-triggered: no new event will say so).
            return;
        }
        let fd = s.fd;
        let until = if P::PIPELINED {
            self.pipelined_read_until()
        } else {
            0
        };
        for _ in 0..P::READS_PER_EVENT {
            let n = match sys::read(fd, &mut self.rbuf) {
                Ok(0) => {
                    self.peer_eof::<P>(idx);
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
                    self.cx.io.kill(idx, true);
                    break;
                }
            };
            if P::CLIENT {
                self.cx.stats.bytes_in += n as u64;
            } else if n == self.rbuf.len() {
                // An outbound link (Redis's subscriber) delivering a flood:
                // WebSocket output is held back as for a paused backend.
                self.cx.flood = true;
            }
            let Server {
                cx,
                app,
                rbuf,
                inputs,
                ..
            } = self;
            let s = &mut cx.io.slots[idx as usize];
            if !s.flags.has(Flags::CLOSING) {
                if !s.flags.has(Flags::OPENING) {
                    s.t = cx.io.now;
                    s.flags.clear(Flags::PINGED);
                }
                let held = inputs.at(idx);
                let before = Input::heap_bytes(held);
                let used = P::input(Conn { cx, app, held, idx }, &mut rbuf[..n]);
                cx.input_bytes = cx.input_bytes + Input::heap_bytes(held) - before;
                // Paused part way: the rest waits for the resume.
                inputs.stash(idx, &rbuf[used..n], &mut cx.input_bytes);
            }
            let s = &cx.io.slots[idx as usize];
            if s.flags.has(Flags::CLOSING) || !s.live() {
                // Draining a closing connection: input is discarded.
                inputs.clear_at(idx, &mut cx.input_bytes);
            } else if s.flags.has(Flags::PAUSED) {
                break;
            }
            // A short read usually means the socket is drained. A backend
            // that pipelines keeps writing while we read, so there we read
            // on until EAGAIN: one more syscall per event buys more messages
            // per recipient write.
            if !s.live() || (n < rbuf.len() && !P::PIPELINED) {
                break;
            }
            if P::PIPELINED && sys::monotonic_ms() >= until {
                break;
            }
        }
    }

    /// When this iteration's pipelined reading ends (see
    /// `PIPELINED_READ_MIN_MS`): fixed at the first such read of the
    /// iteration.
    fn pipelined_read_until(&mut self) -> u64 {
        let budget = self.pipelined_budget_ms();
        *self
            .read_until
            .get_or_insert_with(|| sys::monotonic_ms() + budget)
    }

    /// How long pipelined input is read (or output held back) before a
    /// flush: as long as the last flush took, within bounds.
    pub(super) fn pipelined_budget_ms(&self) -> u64 {
        self.last_flush_ms
            .clamp(PIPELINED_READ_MIN_MS, PIPELINED_READ_MAX_MS)
    }

    fn peer_eof<P: Driver>(&mut self, idx: u32) {
        let Server {
            cx, app, inputs, ..
        } = self;
        let held = inputs.at(idx);
        let before = Input::heap_bytes(held);
        P::eof(Conn { cx, app, held, idx });
        cx.input_bytes = cx.input_bytes + Input::heap_bytes(held) - before;
        let s = &cx.io.slots[idx as usize];
        if s.flags.has(Flags::PAUSED) && s.can_send() {
            // Its last line was put back: the end of the stream is read
            // again once it resumes.
            return;
        }
        inputs.clear_at(idx, &mut cx.input_bytes);
        let io = &mut cx.io;
        let s = &mut io.slots[idx as usize];
        if s.out_empty() && !s.flags.has(Flags::DIRTY | Flags::DEFERRED) {
            io.kill(idx, false);
            return;
        }
        // Let queued (and deferred) replies reach a peer that only
        // half-closed (`nc -q`).
        s.flags.set(Flags::PEER_EOF | Flags::CLOSING);
        s.t = io.now;
        let token = io.id(idx).as_u64();
        let s = &io.slots[idx as usize];
        let want_out = s.flags.has(Flags::WANT_OUT);
        let _ = io.epoll.modify(s.fd, token, false, want_out);
        io.schedule_close(idx);
    }
}

impl<A: App> Server<A> {
    /// Looks at the paused connections that may read again (`Io::wake`):
    /// each that may is handed its stashed input, then read.
    pub(super) fn resume_paused(&mut self) {
        while let Some(idx) = self.cx.io.wake.pop() {
            if !self.cx.may_resume(idx) {
                continue;
            }
            match self.cx.io.slots[idx as usize].kind {
                Kind::Text => self.resume::<Text>(idx),
                Kind::Http => self.resume::<Http>(idx),
                Kind::WebSocket
                | Kind::Outbound
                | Kind::Free
                | Kind::Listener
                | Kind::Signal
                | Kind::Waker => {}
            }
        }
    }

    /// Hands a resumed connection what it held back (the request put back,
    /// the rest of the read it paused in), then reads its socket.
    fn resume<P: Driver>(&mut self, idx: u32) {
        let Server {
            cx, app, inputs, ..
        } = self;
        let s = &mut cx.io.slots[idx as usize];
        if s.flags.has(Flags::CLOSING) {
            return;
        }
        // Input again: an HTTP connection's idle time starts over.
        s.t = cx.io.now;
        let mut data = inputs.unstash(idx, &mut cx.input_bytes);
        let held = inputs.at(idx);
        let before = Input::heap_bytes(held);
        let used = P::input(Conn { cx, app, held, idx }, &mut data);
        cx.input_bytes = cx.input_bytes + Input::heap_bytes(held) - before;
        let s = &cx.io.slots[idx as usize];
        if s.flags.has(Flags::CLOSING) || !s.live() {
            inputs.clear_at(idx, &mut cx.input_bytes);
        } else if s.flags.has(Flags::PAUSED) {
            inputs.stash(idx, &data[used..], &mut cx.input_bytes);
        } else {
            self.readable::<P>(idx);
        }
    }
}
