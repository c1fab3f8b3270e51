//! Admission: accepting connections on listeners, the connection limits,
//! and turning away what is over them.

use super::output::ms_to_ticks;
use super::slot::{Flags, Kind};
use super::Server;
use crate::app::{App, Protocol};
use crate::http;
use crate::sys;
use std::net::IpAddr;
use std::os::fd::RawFd;

/// Connections accepted per listener readiness event before other work.
const ACCEPTS_PER_EVENT: usize = 256;

impl<A: App> Server<A> {
    pub(super) fn accept(&mut self, li: u8) {
        let (lfd, protocol) = {
            let l = &self.cx.listeners[li as usize];
            (self.cx.slots[l.slot as usize].fd, l.protocol)
        };
        for _ in 0..ACCEPTS_PER_EVENT {
            match sys::accept(lfd) {
                Ok(Some((fd, ip))) => self.admit(li, protocol, fd, ip),
                Ok(None) => return,
                Err(e) if sys::is_fd_exhaustion(&e) => {
                    // Shed one pending connection with the spare descriptor so
                    // the listener does not stay readable forever.
                    sys::close(self.cx.reserve_fd);
                    if let Ok(Some((fd, _))) = sys::accept(lfd) {
                        refuse(protocol, fd);
                    }
                    self.cx.stats.refused += 1;
                    self.cx.reserve_fd = sys::open_dev_null().unwrap_or(-1);
                    self.cx.reports.fd_refused += 1;
                    return;
                }
                Err(_) => return,
            }
        }
    }

    fn admit(&mut self, li: u8, protocol: Protocol, fd: RawFd, ip: IpAddr) {
        let cx = &mut self.cx;
        let over_total = cx.limits.max_connections > 0 && cx.open >= cx.limits.max_connections;
        let over_ip = cx.limits.max_per_ip > 0
            && cx.per_ip.get(&ip).copied().unwrap_or(0) as usize >= cx.limits.max_per_ip;
        if cx.stopping.is_some() || over_total || over_ip {
            cx.stats.refused += 1;
            refuse(protocol, fd);
            return;
        }
        let kind = match protocol {
            Protocol::WebSocket => Kind::WebSocket,
            Protocol::Text => Kind::Text,
            Protocol::Http => Kind::Http,
            Protocol::Outbound => {
                // Listeners are never outbound (`listen` refuses it).
                sys::close(fd);
                return;
            }
        };
        let idx = cx.alloc(fd, kind, li);
        if cx.epoll.add(fd, cx.id(idx).as_u64(), true, false).is_err() {
            sys::close(fd);
            cx.free_slot(idx);
            return;
        }
        cx.open += 1;
        cx.stats.accepted += 1;
        if cx.limits.max_per_ip > 0 {
            *cx.per_ip.entry(ip).or_insert(0) += 1;
            cx.slot_ip.insert(idx, ip);
        }
        match kind {
            Kind::WebSocket => {
                cx.slots[idx as usize].flags.set(Flags::HANDSHAKE);
                let due = cx.now + ms_to_ticks(cx.limits.handshake_timeout_ms);
                cx.schedule(idx, due);
            }
            Kind::Text => {
                cx.slots[idx as usize].flags.set(Flags::OPENED);
                let id = cx.id(idx);
                self.app.on_open(&mut self.cx, id);
            }
            Kind::Http => self.schedule_heartbeat(idx),
            Kind::Outbound | Kind::Free | Kind::Listener | Kind::Signal | Kind::Waker => {}
        }
    }
}

/// Turns away a connection past a limit with a protocol-appropriate answer.
/// The reactor's own path (not a callback): the socket is new and empty, so
/// one write takes the whole answer.
pub(super) fn refuse(protocol: Protocol, fd: RawFd) {
    let mut msg = Vec::new();
    match protocol {
        Protocol::Text => msg.extend_from_slice(b"error server full\n"),
        Protocol::Http => http::write_json_error(&mut msg, 503, "server full"),
        Protocol::WebSocket | Protocol::Outbound => {
            http::write_error(&mut msg, 503, "server full", "")
        }
    }
    let _ = sys::write(fd, &msg);
    sys::shutdown_write(fd);
    sys::close(fd);
}
