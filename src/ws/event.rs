//! What a WebSocket connection receives ([`Event`]) and how it ends
//! ([`CloseCode`], [`Failure`]).

/// A close status code (RFC 6455 section 7.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    pub const NORMAL: CloseCode = CloseCode(1000);
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    pub const PROTOCOL: CloseCode = CloseCode(1002);
    pub const UNSUPPORTED: CloseCode = CloseCode(1003);
    pub const INVALID_DATA: CloseCode = CloseCode(1007);
    pub const POLICY: CloseCode = CloseCode(1008);
    pub const TOO_BIG: CloseCode = CloseCode(1009);
    pub const INTERNAL: CloseCode = CloseCode(1011);
    /// Service Restart (IANA registry): the server restarts; reconnect.
    /// Sent by a worker being replaced (`herald restart`).
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    pub const TRY_AGAIN: CloseCode = CloseCode(1013);

    /// Codes a peer may send in a close frame: 1004-1006 and 1015 are reserved
    /// for local use, 1012-1014 and 1016-2999 are unassigned for peers here.
    pub fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1011 | 3000..=4999)
    }
}

/// What a connection received.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
    Ping(&'a [u8]),
    Pong(&'a [u8]),
    /// The peer started or answered the close handshake. `None` when the
    /// close frame carried no status code.
    Close(Option<CloseCode>, &'a str),
}

/// A fatal protocol violation: the connection must be closed with `code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    pub code: CloseCode,
    pub reason: &'static str,
}

impl Failure {
    pub(crate) const fn new(code: CloseCode, reason: &'static str) -> Failure {
        Failure { code, reason }
    }
}
