//! Starting a worker from the binary on disk: fork + exec with chosen
//! descriptors kept open, and the pipe on which it says it is ready.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;

/// Runs `path` with `args` (`args[0]` as the program's name) and the
/// current environment plus `env`, keeping the descriptors `keep` open in
/// it (under the same numbers) although they are close-on-exec here. The
/// child gets SIGTERM when this process dies (PR_SET_PDEATHSIG survives
/// exec), and starts with an empty signal mask (std resets it). Returns the
/// child's pid; an exec that fails (the file is gone, not executable) is an
/// error here, not a child that exits.
pub(crate) fn spawn_exec(
    path: &Path,
    args: &[OsString],
    env: &[(String, String)],
    keep: &[RawFd],
) -> io::Result<i32> {
    let mut cmd = std::process::Command::new(path);
    if let Some((arg0, rest)) = args.split_first() {
        cmd.arg0(arg0).args(rest);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    let keep = keep.to_vec();
    // Runs in the forked child before exec: only async-signal-safe calls
    // (fcntl, prctl, getppid) on plain integers, and no allocation.
    let in_child = move || -> io::Result<()> {
        for &fd in &keep {
            // SAFETY (syscall!): plain integers; `fd` is open in the parent.
            syscall!(fcntl(fd, libc::F_SETFD, 0))?;
        }
        // A worker ends with its master, whatever kills the master.
        // SAFETY (syscall!): PR_SET_PDEATHSIG takes a signal number; the
        // unused arguments are zero as prctl(2) asks.
        syscall!(prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGTERM as libc::c_ulong,
            0,
            0,
            0
        ))?;
        // SAFETY: getppid has no preconditions and cannot fail.
        if unsafe { libc::getppid() } != parent {
            // The master died before the request: no signal would come.
            return Err(io::Error::other("the supervisor is gone"));
        }
        Ok(())
    };
    // SAFETY: `in_child` is async-signal-safe (above), and the caller is
    // single-threaded (the supervisor), so no lock can be held by a thread
    // the fork does not copy.
    unsafe { cmd.pre_exec(in_child) };
    let child = cmd.spawn()?;
    // Dropping `child` neither waits nor kills: the supervisor reaps it.
    Ok(child.id() as i32)
}

/// The pipe a new worker writes one byte to once it serves: the read end
/// (non-blocking) stays with the supervisor, the write end goes to the
/// worker.
pub(crate) struct ReadyPipe {
    pub(crate) read: OwnedFd,
    pub(crate) write: OwnedFd,
}

/// What the read end of a [`ReadyPipe`] says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Readiness {
    /// The worker wrote its byte.
    Ready,
    /// Every write end is closed without a byte (the worker exited).
    Closed,
    /// Nothing yet.
    Waiting,
}

impl ReadyPipe {
    pub(crate) fn new() -> io::Result<ReadyPipe> {
        let mut fds = [-1; 2];
        // SAFETY (syscall!): `fds` has room for the two descriptors.
        syscall!(pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK))?;
        // SAFETY: pipe2 just created both descriptors; nobody else owns them.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(ReadyPipe { read, write })
    }
}

/// Reads the read end of a ready pipe without blocking.
pub(crate) fn readiness(read: &OwnedFd) -> Readiness {
    let mut b = [0u8; 1];
    // SAFETY: reads at most one byte into `b`.
    match unsafe { libc::read(read.as_raw_fd(), b.as_mut_ptr().cast(), 1) } {
        1 => Readiness::Ready,
        0 => Readiness::Closed,
        _ => Readiness::Waiting,
    }
}

/// Writes the one byte that says "ready" to `fd` (a worker's inherited
/// write end) and closes it.
pub fn notify_ready(fd: RawFd) -> io::Result<()> {
    // Checked first: `fd` comes from the environment, and closing a
    // descriptor that is not ours would break whoever owns it.
    syscall!(fcntl(fd, libc::F_GETFD))?;
    // SAFETY: the fcntl above says `fd` is open; this process inherited it
    // for this one write and owns it from here.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let one = [1u8];
    // SAFETY (syscall!): writes one byte from a live buffer.
    syscall!(write(owned.as_raw_fd(), one.as_ptr().cast(), 1)).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ready_pipe_says_waiting_ready_then_closed() {
        let p = ReadyPipe::new().unwrap();
        assert_eq!(readiness(&p.read), Readiness::Waiting);
        let ReadyPipe { read, write } = p;
        use std::os::fd::IntoRawFd;
        notify_ready(write.into_raw_fd()).unwrap();
        assert_eq!(readiness(&read), Readiness::Ready);
        assert_eq!(readiness(&read), Readiness::Closed);
    }

    #[test]
    fn an_exec_that_cannot_run_is_an_error() {
        let err = spawn_exec(Path::new("/nonexistent/herald"), &[], &[], &[]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
