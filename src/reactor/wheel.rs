//! A hashed timing wheel: O(1) to schedule, O(due entries) per tick, no scan
//! of idle connections. Deadlines are in ticks of [`TICK_MS`].
//!
//! Entries are never removed: a connection records the tick its one valid
//! entry fires at (`due`), and an entry whose tick no longer matches is stale
//! and skipped. Deadlines past the horizon are clamped to it; the owner then
//! re-checks and schedules again.

/// Length of one tick.
pub const TICK_MS: u64 = 100;
const SLOTS: usize = 1024;

/// `ms` in ticks, rounded up; at most half the tick range, so that `now +
/// ms_to_ticks(..)` cannot overflow.
pub fn ms_to_ticks(ms: u64) -> u32 {
    ms.div_ceil(TICK_MS).min(u32::MAX as u64 / 2) as u32
}

pub struct Wheel {
    buckets: Vec<Vec<u64>>,
    /// The last tick whose bucket was processed.
    pub processed: u32,
}

impl Wheel {
    pub fn new(now: u32) -> Wheel {
        Wheel {
            buckets: (0..SLOTS).map(|_| Vec::new()).collect(),
            processed: now,
        }
    }

    /// Schedules `token` for tick `due` (clamped to [processed+1, processed+SLOTS-1]);
    /// returns the tick actually used, which the owner must remember.
    pub fn schedule(&mut self, token: u64, due: u32) -> u32 {
        let due = due.clamp(self.processed + 1, self.processed + SLOTS as u32 - 1);
        self.buckets[due as usize % SLOTS].push(token);
        due
    }

    /// Takes the entries of the next unprocessed tick up to `now`, or `None`
    /// when every tick up to `now` has been processed. The returned vector is
    /// to be handed back through [`Wheel::recycle`] to keep its capacity.
    pub fn next_due(&mut self, now: u32) -> Option<(u32, Vec<u64>)> {
        if self.processed >= now {
            return None;
        }
        self.processed += 1;
        let tick = self.processed;
        Some((
            tick,
            std::mem::take(&mut self.buckets[tick as usize % SLOTS]),
        ))
    }

    pub fn recycle(&mut self, tick: u32, mut v: Vec<u64>) {
        v.clear();
        let b = &mut self.buckets[tick as usize % SLOTS];
        if b.is_empty() && v.capacity() <= 4096 {
            // Entries scheduled during processing landed in a fresh vector;
            // keep whichever has room, drop big ones to give memory back.
            std::mem::swap(b, &mut v);
            b.extend(v);
        }
    }

    /// Heap bytes held by the buckets.
    pub fn heap_bytes(&self) -> usize {
        self.buckets.iter().map(|b| b.capacity() * 8).sum::<usize>() + SLOTS * 24
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_at_the_due_tick_and_clamps_far_deadlines() {
        let mut w = Wheel::new(10);
        assert_eq!(w.schedule(1, 15), 15);
        assert_eq!(w.schedule(2, 5), 11, "past deadlines fire on the next tick");
        assert_eq!(w.schedule(3, 10 + 5000), 10 + SLOTS as u32 - 1);
        let mut fired = Vec::new();
        while let Some((tick, v)) = w.next_due(20) {
            for t in &v {
                fired.push((tick, *t));
            }
            w.recycle(tick, v);
        }
        assert_eq!(fired, vec![(11, 2), (15, 1)]);
        assert!(w.next_due(20).is_none());
    }
}
