//! [`Supervision`]: how the supervisor behaves, its times.

/// How the supervisor behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Supervision {
    /// How many worker processes to run; 0 is refused (exit code 2).
    pub workers: usize,
    /// The workers' own graceful-stop time (`--shutdown-grace`): the master
    /// SIGKILLs workers still running this + 2000 ms after SIGTERM.
    pub shutdown_grace_ms: u64,
    /// The workers' drain when replaced (`--restart-drain`): the master
    /// SIGKILLs an old worker still running this + `shutdown_grace_ms` +
    /// 2000 ms after its SIGUSR2. Default 5 s.
    pub restart_drain_ms: u64,
    /// How long a replacement may take to say it is ready before the
    /// rolling restart gives up on it (the old worker stays). Default 10 s.
    pub ready_timeout_ms: u64,
    /// Delay before the first restart of a worker that exited. Default 100 ms.
    pub backoff_min_ms: u64,
    /// The delay doubles with each exit up to this. Default 10 s.
    pub backoff_max_ms: u64,
    /// A worker that had run at least this long restarts after
    /// `backoff_min_ms` again. Default 30 s.
    pub backoff_reset_ms: u64,
}

impl Supervision {
    /// `workers` processes, the default backoff and restart times.
    pub fn new(workers: usize, shutdown_grace_ms: u64) -> Supervision {
        Supervision {
            workers,
            shutdown_grace_ms,
            restart_drain_ms: 5_000,
            ready_timeout_ms: 10_000,
            backoff_min_ms: 100,
            backoff_max_ms: 10_000,
            backoff_reset_ms: 30_000,
        }
    }

    /// How long after SIGTERM (or after the end of a drain) the master
    /// waits before it SIGKILLs a worker.
    pub(super) fn kill_after_ms(&self) -> u64 {
        self.shutdown_grace_ms + KILL_MARGIN_MS
    }
}

impl Default for Supervision {
    /// One worker, herald's default `--shutdown-grace` (5 s).
    fn default() -> Supervision {
        Supervision::new(1, 5_000)
    }
}

/// Past the workers' own grace, before the master SIGKILLs them.
pub(super) const KILL_MARGIN_MS: u64 = 2_000;
