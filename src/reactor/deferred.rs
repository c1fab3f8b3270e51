//! Deferred replies: a text-port line or an HTTP request answered later,
//! with every reply on the connection still leaving in request order.
//!
//! A connection with outstanding deferred replies has a queue of entries:
//! places reserved by `Context::defer` and, behind the first of them, the
//! bytes of later replies that were ready at once. Answering a place lets
//! the ready entries at the front go to the send queue.

use super::context::Context;
use super::id::Deferred;
use super::slot::Flags;
use std::collections::VecDeque;

#[derive(Default)]
pub(super) struct ReplyQueue {
    next_seq: u32,
    /// (place still awaiting its answer, bytes).
    entries: VecDeque<(Option<u32>, Vec<u8>)>,
}

impl ReplyQueue {
    /// Reserves the next place; `None` past `max` outstanding entries.
    pub(super) fn reserve(&mut self, max: usize) -> Option<u32> {
        if self.entries.len() >= max {
            return None;
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.entries.push_back((Some(seq), Vec::new()));
        Some(seq)
    }

    /// The buffer for bytes that are ready now but must wait their turn.
    pub(super) fn tail(&mut self) -> &mut Vec<u8> {
        if !matches!(self.entries.back(), Some((None, _))) {
            self.entries.push_back((None, Vec::new()));
        }
        match self.entries.back_mut() {
            Some((_, bytes)) => bytes,
            None => unreachable!("an entry was just pushed"),
        }
    }

    /// Bytes waiting in the queue.
    pub(super) fn bytes(&self) -> usize {
        self.entries.iter().map(|(_, b)| b.len()).sum()
    }

    pub(super) fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<(Option<u32>, Vec<u8>)>()
            + self
                .entries
                .iter()
                .map(|(_, b)| b.capacity())
                .sum::<usize>()
    }
}

impl Context {
    /// Writes the answer for place `d`, then moves every entry that is now
    /// ready at the front of the queue to the send queue.
    pub(super) fn fulfil(&mut self, d: Deferred, write: impl FnOnce(&mut Vec<u8>)) -> bool {
        let idx = d.conn.idx();
        match self.slot_of(d.conn) {
            Some(s) if s.flags.has(Flags::DEFERRED) && !s.flags.has(Flags::FIN_SENT) => {}
            _ => return false,
        }
        let Some(q) = self.replies.get_mut(&idx) else {
            return false;
        };
        let Some(entry) = q.entries.iter_mut().find(|(seq, _)| *seq == Some(d.seq)) else {
            return false;
        };
        write(&mut entry.1);
        entry.0 = None;
        self.stats.messages_out += 1;
        let mut ready = Vec::new();
        while let Some((None, _)) = q.entries.front() {
            if let Some((_, bytes)) = q.entries.pop_front() {
                ready.push(bytes);
            }
        }
        let done = q.entries.is_empty();
        if done {
            self.replies.remove(&idx);
            self.slots[idx as usize].flags.clear(Flags::DEFERRED);
        }
        for bytes in ready {
            self.out_buf(idx).extend_from_slice(&bytes);
        }
        let s = &mut self.slots[idx as usize];
        if done && s.flags.has(Flags::CLOSE_AFTER_REPLIES) {
            s.flags.clear(Flags::CLOSE_AFTER_REPLIES);
            self.begin_close(idx);
        }
        true
    }
}
