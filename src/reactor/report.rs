//! Operator reports of events a peer can cause over and over (running out
//! of descriptors, slow consumers): counted where they happen, with no
//! syscall there, and printed to stderr from the loop at most once per
//! [`REPORT_EVERY_MS`], so that no client can flood the log.

use super::output::ms_to_ticks;
use super::Server;
use crate::app::App;

/// How often a kind of event is reported at most.
pub(super) const REPORT_EVERY_MS: u64 = 10_000;

/// Events counted since the last report.
#[derive(Debug, Default)]
pub(super) struct Reports {
    pub fd_refused: u64,
    pub slow_ws: u64,
    pub slow_text: u64,
    last: Option<u32>,
}

impl Reports {
    fn pending(&self) -> bool {
        self.fd_refused + self.slow_ws + self.slow_text > 0
    }
}

impl<A: App> Server<A> {
    /// Prints what was counted, if anything, once the last report is old
    /// enough (the first one at once).
    pub(super) fn report(&mut self) {
        let cx = &mut self.cx;
        let r = &mut cx.reports;
        if !r.pending()
            || r.last
                .is_some_and(|at| cx.now.wrapping_sub(at) < ms_to_ticks(REPORT_EVERY_MS))
        {
            return;
        }
        let since = match r.last {
            Some(_) => "in the last 10 s",
            None => "so far",
        };
        if r.fd_refused > 0 {
            eprintln!(
                "herald: out of file descriptors (limit {}): refused {} connection(s) {since}",
                cx.nofile.0, r.fd_refused
            );
        }
        if r.slow_ws + r.slow_text > 0 {
            eprintln!(
                "herald: closed {} WebSocket and {} text-port connection(s) as slow consumers {since} \
                 (send queue past --max-queued {} bytes; a text-port backend must read its replies)",
                r.slow_ws, r.slow_text, cx.limits.max_queued
            );
        }
        *r = Reports {
            last: Some(cx.now),
            ..Reports::default()
        };
    }
}
