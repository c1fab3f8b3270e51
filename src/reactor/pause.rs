//! Backpressure: a text-port or HTTP connection whose input is paused is
//! neither read nor fed to the application until it resumes, so TCP slows
//! its peer down instead of herald answering `error` or disconnecting it.
//! Two causes, each resumed by its own party:
//! - the application cannot take the next request now (`Context::pause`
//!   from its callback puts that request back; `Context::resume` later);
//! - the peer is not reading its replies: past the high-water mark of
//!   queued output the reactor stops reading, and reads again once the
//!   output has gone below the low-water mark.
//!
//! A paused connection holds at most its parser state and the rest of one
//! read (`Inputs::stash`); its output is bounded by the high-water mark
//! plus the replies to requests already taken.

use super::context::Context;
use super::id::ConnId;
use super::slot::{Flags, Kind};

impl Context {
    /// Stops reading `conn` (a text-port or HTTP connection) until
    /// [`Context::resume`]. Called from the callback handling one of its
    /// lines or requests, it also puts that line or request back: it is
    /// handed to the application again, whole and before anything after
    /// it, once reading resumes (the response returned for it now is
    /// discarded). False when `conn` cannot pause (gone, closing, or
    /// another protocol): then nothing was put back.
    pub fn pause(&mut self, conn: ConnId) -> bool {
        let Some(s) = self.io.slot_of(conn) else {
            return false;
        };
        if !matches!(s.kind, Kind::Text | Kind::Http) || s.flags.has(Flags::CLOSING) {
            return false;
        }
        self.paused_by_app.insert(conn.idx());
        self.set_paused(conn.idx());
        self.flood = true;
        true
    }

    /// Reads `conn` again after [`Context::pause`]: in this loop iteration,
    /// its buffered input first (the request put back, if any), then the
    /// socket. It stays paused while its peer is behind on its replies.
    pub fn resume(&mut self, conn: ConnId) {
        if self.io.slot_of(conn).is_some() && self.paused_by_app.remove(&conn.idx()) {
            self.io.wake.push(conn.idx());
        }
    }

    /// True while `conn`'s input is paused, for either cause.
    pub fn is_paused(&self, conn: ConnId) -> bool {
        self.io
            .slot_of(conn)
            .is_some_and(|s| s.flags.has(Flags::PAUSED))
    }

    /// Connections whose input is paused now (a scan: for /stats).
    pub fn paused_connections(&self) -> usize {
        let paused = |s: &&super::slot::Slot| {
            s.live() && s.flags.has(Flags::PAUSED) && !s.flags.has(Flags::CLOSING)
        };
        self.io.slots.iter().filter(paused).count()
    }

    fn set_paused(&mut self, idx: u32) {
        let s = &mut self.io.slots[idx as usize];
        if !s.flags.has(Flags::PAUSED) {
            s.flags.set(Flags::PAUSED);
            self.stats.pauses += 1;
        }
    }

    /// Bytes of output waiting for `idx`: its send queue and the replies
    /// ready behind its outstanding deferred places.
    pub(super) fn queued(&self, idx: u32) -> usize {
        let s = &self.io.slots[idx as usize];
        let mut queued = s.out.as_ref().map_or(0, |o| o.len());
        if s.flags.has(Flags::DEFERRED) {
            queued += self.replies.queued(idx);
        }
        queued
    }

    /// After a request of `idx` was taken: pauses its input when its peer
    /// has let half of `--max-queued` pile up unread.
    pub(super) fn pause_if_backed_up(&mut self, idx: u32) {
        if self.queued(idx) >= self.limits.max_queued / 2 {
            self.set_paused(idx);
        }
    }

    /// Whether a paused `idx` may read again now: the application does not
    /// hold it, and its output is below a quarter of `--max-queued` (so
    /// that each resume takes a quarter's worth of requests, not one).
    /// Clears the pause when so.
    pub(super) fn may_resume(&mut self, idx: u32) -> bool {
        let s = &self.io.slots[idx as usize];
        if !s.live()
            || !s.flags.has(Flags::PAUSED)
            || self.paused_by_app.contains(&idx)
            || self.queued(idx) >= self.limits.max_queued / 4
        {
            return false;
        }
        self.io.slots[idx as usize].flags.clear(Flags::PAUSED);
        true
    }

    /// Forgets the pause of a reaped slot.
    pub(super) fn forget_pause(&mut self, idx: u32) {
        if !self.paused_by_app.is_empty() {
            self.paused_by_app.remove(&idx);
        }
    }
}
