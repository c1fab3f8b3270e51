//! Application timers (`Context::set_timer`): deadlines in milliseconds,
//! earliest first. A cancelled timer's entry stays in the heap and is
//! skipped when it comes due.

use super::id::TimerId;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

#[derive(Default)]
pub(super) struct AppTimers {
    /// (due ms, id), earliest first; cancelled ones are absent from `tokens`.
    due: BinaryHeap<Reverse<(u64, u64)>>,
    /// The application's token per timer still set.
    tokens: HashMap<u64, u64>,
    next: u64,
}

impl AppTimers {
    /// Sets a timer for `at_ms` carrying `token`.
    pub(super) fn set(&mut self, at_ms: u64, token: u64) -> TimerId {
        let id = self.next;
        self.next += 1;
        self.due.push(Reverse((at_ms, id)));
        self.tokens.insert(id, token);
        TimerId(id)
    }

    /// False if it already fired or was cancelled.
    pub(super) fn cancel(&mut self, timer: TimerId) -> bool {
        self.tokens.remove(&timer.0).is_some()
    }

    /// Milliseconds from `now_ms` until the earliest timer, if any.
    pub(super) fn next_in(&self, now_ms: u64) -> Option<u64> {
        self.due
            .peek()
            .map(|Reverse((at, _))| at.saturating_sub(now_ms))
    }

    /// Takes the timers due by `now_ms`, earliest first. Timers set after
    /// this call wait for the next one, so a zero-delay re-arm cannot spin
    /// the loop.
    pub(super) fn take_due(&mut self, now_ms: u64) -> Vec<u64> {
        let mut due = Vec::new();
        while let Some(&Reverse((at, id))) = self.due.peek() {
            if at > now_ms {
                break;
            }
            self.due.pop();
            due.push(id);
        }
        due
    }

    /// A due timer and its token, unless it was cancelled meanwhile.
    pub(super) fn fire(&mut self, id: u64) -> Option<(TimerId, u64)> {
        self.tokens.remove(&id).map(|token| (TimerId(id), token))
    }
}
