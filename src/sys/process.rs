//! The process: descriptor limits, the spare descriptor, daemonizing,
//! memory, signalling another process.

use super::fd::close;
use std::io;
use std::os::fd::RawFd;

/// Opens /dev/null: a spare descriptor kept to shed connections when the
/// process runs out of descriptors (EMFILE) instead of spinning on accept.
pub(crate) fn open_dev_null() -> io::Result<RawFd> {
    let path = b"/dev/null\0";
    // SAFETY (syscall!): `path` is NUL-terminated.
    syscall!(open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC))
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns (soft, hard) after.
pub fn raise_nofile_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY (syscall!): `lim` is a valid out-parameter.
    syscall!(getrlimit(libc::RLIMIT_NOFILE, &mut lim))?;
    if lim.rlim_cur < lim.rlim_max {
        let want = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY (syscall!): `want` is a valid rlimit within the hard limit.
        syscall!(setrlimit(libc::RLIMIT_NOFILE, &want))?;
        lim.rlim_cur = lim.rlim_max;
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// How many descriptors this process has open now (from /proc/self/fd).
pub fn open_descriptors() -> io::Result<u64> {
    // The directory's own descriptor is listed too.
    Ok((std::fs::read_dir("/proc/self/fd")?.count() as u64).saturating_sub(1))
}

/// Sends `sig` to `pid`; used by `herald stop`.
pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY (syscall!): plain integers.
    syscall!(kill(pid, sig)).map(drop)
}

pub const SIGTERM: i32 = libc::SIGTERM;
/// Interrupt (Ctrl-C): a graceful stop like SIGTERM.
pub const SIGINT: i32 = libc::SIGINT;
/// Re-read secrets (`herald reload`).
pub const SIGHUP: i32 = libc::SIGHUP;
/// Reopen the log file.
pub const SIGUSR1: i32 = libc::SIGUSR1;
/// The supervisor: a rolling restart of the workers (`herald restart`); a
/// worker: drain, then exit.
pub const SIGUSR2: i32 = libc::SIGUSR2;

/// A pid file locked (`flock`, exclusive) for as long as its herald lives.
/// The lock, not the pid written in the file, says whether that herald is
/// alive: `stop` never signals a process that merely reused the pid, and a
/// second `start -d` cannot take over a live daemon's file. Kept across
/// `daemonize` (the forked child shares the locked open file).
pub struct PidLock(#[allow(dead_code)] std::fs::File);

fn try_flock(file: &std::fs::File, op: libc::c_int) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY (syscall!): the descriptor is open for as long as `file` lives.
    match syscall!(flock(file.as_raw_fd(), op | libc::LOCK_NB)) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(false),
        Err(e) => Err(e),
    }
}

impl PidLock {
    /// Locks `path` (created if missing, contents untouched). `Ok(None)`:
    /// a live process holds it.
    pub fn acquire(path: &std::path::Path) -> io::Result<Option<PidLock>> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        Ok(try_flock(&file, libc::LOCK_EX)?.then_some(PidLock(file)))
    }
}

/// Whether a live process holds the lock of the pid file at `path`.
pub fn pid_file_held(path: &std::path::Path) -> io::Result<bool> {
    let file = std::fs::File::open(path)?;
    // A shared lock is refused only while someone holds the exclusive one;
    // when taken, it goes again as `file` closes.
    Ok(!try_flock(&file, libc::LOCK_SH)?)
}

/// Detaches from the terminal: fork, the parent writes the child's pid to
/// `pid_file` (so the file exists when the parent exits) and exits 0; the
/// child starts a new session with its standard streams on /dev/null.
/// Returns in the child only.
pub fn daemonize(pid_file: &std::path::Path, log_file: &std::path::Path) -> io::Result<()> {
    // SAFETY (syscall!): fork in a single-threaded process; the child
    // continues with a copy of this one thread.
    let pid = syscall!(fork())?;
    if pid > 0 {
        let code = match std::fs::write(pid_file, format!("{pid}\n")) {
            Ok(()) => {
                println!(
                    "herald: started as a daemon, pid {pid} (pid file {}, log {})",
                    pid_file.display(),
                    log_file.display()
                );
                0
            }
            Err(e) => {
                eprintln!("herald: cannot write pid file {}: {e}", pid_file.display());
                let _ = kill(pid, libc::SIGKILL);
                1
            }
        };
        // SAFETY: _exit skips destructors that belong to the child now.
        unsafe { libc::_exit(code) };
    }
    syscall!(setsid())?;
    let null = open_dev_null()?;
    for target in 0..3 {
        // SAFETY (syscall!): both descriptors are open.
        syscall!(dup2(null, target))?;
    }
    close(null);
    Ok(())
}

/// Resident set size of this process in bytes, from /proc/self/statm.
pub fn rss_bytes() -> u64 {
    let page = {
        // SAFETY: sysconf has no preconditions.
        let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if p > 0 {
            p as u64
        } else {
            4096
        }
    };
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|pages| pages * page)
        .unwrap_or(0)
}

/// Kill without a chance to clean up: the supervisor's last resort.
pub const SIGKILL: i32 = libc::SIGKILL;

/// Which side of a `fork` this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fork {
    /// The original process; the child's pid.
    Parent(i32),
    /// The new process.
    Child,
}

/// Forks. Call only while the process is single-threaded (the supervisor
/// before it starts any thread): the child continues with a copy of the
/// calling thread alone, and a lock another thread held would stay held.
pub(crate) fn fork() -> io::Result<Fork> {
    // SAFETY (syscall!): no arguments; the caller is single-threaded.
    let pid = syscall!(fork())?;
    Ok(if pid == 0 {
        Fork::Child
    } else {
        Fork::Parent(pid)
    })
}

/// Asks the kernel to send `sig` to this process when its parent dies
/// (whatever killed it, SIGKILL included), then checks that the parent is
/// still `parent`: if it died before the request, the signal would never
/// come, so `false` says the caller is already an orphan.
pub(crate) fn die_with_parent(parent: i32, sig: i32) -> io::Result<bool> {
    // SAFETY (syscall!): PR_SET_PDEATHSIG takes a signal number; the unused
    // arguments are zero as prctl(2) asks.
    syscall!(prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0))?;
    // SAFETY: getppid has no preconditions and cannot fail.
    Ok(unsafe { libc::getppid() } == parent)
}

/// How a child process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited (returned from main, called exit) with this code.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
}

impl ExitStatus {
    /// Decodes a `waitpid` status (waited for without WUNTRACED or
    /// WCONTINUED, so the child either exited or was killed).
    pub fn from_wait_status(status: i32) -> ExitStatus {
        if libc::WIFSIGNALED(status) {
            ExitStatus::Signal(libc::WTERMSIG(status))
        } else {
            ExitStatus::Code(libc::WEXITSTATUS(status))
        }
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exited with code {c}"),
            ExitStatus::Signal(s) => write!(f, "killed by signal {s}"),
        }
    }
}

/// Reaps one child that has ended, without blocking: `Some((pid, status))`,
/// or `None` when no child has ended (or there are no children).
pub(crate) fn wait_any_nohang() -> Option<(i32, ExitStatus)> {
    let mut status = 0;
    // SAFETY (syscall!): `status` is a valid out-parameter.
    match syscall!(waitpid(-1, &mut status, libc::WNOHANG)) {
        Ok(pid) if pid > 0 => Some((pid, ExitStatus::from_wait_status(status))),
        _ => None,
    }
}

/// Ends the process now with `code`, running no destructors and no atexit
/// handlers: how a forked worker ends, since everything above its stack
/// frame belongs to the supervisor it was copied from.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions and does not return.
    unsafe { libc::_exit(code) }
}
