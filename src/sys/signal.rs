//! Signals and wake-ups: the stop signalfd, eventfds, SIGPIPE.

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Signals read from the signalfd since the last drain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Signals {
    /// SIGINT or SIGTERM: stop gracefully.
    pub stop: Option<i32>,
    /// SIGHUP: re-read the secrets.
    pub reload: bool,
    /// SIGUSR1: reopen the log file.
    pub reopen: bool,
    /// SIGUSR2 (from [`usr2_signal_fd`]): a worker being replaced drains.
    pub drain: bool,
}

/// Blocks SIGUSR2 for the thread and returns a non-blocking signalfd
/// delivering it (drained by [`drain_signal_fd`] like the stop signalfd's).
pub(crate) fn usr2_signal_fd() -> io::Result<RawFd> {
    let set = signal_set(&[libc::SIGUSR2]);
    // SAFETY: `set` is initialised; the old mask is not needed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    syscall!(signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC))
}

/// Blocks SIGINT, SIGTERM, SIGHUP and SIGUSR1 (and ignores SIGPIPE) for the
/// thread and returns a non-blocking signalfd delivering them, so that they
/// arrive as an ordinary readable descriptor in the event loop.
pub(crate) fn stop_signal_fd() -> io::Result<RawFd> {
    let set = signal_set(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGUSR1]);
    // SAFETY: `set` is initialised; the old mask is not needed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    ignore_sigpipe();
    syscall!(signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC))
}

/// Reads every pending siginfo from a non-blocking signalfd, calling `on`
/// with each signal number.
fn read_signals(fd: RawFd, mut on: impl FnMut(i32)) {
    let mut info = MaybeUninit::<libc::signalfd_siginfo>::uninit();
    loop {
        let size = size_of::<libc::signalfd_siginfo>();
        // SAFETY: `info` has room for exactly one siginfo of `size` bytes.
        let n = unsafe { libc::read(fd, info.as_mut_ptr().cast(), size) };
        if n != size as isize {
            return;
        }
        // SAFETY: the kernel wrote a whole siginfo (n == size).
        on(unsafe { info.assume_init_ref() }.ssi_signo as i32);
    }
}

/// Drains a signalfd; says which signals were read.
pub(crate) fn drain_signal_fd(fd: RawFd) -> Signals {
    let mut got = Signals::default();
    read_signals(fd, |signo| match signo {
        libc::SIGHUP => got.reload = true,
        libc::SIGUSR1 => got.reopen = true,
        libc::SIGUSR2 => got.drain = true,
        other => got.stop = Some(other),
    });
    got
}

/// SIGPIPE is ignored process-wide as a second line of defence behind MSG_NOSIGNAL.
pub fn ignore_sigpipe() {
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// A non-blocking eventfd: another thread writes to it to wake the loop.
pub fn eventfd() -> io::Result<OwnedFd> {
    let fd = syscall!(eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC))?;
    // SAFETY: `fd` was just created by eventfd and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds one to an eventfd counter (wakes a reader).
pub(crate) fn eventfd_signal(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes exactly the 8 bytes of a live u64; errors (a full counter) are moot.
    unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
}

/// Resets an eventfd counter; true when it was signalled.
pub(crate) fn eventfd_drain(fd: RawFd) -> bool {
    let mut v: u64 = 0;
    // SAFETY: reads at most 8 bytes into a live u64.
    let n = unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
    n == 8
}

/// Signals the supervisor read from its signalfd since the last drain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SupervisorSignals {
    /// SIGTERM or SIGINT: stop the workers gracefully, then exit.
    pub stop: Option<i32>,
    /// SIGHUP: forward to the workers (they re-read their secrets).
    pub reload: bool,
    /// SIGUSR1: reopen the supervisor's log, forward to the workers.
    pub reopen: bool,
    /// SIGCHLD: a worker exited (several exits may coalesce into one).
    pub child: bool,
    /// SIGUSR2: replace the workers one at a time (`herald restart`).
    pub restart: bool,
}

/// The supervisor's signalfd (SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD, all
/// blocked for the calling thread) and the SIGCHLD disposition it replaced,
/// so that each forked worker can undo both before it runs.
pub(crate) struct SupervisorSignalFd {
    fd: RawFd,
    old_sigchld: libc::sigaction,
}

fn supervisor_set() -> libc::sigset_t {
    signal_set(&[
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGCHLD,
    ])
}

/// A signal set holding exactly `signals`.
fn signal_set(signals: &[i32]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t for the sig* helpers below.
    unsafe {
        libc::sigemptyset(&mut set);
        for &sig in signals {
            libc::sigaddset(&mut set, sig);
        }
    }
    set
}

/// Blocks the supervisor's signals for the calling thread and returns a
/// non-blocking signalfd delivering them. SIGCHLD is set to its default
/// disposition first: inherited as SIG_IGN, the kernel would reap the workers
/// itself and the supervisor would never learn that one exited.
pub(crate) fn supervisor_signal_fd() -> io::Result<SupervisorSignalFd> {
    // SAFETY: sigaction is plain data; all-zero is a valid (empty) value.
    let mut dfl: libc::sigaction = unsafe { std::mem::zeroed() };
    dfl.sa_sigaction = libc::SIG_DFL;
    // SAFETY: as above; filled in by the kernel below.
    let mut old_sigchld: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY (syscall!): both structs are valid for the call's duration.
    syscall!(sigaction(libc::SIGCHLD, &dfl, &mut old_sigchld))?;
    let set = supervisor_set();
    // SAFETY: `set` is initialised; the old mask is not needed (workers get
    // an empty one, see `undo_in_worker`).
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    let fd = syscall!(signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC))?;
    Ok(SupervisorSignalFd { fd, old_sigchld })
}

impl SupervisorSignalFd {
    /// Waits up to `timeout_ms` (-1: without bound) for a signal, or for
    /// `also` (a worker's ready pipe) to become readable; true when one of
    /// them is. EINTR (a stop/continue) counts as a timeout.
    pub(crate) fn wait(&self, timeout_ms: i32, also: Option<RawFd>) -> io::Result<bool> {
        let pfd = |fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let mut pfds = [pfd(self.fd), pfd(also.unwrap_or(-1))];
        let n = if also.is_some() { 2 } else { 1 };
        // SAFETY (syscall!): `pfds` holds at least `n` valid pollfds for the
        // call's duration.
        match syscall!(poll(pfds.as_mut_ptr(), n, timeout_ms)) {
            Ok(n) => Ok(n > 0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Reads every pending signal; says which arrived.
    pub(crate) fn drain(&self) -> SupervisorSignals {
        let mut got = SupervisorSignals::default();
        read_signals(self.fd, |signo| match signo {
            libc::SIGHUP => got.reload = true,
            libc::SIGUSR1 => got.reopen = true,
            libc::SIGCHLD => got.child = true,
            libc::SIGUSR2 => got.restart = true,
            other => got.stop = Some(other),
        });
        got
    }

    /// In a forked worker, before it runs: closes the supervisor's signalfd
    /// (fork without exec keeps it open despite CLOEXEC), unblocks every
    /// signal and puts SIGCHLD's disposition back, so the worker starts with
    /// the signal state of a process that was never a supervisor. The
    /// worker never returns to the supervisor's code (it ends with
    /// `exit_now`), so nothing uses or drops `self` after this.
    pub(crate) fn undo_in_worker(&self) {
        super::fd::close(self.fd);
        // SAFETY: sigset_t is plain data; sigemptyset initialises it.
        let mut empty: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `empty` is a valid sigset_t.
        unsafe { libc::sigemptyset(&mut empty) };
        // SAFETY: `empty` is initialised; the old mask is not needed. Cannot
        // fail with a valid `how`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) };
        // SAFETY: `old_sigchld` is the disposition the kernel reported; the
        // previous one is not needed.
        unsafe { libc::sigaction(libc::SIGCHLD, &self.old_sigchld, std::ptr::null_mut()) };
    }
}

impl Drop for SupervisorSignalFd {
    /// Closes the signalfd. The signals stay blocked: the supervisor is
    /// about to exit, and a late SIGTERM must not kill it before it can
    /// report its exit code.
    fn drop(&mut self) {
        super::fd::close(self.fd);
    }
}
