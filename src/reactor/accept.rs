//! Admission: accepting connections on listeners, the connection limits,
//! and turning away what is over them. The listener's protocol picks the
//! driver once per listener event.

use super::app::App;
use super::id::Protocol;
use super::proto::http::Http;
use super::proto::text::Text;
use super::proto::ws::Ws;
use super::proto::Accepted;
use super::server::Server;
use super::slot::Kind;
use crate::sys;
use std::net::IpAddr;
use std::os::fd::RawFd;

/// Connections accepted per listener readiness event before other work.
const ACCEPTS_PER_EVENT: usize = 256;

impl<A: App> Server<A> {
    /// Accepts what listener `li` has queued, up to a cap per call; true
    /// when the cap stopped it (more may wait).
    pub(super) fn accept(&mut self, li: u8) -> bool {
        match self.listeners[li as usize].protocol {
            Protocol::WebSocket => self.accept_as::<Ws>(li),
            Protocol::Text => self.accept_as::<Text>(li),
            Protocol::Http => self.accept_as::<Http>(li),
            // `listen` refuses it: no listener speaks it.
            Protocol::Outbound => false,
        }
    }

    fn accept_as<P: Accepted>(&mut self, li: u8) -> bool {
        let lfd = self.cx.io.slots[self.listeners[li as usize].slot as usize].fd;
        for _ in 0..ACCEPTS_PER_EVENT {
            match sys::accept(lfd) {
                Ok(Some((fd, ip))) => self.admit::<P>(li, fd, ip),
                Ok(None) => return false,
                Err(e) if sys::is_fd_exhaustion(&e) => {
                    // Shed one pending connection with the spare descriptor so
                    // the listener does not stay readable forever.
                    let io = &mut self.cx.io;
                    sys::close(io.reserve_fd);
                    if let Ok(Some((fd, _))) = sys::accept(lfd) {
                        refuse::<P>(fd);
                    }
                    self.cx.stats.refused += 1;
                    io.reserve_fd = sys::open_dev_null().unwrap_or(-1);
                    self.cx.reports.fd_refused += 1;
                    return false;
                }
                Err(e) => {
                    self.cx.reports.accept_errors += 1;
                    self.cx.reports.last_accept_error = Some(e.to_string());
                    return false;
                }
            }
        }
        true
    }

    fn admit<P: Accepted>(&mut self, li: u8, fd: RawFd, ip: IpAddr) {
        let cx = &mut self.cx;
        let over_total = cx.limits.max_connections > 0 && cx.open >= cx.limits.max_connections;
        // A trusted proxy's WebSockets are counted at the handshake, by the
        // address it forwards.
        let by_peer = cx.limits.max_per_ip > 0
            && !(P::KIND == Kind::WebSocket && cx.limits.is_trusted_proxy(ip));
        let over_ip = by_peer && cx.per_ip.full(ip, cx.limits.max_per_ip);
        if cx.stopping.is_some() || over_total || over_ip {
            cx.stats.refused += 1;
            if cx.stopping.is_none() {
                cx.reports.full_refused += 1;
            }
            refuse::<P>(fd);
            return;
        }
        let io = &mut cx.io;
        let idx = io.alloc(fd, P::KIND, li);
        if io.epoll.add(fd, io.id(idx).as_u64(), true, false).is_err() {
            sys::close(fd);
            io.free_slot(idx);
            return;
        }
        cx.open += 1;
        cx.stats.accepted += 1;
        if by_peer {
            cx.per_ip.count(idx, ip);
        }
        P::accepted(cx, &mut self.app, idx);
    }
}

/// Turns away a connection past a limit with a protocol-appropriate answer.
/// The reactor's own path (not a callback): the socket is new and empty, so
/// one write takes the whole answer.
fn refuse<P: Accepted>(fd: RawFd) {
    let mut msg = Vec::new();
    P::write_full(&mut msg);
    let _ = sys::write(fd, &msg);
    sys::shutdown_write(fd);
    sys::close(fd);
}
