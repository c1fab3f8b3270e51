//! Per-address admission state: the open connections of each client
//! address (for `--max-per-ip`), the handshake rate per address, and the
//! check made at the WebSocket handshake, where the client behind a trusted
//! proxy becomes known.

use super::rate::HandshakeRate;
use crate::http::{self, Head};
use crate::limits::Limits;
use crate::sys;
use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::RawFd;

pub(super) struct PerIp {
    open: HashMap<IpAddr, u32>,
    /// The address each counted slot is counted under, until it is reaped.
    by_slot: HashMap<u32, IpAddr>,
    /// Handshakes per second per client address.
    handshakes: HandshakeRate,
}

impl PerIp {
    pub(super) fn new(limits: &Limits) -> PerIp {
        PerIp {
            open: HashMap::new(),
            by_slot: HashMap::new(),
            handshakes: HandshakeRate::new(limits.max_handshakes_per_ip),
        }
    }

    /// Whether `ip` has `max` connections open already.
    pub(super) fn full(&self, ip: IpAddr, max: usize) -> bool {
        self.open.get(&ip).copied().unwrap_or(0) as usize >= max
    }

    /// Counts `ip`'s open connection for the per-IP limit, until `idx` is reaped.
    pub(super) fn count(&mut self, idx: u32, ip: IpAddr) {
        *self.open.entry(ip).or_insert(0) += 1;
        self.by_slot.insert(idx, ip);
    }

    /// The address `idx` is counted under, if it is.
    pub(super) fn of(&self, idx: u32) -> Option<IpAddr> {
        self.by_slot.get(&idx).copied()
    }

    /// Stops counting `idx` (reaped).
    pub(super) fn release(&mut self, idx: u32) {
        if let Some(ip) = self.by_slot.remove(&idx) {
            if let Some(n) = self.open.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    self.open.remove(&ip);
                }
            }
        }
    }

    /// Admission at the WebSocket handshake: who the client is (behind a
    /// trusted proxy, the address it forwards), that address's connection
    /// count, and its handshake rate. `Err` is the HTTP refusal.
    pub(super) fn admit_handshake(
        &mut self,
        limits: &Limits,
        now_ms: u64,
        (idx, fd): (u32, RawFd),
        head: &Head<'_>,
    ) -> Result<Option<IpAddr>, (u16, &'static str)> {
        let known = self.of(idx);
        if limits.trusted_proxies.is_empty() && limits.max_handshakes_per_ip == 0 {
            return Ok(known);
        }
        let Some(peer) = known.or_else(|| sys::peer_addr(fd).ok().map(|a| a.ip())) else {
            return Ok(None);
        };
        let proxied = limits.is_trusted_proxy(peer);
        let client = if proxied {
            http::forwarded_client(head, |ip| limits.is_trusted_proxy(ip)).unwrap_or(peer)
        } else {
            peer
        };
        if !self.handshakes.allow(client, now_ms) {
            return Err((429, "too many handshakes from your address"));
        }
        if proxied && limits.max_per_ip > 0 {
            if self.full(client, limits.max_per_ip) {
                return Err((503, "too many connections from your address"));
            }
            self.count(idx, client);
        }
        Ok(Some(client))
    }
}
