//! The application interface: what the reactor tells an application
//! ([`App`]'s callbacks) and the values that cross that boundary. What an
//! application can do in return lives on [`Context`].
//!
//! Callbacks never perform I/O themselves: everything they ask for (sends,
//! closes, timers, outbound connections, deferred replies) is recorded and
//! carried out by the reactor after the callback returns.

use crate::http::Head;
use crate::reactor::Context;
use std::io;
use std::net::IpAddr;

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
    /// HTTP/1.1 requests answered by [`App::on_request`].
    Http,
    /// An outbound connection opened with [`Context::connect`]: raw bytes,
    /// delivered to [`App::on_data`]. Never a listener's protocol.
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

/// A received message.
#[derive(Debug)]
pub enum Message<'a> {
    /// A WebSocket text message (valid UTF-8).
    Text(&'a str),
    /// A WebSocket binary message.
    Binary(&'a [u8]),
    /// One text-port line, without its newline; not checked for UTF-8.
    Line(&'a [u8]),
}

/// An HTTP API request.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub body: &'a [u8],
    pub(crate) head: &'a Head<'a>,
}

impl<'a> Request<'a> {
    /// The first header called `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.head.header(name)
    }
}

/// An HTTP API response, or a promise of one ([`Response::later`]).
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub(crate) later: Option<Deferred>,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: Vec<u8>) -> Response {
        Response {
            status,
            content_type,
            body,
            later: None,
        }
    }
    pub fn json(status: u16, body: String) -> Response {
        Response::new(status, "application/json", body.into_bytes())
    }
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        let mut b: String = body.into();
        b.push('\n');
        Response::new(status, "text/plain; charset=utf-8", b.into_bytes())
    }
    /// The answer comes later through [`Context::respond`] with `d` (taken
    /// with [`Context::defer`] on this request's connection). Responses on
    /// the connection still leave in request order.
    pub fn later(d: Deferred) -> Response {
        Response {
            later: Some(d),
            ..Response::new(0, "", Vec::new())
        }
    }
}

/// A place reserved in a connection's reply order by [`Context::defer`]: a
/// text-port line or an HTTP response that is answered later (after a round
/// trip elsewhere). Replies queued after it wait until it is answered.
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

/// An application timer, set with [`Context::set_timer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(pub(crate) u64);

/// A WebSocket upgrade request, shown to [`App::on_upgrade`] before any
/// response is sent.
pub struct UpgradeRequest<'a> {
    pub(crate) head: &'a Head<'a>,
    pub(crate) path: &'a str,
    pub(crate) query: &'a str,
    /// Known from admission (per-IP limits on), else asked of the socket
    /// on the first call to [`UpgradeRequest::peer`]: an application that
    /// never asks costs no syscall per handshake.
    pub(crate) peer: std::cell::OnceCell<Option<IpAddr>>,
    pub(crate) fd: std::os::fd::RawFd,
}

impl<'a> UpgradeRequest<'a> {
    /// The request path, without the query.
    pub fn path(&self) -> &'a str {
        self.path
    }
    /// The raw query string (after `?`, still percent-encoded).
    pub fn query(&self) -> &'a str {
        self.query
    }
    /// A query parameter, percent-decoded.
    pub fn query_param(&self, key: &str) -> Option<String> {
        crate::http::query_param(self.query, key)
    }
    /// The first header called `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.head.header(name)
    }
    /// Every header in order.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + '_ {
        self.head.headers()
    }
    /// The TCP peer's address (`None` if the socket could not say).
    pub fn peer(&self) -> Option<IpAddr> {
        *self
            .peer
            .get_or_init(|| crate::sys::peer_addr(self.fd).ok().map(|a| a.ip()))
    }
}

/// What [`App::on_upgrade`] decides.
#[derive(Debug, PartialEq, Eq)]
pub enum Upgrade {
    /// Send the 101 and open the connection.
    Accept,
    /// Send the 101, open the connection and bind it to this uid before any
    /// message is read.
    AcceptAs(String),
    /// Answer with this HTTP status and reason and close; never upgraded.
    Refuse(u16, String),
}

/// The application: Workerman's `onConnect` / `onMessage` / `onClose`, for
/// every listener of the process, sharing one state.
pub trait App {
    /// The server is about to run its loop: the place for outbound
    /// connections and timers an application needs from the start.
    fn on_start(&mut self, _cx: &mut Context) {}
    /// A WebSocket upgrade request is complete; nothing has been answered
    /// yet. Default: accept every request.
    fn on_upgrade(
        &mut self,
        _cx: &mut Context,
        _conn: ConnId,
        _req: &UpgradeRequest<'_>,
    ) -> Upgrade {
        Upgrade::Accept
    }
    /// A WebSocket finished its handshake, a text-port client connected, or
    /// an outbound connection was established.
    fn on_open(&mut self, _cx: &mut Context, _conn: ConnId) {}
    /// A WebSocket message or a text-port line arrived.
    fn on_message(&mut self, cx: &mut Context, conn: ConnId, msg: Message<'_>);
    /// Bytes arrived on an outbound connection.
    fn on_data(&mut self, _cx: &mut Context, _conn: ConnId, _data: &[u8]) {}
    /// An outbound connection could not be established (it never opened;
    /// `on_close` does not follow). Reconnecting is the application's
    /// choice, typically from a timer.
    fn on_connect_failed(&mut self, _cx: &mut Context, _conn: ConnId, _error: io::Error) {}
    /// The connection is gone (only called after `on_open`). Its protocol
    /// and uid are still readable here; its uid binding, if any, is removed
    /// right after this returns (then [`App::on_uid_unbound`] follows).
    fn on_close(&mut self, _cx: &mut Context, _conn: ConnId) {}
    /// A connection was bound to `uid` ([`Context::bind_uid`] or
    /// [`Upgrade::AcceptAs`]); `first` when no other connection of `uid` is
    /// bound on this server: the uid came online here. Reported once the
    /// callbacks of the readiness event (or timer round) that bound it have
    /// returned, before any output leaves.
    fn on_uid_bound(&mut self, _cx: &mut Context, _uid: &str, _first: bool) {}
    /// A connection's binding to `uid` ended: unbound, bound to another uid,
    /// or closed (then right after its `on_close`); `last` when no connection
    /// of `uid` is left bound on this server: the uid went offline here.
    /// Reported like [`App::on_uid_bound`].
    fn on_uid_unbound(&mut self, _cx: &mut Context, _uid: &str, _last: bool) {}
    /// An HTTP API request.
    fn on_request(&mut self, _cx: &mut Context, _conn: ConnId, _req: &Request<'_>) -> Response {
        Response::text(404, "not found")
    }
    /// SIGHUP (`herald reload`, `systemctl reload`): re-read what can change
    /// without a restart. Connections stay open.
    fn on_reload(&mut self, _cx: &mut Context) {}
    /// A timer set with [`Context::set_timer`] fired; `token` is the one
    /// given when it was set.
    fn on_timer(&mut self, _cx: &mut Context, _timer: TimerId, _token: u64) {}
}
