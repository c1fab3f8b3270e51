//! Every libc call herald makes, by concern: `epoll`, `net` (sockets,
//! including non-blocking connect), `signal` (signalfd, eventfd, SIGPIPE)
//! `process` (limits, daemon, memory, kill) and `spawn` (a worker started
//! from the binary on disk, its ready pipe).
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

mod clock;
mod epoll;
mod fd;
mod net;
mod process;
mod signal;
mod spawn;

pub use clock::*;
pub use epoll::*;
pub(crate) use fd::*;
pub use net::*;
pub use process::*;
pub use signal::*;
pub use spawn::*;
