//! Output queues and closing: bytes wait in a connection's send queue until
//! the end of the loop iteration, leave in one write per connection, and a
//! close runs flush, half-close, wait for the peer, release.

use super::context::Context;
use super::slot::{Flags, Kind};
use super::wheel::TICK_MS;
use crate::sansio::Output;
use crate::sys;
use crate::ws::{conn as ws_conn, CloseCode};
use std::io;

/// A connection's send queue as a sans-IO [`Output`]: protocol code writes
/// into it, the reactor flushes it.
pub(super) struct SlotOut<'a> {
    cx: &'a mut Context,
    idx: u32,
}

impl Output for SlotOut<'_> {
    fn buf(&mut self) -> &mut Vec<u8> {
        self.cx.ordered_buf(self.idx)
    }
}

pub(super) fn ms_to_ticks(ms: u64) -> u32 {
    ms.div_ceil(TICK_MS).min(u32::MAX as u64 / 2) as u32
}

impl Context {
    /// The send queue of `idx` as an [`Output`].
    pub(super) fn output(&mut self, idx: u32) -> SlotOut<'_> {
        SlotOut { cx: self, idx }
    }

    /// Queues `a` then `b` as one message, under the queue cap. Never writes:
    /// the queue is flushed at the end of the loop iteration.
    pub(super) fn queue_message(&mut self, idx: u32, a: &[u8], b: &[u8]) -> bool {
        let s = &self.slots[idx as usize];
        if !s.live() || s.flags.has(Flags::CLOSING | Flags::HANDSHAKE) {
            self.stats.dropped += 1;
            return false;
        }
        let mut queued = s.out.as_ref().map_or(0, |o| o.len());
        if s.flags.has(Flags::DEFERRED) {
            queued += self.replies.get(&idx).map_or(0, |q| q.bytes());
        }
        if queued + a.len() + b.len() > self.limits.max_queued {
            self.slow_consumer(idx);
            return false;
        }
        self.stats.messages_out += 1;
        let out = self.ordered_buf(idx);
        out.reserve(a.len() + b.len());
        out.extend_from_slice(a);
        out.extend_from_slice(b);
        true
    }

    fn slow_consumer(&mut self, idx: u32) {
        self.stats.dropped += 1;
        self.stats.slow_consumers_closed += 1;
        match self.slots[idx as usize].kind {
            Kind::WebSocket => {
                self.reports.slow_ws += 1;
                // The close frame may go past the cap: it is small and the last.
                let reason = "slow consumer: send queue full";
                ws_conn::close(CloseCode::POLICY, reason, &mut self.output(idx));
            }
            Kind::Text => {
                self.reports.slow_text += 1;
                self.queue_raw(idx, b"error slow consumer: send queue full\n");
            }
            Kind::Http | Kind::Outbound => {}
            Kind::Free | Kind::Listener | Kind::Signal | Kind::Waker => return,
        }
        self.begin_close(idx);
    }

    /// Appends raw bytes to a live connection's queue, ignoring the cap.
    pub(super) fn queue_raw(&mut self, idx: u32, bytes: &[u8]) {
        if self.slots[idx as usize].live() {
            self.ordered_buf(idx).extend_from_slice(bytes);
        }
    }

    /// Where the next bytes for `idx` go: behind outstanding deferred
    /// replies if there are any, else the send queue.
    pub(super) fn ordered_buf(&mut self, idx: u32) -> &mut Vec<u8> {
        if self.slots[idx as usize].flags.has(Flags::DEFERRED) && self.replies.contains_key(&idx) {
            return self.replies.entry(idx).or_default().tail();
        }
        self.out_buf(idx)
    }

    /// The send queue of `idx`, taken from the pool on first use; marks the
    /// connection for a flush at the end of the iteration.
    pub(super) fn out_buf(&mut self, idx: u32) -> &mut Vec<u8> {
        let s = &mut self.slots[idx as usize];
        if !s.flags.has(Flags::DIRTY | Flags::WANT_OUT) {
            s.flags.set(Flags::DIRTY);
            self.dirty.push(idx);
        }
        let s = &mut self.slots[idx as usize];
        if s.out.is_none() {
            s.out = Some(self.pool.pop().unwrap_or_default());
        }
        s.out.get_or_insert_with(Default::default)
    }

    pub(super) fn release_out(&mut self, idx: u32) {
        if let Some(mut b) = self.slots[idx as usize].out.take() {
            if self.pool.len() < self.limits.send_pool && b.capacity() <= POOL_BUF_MAX {
                b.clear();
                self.pool.push(b);
            }
        }
    }

    /// Writes as much queued output as the socket takes.
    pub(super) fn flush(&mut self, idx: u32) {
        let s = &mut self.slots[idx as usize];
        s.flags.clear(Flags::DIRTY);
        if !s.live() || s.flags.has(Flags::CONNECTING) {
            // An outbound connect in progress: its queue leaves on completion.
            return;
        }
        let fd = s.fd;
        let mut written = 0;
        let mut failed = false;
        let last = s.flags.has(Flags::CLOSE_EXCHANGED);
        if let Some(out) = s.out.as_mut() {
            while written < out.len() {
                let rest = &out[written..];
                let sent = if last {
                    sys::write_last(fd, rest)
                } else {
                    sys::write(fd, rest)
                };
                match sent {
                    Ok(n) => {
                        written += n;
                        self.stats.writes += 1;
                    }
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
                if !s.flags.has(Flags::WANT_OUT) {
                    s.flags.set(Flags::WANT_OUT);
                    let want_in = !s.flags.has(Flags::PEER_EOF);
                    let token = self.id(idx).as_u64();
                    let _ = self.epoll.modify(fd, token, want_in, true);
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
        if s.flags.has(Flags::WANT_OUT) {
            s.flags.clear(Flags::WANT_OUT);
            let want_in = !s.flags.has(Flags::PEER_EOF);
            let token = self.id(idx).as_u64();
            let _ = self.epoll.modify(fd, token, want_in, false);
        }
        self.after_drained(idx);
    }

    /// Output is empty: finish a close in progress.
    fn after_drained(&mut self, idx: u32) {
        let s = &mut self.slots[idx as usize];
        if s.flags.has(Flags::DEFERRED) {
            // Replies are still owed: the close waits for them (bounded by
            // the close timeout once closing).
        } else if s.flags.has(Flags::PEER_EOF) {
            self.kill(idx, false);
        } else if s.flags.has(Flags::CLOSING) && !s.flags.has(Flags::FIN_SENT) {
            // Half-close and wait for the peer's end of stream: closing with
            // unread input would send RST and could destroy our last bytes.
            // That holds after an exchanged WebSocket close too: a peer may
            // still send bytes after its close frame (Autobahn 7.1.3-7.1.5),
            // and any arriving after `close` would be answered with RST, so
            // the peer would see a reset instead of a clean end. Our FIN
            // leaves at once (in the close frame's segment, see
            // `write_last`); the slot goes when the peer's FIN comes.
            s.flags.set(Flags::FIN_SENT);
            sys::shutdown_write(s.fd);
        }
    }

    pub(super) fn flush_dirty(&mut self) {
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
    pub(super) fn begin_close(&mut self, idx: u32) {
        let s = &mut self.slots[idx as usize];
        if !s.live() || s.flags.has(Flags::CLOSING) {
            return;
        }
        s.flags.set(Flags::CLOSING);
        s.t = self.now;
        let due = self.now + ms_to_ticks(self.limits.close_timeout_ms);
        self.schedule(idx, due);
        let s = &self.slots[idx as usize];
        if s.out_empty() && !s.flags.has(Flags::DIRTY) {
            self.after_drained(idx);
        }
    }

    /// Closes once the deferred replies outstanding on `idx` are written
    /// (at once when there are none).
    pub(super) fn close_after_replies(&mut self, idx: u32) {
        let s = &mut self.slots[idx as usize];
        if s.flags.has(Flags::DEFERRED) {
            s.flags.set(Flags::CLOSE_AFTER_REPLIES);
        } else {
            self.begin_close(idx);
        }
    }

    /// Closes the socket now. `abort` sends RST (dead or hostile peers with
    /// output queued), freeing kernel buffers at once.
    pub(super) fn kill(&mut self, idx: u32, abort: bool) {
        let s = &mut self.slots[idx as usize];
        if !s.live() {
            return;
        }
        if s.fd >= 0 {
            if abort {
                sys::set_linger_zero(s.fd);
            }
            sys::close(s.fd);
        }
        s.flags.set(Flags::DEAD);
        self.dead.push(idx);
    }

    pub(super) fn schedule(&mut self, idx: u32, due: u32) {
        let token = self.id(idx).as_u64();
        let due = self.wheel.schedule(token, due);
        self.slots[idx as usize].due = due;
    }
}

/// Send buffers larger than this are freed rather than pooled.
const POOL_BUF_MAX: usize = 8 * 1024;
