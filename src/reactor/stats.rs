//! Figures for operators: the counters behind /stats and /metrics
//! ([`Stats`]) and one open connection as `herald connections` lists it
//! ([`ConnInfo`]).

use super::id::{ConnId, Protocol};

/// Counters reported by /stats and /metrics.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub accepted: u64,
    pub refused: u64,
    pub handshake_failures: u64,
    pub messages_in: u64,
    pub messages_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Socket writes (`write` calls that wrote bytes): `messages_out /
    /// writes` is how many messages each write carried on average.
    pub writes: u64,
    /// Sends refused because the connection was closing or over its queue cap.
    pub dropped: u64,
    pub slow_consumers_closed: u64,
    pub timeouts: u64,
    pub protocol_errors: u64,
}

/// One open connection as [`crate::Context::connections`] shows it.
#[derive(Clone, Debug)]
pub struct ConnInfo<'a> {
    pub id: ConnId,
    pub protocol: Protocol,
    pub uid: Option<&'a str>,
    /// Since it was accepted (to the timer wheel's 100 ms).
    pub age_ms: u64,
    /// Bytes waiting in its send queue.
    pub queued: usize,
}
