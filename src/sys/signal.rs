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
}

/// Blocks SIGINT, SIGTERM, SIGHUP and SIGUSR1 (and ignores SIGPIPE) for the
/// thread and returns a non-blocking signalfd delivering them, so that they
/// arrive as an ordinary readable descriptor in the event loop.
pub(crate) fn stop_signal_fd() -> io::Result<RawFd> {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t for the sig* helpers below.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::sigaddset(&mut set, libc::SIGUSR1);
    }
    // SAFETY: `set` is initialised; the old mask is not needed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    ignore_sigpipe();
    syscall!(signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC))
}

/// Drains a signalfd; says which signals were read.
pub(crate) fn drain_signal_fd(fd: RawFd) -> Signals {
    let mut got = Signals::default();
    let mut info = MaybeUninit::<libc::signalfd_siginfo>::uninit();
    loop {
        let size = size_of::<libc::signalfd_siginfo>();
        // SAFETY: `info` has room for exactly one siginfo of `size` bytes.
        let n = unsafe { libc::read(fd, info.as_mut_ptr().cast(), size) };
        if n != size as isize {
            return got;
        }
        // SAFETY: the kernel wrote a whole siginfo (n == size).
        let signo = unsafe { info.assume_init_ref() }.ssi_signo as i32;
        match signo {
            libc::SIGHUP => got.reload = true,
            libc::SIGUSR1 => got.reopen = true,
            other => got.stop = Some(other),
        }
    }
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
