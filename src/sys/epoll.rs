//! epoll: the readiness source of the event loop.

use super::fd::close;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;

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

    /// Registers a listener shared with other processes for input, with
    /// EPOLLEXCLUSIVE: a connection wakes one of the processes waiting on
    /// it rather than all of them. Such a registration cannot be modified.
    pub fn add_exclusive(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLEXCLUSIVE) as u32,
            u64: token,
        };
        // SAFETY (syscall!): `ev` is a valid epoll_event living across the call.
        syscall!(epoll_ctl(self.fd, libc::EPOLL_CTL_ADD, fd, &mut ev)).map(drop)
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
