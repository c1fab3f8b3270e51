//! Admission: accepting connections on listeners, the connection limits,
//! and turning away what is over them.

use super::app::App;
use super::id::Protocol;
use super::output::ms_to_ticks;
use super::slot::{Flags, Kind};
use super::{Context, Server};
use crate::http::{self, Head};
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
                Err(e) => {
                    self.cx.reports.accept_errors += 1;
                    self.cx.reports.last_accept_error = Some(e.to_string());
                    return;
                }
            }
        }
    }

    fn admit(&mut self, li: u8, protocol: Protocol, fd: RawFd, ip: IpAddr) {
        let cx = &mut self.cx;
        let over_total = cx.limits.max_connections > 0 && cx.open >= cx.limits.max_connections;
        // A trusted proxy's WebSockets are counted at the handshake, by the
        // address it forwards.
        let by_peer = cx.limits.max_per_ip > 0
            && !(protocol == Protocol::WebSocket && cx.limits.is_trusted_proxy(ip));
        let over_ip =
            by_peer && cx.per_ip.get(&ip).copied().unwrap_or(0) as usize >= cx.limits.max_per_ip;
        if cx.stopping.is_some() || over_total || over_ip {
            cx.stats.refused += 1;
            if cx.stopping.is_none() {
                cx.reports.full_refused += 1;
            }
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
        if by_peer {
            cx.count_ip(idx, ip);
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

impl Context {
    /// Counts `ip`'s open connection for the per-IP limit, until `idx` is reaped.
    pub(super) fn count_ip(&mut self, idx: u32, ip: IpAddr) {
        *self.per_ip.entry(ip).or_insert(0) += 1;
        self.slot_ip.insert(idx, ip);
    }

    /// Admission at the WebSocket handshake: who the client is (behind a
    /// trusted proxy, the address it forwards), that address's connection
    /// count, and its handshake rate. `Err` is the HTTP refusal.
    pub(super) fn admit_handshake(
        &mut self,
        idx: u32,
        fd: RawFd,
        head: &Head<'_>,
    ) -> Result<Option<IpAddr>, (u16, &'static str)> {
        let known = self.slot_ip.get(&idx).copied();
        if self.limits.trusted_proxies.is_empty() && self.limits.max_handshakes_per_ip == 0 {
            return Ok(known);
        }
        let Some(peer) = known.or_else(|| sys::peer_addr(fd).ok().map(|a| a.ip())) else {
            return Ok(None);
        };
        let proxied = self.limits.is_trusted_proxy(peer);
        let client = if proxied {
            http::forwarded_client(head, |ip| self.limits.is_trusted_proxy(ip)).unwrap_or(peer)
        } else {
            peer
        };
        if !self.handshake_rate.allow(client, self.now_ms) {
            return Err((429, "too many handshakes from your address"));
        }
        if proxied && self.limits.max_per_ip > 0 {
            let n = self.per_ip.get(&client).copied().unwrap_or(0) as usize;
            if n >= self.limits.max_per_ip {
                return Err((503, "too many connections from your address"));
            }
            self.count_ip(idx, client);
        }
        Ok(Some(client))
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
