//! What a connection's deadline means when it comes: a pure policy over
//! its kind, state flags and last event, unit-tested without a clock.

use super::io::Io;
use super::slot::{Flags, Kind};
use super::wheel::{ms_to_ticks, TICK_MS};
use crate::limits::Limits;

/// What to do when a connection's timer fires.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Action {
    /// Nothing yet; look again at this tick (`None`: no deadline at all).
    Wait(Option<u32>),
    /// Send the heartbeat ping, then look again at this tick.
    Ping(u32),
    /// The handshake took too long: answer 408 and close.
    HandshakeTimeout,
    /// The outbound connect took too long.
    ConnectTimeout,
    /// Silent, or slow to finish closing: cut the connection (RST).
    Abort,
}

/// The timing policy of every connection kind, from its state flags and the
/// tick `t` of its last relevant event (accept, input, close start).
pub(super) fn decide(kind: Kind, flags: Flags, t: u32, now: u32, limits: &Limits) -> Action {
    let per_s = (1000 / TICK_MS) as u32;
    let wait_or = |deadline: u32, expired: Action| {
        if now >= deadline {
            expired
        } else {
            Action::Wait(Some(deadline))
        }
    };
    if flags.has(Flags::CLOSING | Flags::PEER_EOF) {
        return wait_or(t + ms_to_ticks(limits.close_timeout_ms), Action::Abort);
    }
    if flags.has(Flags::OPENING) {
        let expired = if kind == Kind::Outbound {
            Action::ConnectTimeout
        } else {
            Action::HandshakeTimeout
        };
        return wait_or(t + ms_to_ticks(limits.handshake_timeout_ms), expired);
    }
    let (idle_limit, ping_after) = match kind {
        Kind::WebSocket => (
            limits.idle_timeout_s * per_s,
            limits.ping_interval_s * per_s,
        ),
        Kind::Http => (limits.idle_timeout_s * per_s, 0),
        // Backends hold text-port and outbound connections open on purpose.
        Kind::Text | Kind::Outbound => return Action::Wait(None),
        Kind::Free | Kind::Listener | Kind::Signal | Kind::Waker => return Action::Wait(None),
    };
    let idle = now.saturating_sub(t);
    if idle_limit > 0 && idle >= idle_limit {
        // Dead or silent peer: cut it even with output pending.
        return Action::Abort;
    }
    let next = (idle_limit > 0).then(|| t + idle_limit);
    if ping_after == 0 {
        return Action::Wait(next);
    }
    if idle < ping_after {
        let at = t + ping_after;
        return Action::Wait(Some(next.map_or(at, |n| n.min(at))));
    }
    // Look again one interval on: by then the peer has answered (moving
    // `t`) or the idle deadline decides.
    let again = next.map_or(now + ping_after, |n| n.min(now + ping_after));
    if flags.has(Flags::PINGED) {
        Action::Wait(Some(again))
    } else {
        Action::Ping(again)
    }
}

/// Schedules the first heartbeat or idle check of a connection that just
/// opened.
pub(super) fn schedule_heartbeat(io: &mut Io, limits: &Limits, idx: u32) {
    let s = &io.slots[idx as usize];
    if let Action::Wait(Some(at)) | Action::Ping(at) =
        decide(s.kind, s.flags, io.now, io.now, limits)
    {
        io.schedule(idx, at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            ping_interval_s: 25,
            idle_timeout_s: 60,
            ..Limits::default()
        }
    }

    #[test]
    fn a_quiet_websocket_is_pinged_once_then_cut() {
        let l = limits();
        let open = Flags::default();
        assert_eq!(
            decide(Kind::WebSocket, open, 0, 0, &l),
            Action::Wait(Some(250))
        );
        assert_eq!(decide(Kind::WebSocket, open, 0, 250, &l), Action::Ping(500));
        let pinged = open | Flags::PINGED;
        assert_eq!(
            decide(Kind::WebSocket, pinged, 0, 500, &l),
            Action::Wait(Some(600))
        );
        assert_eq!(decide(Kind::WebSocket, pinged, 0, 600, &l), Action::Abort);
    }

    #[test]
    fn handshakes_connects_and_closes_have_deadlines() {
        let l = limits();
        let hs = Flags::OPENING;
        assert_eq!(
            decide(Kind::WebSocket, hs, 10, 20, &l),
            Action::Wait(Some(110))
        );
        assert_eq!(
            decide(Kind::WebSocket, hs, 10, 110, &l),
            Action::HandshakeTimeout
        );
        let c = Flags::OPENING;
        assert_eq!(
            decide(Kind::Outbound, c, 0, 100, &l),
            Action::ConnectTimeout
        );
        let closing = Flags::CLOSING;
        assert_eq!(
            decide(Kind::Text, closing, 0, 49, &l),
            Action::Wait(Some(50))
        );
        assert_eq!(decide(Kind::Text, closing, 0, 50, &l), Action::Abort);
    }

    #[test]
    fn backends_are_never_timed_out_and_http_is_never_pinged() {
        let l = limits();
        let open = Flags::default();
        assert_eq!(decide(Kind::Text, open, 0, 1 << 20, &l), Action::Wait(None));
        assert_eq!(
            decide(Kind::Outbound, open, 0, 1 << 20, &l),
            Action::Wait(None)
        );
        assert_eq!(decide(Kind::Http, open, 0, 0, &l), Action::Wait(Some(600)));
        assert_eq!(decide(Kind::Http, open, 0, 600, &l), Action::Abort);
        let quiet = Limits {
            ping_interval_s: 0,
            idle_timeout_s: 0,
            ..l
        };
        assert_eq!(
            decide(Kind::WebSocket, open, 0, 1 << 20, &quiet),
            Action::Wait(None)
        );
    }
}
