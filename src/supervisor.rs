//! The `--workers N` supervisor: a master process that forks the workers,
//! restarts the ones that exit, forwards signals and stops them all.
//!
//! nginx's master/worker habit: the master holds no connections and runs no
//! reactor. It waits on one signalfd (SIGTERM, SIGINT, SIGHUP, SIGUSR1,
//! SIGCHLD) with the next restart or kill deadline as the timeout.
//!
//! - A worker that exits while the master is not stopping is restarted after
//!   a delay: 100 ms doubling up to 10 s, ±10 % jitter so that workers that
//!   failed together do not restart in step; back to 100 ms once a worker has
//!   run for 30 s. A worker failing at start over and over thus costs a fork
//!   every 10 s, not a loop; every exit is logged.
//! - SIGTERM / SIGINT: SIGTERM to every worker, no more restarts, wait for
//!   them; SIGKILL the ones left `shutdown_grace_ms + 2000` ms later.
//! - SIGHUP is forwarded (the workers re-read their secrets); SIGUSR1 reopens
//!   the master's log and is forwarded (the workers reopen theirs).
//!
//! `Pool` is the table of workers and their restart times, with the clock
//! passed in; [`supervise`] is the shell that forks, reaps and signals.

use crate::backoff::Backoff;
use crate::sys::{self, Fork, SupervisorSignalFd};
use std::io::Write;

/// How the supervisor behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Supervision {
    /// How many worker processes to run; 0 is refused (exit code 2).
    pub workers: usize,
    /// The workers' own graceful-stop time (`--shutdown-grace`): the master
    /// SIGKILLs workers still running this + 2000 ms after SIGTERM.
    pub shutdown_grace_ms: u64,
    /// Delay before the first restart of a worker that exited. Default 100 ms.
    pub backoff_min_ms: u64,
    /// The delay doubles with each exit up to this. Default 10 s.
    pub backoff_max_ms: u64,
    /// A worker that had run at least this long restarts after
    /// `backoff_min_ms` again. Default 30 s.
    pub backoff_reset_ms: u64,
}

impl Supervision {
    /// `workers` processes, the default backoff.
    pub fn new(workers: usize, shutdown_grace_ms: u64) -> Supervision {
        Supervision {
            workers,
            shutdown_grace_ms,
            backoff_min_ms: 100,
            backoff_max_ms: 10_000,
            backoff_reset_ms: 30_000,
        }
    }
}

impl Default for Supervision {
    /// One worker, herald's default `--shutdown-grace` (5 s).
    fn default() -> Supervision {
        Supervision::new(1, 5_000)
    }
}

/// Past the workers' own grace, before the master SIGKILLs them.
const KILL_MARGIN_MS: u64 = 2_000;
/// After SIGKILL, how long the master waits for the kernel to report the
/// exits before it gives up on them and exits anyway.
const REAP_AFTER_KILL_MS: u64 = 1_000;
/// A worker exiting this soon after its start counts as failing at start...
const QUICK_EXIT_MS: u64 = 1_000;
/// ... and this many such exits in a row get an error line of their own.
const QUICK_EXITS_REPORTED: u32 = 5;

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
struct Exit {
    index: usize,
    /// When it restarts; `None` while stopping.
    restart_in_ms: Option<u64>,
    /// Exits in a row within `QUICK_EXIT_MS` of starting, this one included.
    quick_exits: u32,
}

/// The workers' table: which runs as which pid, which restarts when. No
/// processes and no clock: the shell passes both in.
struct Pool {
    slots: Vec<Slot>,
    reset_ms: u64,
    stopping: bool,
}

/// Restart delays are their base ± this many percent.
const JITTER_PERCENT: u64 = 10;

impl Pool {
    /// Every worker due at time 0 (started at once).
    fn new(s: &Supervision, seed: u64) -> Pool {
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
    fn due(&self, now_ms: u64) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| matches!(self.slots[i].state, State::Waiting { at_ms } if at_ms <= now_ms))
            .collect()
    }

    /// The earliest pending restart.
    fn next_restart(&self) -> Option<u64> {
        self.slots
            .iter()
            .filter_map(|s| match s.state {
                State::Waiting { at_ms } => Some(at_ms),
                _ => None,
            })
            .min()
    }

    fn started(&mut self, index: usize, pid: i32, now_ms: u64) {
        self.slots[index].state = State::Running {
            pid,
            since_ms: now_ms,
        };
    }

    /// The fork failed: retried like a worker that exited at once. Returns
    /// the delay.
    fn start_failed(&mut self, index: usize, now_ms: u64) -> u64 {
        let delay = self.backoff(index, 0);
        self.slots[index].state = State::Waiting {
            at_ms: now_ms + delay,
        };
        delay
    }

    /// A child exited; `None` when it was none of the workers.
    fn exited(&mut self, pid: i32, now_ms: u64) -> Option<Exit> {
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
    fn max_delay_ms(&self) -> u64 {
        self.slots.first().map_or(0, |s| s.backoff.max_ms())
    }

    /// No more restarts; returns the pids still running.
    fn stop(&mut self) -> Vec<i32> {
        self.stopping = true;
        for s in &mut self.slots {
            if let State::Waiting { .. } = s.state {
                s.state = State::Stopped;
            }
        }
        self.live()
    }

    fn live(&self) -> Vec<i32> {
        self.slots
            .iter()
            .filter_map(|s| match s.state {
                State::Running { pid, .. } => Some(pid),
                _ => None,
            })
            .collect()
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        sys::SIGTERM => "SIGTERM",
        sys::SIGINT => "SIGINT",
        sys::SIGHUP => "SIGHUP",
        sys::SIGUSR1 => "SIGUSR1",
        _ => "signal",
    }
}

fn forward(pids: &[i32], sig: i32) {
    for &pid in pids {
        if let Err(e) = sys::kill(pid, sig) {
            // ESRCH: it exited and waits to be reaped; nothing to do.
            crate::log_debug!("cannot send {} to pid {pid}: {e}", signal_name(sig));
        }
    }
}

/// Runs `s.workers` worker processes and supervises them until stopped;
/// returns the exit code for the supervisor's process: 0 after a graceful
/// stop, 1 when a worker had to be SIGKILLed (or signals could not be set
/// up), 2 when `s.workers` is 0.
///
/// `run_worker(i)` runs in the forked child (i in `0..s.workers`, the same
/// `i` for each restart of that worker) and returns that worker's exit code;
/// the child then exits with it (101 if it panicked) without returning here.
/// It starts with an empty signal mask, SIGCHLD's disposition as it was, and
/// without the master's signalfd, so a [`crate::Server`] with
/// [`crate::Server::stop_on_signals`] handles the forwarded signals.
///
/// Call it from a single-threaded process (herald's `main` before anything
/// else): the signals are blocked for the calling thread only, and fork
/// copies only that thread. On return they stay blocked, so that a late
/// SIGTERM cannot kill the process before it exits with the returned code.
pub fn supervise(s: &Supervision, run_worker: &mut dyn FnMut(usize) -> i32) -> i32 {
    if s.workers == 0 {
        crate::log_error!("--workers must be at least 1");
        return 2;
    }
    let signals = match sys::supervisor_signal_fd() {
        Ok(fd) => fd,
        Err(e) => {
            crate::log_error!("supervisor: cannot handle signals: {e}");
            return 1;
        }
    };
    let mut pool = Pool::new(s, crate::xorshift::seed(0));
    let master = std::process::id() as i32;
    let mut stop = Stopping::default();
    loop {
        let now = sys::monotonic_ms();
        for index in pool.due(now) {
            // Whatever sits in stdout's buffer would be written twice.
            let _ = std::io::stdout().flush();
            match sys::fork() {
                // The move is fine in a loop: `worker` never returns.
                Ok(Fork::Child) => worker(index, master, signals, run_worker),
                Ok(Fork::Parent(pid)) => {
                    pool.started(index, pid, now);
                    crate::log_info!("worker {index} started (pid {pid})");
                }
                Err(e) => {
                    let delay = pool.start_failed(index, now);
                    crate::log_error!(
                        "cannot start worker {index}: fork: {e}; retrying in {delay} ms"
                    );
                }
            }
        }
        if pool.stopping {
            if let Some(code) = stop.check(s, &pool, now) {
                return code;
            }
        }
        let wake = match (pool.next_restart(), stop.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let timeout = wake.map_or(-1, |t| t.saturating_sub(now).min(i32::MAX as u64) as i32);
        if let Err(e) = signals.wait(timeout) {
            // Not expected on a valid descriptor; do not spin on it.
            crate::log_error!("supervisor: waiting for signals: {e}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let got = signals.drain();
        let now = sys::monotonic_ms();
        reap(&mut pool, now);
        if got.reopen {
            if let Err(e) = crate::log::reopen() {
                crate::log_error!("cannot reopen the log file: {e}");
            }
            let live = pool.live();
            crate::log_info!(
                "SIGUSR1: log reopened; forwarding to {} worker(s)",
                live.len()
            );
            forward(&live, sys::SIGUSR1);
        }
        if got.reload {
            let live = pool.live();
            crate::log_info!("SIGHUP: forwarding to {} worker(s)", live.len());
            forward(&live, sys::SIGHUP);
        }
        if let Some(sig) = got.stop {
            if !pool.stopping {
                let live = pool.stop();
                crate::log_info!("{}: stopping {} workers", signal_name(sig), live.len());
                forward(&live, sys::SIGTERM);
                stop.deadline = Some(now + s.shutdown_grace_ms + KILL_MARGIN_MS);
            }
        }
    }
}

/// Reaps every exited worker. Done on every wake-up, not only on SIGCHLD:
/// several exits can coalesce into one signal, and reaping is one cheap
/// syscall.
fn reap(pool: &mut Pool, now: u64) {
    while let Some((pid, status)) = sys::wait_any_nohang() {
        let Some(exit) = pool.exited(pid, now) else {
            continue;
        };
        let i = exit.index;
        match exit.restart_in_ms {
            Some(delay) => {
                crate::log_warn!("worker {i} (pid {pid}) {status}; restarting in {delay} ms")
            }
            None => crate::log_info!("worker {i} (pid {pid}) {status}"),
        }
        if exit.restart_in_ms.is_some() && exit.quick_exits == QUICK_EXITS_REPORTED {
            crate::log_error!(
                "worker {i} exited within {QUICK_EXIT_MS} ms of starting {QUICK_EXITS_REPORTED} times in a row; still restarting it, at most every {} ms",
                pool.max_delay_ms()
            );
        }
    }
}

/// The master's stop in progress.
#[derive(Default)]
struct Stopping {
    /// When the master gives up waiting: the SIGKILL time, then (`killed`)
    /// the time it stops waiting for the killed ones.
    deadline: Option<u64>,
    killed: bool,
}

impl Stopping {
    /// The exit code once every worker is gone or the wait is over; kills
    /// the workers still running at the deadline.
    fn check(&mut self, s: &Supervision, pool: &Pool, now: u64) -> Option<i32> {
        let live = pool.live();
        if live.is_empty() {
            crate::log_info!("all workers stopped");
            return Some(i32::from(self.killed));
        }
        if self.deadline.is_none_or(|d| now < d) {
            return None;
        }
        if self.killed {
            crate::log_error!(
                "{} worker(s) not reaped {REAP_AFTER_KILL_MS} ms after SIGKILL (pids {live:?}); exiting without them",
                live.len()
            );
            return Some(1);
        }
        crate::log_error!(
            "{} worker(s) still running {} ms after the stop (pids {live:?}): killing them",
            live.len(),
            s.shutdown_grace_ms + KILL_MARGIN_MS
        );
        forward(&live, sys::SIGKILL);
        self.killed = true;
        self.deadline = Some(now + REAP_AFTER_KILL_MS);
        None
    }
}

/// The forked child: undoes the master's signal set-up, runs the worker,
/// exits with its code.
fn worker(
    index: usize,
    master: i32,
    signals: SupervisorSignalFd,
    run_worker: &mut dyn FnMut(usize) -> i32,
) -> ! {
    signals.undo_in_worker();
    // A worker ends with its master, whatever kills the master (the OOM
    // killer's SIGKILL included): SIGTERM, the graceful stop. Orphans would
    // keep serving on the shared ports with nobody to stop or restart them.
    match sys::die_with_parent(master, sys::SIGTERM) {
        Ok(true) => {}
        Ok(false) => sys::exit_now(0),
        Err(e) => crate::log_warn!("worker {index}: cannot follow its supervisor's death: {e}"),
    }
    // A panic must not unwind into the master's loop, copied in this child.
    let code =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_worker(index))).unwrap_or(101);
    let _ = std::io::stdout().flush();
    sys::exit_now(code)
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
}
