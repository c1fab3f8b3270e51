//! The application interface: what the reactor tells an application
//! ([`App`]'s callbacks). What an application can do in return lives on
//! [`Context`]; the values that cross the boundary are in `id` and
//! `message`.
//!
//! Callbacks never perform I/O themselves: everything they ask for (sends,
//! closes, timers, outbound connections, deferred replies) is recorded and
//! carried out by the reactor after the callback returns.

use super::context::Context;
use super::id::{ConnId, TimerId};
use super::message::{Message, Request, Response, Upgrade, UpgradeRequest};
use std::io;

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
    /// `Upgrade::AcceptAs`); `first` when no other connection of `uid` is
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
