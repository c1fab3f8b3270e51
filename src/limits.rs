//! Every limit that bounds what a peer can make herald spend, in one place.

/// Limits and timeouts. The defaults suit an internet-facing push server.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest WebSocket message (all fragments together) or single frame;
    /// larger ones close the connection with 1009. Default 1 MiB.
    pub max_message: usize,
    /// Largest HTTP request head (WebSocket handshake or API request); larger
    /// gets 431. Default 8 KiB.
    pub max_head: usize,
    /// Time allowed from accept to a complete WebSocket handshake (slowloris
    /// guard); late ones get 408. Default 10 s.
    pub handshake_timeout_ms: u64,
    /// Longest text-port line; longer ones get `error line too long` and are
    /// skipped up to their newline. Default 64 KiB.
    pub max_line: usize,
    /// Largest HTTP API request body; larger gets 413. Default 1 MiB.
    pub max_body: usize,
    /// Bytes that may wait in one connection's send queue. A push that would
    /// go past it is not queued; the connection is closed as a slow consumer
    /// (close code 1008) and the pusher is told. Default 1 MiB.
    pub max_queued: usize,
    /// Open connections across all listeners; 0 = only the descriptor limit.
    /// Connections past it are refused (HTTP 503 / `error server full`).
    pub max_connections: usize,
    /// Open connections from one IP address; 0 = no per-IP limit. Past it:
    /// HTTP 503 (`error server full` on the text port). WebSockets from a
    /// trusted proxy count against the address it forwards.
    pub max_per_ip: usize,
    /// WebSocket handshakes per second from one IP address (a token bucket
    /// with a burst of the same size); past it HTTP 429. 0 = no limit.
    pub max_handshakes_per_ip: u32,
    /// Reverse proxies whose `X-Forwarded-For` names the client of a
    /// WebSocket (its address for the per-IP limits and
    /// [`crate::UpgradeRequest::peer`]). Anyone else's header is ignored.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Seconds of silence after which a WebSocket is pinged; 0 = never.
    /// Default 25 s.
    pub ping_interval_s: u32,
    /// Seconds of silence after which a WebSocket (or idle HTTP keep-alive
    /// connection) is closed, even with output pending; 0 = never. Default 60 s.
    pub idle_timeout_s: u32,
    /// How long a closing connection may take to finish the close handshake
    /// and drain its output before it is cut. Default 5 s.
    pub close_timeout_ms: u64,
    /// How long a graceful stop may take to flush queued output. Default 5 s.
    pub shutdown_grace_ms: u64,
    /// How long a worker being replaced (SIGUSR2) takes to close its
    /// WebSockets with 1012, spread evenly, so that their reconnects do not
    /// arrive as one storm; then it stops within `shutdown_grace_ms`. At
    /// most [`Limits::MAX_RESTART_DRAIN_MS`]. Default 5 s.
    pub restart_drain_ms: u64,
    /// Longest uid in bytes; longer first messages close with 1008. Default 128.
    pub max_uid: usize,
    /// Deferred replies outstanding on one connection (`Context::defer`);
    /// past it `defer` refuses. Default 4096.
    pub max_deferred: usize,
    /// The one read buffer every connection shares, in bytes (at least 1 KiB).
    /// Smaller saves memory on small devices; larger takes more pipelined
    /// input per read. Default 64 KiB.
    pub read_buffer: usize,
    /// Send buffers (up to 8 KiB each) kept for reuse while idle. Default 128.
    pub send_pool: usize,
    /// permessage-deflate (RFC 7692) for WebSockets that offer it; `None`
    /// declines every offer. Each message is compressed once for all its
    /// recipients and no connection keeps compression state. Default: on
    /// (level 1, messages from 256 bytes) in builds with the `deflate`
    /// feature; without it, `None` is the only valid value.
    pub deflate: Option<Deflate>,
}

/// How herald compresses what it sends under permessage-deflate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deflate {
    /// 1 (fastest) to 9 (smallest).
    pub level: u8,
    /// Messages shorter than this go uncompressed: below it compression
    /// costs more CPU than the bytes it saves are worth. A message whose
    /// compressed form is not smaller goes uncompressed too, except with 0:
    /// then every message is sent compressed (conformance testing).
    pub min_size: usize,
}

impl Default for Deflate {
    fn default() -> Deflate {
        Deflate {
            level: 1,
            min_size: 256,
        }
    }
}

impl Limits {
    /// The smallest [`Limits::max_head`]: room for a request line and a
    /// `Host` header.
    pub const MIN_HEAD: usize = 64;
    /// The longest [`Limits::restart_drain_ms`]: one hour.
    pub const MAX_RESTART_DRAIN_MS: u64 = 3_600_000;

    /// Refuses limits under which herald could accept nothing: a size of 0
    /// for messages, lines, send queues or uids, or a request head too small
    /// for any request, or a restart drain past an hour. Every other value, 0 included where documented as
    /// "off" or "unlimited", is allowed.
    pub fn validate(&self) -> Result<(), LimitError> {
        let sizes = [
            ("max_message", self.max_message),
            ("max_line", self.max_line),
            ("max_queued", self.max_queued),
            ("max_uid", self.max_uid),
        ];
        if let Some(&(field, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return Err(LimitError::Zero(field));
        }
        if self.max_head < Limits::MIN_HEAD {
            return Err(LimitError::HeadTooSmall);
        }
        if self.restart_drain_ms > Limits::MAX_RESTART_DRAIN_MS {
            return Err(LimitError::DrainTooLong);
        }
        match self.deflate {
            Some(_) if !crate::ws::deflate::BUILT_IN => Err(LimitError::NoDeflate),
            Some(d) if !(1..=9).contains(&d.level) => Err(LimitError::DeflateLevel),
            _ => Ok(()),
        }
    }

    /// True when `ip` is one of [`Limits::trusted_proxies`] (IPv4-mapped
    /// IPv6 addresses, as a dual-stack listener reports them, included).
    pub fn is_trusted_proxy(&self, ip: std::net::IpAddr) -> bool {
        self.trusted_proxies
            .iter()
            .any(|t| t.to_canonical() == ip.to_canonical())
    }
}

/// Why [`Limits::validate`] refused a set of limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitError {
    /// The field named (`max_message`, `max_line`, `max_queued` or
    /// `max_uid`) is 0: no message, line, push or uid would ever fit.
    Zero(&'static str),
    /// `max_head` is under [`Limits::MIN_HEAD`]: no request head would fit.
    HeadTooSmall,
    /// `restart_drain_ms` is over [`Limits::MAX_RESTART_DRAIN_MS`].
    DrainTooLong,
    /// `deflate` is set in a build without the `deflate` feature.
    NoDeflate,
    /// `deflate.level` is not 1 to 9.
    DeflateLevel,
}

impl std::fmt::Display for LimitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LimitError::Zero(field) => write!(f, "{field} must be at least 1"),
            LimitError::HeadTooSmall => {
                write!(f, "max_head must be at least {}", Limits::MIN_HEAD)
            }
            LimitError::DrainTooLong => write!(
                f,
                "restart_drain_ms must be at most {}",
                Limits::MAX_RESTART_DRAIN_MS
            ),
            LimitError::NoDeflate => write!(
                f,
                "this build has no permessage-deflate (cargo feature `deflate`)"
            ),
            LimitError::DeflateLevel => write!(f, "the deflate level must be 1 to 9"),
        }
    }
}

impl std::error::Error for LimitError {}

/// Fixed by the parsers' no-allocation design rather than configurable:
/// the most headers a request head may carry (more gets 431).
pub const MAX_HEADERS: usize = crate::http::MAX_HEADERS;

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_message: 1 << 20,
            max_head: 8 * 1024,
            handshake_timeout_ms: 10_000,
            max_line: 64 * 1024,
            max_body: 1 << 20,
            max_queued: 1 << 20,
            max_connections: 0,
            max_per_ip: 0,
            max_handshakes_per_ip: 0,
            trusted_proxies: Vec::new(),
            ping_interval_s: 25,
            idle_timeout_s: 60,
            close_timeout_ms: 5_000,
            shutdown_grace_ms: 5_000,
            restart_drain_ms: 5_000,
            max_uid: 128,
            max_deferred: 4096,
            read_buffer: 64 * 1024,
            send_pool: 128,
            deflate: crate::ws::deflate::BUILT_IN.then(Deflate::default),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(Limits::default().validate(), Ok(()));
    }

    #[test]
    fn sizes_nothing_fits_in_are_refused() {
        let zero = |set: fn(&mut Limits)| {
            let mut l = Limits::default();
            set(&mut l);
            l.validate()
        };
        assert_eq!(
            zero(|l| l.max_message = 0),
            Err(LimitError::Zero("max_message"))
        );
        assert_eq!(zero(|l| l.max_line = 0), Err(LimitError::Zero("max_line")));
        assert_eq!(
            zero(|l| l.max_queued = 0),
            Err(LimitError::Zero("max_queued"))
        );
        assert_eq!(zero(|l| l.max_uid = 0), Err(LimitError::Zero("max_uid")));
        assert_eq!(zero(|l| l.max_head = 63), Err(LimitError::HeadTooSmall));
        assert_eq!(zero(|l| l.max_head = 64), Ok(()));
        assert_eq!(
            zero(|l| l.restart_drain_ms = 3_600_001),
            Err(LimitError::DrainTooLong)
        );
        assert_eq!(zero(|l| l.restart_drain_ms = 0), Ok(()));
        assert_eq!(
            LimitError::Zero("max_uid").to_string(),
            "max_uid must be at least 1"
        );
        assert_eq!(
            LimitError::HeadTooSmall.to_string(),
            "max_head must be at least 64"
        );
    }

    #[test]
    fn zero_where_it_means_off_or_unlimited_is_allowed() {
        let l = Limits {
            max_connections: 0,
            max_per_ip: 0,
            max_handshakes_per_ip: 0,
            ping_interval_s: 0,
            idle_timeout_s: 0,
            ..Limits::default()
        };
        assert_eq!(l.validate(), Ok(()));
    }
}
