//! Operator reports of events a peer can cause over and over (refused
//! handshakes and protocol errors, limits reached, running out of
//! descriptors, slow consumers): counted where they happen, with no syscall
//! there, and logged from the loop at most once per [`REPORT_EVERY_MS`], so
//! that no client can flood the log.

use super::stats::Refusal;
use super::wheel::ms_to_ticks;
use crate::limits::Limits;
use crate::log::{self, Level};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;

/// How often a kind of event is reported at most.
pub(super) const REPORT_EVERY_MS: u64 = 10_000;

/// Distinct addresses tallied per period; more are counted, not named.
const MAX_ADDRS: usize = 256;

/// Refusals logged one by one per period at `--log-level debug`.
const DEBUG_LINES: u32 = 20;

/// Events counted since the last report.
#[derive(Debug, Default)]
pub(super) struct Reports {
    pub fd_refused: u64,
    pub full_refused: u64,
    pub accept_errors: u64,
    pub last_accept_error: Option<String>,
    pub slow_ws: u64,
    refusals: Vec<(Refusal, u64)>,
    addrs: HashMap<IpAddr, u64>,
    /// Refusals whose address was not tallied (unknown, or past MAX_ADDRS).
    untallied: u64,
    debug_lines: u32,
    last: Option<u32>,
}

impl Reports {
    fn pending(&self) -> bool {
        self.fd_refused + self.full_refused + self.accept_errors + self.slow_ws > 0
            || !self.refusals.is_empty()
    }

    pub(super) fn refused(&mut self, why: Refusal, ip: Option<IpAddr>, detail: &str) {
        match self.refusals.iter_mut().find(|(r, _)| *r == why) {
            Some((_, n)) => *n += 1,
            None => self.refusals.push((why, 1)),
        }
        match ip {
            Some(ip) if self.addrs.len() < MAX_ADDRS || self.addrs.contains_key(&ip) => {
                *self.addrs.entry(ip).or_insert(0) += 1;
            }
            _ => self.untallied += 1,
        }
        if self.debug_lines < DEBUG_LINES && log::enabled(Level::Debug) {
            self.debug_lines += 1;
            let from = ip.map_or("an unknown address".to_string(), |ip| ip.to_string());
            log_debug!("refused {from}: {why} {detail}");
        }
    }

    /// The aggregated refusal line: kinds, addresses, the busiest one.
    fn refusal_line(&self, since: &str) -> String {
        let total: u64 = self.refusals.iter().map(|(_, n)| n).sum();
        let mut line = format!("refused {total} {since}:");
        for (i, (why, n)) in self.refusals.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            let _ = write!(line, "{sep}{why} x{n}");
        }
        let distinct = self.addrs.len();
        let more = if distinct >= MAX_ADDRS { "+" } else { "" };
        let _ = write!(line, "; {distinct}{more} address(es)");
        if let Some((ip, n)) = self
            .addrs
            .iter()
            .max_by_key(|(ip, n)| (**n, std::cmp::Reverse(**ip)))
        {
            let _ = write!(line, ", top {ip} x{n}");
        }
        line
    }
}

impl Reports {
    /// Logs what was counted, if anything, once the last report is old
    /// enough (the first one at once). `now` is the wheel's tick, `nofile`
    /// the open-file limit in force.
    pub(super) fn report(&mut self, now: u32, nofile: u64, limits: &Limits) {
        if self
            .last
            .is_some_and(|at| now.wrapping_sub(at) < ms_to_ticks(REPORT_EVERY_MS))
        {
            return;
        }
        let since = match self.last {
            Some(_) => "in the last 10 s",
            None => "so far",
        };
        self.write(now, nofile, limits, since);
    }

    /// Logs what is still counted as the server stops, whatever the time
    /// since the last report: nothing counted is lost at stop.
    pub(super) fn flush(&mut self, now: u32, nofile: u64, limits: &Limits) {
        let since = match self.last {
            Some(_) => "since the last report",
            None => "so far",
        };
        self.write(now, nofile, limits, since);
    }

    fn write(&mut self, now: u32, nofile: u64, limits: &Limits, since: &str) {
        let r = self;
        if !r.pending() {
            return;
        }
        if r.fd_refused > 0 {
            log_warn!(
                "out of file descriptors (open-file limit {}): refused {} connection(s) {since}",
                nofile,
                r.fd_refused
            );
        }
        if r.full_refused > 0 {
            log_warn!(
                "connection limit reached (--max-connections {}, --max-per-ip {}; 0 = none): refused {} connection(s) {since}",
                limits.max_connections,
                limits.max_per_ip,
                r.full_refused
            );
        }
        if r.accept_errors > 0 {
            log_error!(
                "accept failed {} time(s) {since}: {}",
                r.accept_errors,
                r.last_accept_error.as_deref().unwrap_or("unknown error")
            );
        }
        if r.slow_ws > 0 {
            log_warn!(
                "closed {} WebSocket connection(s) as slow consumers {since} \
                 (send queue past --max-queued {} bytes)",
                r.slow_ws,
                limits.max_queued
            );
        }
        if !r.refusals.is_empty() {
            log_info!("{}", r.refusal_line(since));
        }
        *r = Reports {
            last: Some(now),
            ..Reports::default()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_summed_by_kind_and_address() {
        let mut r = Reports::default();
        let a: IpAddr = "203.0.113.7".parse().unwrap();
        let b: IpAddr = "198.51.100.1".parse().unwrap();
        for _ in 0..300 {
            r.refused(Refusal::Http(429), Some(a), "");
        }
        for _ in 0..12 {
            r.refused(Refusal::Http(401), Some(b), "token expired");
        }
        r.refused(Refusal::Close(1002), None, "");
        assert_eq!(
            r.refusal_line("in the last 10 s"),
            "refused 313 in the last 10 s: HTTP 429 x300, HTTP 401 x12, close 1002 x1; \
             2 address(es), top 203.0.113.7 x300"
        );
    }

    #[test]
    fn the_address_tally_is_bounded() {
        let mut r = Reports::default();
        for n in 0..10_000u32 {
            r.refused(Refusal::Http(400), Some(IpAddr::from(n.to_be_bytes())), "");
        }
        assert_eq!(r.addrs.len(), MAX_ADDRS);
        assert_eq!(r.untallied, 10_000 - MAX_ADDRS as u64);
        assert!(r.refusal_line("so far").contains("256+ address(es)"));
    }
}
