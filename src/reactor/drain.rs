//! The drain of a worker being replaced (SIGUSR2 under `--workers`, see
//! [`super::Server::handle_sigusr2`]) as a policy: time and counts in, what
//! to do out. The server (`server.rs`) stops accepting, then at each tick
//! closes the WebSockets this says are due with 1012 (Service Restart),
//! spread evenly over the drain period so that their reconnects do not
//! arrive as one storm, and stops once no client is left or the period is
//! over.

use super::wheel::TICK_MS;

/// A drain in progress.
pub(super) struct Drain {
    /// When it began and when the last WebSockets are closed (loop
    /// milliseconds).
    start_ms: u64,
    end_ms: u64,
    /// WebSockets closed so far.
    closed: usize,
    /// The tick of the last step: one step per tick, however often the
    /// loop wakes.
    last_tick: Option<u32>,
}

/// What a drain step asks of the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// Nothing (this tick had its step).
    Idle,
    /// Close this many open WebSockets with 1012.
    Close(usize),
    /// No client left, or the period is over: the graceful stop.
    Stop,
}

impl Drain {
    pub(super) fn new(now_ms: u64, period_ms: u64) -> Drain {
        Drain {
            start_ms: now_ms,
            end_ms: now_ms + period_ms,
            closed: 0,
            last_tick: None,
        }
    }

    /// True when tick `tick` had its step already.
    pub(super) fn stepped(&self, tick: u32) -> bool {
        self.last_tick == Some(tick)
    }

    /// The step at `now_ms` (in tick `tick`), with `clients` client
    /// connections open, `websockets` of them open WebSockets not yet
    /// closing (handshakes in progress included).
    pub(super) fn step(
        &mut self,
        now_ms: u64,
        tick: u32,
        clients: usize,
        websockets: usize,
    ) -> Step {
        if self.last_tick == Some(tick) {
            return Step::Idle;
        }
        self.last_tick = Some(tick);
        if clients == 0 || now_ms >= self.end_ms {
            return Step::Stop;
        }
        let n = due(self.closed, websockets, now_ms, self.start_ms, self.end_ms);
        Step::Close(n)
    }

    /// The server closed `n` WebSockets (fewer than asked while some are
    /// still in their handshake).
    pub(super) fn closed(&mut self, n: usize) {
        self.closed += n;
    }
}

/// How many of the `remaining` connections to close at `now_ms`, `closed`
/// being closed already, so that all of them are spread evenly over the
/// drain's steps (one per tick) from `start_ms` to `end_ms`: by the end of
/// each step, its share of the whole; everything left at or past the end.
/// Connections that open during the drain join the whole.
pub(super) fn due(
    closed: usize,
    remaining: usize,
    now_ms: u64,
    start_ms: u64,
    end_ms: u64,
) -> usize {
    if now_ms >= end_ms {
        return remaining;
    }
    let steps = (end_ms - start_ms).div_ceil(TICK_MS);
    let step = (now_ms.saturating_sub(start_ms) / TICK_MS + 1).min(steps);
    let whole = (closed + remaining) as u64;
    let target = (whole * step).div_ceil(steps) as usize;
    target.saturating_sub(closed).min(remaining)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steps one tick apart over a drain from 0 to `end`, with `n`
    /// connections open at the start: how many each step closes.
    fn steps(n: usize, end: u64) -> Vec<usize> {
        let (mut closed, mut out, mut now) = (0, Vec::new(), 0);
        while closed < n {
            let k = due(closed, n - closed, now, 0, end);
            out.push(k);
            closed += k;
            now += TICK_MS;
        }
        out
    }

    #[test]
    fn closes_are_spread_evenly_over_the_period() {
        // 30 connections over 1.5 s: two per 100 ms tick, done by the end.
        assert_eq!(steps(30, 1500), vec![2; 15]);
        // Fewer connections than steps: spread out, not all up front.
        assert_eq!(steps(4, 1500), [1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1]);
        // Not evenly divisible: never more than one off the average.
        let s = steps(100, 1500);
        assert_eq!(s.len(), 15);
        assert!(s.iter().all(|&n| n == 6 || n == 7), "{s:?}");
    }

    #[test]
    fn connections_opening_during_the_drain_join_the_whole() {
        // 10 closed of 20 by half-time; 10 more opened: 30 in all, so by
        // the end of step 8 of 10, 24 are due.
        assert_eq!(due(10, 20, 750, 0, 1000), 14);
    }

    #[test]
    fn one_step_per_tick_and_the_stop_when_done_or_due() {
        let mut d = Drain::new(1000, 1000);
        assert_eq!(d.step(1000, 10, 5, 5), Step::Close(1));
        d.closed(1);
        assert_eq!(d.step(1050, 10, 4, 4), Step::Idle, "same tick");
        assert_eq!(d.step(1100, 11, 4, 4), Step::Close(0));
        // Only non-WebSocket clients left (text, HTTP): they close on
        // their own; nothing to stop until they are gone or time is up.
        assert_eq!(d.step(1200, 12, 2, 0), Step::Close(0));
        assert_eq!(d.step(1300, 13, 0, 0), Step::Stop);
        let mut late = Drain::new(0, 500);
        assert_eq!(late.step(500, 5, 3, 3), Step::Stop);
    }

    #[test]
    fn at_or_past_the_end_everything_left_is_due() {
        assert_eq!(due(0, 17, 1500, 0, 1500), 17);
        assert_eq!(due(3, 17, 9000, 0, 1500), 17);
        // A zero period closes everything at once.
        assert_eq!(steps(50, 0), vec![50]);
        assert_eq!(due(0, 0, 0, 0, 1500), 0);
    }
}
