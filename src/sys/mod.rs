//! Every libc call herald makes, by concern: `epoll`, `net` (sockets,
//! including non-blocking connect), `signal` (signalfd, eventfd, SIGPIPE)
//! and `process` (limits, daemon, memory, kill).
//!
//! Nothing outside this module calls `libc` directly. Each wrapper turns the C
//! convention (`-1` and `errno`) into `io::Result` through the `syscall!` macro.
//! Functions on raw descriptors are crate-private: the reactor owns every
//! descriptor it opens and is the only caller.

macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        // SAFETY: each call site documents why its arguments are valid; the
        // macro only converts the C error convention.
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

mod epoll;
mod net;
mod process;
mod signal;

pub use epoll::*;
pub use net::*;
pub use process::*;
pub use signal::*;

use std::os::fd::RawFd;

/// Closes a descriptor, ignoring errors (there is nothing useful to do with
/// them: Linux releases the descriptor even when close reports EINTR).
pub(crate) fn close(fd: RawFd) {
    // SAFETY: the caller owns `fd` and never uses it again.
    unsafe { libc::close(fd) };
}

/// Monotonic time in milliseconds (vDSO: no kernel entry).
pub fn monotonic_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-parameter; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}
