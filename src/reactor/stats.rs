//! What operators are shown: the counters behind /stats and /metrics
//! ([`Stats`]), one open connection as `herald connections` lists it
//! ([`ConnInfo`]), and why a peer was turned away ([`Refusal`]).

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
    /// Times a text-port or HTTP connection's input was paused
    /// (backpressure: its requests had to wait, or its replies were not read).
    pub pauses: u64,
    pub timeouts: u64,
    pub protocol_errors: u64,
    /// Messages compressed (permessage-deflate): once per message, however
    /// many recipients took the compressed frame.
    pub compressed_out: u64,
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

/// Why a peer was turned away, as the log groups it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A WebSocket handshake answered with this HTTP status.
    Http(u16),
    /// A WebSocket closed by herald with this code for what the peer sent
    /// (a protocol error, a refused uid token).
    Close(u16),
    /// A text-port or HTTP API client without the API token.
    Unauthorized,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Http(s) => write!(f, "HTTP {s}"),
            Refusal::Close(c) => write!(f, "close {c}"),
            Refusal::Unauthorized => f.write_str("no API token"),
        }
    }
}
