//! The handles an application keeps between callbacks: a connection
//! ([`ConnId`]), an application timer ([`TimerId`]), a place in a
//! connection's reply order ([`Deferred`]), and the [`Protocol`] a
//! connection speaks. Plain values: nothing here knows the reactor.

/// Identifies a connection for as long as it lives; never reused for another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId(pub(crate) u64);

impl ConnId {
    pub(crate) fn new(idx: u32, gen: u32) -> ConnId {
        ConnId(((gen as u64) << 32) | idx as u64)
    }
    pub(crate) fn idx(self) -> u32 {
        self.0 as u32
    }
    pub(crate) fn gen(self) -> u32 {
        (self.0 >> 32) as u32
    }
    /// A number for logs.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

/// The protocol a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// RFC 6455 WebSocket.
    WebSocket,
    /// Newline-delimited text lines (Workerman's `text://`).
    Text,
    /// HTTP/1.1 requests answered by [`crate::App::on_request`].
    Http,
    /// An outbound connection opened with [`crate::Context::connect`]: raw
    /// bytes, delivered to [`crate::App::on_data`]. Never a listener's
    /// protocol.
    Outbound,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::WebSocket => "ws",
            Protocol::Text => "text",
            Protocol::Http => "http",
            Protocol::Outbound => "outbound",
        }
    }
}

/// A place reserved in a connection's reply order by
/// [`crate::Context::defer`]: a text-port line or an HTTP response that is
/// answered later (after a round trip elsewhere). Replies queued after it
/// wait until it is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deferred {
    pub(crate) conn: ConnId,
    pub(crate) seq: u32,
}

impl Deferred {
    /// The connection the reply goes to.
    pub fn conn(self) -> ConnId {
        self.conn
    }
}

/// An application timer, set with [`crate::Context::set_timer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(pub(crate) u64);
