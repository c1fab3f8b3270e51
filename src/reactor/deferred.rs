//! Deferred replies: a text-port line or an HTTP request answered later,
//! with every reply on the connection still leaving in request order.
//!
//! A connection with outstanding deferred replies has a queue of entries:
//! places reserved by `Context::defer` and, behind the first of them, the
//! bytes of later replies that were ready at once. Answering a place lets
//! the ready entries at the front go to the send queue.

use super::id::{ConnId, Deferred};
use super::io::Io;
use super::slot::Flags;
use std::collections::{HashMap, VecDeque};

/// Deferred replies per connection slot, only while some are outstanding.
#[derive(Default)]
pub(super) struct Replies(HashMap<u32, ReplyQueue>);

#[derive(Default)]
struct ReplyQueue {
    next_seq: u32,
    /// (place still awaiting its answer, bytes).
    entries: VecDeque<(Option<u32>, Vec<u8>)>,
}

impl ReplyQueue {
    /// Reserves the next place; `None` past `max` outstanding entries.
    fn reserve(&mut self, max: usize) -> Option<u32> {
        if self.entries.len() >= max {
            return None;
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.entries.push_back((Some(seq), Vec::new()));
        Some(seq)
    }

    /// The buffer for bytes that are ready now but must wait their turn.
    fn tail(&mut self) -> &mut Vec<u8> {
        if !matches!(self.entries.back(), Some((None, _))) {
            self.entries.push_back((None, Vec::new()));
        }
        match self.entries.back_mut() {
            Some((_, bytes)) => bytes,
            None => unreachable!("an entry was just pushed"),
        }
    }

    /// Bytes waiting in the queue.
    fn bytes(&self) -> usize {
        self.entries.iter().map(|(_, b)| b.len()).sum()
    }

    fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<(Option<u32>, Vec<u8>)>()
            + self
                .entries
                .iter()
                .map(|(_, b)| b.capacity())
                .sum::<usize>()
    }
}

impl Replies {
    /// Reserves the next place in `conn`'s reply order; `None` past `max`
    /// outstanding places.
    pub(super) fn defer(&mut self, io: &mut Io, conn: ConnId, max: usize) -> Option<Deferred> {
        let seq = self.0.entry(conn.idx()).or_default().reserve(max)?;
        io.slots[conn.idx() as usize].flags.set(Flags::DEFERRED);
        Some(Deferred { conn, seq })
    }

    /// True when `idx` has fewer than `max` outstanding entries.
    pub(super) fn has_room(&self, idx: u32, max: usize) -> bool {
        self.0.get(&idx).is_none_or(|q| q.entries.len() < max)
    }

    /// Bytes of ready replies waiting behind `idx`'s outstanding places.
    pub(super) fn queued(&self, idx: u32) -> usize {
        self.0.get(&idx).map_or(0, ReplyQueue::bytes)
    }

    /// Where the next bytes for `idx` go: behind outstanding deferred
    /// replies if there are any, else the send queue.
    pub(super) fn ordered_buf<'a>(&'a mut self, io: &'a mut Io, idx: u32) -> &'a mut Vec<u8> {
        if io.slots[idx as usize].flags.has(Flags::DEFERRED) {
            if let Some(q) = self.0.get_mut(&idx) {
                return q.tail();
            }
        }
        io.out_buf(idx)
    }

    /// Writes the answer for place `d`, then moves every entry that is now
    /// ready at the front of the queue to the send queue. False when the
    /// place is not outstanding (answered already, or the connection gone).
    pub(super) fn fulfil(
        &mut self,
        io: &mut Io,
        d: Deferred,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> bool {
        let idx = d.conn.idx();
        match io.slot_of(d.conn) {
            Some(s) if s.flags.has(Flags::DEFERRED) && !s.flags.has(Flags::FIN_SENT) => {}
            _ => return false,
        }
        let Some(q) = self.0.get_mut(&idx) else {
            return false;
        };
        let Some(entry) = q.entries.iter_mut().find(|(seq, _)| *seq == Some(d.seq)) else {
            return false;
        };
        write(&mut entry.1);
        entry.0 = None;
        while let Some((None, _)) = q.entries.front() {
            if let Some((_, bytes)) = q.entries.pop_front() {
                io.out_buf(idx).extend_from_slice(&bytes);
            }
        }
        if q.entries.is_empty() {
            self.0.remove(&idx);
            let s = &mut io.slots[idx as usize];
            s.flags.clear(Flags::DEFERRED);
            if s.flags.has(Flags::CLOSE_AFTER_REPLIES) {
                s.flags.clear(Flags::CLOSE_AFTER_REPLIES);
                io.begin_close(idx);
            }
        }
        true
    }

    /// Forgets the places of a reaped connection.
    pub(super) fn remove(&mut self, idx: u32) {
        self.0.remove(&idx);
    }

    pub(super) fn heap_bytes(&self) -> usize {
        self.0.values().map(ReplyQueue::heap_bytes).sum()
    }
}
