//! The `--workers N` supervisor: a master process that starts the workers,
//! restarts the ones that exit, replaces them one at a time on request,
//! forwards signals and stops them all.
//!
//! nginx's master/worker habit: the master holds no connections and runs no
//! reactor. It holds the listening sockets, bound once, which every worker
//! inherits and serves (`exec`); it waits on one signalfd (SIGTERM, SIGINT,
//! SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD) and a replacement's ready pipe, with
//! the next restart or deadline as the timeout.
//!
//! - A worker that exits while the master is not stopping is restarted after
//!   a delay: 100 ms doubling up to 10 s, ±10 % jitter so that workers that
//!   failed together do not restart in step; back to 100 ms once a worker has
//!   run for 30 s. A worker failing at start over and over thus costs a fork
//!   every 10 s, not a loop; every exit is logged.
//! - SIGUSR2 (`herald restart`): a rolling restart, one worker at a time:
//!   its replacement starts (the binary now on disk) and says when it
//!   serves; the old one then drains (SIGUSR2: its WebSockets closed with
//!   1012 over `--restart-drain`) and exits; then the next. A replacement
//!   not ready within `ready_timeout_ms` ends the restart, the old workers
//!   staying; one requested while one runs is ignored, and logged.
//! - SIGTERM / SIGINT: SIGTERM to every worker (a replacement or a draining
//!   one included), no more restarts, wait for them; SIGKILL the ones left
//!   `shutdown_grace_ms + 2000` ms later.
//! - SIGHUP is forwarded (the workers re-read their secrets); SIGUSR1 reopens
//!   the master's log and is forwarded (the workers reopen theirs).
//!
//! `pool` (the table of workers and their restart times) and `rolling` (the
//! restart's sequence) take the clock as an argument; the shell here
//! starts, reaps and signals.

mod config;
mod exec;
mod pool;
mod rolling;

pub use config::Supervision;
pub use exec::{Exec, Inherited};

use crate::sys::{self, Fork, Readiness, ReadyPipe, SupervisorSignalFd};
use pool::{Pool, QUICK_EXITS_REPORTED, QUICK_EXIT_MS};
use rolling::{Busy, Gone, Rolling, Todo};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};

/// After SIGKILL, how long the master waits for the kernel to report the
/// exits before it gives up on them and exits anyway.
const REAP_AFTER_KILL_MS: u64 = 1_000;

/// How the workers start.
pub enum Workers<'a> {
    /// Forked, each running `run(i)` in the child, which then exits with
    /// its code (101 if it panicked): for library users and tests. A
    /// replacement counts as ready once forked, and runs the code the
    /// master runs.
    Fork(&'a mut dyn FnMut(usize) -> i32),
    /// Executed from the binary on disk, with the listening sockets the
    /// master holds (herald's `--workers`). A replacement is ready when it
    /// says so ([`Inherited::ready`]).
    Exec(&'a Exec),
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        sys::SIGTERM => "SIGTERM",
        sys::SIGINT => "SIGINT",
        sys::SIGHUP => "SIGHUP",
        sys::SIGUSR1 => "SIGUSR1",
        sys::SIGUSR2 => "SIGUSR2",
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

/// Runs `s.workers` worker processes forked from this one, each running
/// `run_worker(i)`, and supervises them until stopped: see
/// [`supervise_workers`] with [`Workers::Fork`].
pub fn supervise(s: &Supervision, run_worker: &mut dyn FnMut(usize) -> i32) -> i32 {
    supervise_workers(s, Workers::Fork(run_worker))
}

/// Runs `s.workers` worker processes and supervises them until stopped;
/// returns the exit code for the supervisor's process: 0 after a graceful
/// stop, 1 when a worker had to be SIGKILLed (or signals could not be set
/// up), 2 when `s.workers` is 0.
///
/// Worker `i` (in `0..s.workers`, the same `i` for each restart of that
/// worker) starts as `workers` says. A forked one starts with an empty
/// signal mask, SIGCHLD's disposition as it was, and without the master's
/// signalfd, so a [`crate::Server`] with [`crate::Server::stop_on_signals`]
/// handles the forwarded signals; an executed one starts as a new program.
///
/// Call it from a single-threaded process (herald's `main` before anything
/// else): the signals are blocked for the calling thread only, and fork
/// copies only that thread. On return they stay blocked, so that a late
/// SIGTERM cannot kill the process before it exits with the returned code.
pub fn supervise_workers(s: &Supervision, workers: Workers<'_>) -> i32 {
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
    let mut master = Master {
        s,
        workers,
        signals,
        pool: Pool::new(s, crate::xorshift::seed(0)),
        rolling: Rolling::new(s),
        ready: None,
        stop: Stopping::default(),
        pid: std::process::id() as i32,
    };
    master.run()
}

/// The master's state: its workers, its restart, its stop.
struct Master<'s, 'w> {
    s: &'s Supervision,
    workers: Workers<'w>,
    signals: SupervisorSignalFd,
    pool: Pool,
    rolling: Rolling,
    /// The read end of the ready pipe of the replacement starting.
    ready: Option<OwnedFd>,
    stop: Stopping,
    pid: i32,
}

impl Master<'_, '_> {
    fn run(&mut self) -> i32 {
        loop {
            let now = sys::monotonic_ms();
            self.start_due(now);
            self.roll(now);
            if self.pool.stopping {
                if let Some(code) = self.stop.check(self.s, self.live(), now) {
                    return code;
                }
            }
            let wake = [
                self.pool.next_restart(),
                self.stop.deadline,
                self.rolling.deadline(),
            ]
            .into_iter()
            .flatten()
            .min();
            let timeout = wake.map_or(-1, |t| t.saturating_sub(now).min(i32::MAX as u64) as i32);
            let ready = self.ready.as_ref().map(|fd| fd.as_raw_fd());
            if let Err(e) = self.signals.wait(timeout, ready) {
                // Not expected on a valid descriptor; do not spin on it.
                crate::log_error!("supervisor: waiting for signals: {e}");
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            let got = self.signals.drain();
            let now = sys::monotonic_ms();
            self.check_ready(now);
            self.reap(now);
            if self.rolling.starting().is_none() {
                self.ready = None;
            }
            self.on_signals(got, now);
        }
    }

    /// Every worker process running: the pool's and the restart's.
    fn live(&self) -> Vec<i32> {
        let mut live = self.pool.live();
        live.extend(self.rolling.live());
        live
    }

    /// Starts worker `index` (`ready`: a replacement's ready pipe); its pid.
    fn start(&mut self, index: usize, ready: Option<&OwnedFd>) -> io::Result<i32> {
        // Whatever sits in stdout's buffer would be written twice.
        let _ = std::io::stdout().flush();
        match &mut self.workers {
            Workers::Exec(exec) => exec.start(index, ready),
            Workers::Fork(run) => match sys::fork()? {
                Fork::Child => worker(index, self.pid, &self.signals, &mut **run),
                Fork::Parent(pid) => Ok(pid),
            },
        }
    }

    /// Starts the workers due now.
    fn start_due(&mut self, now: u64) {
        for index in self.pool.due(now) {
            match self.start(index, None) {
                Ok(pid) => {
                    self.pool.started(index, pid, now);
                    crate::log_info!("worker {index} started (pid {pid})");
                }
                Err(e) => {
                    let delay = self.pool.start_failed(index, now);
                    crate::log_error!("cannot start worker {index}: {e}; retrying in {delay} ms");
                }
            }
        }
    }

    /// Moves the rolling restart on, as far as it goes now.
    fn roll(&mut self, now: u64) {
        while let Some(todo) = self.rolling.next(&self.pool, now) {
            match todo {
                Todo::Start(index) => self.start_replacement(index, now),
                Todo::GiveUp { index, pid } => {
                    crate::log_error!(
                        "restart: worker {index}'s replacement (pid {pid}) not ready within {} ms: killing it; the old workers stay, restart abandoned",
                        self.s.ready_timeout_ms
                    );
                    forward(&[pid], sys::SIGKILL);
                }
                Todo::Kill { index, pid } => {
                    crate::log_error!(
                        "restart: worker {index}'s old process (pid {pid}) still running {} ms after its SIGUSR2: killing it",
                        self.s.restart_drain_ms + self.s.kill_after_ms()
                    );
                    forward(&[pid], sys::SIGKILL);
                }
                Todo::Done => crate::log_info!("restart: done, every worker replaced"),
            }
        }
    }

    fn start_replacement(&mut self, index: usize, now: u64) {
        let pipe = match self.workers {
            Workers::Exec(_) => match ReadyPipe::new() {
                Ok(p) => Some(p),
                Err(e) => {
                    self.rolling.start_failed();
                    crate::log_error!("restart: cannot make a pipe: {e}; restart abandoned");
                    return;
                }
            },
            Workers::Fork(_) => None,
        };
        match self.start(index, pipe.as_ref().map(|p| &p.write)) {
            Ok(pid) => {
                self.rolling.started(pid, now);
                crate::log_info!(
                    "restart: worker {index}'s replacement started (pid {pid}); waiting until it serves"
                );
                match pipe {
                    // The write end closes here: the worker holds its copy.
                    Some(p) => self.ready = Some(p.read),
                    None => self.replacement_ready(pid, now),
                }
            }
            Err(e) => {
                self.rolling.start_failed();
                crate::log_error!(
                    "restart: cannot start worker {index}'s replacement: {e}; the old workers stay, restart abandoned"
                );
            }
        }
    }

    /// Reads the ready pipe of the replacement starting, if any.
    fn check_ready(&mut self, now: u64) {
        let Some(fd) = &self.ready else {
            return;
        };
        match sys::readiness(fd) {
            Readiness::Waiting => {}
            // It exited without a word: its exit is reaped and logged.
            Readiness::Closed => self.ready = None,
            Readiness::Ready => {
                self.ready = None;
                if let Some(pid) = self.rolling.starting() {
                    self.replacement_ready(pid, now);
                }
            }
        }
    }

    /// Replacement `pid` serves: it takes its worker's place, and the old
    /// process drains.
    fn replacement_ready(&mut self, pid: i32, now: u64) {
        match self.rolling.ready(pid, &mut self.pool, now) {
            Some((index, Some(old))) => {
                crate::log_info!(
                    "restart: worker {index}'s replacement (pid {pid}) serves; draining the old one (pid {old})"
                );
                forward(&[old], sys::SIGUSR2);
            }
            Some((index, None)) => crate::log_info!(
                "restart: worker {index}'s replacement (pid {pid}) serves; the old one was gone already"
            ),
            None => {}
        }
    }

    /// Reaps every exited worker. Done on every wake-up, not only on
    /// SIGCHLD: several exits can coalesce into one signal, and reaping is
    /// one cheap syscall.
    fn reap(&mut self, now: u64) {
        while let Some((pid, status)) = sys::wait_any_nohang() {
            match self.rolling.exited(pid) {
                Some(Gone::Replacement(i)) => crate::log_error!(
                    "restart: worker {i}'s replacement (pid {pid}) {status} before it served; the old workers stay, restart abandoned"
                ),
                Some(Gone::Drained(i)) => crate::log_info!(
                    "restart: worker {i}'s old process (pid {pid}) {status}; worker {i} replaced"
                ),
                Some(Gone::Stray) => crate::log_info!("worker process (pid {pid}) {status}"),
                None => self.reap_worker(pid, status, now),
            }
        }
    }

    fn reap_worker(&mut self, pid: i32, status: sys::ExitStatus, now: u64) {
        let Some(exit) = self.pool.exited(pid, now) else {
            return;
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
                self.pool.max_delay_ms()
            );
        }
    }

    fn on_signals(&mut self, got: sys::SupervisorSignals, now: u64) {
        if got.reopen {
            if let Err(e) = crate::log::reopen() {
                crate::log_error!("cannot reopen the log file: {e}");
            }
            let live = self.live();
            crate::log_info!(
                "SIGUSR1: log reopened; forwarding to {} worker(s)",
                live.len()
            );
            forward(&live, sys::SIGUSR1);
        }
        if got.reload {
            let live = self.live();
            crate::log_info!("SIGHUP: forwarding to {} worker(s)", live.len());
            forward(&live, sys::SIGHUP);
        }
        if got.restart {
            self.restart_requested();
        }
        if let Some(sig) = got.stop {
            if !self.pool.stopping {
                self.pool.stop();
                self.rolling.stop();
                let live = self.live();
                crate::log_info!("{}: stopping {} workers", signal_name(sig), live.len());
                forward(&live, sys::SIGTERM);
                self.stop.deadline = Some(now + self.s.kill_after_ms());
            }
        }
    }

    fn restart_requested(&mut self) {
        match self.rolling.request(&self.pool) {
            Ok(()) => {
                let binary = match &self.workers {
                    Workers::Exec(exec) => format!(", from {}", exec.path.display()),
                    Workers::Fork(_) => String::new(),
                };
                crate::log_info!(
                    "SIGUSR2: rolling restart of {} worker(s), one at a time{binary}",
                    self.pool.len()
                );
            }
            Err(Busy::Restarting(i)) => {
                crate::log_warn!("SIGUSR2 ignored: a rolling restart is running (at worker {i})")
            }
            Err(Busy::Stopping) => crate::log_warn!("SIGUSR2 ignored: stopping"),
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
    fn check(&mut self, s: &Supervision, live: Vec<i32>, now: u64) -> Option<i32> {
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
            s.kill_after_ms()
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
    signals: &SupervisorSignalFd,
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
