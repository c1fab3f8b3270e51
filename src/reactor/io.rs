//! What moves bytes: the epoll instance, the slot table and its free list,
//! the lists of slots to flush and to reap, the pool of send buffers, the
//! timer wheel and the loop's clock. Bytes wait in a connection's send
//! queue until the end of the loop iteration and leave in one write per
//! connection; a close runs flush, half-close, wait for the peer, release.
//! Nothing here knows a protocol or the application.

use super::id::ConnId;
use super::slot::{bytes_per_slot, Flags, Kind, Slot};
use super::stats::Stats;
use super::wheel::{ms_to_ticks, Wheel, TICK_MS};
use crate::limits::Limits;
use crate::sys::{self, Epoll};
use std::io;
use std::os::fd::RawFd;

/// Send buffers larger than this are freed rather than pooled.
const POOL_BUF_MAX: usize = 8 * 1024;

/// The reactor's I/O core: every descriptor it owns and the bytes queued
/// for them.
pub(super) struct Io {
    pub(super) epoll: Epoll,
    pub(super) slots: Vec<Slot>,
    free: Vec<u32>,
    /// Slots to flush at the end of this loop iteration.
    dirty: Vec<u32>,
    /// Slots whose socket is closed, to reap at the end of the iteration.
    pub(super) dead: Vec<u32>,
    /// Paused slots that may read again: resumed by the application, or
    /// their output went out. The loop looks at each (`Server::resume`).
    pub(super) wake: Vec<u32>,
    #[allow(clippy::vec_box)] // boxes move into slots as thin pointers
    pool: Vec<Box<Vec<u8>>>,
    pub(super) wheel: Wheel,
    start_ms: u64,
    /// Milliseconds since start, as of this loop iteration.
    pub(super) now_ms: u64,
    /// `now_ms` in wheel ticks.
    pub(super) now: u32,
    /// A spare descriptor, given up to turn a connection away when the
    /// process has none left.
    pub(super) reserve_fd: RawFd,
    /// Send buffers kept for reuse at most (`Limits::send_pool`).
    send_pool: usize,
    /// How long a close may take (`Limits::close_timeout_ms`), in ticks.
    close_ticks: u32,
    /// Slots with [`Flags::DEFLATE`]: while there are none, a broadcast
    /// compresses nothing and tests no extra flag per connection.
    pub(super) deflate_open: usize,
}

impl Io {
    pub(super) fn new(limits: &Limits) -> io::Result<Io> {
        let now = 0;
        Ok(Io {
            epoll: Epoll::new()?,
            slots: Vec::new(),
            free: Vec::new(),
            dirty: Vec::new(),
            dead: Vec::new(),
            wake: Vec::new(),
            pool: Vec::new(),
            wheel: Wheel::new(now),
            start_ms: sys::monotonic_ms(),
            now_ms: 0,
            now,
            reserve_fd: sys::open_dev_null()?,
            send_pool: limits.send_pool,
            close_ticks: ms_to_ticks(limits.close_timeout_ms),
            deflate_open: 0,
        })
    }

    /// Reads the clock for this loop iteration.
    pub(super) fn tick(&mut self) {
        self.now_ms = self.uptime_ms();
        self.now = (self.now_ms / TICK_MS) as u32;
    }

    /// Milliseconds since start, read now.
    pub(super) fn uptime_ms(&self) -> u64 {
        sys::monotonic_ms() - self.start_ms
    }

    pub(super) fn id(&self, idx: u32) -> ConnId {
        ConnId::new(idx, self.slots[idx as usize].gen)
    }

    /// The slot of a live connection.
    pub(super) fn slot_of(&self, conn: ConnId) -> Option<&Slot> {
        self.slots
            .get(conn.idx() as usize)
            .filter(|s| s.gen == conn.gen() && s.live())
    }

    /// Like `slot_of`, and also while the connection is dead but not yet
    /// reaped: what a connection is (its protocol, its uid) stays readable
    /// until its `on_close` returns; what it can do does not.
    pub(super) fn slot_known(&self, conn: ConnId) -> Option<&Slot> {
        self.slots
            .get(conn.idx() as usize)
            .filter(|s| s.gen == conn.gen() && s.kind.is_conn())
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
        if s.flags.has(Flags::DEFLATE) {
            self.deflate_open -= 1;
        }
        s.kind = Kind::Free;
        s.gen = s.gen.wrapping_add(1);
        s.flags = Flags::default();
        self.free.push(idx);
    }

    /// Heap bytes of the slot table, the free list, the wheel and the send
    /// queues.
    pub(super) fn heap_bytes(&self) -> usize {
        let queued: usize = self
            .slots
            .iter()
            .map(|s| s.out.as_ref().map_or(0, |o| o.capacity() + 24))
            .sum();
        self.slots.capacity() * bytes_per_slot()
            + self.free.capacity() * 4
            + self.wheel.heap_bytes()
            + queued
    }

    // ----- send queues -----

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
            if self.pool.len() < self.send_pool && b.capacity() <= POOL_BUF_MAX {
                b.clear();
                self.pool.push(b);
            }
        }
    }

    /// Writes as much queued output as the socket takes.
    pub(super) fn flush(&mut self, idx: u32, stats: &mut Stats) {
        let s = &mut self.slots[idx as usize];
        s.flags.clear(Flags::DIRTY);
        if !s.live() || s.connecting() {
            // An outbound connect in progress: its queue leaves on completion.
            return;
        }
        let fd = s.fd;
        let mut written = 0;
        let mut failed = false;
        let last = s.flags.has(Flags::CLOSE_EXCHANGED);
        // Client figures: an outbound link's writes are the application's.
        let counted = s.kind != Kind::Outbound;
        if s.flags.has(Flags::PAUSED) {
            // Output going out may bring a paused connection below its
            // low-water mark: the loop looks (spurious entries are cheap).
            self.wake.push(idx);
        }
        let s = &mut self.slots[idx as usize];
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
                        stats.writes += u64::from(counted);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            if counted {
                stats.bytes_out += written as u64;
            }
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

    pub(super) fn flush_dirty(&mut self, stats: &mut Stats) {
        let mut i = 0;
        while i < self.dirty.len() {
            let idx = self.dirty[i];
            self.flush(idx, stats);
            i += 1;
        }
        self.dirty.clear();
    }

    /// Like `flush_dirty`, but WebSockets that are not closing stay queued
    /// (and dirty) for a later round: while a pipelining backend waits for
    /// Redis round trips, its pushes then reach each recipient in a few
    /// writes, not one per round trip (`Server::hold_until`).
    pub(super) fn flush_dirty_but_websockets(&mut self, stats: &mut Stats) {
        let mut held = std::mem::take(&mut self.dirty);
        held.retain(|&idx| {
            let s = &self.slots[idx as usize];
            if s.kind == Kind::WebSocket && s.live() && !s.flags.has(Flags::CLOSING) {
                return true;
            }
            self.flush(idx, stats);
            false
        });
        // Flushing adds nothing to the list (only queueing does).
        held.append(&mut self.dirty);
        self.dirty = held;
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
        self.schedule_close(idx);
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

    // ----- deadlines -----

    pub(super) fn schedule(&mut self, idx: u32, due: u32) {
        let token = self.id(idx).as_u64();
        let due = self.wheel.schedule(token, due);
        self.slots[idx as usize].due = due;
    }

    /// Schedules the end of the close timeout, counted from now.
    pub(super) fn schedule_close(&mut self, idx: u32) {
        let due = self.now + self.close_ticks;
        self.schedule(idx, due);
    }
}

impl Drop for Io {
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
