//! Sockets: listening, accepting, non-blocking connect, reads and writes,
//! options and addresses.

use super::fd::close;
use std::io;
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

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
pub(crate) fn listen_tcp(addr: &SocketAddr, reuse_port: bool, backlog: i32) -> io::Result<RawFd> {
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

/// A close-on-exec duplicate of `fd`: the same socket under a descriptor
/// of the caller's own (a supervisor keeps its listeners this way).
pub(crate) fn dup_cloexec(fd: RawFd) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY (syscall!): plain integers; the kernel checks `fd`.
    let dup = syscall!(fcntl(fd, libc::F_DUPFD_CLOEXEC, 0))?;
    // SAFETY: `dup` was just created and is owned by nobody else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(dup) })
}

/// Takes over descriptor `fd`, inherited from the process that started
/// this one, as a listening TCP socket: checked to be one (SO_ACCEPTCONN),
/// made non-blocking and close-on-exec. The number comes from outside
/// (the environment), hence the checks before it is owned.
pub(crate) fn adopt_listener(fd: RawFd) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY (syscall!): plain integers; EBADF if `fd` is not open.
    syscall!(fcntl(fd, libc::F_GETFD))?;
    let mut v: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY (syscall!): `v`/`len` describe a writable c_int.
    syscall!(getsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_ACCEPTCONN,
        (&mut v as *mut libc::c_int).cast(),
        &mut len
    ))?;
    if v == 0 {
        return Err(io::Error::other(format!(
            "descriptor {fd} is not a listening socket"
        )));
    }
    // SAFETY (syscall!): plain integers on an open descriptor.
    let flags = syscall!(fcntl(fd, libc::F_GETFL))?;
    // SAFETY (syscall!): as above.
    syscall!(fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK))?;
    // SAFETY (syscall!): as above.
    syscall!(fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC))?;
    // SAFETY: `fd` is open (checked) and was inherited for this process to
    // own; nothing else in it refers to that number.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// The address a socket is bound to (useful after binding port 0).
pub(crate) fn local_addr(fd: RawFd) -> io::Result<SocketAddr> {
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
pub(crate) fn accept(listener: RawFd) -> io::Result<Option<(RawFd, IpAddr)>> {
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
pub(crate) fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY (syscall!): `buf` is valid for writes of `buf.len()` bytes.
    syscall!(read(fd, buf.as_mut_ptr().cast(), buf.len())).map(|n| n as usize)
}

/// Writes from `buf`; WouldBlock is returned as an error. MSG_NOSIGNAL keeps
/// a write to a reset peer from raising SIGPIPE.
pub(crate) fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    send(fd, buf, libc::MSG_NOSIGNAL)
}

/// Like [`write`], for the last bytes before [`shutdown_write`]: MSG_MORE
/// holds back a short final segment, so that the FIN rides in it (one
/// segment, and one ACK, fewer per connection).
pub(crate) fn write_last(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    send(fd, buf, libc::MSG_NOSIGNAL | libc::MSG_MORE)
}

fn send(fd: RawFd, buf: &[u8], flags: libc::c_int) -> io::Result<usize> {
    // SAFETY (syscall!): `buf` is valid for reads of `buf.len()` bytes.
    syscall!(send(fd, buf.as_ptr().cast(), buf.len(), flags)).map(|n| n as usize)
}

/// Stops further sends; the peer sees end of stream once queued bytes drain.
pub(crate) fn shutdown_write(fd: RawFd) {
    // SAFETY: `fd` is an open socket owned by the caller; errors are moot.
    unsafe { libc::shutdown(fd, libc::SHUT_WR) };
}

/// Sets SO_LINGER to zero so that `close` sends RST and frees kernel buffers
/// at once: used for peers that are dead or hostile with output still queued.
pub(crate) fn set_linger_zero(fd: RawFd) {
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

/// True for accept errors that mean "out of descriptors".
pub fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// Starts a non-blocking TCP connect to `addr`. The socket is returned at
/// once, usually with the connect still in progress: it becomes writable
/// when it completes, and [`take_socket_error`] then says how it ended.
pub(crate) fn connect_tcp(addr: &SocketAddr) -> io::Result<RawFd> {
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
    let _ = set_int_opt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
    let (storage, len) = to_sockaddr(addr);
    // SAFETY (syscall!): `storage` holds a valid address of length `len`.
    match syscall!(connect(
        fd,
        (&storage as *const libc::sockaddr_storage).cast(),
        len
    )) {
        Ok(_) => Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(fd),
        Err(e) => {
            close(fd);
            Err(e)
        }
    }
}

/// The pending error of a socket (SO_ERROR), cleared by reading it: how a
/// non-blocking connect ended.
pub(crate) fn take_socket_error(fd: RawFd) -> io::Result<()> {
    let mut v: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY (syscall!): `v`/`len` describe a writable c_int.
    syscall!(getsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_ERROR,
        (&mut v as *mut libc::c_int).cast(),
        &mut len
    ))?;
    match v {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// The address of a connected socket's peer.
pub(crate) fn peer_addr(fd: RawFd) -> io::Result<SocketAddr> {
    // SAFETY: all-zero sockaddr_storage is valid.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY (syscall!): storage/len describe a writable buffer of the right size.
    syscall!(getpeername(
        fd,
        (&mut storage as *mut libc::sockaddr_storage).cast(),
        &mut len
    ))?;
    from_sockaddr(&storage).ok_or_else(|| io::Error::other("unknown address family"))
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
