//! The connection protocols behind one interface: what the reactor asks of
//! a WebSocket (`ws`), a text-port (`text`), an HTTP (`http`) or an
//! outbound (`outbound`) connection. The loop picks the driver once per
//! readiness event, from the slot's kind (`Server::dispatch`), and once per
//! listener event, from the listener's protocol (`Server::accept`);
//! everything under that is static dispatch, with no per-byte or
//! per-recipient branch on the protocol.

pub(super) mod http;
pub(super) mod outbound;
pub(super) mod text;
pub(super) mod ws;

use super::app::App;
use super::context::Context;
use super::inputs::Input;
use super::slot::Kind;

/// A connection protocol, as the read loop drives it.
pub(super) trait Driver {
    /// Full-buffer reads per readiness event before output is flushed.
    const READS_PER_EVENT: usize = 16;
    /// Its peers pipeline (write on while we read): a short read does not
    /// end the event; reading goes on until EAGAIN or the loop's read budget
    /// runs out (`Server::readable`).
    const PIPELINED: bool = false;

    /// `data` was read on connection `idx`, which is not closing; `held` is
    /// its parser state between reads.
    fn input<A: App>(
        cx: &mut Context,
        app: &mut A,
        held: &mut Option<Box<Input>>,
        idx: u32,
        data: &mut [u8],
    );

    /// The peer's end of stream was read; the connection closes next.
    fn eof<A: App>(_cx: &mut Context, _app: &mut A, _held: &mut Option<Box<Input>>, _idx: u32) {}
}

/// A protocol that listeners accept.
pub(super) trait Accepted: Driver {
    /// The slot kind of its connections.
    const KIND: Kind;

    /// A listener accepted `idx`: its socket is registered and counted.
    fn accepted<A: App>(cx: &mut Context, app: &mut A, idx: u32);

    /// The answer to a connection turned away past a limit, written once
    /// to a new socket.
    fn write_full(out: &mut Vec<u8>);
}
