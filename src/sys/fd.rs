//! Closing a descriptor: the one call every other `sys` file shares.

use std::os::fd::RawFd;

/// Closes a descriptor, ignoring errors (there is nothing useful to do with
/// them: Linux releases the descriptor even when close reports EINTR).
pub(crate) fn close(fd: RawFd) {
    // SAFETY: the caller owns `fd` and never uses it again.
    unsafe { libc::close(fd) };
}
