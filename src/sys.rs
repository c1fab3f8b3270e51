//! Every libc call herald makes: epoll, sockets, signals, clocks and limits.
//!
//! Nothing outside this module calls `libc` directly. Each wrapper turns the C
//! convention (`-1` and `errno`) into `io::Result` through the `syscall!` macro.

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        // SAFETY: each call site documents why its arguments are valid; the
        // macro only converts the C error convention.
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

/// Readiness bits reported by [`Epoll::wait`].
pub const EV_IN: u32 = libc::EPOLLIN as u32;
pub const EV_OUT: u32 = libc::EPOLLOUT as u32;
/// Peer closed its write side (half-close) or the socket hung up / failed.
/// EPOLLHUP and EPOLLERR are always reported, whether asked for or not.
pub const EV_CLOSED: u32 = (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;

/// An epoll instance; level-triggered, the token lives in `epoll_event.u64`.
pub struct Epoll {
    fd: RawFd,
}

/// One readiness report: the token given at registration and the event bits.
#[derive(Clone, Copy)]
pub struct Ready {
    pub token: u64,
    pub events: u32,
}

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        let fd = syscall!(epoll_create1(libc::EPOLL_CLOEXEC))?;
        Ok(Epoll { fd })
    }

    /// Level-triggered on purpose: one `read` per readiness report, no
    /// trailing `read` that only returns EAGAIN as edge-triggering needs.
    pub fn add(&self, fd: RawFd, token: u64, want_in: bool, want_out: bool) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token, want_in, want_out)
    }

    pub fn modify(&self, fd: RawFd, token: u64, want_in: bool, want_out: bool) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, token, want_in, want_out)
    }

    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        // A non-null event pointer keeps pre-2.6.9 kernels happy; it is ignored.
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        syscall!(epoll_ctl(self.fd, libc::EPOLL_CTL_DEL, fd, &mut ev)).map(drop)
    }

    fn ctl(
        &self,
        op: libc::c_int,
        fd: RawFd,
        token: u64,
        want_in: bool,
        want_out: bool,
    ) -> io::Result<()> {
        let mut bits = 0;
        if want_in {
            bits |= libc::EPOLLIN | libc::EPOLLRDHUP;
        }
        if want_out {
            bits |= libc::EPOLLOUT;
        }
        let mut ev = libc::epoll_event {
            events: bits as u32,
            u64: token,
        };
        // SAFETY (syscall!): `ev` is a valid epoll_event living across the call.
        syscall!(epoll_ctl(self.fd, op, fd, &mut ev)).map(drop)
    }

    /// Waits up to `timeout_ms` (-1 = forever) and fills `out`. EINTR counts as
    /// "nothing happened" so that a signal only wakes the loop.
    pub fn wait(&self, out: &mut Vec<Ready>, timeout_ms: i32) -> io::Result<()> {
        out.clear();
        let cap = out.capacity().max(1);
        let mut raw: [MaybeUninit<libc::epoll_event>; 256] = [MaybeUninit::uninit(); 256];
        let max = cap.min(raw.len()) as libc::c_int;
        // SAFETY: `raw` has room for `max` events; the kernel writes at most `max`.
        let n = unsafe { libc::epoll_wait(self.fd, raw.as_mut_ptr().cast(), max, timeout_ms) };
        if n == -1 {
            let err = io::Error::last_os_error();
            return if err.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(err)
            };
        }
        for ev in &raw[..n as usize] {
            // SAFETY: the kernel initialised the first `n` entries.
            let ev = unsafe { ev.assume_init() };
            out.push(Ready {
                token: ev.u64,
                events: ev.events,
            });
        }
        Ok(())
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        close(self.fd);
    }
}

/// Closes a descriptor, ignoring errors (there is nothing useful to do with
/// them: Linux releases the descriptor even when close reports EINTR).
pub fn close(fd: RawFd) {
    // SAFETY: the caller owns `fd` and never uses it again.
    unsafe { libc::close(fd) };
}

fn set_int_opt(fd: RawFd, level: libc::c_int, name: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY (syscall!): the option value points to a live c_int of the size given.
    syscall!(setsockopt(
        fd,
        level,
        name,
        (&v as *const libc::c_int).cast(),
        size_of::<libc::c_int>() as libc::socklen_t
    ))
    .map(drop)
}

fn to_sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data for which all-zero is valid.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

fn from_sockaddr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin: libc::sockaddr_in =
                unsafe { std::ptr::read((storage as *const libc::sockaddr_storage).cast()) };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6: libc::sockaddr_in6 =
                unsafe { std::ptr::read((storage as *const libc::sockaddr_storage).cast()) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// A non-blocking listening TCP socket with SO_REUSEADDR (and SO_REUSEPORT when asked).
pub fn listen_tcp(addr: &SocketAddr, reuse_port: bool, backlog: i32) -> io::Result<RawFd> {
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let fd = syscall!(socket(
        family,
        libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        0
    ))?;
    let setup = || -> io::Result<()> {
        set_int_opt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
        if reuse_port {
            set_int_opt(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
        }
        // Accepted sockets inherit TCP_NODELAY from the listener on Linux:
        // one setsockopt here instead of one per connection.
        set_int_opt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)?;
        let (storage, len) = to_sockaddr(addr);
        // SAFETY (syscall!): `storage` holds a valid address of length `len`.
        syscall!(bind(
            fd,
            (&storage as *const libc::sockaddr_storage).cast(),
            len
        ))?;
        syscall!(listen(fd, backlog))?;
        Ok(())
    };
    if let Err(e) = setup() {
        close(fd);
        return Err(e);
    }
    Ok(fd)
}

/// The address a socket is bound to (useful after binding port 0).
pub fn local_addr(fd: RawFd) -> io::Result<SocketAddr> {
    // SAFETY: all-zero sockaddr_storage is valid.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY (syscall!): storage/len describe a writable buffer of the right size.
    syscall!(getsockname(
        fd,
        (&mut storage as *mut libc::sockaddr_storage).cast(),
        &mut len
    ))?;
    from_sockaddr(&storage).ok_or_else(|| io::Error::other("unknown address family"))
}

/// Accepts one connection as a non-blocking, close-on-exec socket; it has
/// TCP_NODELAY from the listener (pushes are small and latency matters). `Ok(None)` = no
/// pending connection.
pub fn accept(listener: RawFd) -> io::Result<Option<(RawFd, IpAddr)>> {
    // SAFETY: all-zero sockaddr_storage is valid.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY (syscall!): storage/len describe a writable buffer of the right size.
    let res = syscall!(accept4(
        listener,
        (&mut storage as *mut libc::sockaddr_storage).cast(),
        &mut len,
        libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC
    ));
    match res {
        Ok(fd) => {
            let ip = from_sockaddr(&storage)
                .map(|a| a.ip())
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            Ok(Some((fd, ip)))
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads into `buf`. `Ok(0)` is end of stream; WouldBlock is returned as an error.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY (syscall!): `buf` is valid for writes of `buf.len()` bytes.
    syscall!(read(fd, buf.as_mut_ptr().cast(), buf.len())).map(|n| n as usize)
}

/// Writes from `buf`; WouldBlock is returned as an error. MSG_NOSIGNAL keeps
/// a write to a reset peer from raising SIGPIPE.
pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY (syscall!): `buf` is valid for reads of `buf.len()` bytes.
    syscall!(send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL)).map(|n| n as usize)
}

/// Gathers two buffers into one `sendmsg` (a frame header and its payload).
pub fn write2(fd: RawFd, a: &[u8], b: &[u8]) -> io::Result<usize> {
    let mut iov = [
        libc::iovec {
            iov_base: a.as_ptr() as *mut libc::c_void,
            iov_len: a.len(),
        },
        libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        },
    ];
    // SAFETY: all-zero msghdr is valid (no name, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len() as _;
    // SAFETY (syscall!): msg points at two iovecs over live, readable slices.
    syscall!(sendmsg(fd, &msg, libc::MSG_NOSIGNAL)).map(|n| n as usize)
}

/// Stops further sends; the peer sees end of stream once queued bytes drain.
pub fn shutdown_write(fd: RawFd) {
    // SAFETY: `fd` is an open socket owned by the caller; errors are moot.
    unsafe { libc::shutdown(fd, libc::SHUT_WR) };
}

/// Sets SO_LINGER to zero so that `close` sends RST and frees kernel buffers
/// at once: used for peers that are dead or hostile with output still queued.
pub fn set_linger_zero(fd: RawFd) {
    let lg = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `lg` is a live linger struct of the size given; errors are moot.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&lg as *const libc::linger).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        )
    };
}

/// Opens /dev/null: a spare descriptor kept to shed connections when the
/// process runs out of descriptors (EMFILE) instead of spinning on accept.
pub fn open_dev_null() -> io::Result<RawFd> {
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

/// Blocks SIGINT, SIGTERM (and SIGPIPE) for the thread and returns a
/// non-blocking signalfd delivering the first two, so that a stop request
/// arrives as an ordinary readable descriptor in the event loop.
pub fn stop_signal_fd() -> io::Result<RawFd> {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t for the sig* helpers below.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
    }
    // SAFETY: `set` is initialised; the old mask is not needed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    ignore_sigpipe();
    syscall!(signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC))
}

/// Drains a signalfd; returns true when at least one signal was read.
pub fn drain_signal_fd(fd: RawFd) -> bool {
    let mut got = false;
    let mut info = MaybeUninit::<libc::signalfd_siginfo>::uninit();
    loop {
        let size = size_of::<libc::signalfd_siginfo>();
        // SAFETY: `info` has room for exactly one siginfo of `size` bytes.
        let n = unsafe { libc::read(fd, info.as_mut_ptr().cast(), size) };
        if n != size as isize {
            return got;
        }
        got = true;
    }
}

/// SIGPIPE is ignored process-wide as a second line of defence behind MSG_NOSIGNAL.
pub fn ignore_sigpipe() {
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
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

/// Sends `sig` to `pid`; used by `herald stop`.
pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY (syscall!): plain integers.
    syscall!(kill(pid, sig)).map(drop)
}

pub const SIGTERM: i32 = libc::SIGTERM;

/// Detaches from the terminal: fork, the parent writes the child's pid to
/// `pid_file` (so the file exists when the parent exits) and exits 0; the
/// child starts a new session with its standard streams on /dev/null.
/// Returns in the child only.
pub fn daemonize(pid_file: &std::path::Path) -> io::Result<()> {
    // SAFETY (syscall!): fork in a single-threaded process; the child
    // continues with a copy of this one thread.
    let pid = syscall!(fork())?;
    if pid > 0 {
        let code = match std::fs::write(pid_file, format!("{pid}\n")) {
            Ok(()) => 0,
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

/// A non-blocking eventfd: another thread writes to it to wake the loop.
pub fn eventfd() -> io::Result<OwnedFd> {
    let fd = syscall!(eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC))?;
    // SAFETY: `fd` was just created by eventfd and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds one to an eventfd counter (wakes a reader).
pub fn eventfd_signal(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes exactly the 8 bytes of a live u64; errors (a full counter) are moot.
    unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
}

/// Resets an eventfd counter; true when it was signalled.
pub fn eventfd_drain(fd: RawFd) -> bool {
    let mut v: u64 = 0;
    // SAFETY: reads at most 8 bytes into a live u64.
    let n = unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
    n == 8
}

/// True for accept errors that mean "out of descriptors".
pub fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodelay(fd: RawFd) -> bool {
        let mut v: libc::c_int = 0;
        let mut len = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY (syscall!): `v`/`len` describe a writable c_int.
        syscall!(getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&mut v as *mut libc::c_int).cast(),
            &mut len
        ))
        .unwrap();
        v != 0
    }

    #[test]
    fn accepted_sockets_inherit_nodelay_from_the_listener() {
        let l = listen_tcp(&"127.0.0.1:0".parse().unwrap(), false, 16).unwrap();
        let addr = local_addr(l).unwrap();
        let _client = std::net::TcpStream::connect(addr).unwrap();
        let mut accepted = None;
        for _ in 0..100 {
            if let Some((fd, ip)) = accept(l).unwrap() {
                assert!(ip.is_loopback());
                accepted = Some(fd);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let fd = accepted.expect("a connection to accept");
        assert!(nodelay(fd), "pushes must not wait for Nagle");
        close(fd);
        close(l);
    }
}
