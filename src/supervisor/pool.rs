//! [`Pool`]: the workers' table, which runs as which pid and which restarts
//! when, with the clock passed in. No processes: the shell (`mod.rs`)
//! forks, reaps and signals.

use super::config::Supervision;
use crate::backoff::Backoff;

/// A worker exiting this soon after its start counts as failing at start...
pub(super) const QUICK_EXIT_MS: u64 = 1_000;
/// ... and this many such exits in a row get an error line of their own.
pub(super) const QUICK_EXITS_REPORTED: u32 = 5;

/// One worker's place in the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Running as `pid` since `since_ms`.
    Running { pid: i32, since_ms: u64 },
    /// To be (re)started at `at_ms`.
    Waiting { at_ms: u64 },
    /// Not to be started again: the master is stopping.
    Stopped,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    state: State,
    /// Its restart delays.
    backoff: Backoff,
    /// Exits in a row within `QUICK_EXIT_MS` of starting.
    quick_exits: u32,
}

/// What became of a worker that exited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Exit {
    pub(super) index: usize,
    /// When it restarts; `None` while stopping.
    pub(super) restart_in_ms: Option<u64>,
    /// Exits in a row within `QUICK_EXIT_MS` of starting, this one included.
    pub(super) quick_exits: u32,
}

/// The workers' table: which runs as which pid, which restarts when. No
/// processes and no clock: the shell passes both in.
pub(super) struct Pool {
    slots: Vec<Slot>,
    reset_ms: u64,
    pub(super) stopping: bool,
}

/// Restart delays are their base ± this many percent.
const JITTER_PERCENT: u64 = 10;

impl Pool {
    /// Every worker due at time 0 (started at once).
    pub(super) fn new(s: &Supervision, seed: u64) -> Pool {
        let slot = |i: usize| Slot {
            state: State::Waiting { at_ms: 0 },
            // One seed per worker, so that their jitters differ.
            backoff: Backoff::new(
                s.backoff_min_ms,
                s.backoff_max_ms,
                JITTER_PERCENT,
                seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            ),
            quick_exits: 0,
        };
        Pool {
            slots: (0..s.workers).map(slot).collect(),
            reset_ms: s.backoff_reset_ms,
            stopping: false,
        }
    }

    /// The workers to start now.
    pub(super) fn due(&self, now_ms: u64) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| matches!(self.slots[i].state, State::Waiting { at_ms } if at_ms <= now_ms))
            .collect()
    }

    /// The earliest pending restart.
    pub(super) fn next_restart(&self) -> Option<u64> {
        self.slots
            .iter()
            .filter_map(|s| match s.state {
                State::Waiting { at_ms } => Some(at_ms),
                _ => None,
            })
            .min()
    }

    pub(super) fn started(&mut self, index: usize, pid: i32, now_ms: u64) {
        self.slots[index].state = State::Running {
            pid,
            since_ms: now_ms,
        };
    }

    /// The fork failed: retried like a worker that exited at once. Returns
    /// the delay.
    pub(super) fn start_failed(&mut self, index: usize, now_ms: u64) -> u64 {
        let delay = self.backoff(index, 0);
        self.slots[index].state = State::Waiting {
            at_ms: now_ms + delay,
        };
        delay
    }

    /// A child exited; `None` when it was none of the workers.
    pub(super) fn exited(&mut self, pid: i32, now_ms: u64) -> Option<Exit> {
        let index = self
            .slots
            .iter()
            .position(|s| matches!(s.state, State::Running { pid: p, .. } if p == pid))?;
        let State::Running { since_ms, .. } = self.slots[index].state else {
            unreachable!("found as running")
        };
        let ran_ms = now_ms.saturating_sub(since_ms);
        let slot = &mut self.slots[index];
        slot.quick_exits = if ran_ms < QUICK_EXIT_MS {
            slot.quick_exits.saturating_add(1)
        } else {
            0
        };
        let quick_exits = slot.quick_exits;
        if self.stopping {
            self.slots[index].state = State::Stopped;
            return Some(Exit {
                index,
                restart_in_ms: None,
                quick_exits,
            });
        }
        let delay = self.backoff(index, ran_ms);
        self.slots[index].state = State::Waiting {
            at_ms: now_ms + delay,
        };
        Some(Exit {
            index,
            restart_in_ms: Some(delay),
            quick_exits,
        })
    }

    /// The next restart delay of worker `index`, which ran `ran_ms`; doubles
    /// the one after.
    fn backoff(&mut self, index: usize, ran_ms: u64) -> u64 {
        let backoff = &mut self.slots[index].backoff;
        if ran_ms >= self.reset_ms {
            backoff.reset();
        }
        backoff.next_delay()
    }

    /// The longest restart delay.
    pub(super) fn max_delay_ms(&self) -> u64 {
        self.slots.first().map_or(0, |s| s.backoff.max_ms())
    }

    /// No more restarts; returns the pids still running.
    pub(super) fn stop(&mut self) -> Vec<i32> {
        self.stopping = true;
        for s in &mut self.slots {
            if let State::Waiting { .. } = s.state {
                s.state = State::Stopped;
            }
        }
        self.live()
    }

    /// How many workers the table holds.
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether worker `index` runs (rather than waiting for a restart).
    pub(super) fn is_running(&self, index: usize) -> bool {
        matches!(self.slots[index].state, State::Running { .. })
    }

    /// Worker `index` runs as `pid` from now on (its replacement, ready);
    /// returns the pid it ran as, if it ran. A pending restart of it is
    /// cancelled: the replacement is it.
    pub(super) fn replace(&mut self, index: usize, pid: i32, now_ms: u64) -> Option<i32> {
        let old = match self.slots[index].state {
            State::Running { pid, .. } => Some(pid),
            State::Waiting { .. } | State::Stopped => None,
        };
        self.slots[index].state = State::Running {
            pid,
            since_ms: now_ms,
        };
        old
    }

    /// The pids running, in worker order.
    pub(super) fn live(&self) -> Vec<i32> {
        self.slots
            .iter()
            .filter_map(|s| match s.state {
                State::Running { pid, .. } => Some(pid),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(workers: usize) -> Pool {
        Pool::new(&Supervision::new(workers, 0), 42)
    }

    fn within_jitter(delay: u64, base: u64) -> bool {
        delay >= base - base / 10 && delay <= base + base / 10
    }

    #[test]
    fn every_worker_is_due_at_once() {
        let p = pool(3);
        assert_eq!(p.due(0), vec![0, 1, 2]);
        assert_eq!(p.next_restart(), Some(0));
    }

    #[test]
    fn restart_delay_doubles_to_the_cap_with_jitter() {
        let mut p = pool(1);
        let mut now = 0;
        let mut pid = 100;
        p.started(0, pid, now);
        let mut bases = vec![100, 200, 400, 800, 1600, 3200, 6400];
        bases.extend([10_000; 4]);
        for base in bases {
            now += 50;
            let exit = p.exited(pid, now).unwrap();
            let delay = exit.restart_in_ms.unwrap();
            assert!(within_jitter(delay, base), "{delay} not near {base}");
            assert!(delay <= 10_000);
            assert!(p.due(now + delay - 1).is_empty());
            assert_eq!(p.due(now + delay), vec![0]);
            assert_eq!(p.next_restart(), Some(now + delay));
            now += delay;
            pid += 1;
            p.started(0, pid, now);
        }
    }

    #[test]
    fn a_long_run_resets_the_delay() {
        let mut p = pool(1);
        p.started(0, 1, 0);
        p.exited(1, 10).unwrap();
        p.started(0, 2, 200);
        let second = p.exited(2, 210).unwrap();
        assert!(within_jitter(second.restart_in_ms.unwrap(), 200));
        p.started(0, 3, 1_000);
        let after_long_run = p.exited(3, 31_000).unwrap();
        assert!(within_jitter(after_long_run.restart_in_ms.unwrap(), 100));
        assert_eq!(after_long_run.quick_exits, 0);
    }

    #[test]
    fn quick_exits_are_counted_in_a_row() {
        let mut p = pool(1);
        let mut now = 0;
        for n in 1..=5 {
            p.started(0, n, now);
            now += 10;
            assert_eq!(p.exited(n, now).unwrap().quick_exits, n as u32);
            now += 20_000;
        }
        p.started(0, 9, now);
        assert_eq!(p.exited(9, now + 5_000).unwrap().quick_exits, 0);
    }

    #[test]
    fn stopping_cancels_restarts_and_lists_the_live_workers() {
        let mut p = pool(3);
        p.started(0, 10, 0);
        p.started(1, 11, 0);
        p.started(2, 12, 0);
        p.exited(12, 5).unwrap();
        assert_eq!(p.stop(), vec![10, 11]);
        assert_eq!(p.next_restart(), None);
        assert!(p.due(u64::MAX).is_empty());
        let exit = p.exited(10, 20).unwrap();
        assert_eq!(exit.restart_in_ms, None);
        assert_eq!(p.live(), vec![11]);
    }

    #[test]
    fn unknown_children_are_ignored() {
        let mut p = pool(1);
        p.started(0, 10, 0);
        assert_eq!(p.exited(99, 5), None);
        assert_eq!(p.live(), vec![10]);
    }

    #[test]
    fn a_failed_fork_is_retried_with_backoff() {
        let mut p = pool(1);
        let delay = p.start_failed(0, 0);
        assert!(within_jitter(delay, 100));
        assert_eq!(p.due(delay), vec![0]);
        assert!(within_jitter(p.start_failed(0, delay), 200));
    }

    #[test]
    fn workers_jitter_apart() {
        let mut p = pool(2);
        p.started(0, 1, 0);
        p.started(1, 2, 0);
        let a: Vec<u64> = (0..8).map(|i| p.start_failed(0, i)).collect();
        let b: Vec<u64> = (0..8).map(|i| p.start_failed(1, i)).collect();
        assert_ne!(a, b);
        assert!(a.iter().chain(&b).all(|&d| d <= 10_000));
    }

    #[test]
    fn a_replacement_takes_the_slot_and_cancels_a_pending_restart() {
        let mut p = pool(2);
        p.started(0, 10, 0);
        p.started(1, 11, 0);
        assert_eq!(p.replace(0, 20, 100), Some(10));
        assert_eq!(p.live(), vec![20, 11]);
        // The old pid is nobody's now: its exit restarts nothing.
        assert_eq!(p.exited(10, 200), None);
        // A worker that died while its replacement started: the
        // replacement is its restart.
        p.exited(11, 300).unwrap();
        assert!(!p.is_running(1));
        assert_eq!(p.replace(1, 21, 310), None);
        assert!(p.is_running(1));
        assert_eq!(p.next_restart(), None);
        assert!(p.due(u64::MAX).is_empty());
    }
}
