//! What crosses the application boundary with an event: a received
//! [`Message`], an HTTP [`Request`] and the [`Response`] to it, a WebSocket
//! [`UpgradeRequest`] and the [`Upgrade`] decided for it. Values over
//! borrowed bytes: nothing here knows the reactor.

use super::id::Deferred;
use crate::http::{self, Head};
use crate::sys;
use std::cell::OnceCell;
use std::net::IpAddr;
use std::os::fd::RawFd;

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
    /// Header lines beyond the content type and length, each ending in
    /// CRLF (see [`Response::with_header`]).
    pub(crate) headers: &'static str,
    pub(crate) later: Option<Deferred>,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: Vec<u8>) -> Response {
        Response {
            status,
            content_type,
            body,
            headers: "",
            later: None,
        }
    }
    /// The response with these header lines added, each ending in CRLF
    /// (`"Allow: GET\r\n"`).
    pub fn with_header(mut self, lines: &'static str) -> Response {
        self.headers = lines;
        self
    }
    pub fn json(status: u16, body: String) -> Response {
        Response::new(status, "application/json", body.into_bytes())
    }
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        let mut b: String = body.into();
        b.push('\n');
        Response::new(status, "text/plain; charset=utf-8", b.into_bytes())
    }
    /// The answer comes later through [`crate::Context::respond`] with `d`
    /// (taken with [`crate::Context::defer`] on this request's connection).
    /// Responses on the connection still leave in request order.
    pub fn later(d: Deferred) -> Response {
        Response {
            later: Some(d),
            ..Response::new(0, "", Vec::new())
        }
    }
}

/// A WebSocket upgrade request, shown to [`crate::App::on_upgrade`] before
/// any response is sent.
pub struct UpgradeRequest<'a> {
    pub(crate) head: &'a Head<'a>,
    pub(crate) path: &'a str,
    pub(crate) query: &'a str,
    /// Known from admission (per-IP limits on), else asked of the socket
    /// on the first call to [`UpgradeRequest::peer`]: an application that
    /// never asks costs no syscall per handshake.
    pub(crate) peer: OnceCell<Option<IpAddr>>,
    pub(crate) fd: RawFd,
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
        http::query_param(self.query, key)
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
            .get_or_init(|| sys::peer_addr(self.fd).ok().map(|a| a.ip()))
    }
}

/// What [`crate::App::on_upgrade`] decides.
#[derive(Debug, PartialEq, Eq)]
pub enum Upgrade {
    /// Send the 101 and open the connection.
    Accept,
    /// Send the 101, open the connection and bind it to this uid before any
    /// message is read.
    AcceptAs(String),
    /// Send the 101 naming this subprotocol (one the client offered) and
    /// open the connection; sends with a head give it to this connection
    /// ([`crate::Context::send_to_uid_with`]).
    AcceptProtocol(&'static str),
    /// Answer with this HTTP status and reason and close; never upgraded.
    Refuse(u16, String),
}
