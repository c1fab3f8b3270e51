//! [`Rolling`]: the rolling restart (SIGUSR2, `herald restart`) as a state
//! machine over the [`Pool`], with the clock passed in. For each worker in
//! turn: its replacement starts; once the replacement says it is ready it
//! takes the worker's place and the old process drains (SIGUSR2); once the
//! old one exited, the next worker. A replacement that does not get ready
//! in time, or exits first, ends the restart: the old workers stay.

use super::config::Supervision;
use super::pool::Pool;

/// The restart in progress, and the processes it started or replaced that
/// are not in the pool's table.
pub(super) struct Rolling {
    step: Option<Step>,
    /// Processes that still have to exit but take part in nothing: a
    /// replacement given up on, or any of them once the master stops.
    strays: Vec<i32>,
    ready_timeout_ms: u64,
    /// How long an old worker may drain before it is killed.
    drain_timeout_ms: u64,
}

/// Where the restart is: the worker being replaced, and how far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Step {
    index: usize,
    phase: Phase,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Its replacement is to be started now.
    Due,
    /// The replacement runs as `pid`, not ready yet; given up at `deadline_ms`.
    Starting { pid: i32, deadline_ms: u64 },
    /// The replacement serves; the old process `pid` drains, and is
    /// killed at `deadline_ms` (`None` once killed).
    Draining { pid: i32, deadline_ms: Option<u64> },
}

/// Why a restart was not begun.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Busy {
    /// One runs, at this worker.
    Restarting(usize),
    /// The master is stopping.
    Stopping,
}

/// What the shell is to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Todo {
    /// Start worker `index`'s replacement, then call `started` or
    /// `start_failed`.
    Start(usize),
    /// Worker `index`'s replacement `pid` was not ready in time: kill it.
    /// The restart is over; the old workers stay.
    GiveUp { index: usize, pid: i32 },
    /// Worker `index`'s old process `pid` drains past its time: kill it.
    Kill { index: usize, pid: i32 },
    /// Every worker was replaced.
    Done,
}

/// A process of the restart's that exited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Gone {
    /// Worker `index`'s replacement, before it was ready: the restart is
    /// over; the old workers stay.
    Replacement(usize),
    /// Worker `index`'s old process, drained: on to the next worker.
    Drained(usize),
    /// A stray (see [`Rolling`]).
    Stray,
}

impl Rolling {
    pub(super) fn new(s: &Supervision) -> Rolling {
        Rolling {
            step: None,
            strays: Vec::new(),
            ready_timeout_ms: s.ready_timeout_ms,
            drain_timeout_ms: s.restart_drain_ms + s.kill_after_ms(),
        }
    }

    /// Begins a restart, unless one runs or the master stops.
    pub(super) fn request(&mut self, pool: &Pool) -> Result<(), Busy> {
        if pool.stopping {
            return Err(Busy::Stopping);
        }
        if let Some(step) = self.step {
            return Err(Busy::Restarting(step.index));
        }
        self.step = Some(Step {
            index: 0,
            phase: Phase::Due,
        });
        Ok(())
    }

    /// The next thing to do at `now_ms`, if any. A worker that is not
    /// running (it died and waits for its restart) is skipped: it restarts
    /// from the binary on disk anyway.
    pub(super) fn next(&mut self, pool: &Pool, now_ms: u64) -> Option<Todo> {
        let step = self.step.as_mut()?;
        match step.phase {
            Phase::Due => {
                while step.index < pool.len() && !pool.is_running(step.index) {
                    step.index += 1;
                }
                if step.index < pool.len() {
                    return Some(Todo::Start(step.index));
                }
                self.step = None;
                Some(Todo::Done)
            }
            Phase::Starting { pid, deadline_ms } if now_ms >= deadline_ms => {
                let index = step.index;
                self.step = None;
                self.strays.push(pid);
                Some(Todo::GiveUp { index, pid })
            }
            Phase::Draining {
                pid,
                deadline_ms: Some(at),
            } if now_ms >= at => {
                step.phase = Phase::Draining {
                    pid,
                    deadline_ms: None,
                };
                Some(Todo::Kill {
                    index: step.index,
                    pid,
                })
            }
            Phase::Starting { .. } | Phase::Draining { .. } => None,
        }
    }

    /// The replacement asked for by [`Todo::Start`] runs as `pid`.
    pub(super) fn started(&mut self, pid: i32, now_ms: u64) {
        if let Some(step) = self.step.as_mut() {
            step.phase = Phase::Starting {
                pid,
                deadline_ms: now_ms + self.ready_timeout_ms,
            };
        }
    }

    /// The replacement asked for could not be started: the restart is over.
    pub(super) fn start_failed(&mut self) {
        self.step = None;
    }

    /// The replacement `pid` says it is ready: it takes its worker's place
    /// in `pool`. Returns the worker's index and its old pid, to be told to
    /// drain (`None` when it was not running); `None` for any other pid.
    pub(super) fn ready(
        &mut self,
        pid: i32,
        pool: &mut Pool,
        now_ms: u64,
    ) -> Option<(usize, Option<i32>)> {
        let step = self.step.as_mut()?;
        if !matches!(step.phase, Phase::Starting { pid: p, .. } if p == pid) {
            return None;
        }
        let index = step.index;
        let old = pool.replace(index, pid, now_ms);
        step.phase = match old {
            Some(old) => Phase::Draining {
                pid: old,
                deadline_ms: Some(now_ms + self.drain_timeout_ms),
            },
            None => {
                step.index += 1;
                Phase::Due
            }
        };
        Some((index, old))
    }

    /// A child exited: `Some` when it was one of the restart's.
    pub(super) fn exited(&mut self, pid: i32) -> Option<Gone> {
        if let Some(at) = self.strays.iter().position(|&p| p == pid) {
            self.strays.swap_remove(at);
            return Some(Gone::Stray);
        }
        let step = self.step.as_mut()?;
        match step.phase {
            Phase::Starting { pid: p, .. } if p == pid => {
                let index = step.index;
                self.step = None;
                Some(Gone::Replacement(index))
            }
            Phase::Draining { pid: p, .. } if p == pid => {
                let index = step.index;
                *step = Step {
                    index: index + 1,
                    phase: Phase::Due,
                };
                Some(Gone::Drained(index))
            }
            _ => None,
        }
    }

    /// The master stops: no more steps; every process of the restart's is
    /// a stray, to be stopped and waited for like the workers.
    pub(super) fn stop(&mut self) {
        if let Some(step) = self.step.take() {
            match step.phase {
                Phase::Due => {}
                Phase::Starting { pid, .. } | Phase::Draining { pid, .. } => self.strays.push(pid),
            }
        }
    }

    /// The restart's processes still running (outside the pool's table).
    pub(super) fn live(&self) -> Vec<i32> {
        let current = self.step.and_then(|s| match s.phase {
            Phase::Due => None,
            Phase::Starting { pid, .. } | Phase::Draining { pid, .. } => Some(pid),
        });
        current
            .into_iter()
            .chain(self.strays.iter().copied())
            .collect()
    }

    /// The replacement not yet ready, if one is starting.
    pub(super) fn starting(&self) -> Option<i32> {
        match self.step?.phase {
            Phase::Starting { pid, .. } => Some(pid),
            Phase::Due | Phase::Draining { .. } => None,
        }
    }

    /// When [`Rolling::next`] has something to do next, by the clock.
    pub(super) fn deadline(&self) -> Option<u64> {
        match self.step?.phase {
            Phase::Due => Some(0),
            Phase::Starting { deadline_ms, .. } => Some(deadline_ms),
            Phase::Draining { deadline_ms, .. } => deadline_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(workers: usize) -> (Pool, Rolling) {
        let s = Supervision {
            restart_drain_ms: 1_000,
            ..Supervision::new(workers, 500)
        };
        let mut pool = Pool::new(&s, 7);
        for i in 0..workers {
            pool.started(i, 10 + i as i32, 0);
        }
        (pool, Rolling::new(&s))
    }

    #[test]
    fn workers_are_replaced_one_at_a_time() {
        let (mut pool, mut r) = setup(2);
        assert_eq!(r.next(&pool, 0), None, "nothing before a request");
        r.request(&pool).unwrap();
        assert_eq!(r.next(&pool, 0), Some(Todo::Start(0)));
        r.started(20, 0);
        assert_eq!(r.live(), vec![20]);
        assert_eq!(r.starting(), Some(20));
        assert_eq!(r.next(&pool, 5_000), None, "waiting for it to be ready");
        assert_eq!(r.ready(99, &mut pool, 100), None, "not the replacement");
        assert_eq!(r.ready(20, &mut pool, 100), Some((0, Some(10))));
        assert_eq!(pool.live(), vec![20, 11], "the replacement serves");
        assert_eq!(r.live(), vec![10], "the old one drains");
        assert_eq!(r.next(&pool, 200), None, "worker 1 waits for the drain");
        // Its exit is the restart's, not the pool's: nothing restarts it.
        assert_eq!(r.exited(10), Some(Gone::Drained(0)));
        assert_eq!(r.next(&pool, 1_600), Some(Todo::Start(1)));
        r.started(21, 1_600);
        assert_eq!(r.ready(21, &mut pool, 1_700), Some((1, Some(11))));
        assert_eq!(r.exited(11), Some(Gone::Drained(1)));
        assert_eq!(r.next(&pool, 3_000), Some(Todo::Done));
        assert_eq!(r.next(&pool, 3_000), None);
        assert_eq!(pool.live(), vec![20, 21]);
        assert!(r.live().is_empty());
    }

    #[test]
    fn a_restart_requested_while_one_runs_or_while_stopping_is_refused() {
        let (mut pool, mut r) = setup(2);
        r.request(&pool).unwrap();
        r.next(&pool, 0);
        r.started(20, 0);
        assert_eq!(r.request(&pool), Err(Busy::Restarting(0)));
        pool.stop();
        let (pool2, mut idle) = setup(1);
        drop(pool2);
        assert_eq!(idle.request(&pool), Err(Busy::Stopping));
    }

    #[test]
    fn a_replacement_not_ready_in_time_is_given_up_and_the_old_ones_stay() {
        let (mut pool, mut r) = setup(2);
        r.request(&pool).unwrap();
        r.next(&pool, 0);
        r.started(20, 1_000);
        assert_eq!(r.deadline(), Some(11_000));
        assert_eq!(r.next(&pool, 10_999), None);
        assert_eq!(
            r.next(&pool, 11_000),
            Some(Todo::GiveUp { index: 0, pid: 20 })
        );
        assert_eq!(pool.live(), vec![10, 11]);
        // It is still waited for, but its late readiness changes nothing.
        assert_eq!(r.live(), vec![20]);
        assert_eq!(r.ready(20, &mut pool, 11_100), None);
        assert_eq!(r.exited(20), Some(Gone::Stray));
        assert_eq!(r.next(&pool, 12_000), None);
        assert!(r.request(&pool).is_ok(), "a new restart may begin");
    }

    #[test]
    fn a_replacement_dying_before_it_is_ready_ends_the_restart() {
        let (pool, mut r) = setup(2);
        r.request(&pool).unwrap();
        r.next(&pool, 0);
        r.started(20, 0);
        assert_eq!(r.exited(20), Some(Gone::Replacement(0)));
        assert_eq!(r.next(&pool, 100), None);
        assert_eq!(pool.live(), vec![10, 11]);
        let (_, mut fails) = setup(1);
        fails.request(&pool).unwrap();
        fails.next(&pool, 0);
        fails.start_failed();
        assert_eq!(fails.next(&pool, 0), None);
    }

    #[test]
    fn an_old_worker_draining_too_long_is_killed_once() {
        let (mut pool, mut r) = setup(1);
        r.request(&pool).unwrap();
        r.next(&pool, 0);
        r.started(20, 0);
        r.ready(20, &mut pool, 100);
        // --restart-drain 1000 + --shutdown-grace 500 + the 2 s margin.
        assert_eq!(r.deadline(), Some(3_600));
        assert_eq!(r.next(&pool, 3_599), None);
        assert_eq!(r.next(&pool, 3_600), Some(Todo::Kill { index: 0, pid: 10 }));
        assert_eq!(r.next(&pool, 9_999), None, "killed once");
        assert_eq!(r.deadline(), None);
        assert_eq!(r.exited(10), Some(Gone::Drained(0)));
        assert_eq!(r.next(&pool, 10_000), Some(Todo::Done));
    }

    #[test]
    fn a_worker_waiting_for_its_restart_is_skipped_and_one_dead_meanwhile_is_replaced() {
        let (mut pool, mut r) = setup(3);
        // Worker 0 died: it restarts from the new binary anyway.
        pool.exited(10, 5_000).unwrap();
        r.request(&pool).unwrap();
        assert_eq!(r.next(&pool, 5_000), Some(Todo::Start(1)));
        r.started(21, 5_000);
        // Worker 1 dies while its replacement starts: nothing to drain.
        pool.exited(11, 5_010).unwrap();
        assert_eq!(r.ready(21, &mut pool, 5_020), Some((1, None)));
        assert!(pool.is_running(1));
        assert_eq!(r.next(&pool, 5_020), Some(Todo::Start(2)));
    }

    #[test]
    fn stopping_makes_every_process_of_the_restart_a_stray_to_wait_for() {
        let (mut pool, mut r) = setup(2);
        r.request(&pool).unwrap();
        r.next(&pool, 0);
        r.started(20, 0);
        r.ready(20, &mut pool, 10);
        r.stop();
        assert_eq!(r.live(), vec![10]);
        assert_eq!(r.next(&pool, 100_000), None);
        assert_eq!(r.exited(10), Some(Gone::Stray));
        assert!(r.live().is_empty());
        // A replacement still starting at the stop is waited for too.
        let (pool, mut r) = setup(1);
        r.request(&pool).unwrap();
        r.next(&pool, 0);
        r.started(30, 0);
        r.stop();
        assert_eq!(r.live(), vec![30]);
        assert_eq!(r.starting(), None);
    }
}
