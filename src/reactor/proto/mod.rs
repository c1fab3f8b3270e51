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
use super::slot::{Flags, Kind};

/// The connection a driver works on for one event: the context, the
/// application, the connection's parser state between reads and its slot.
pub(super) struct Conn<'a, A> {
    pub(super) cx: &'a mut Context,
    pub(super) app: &'a mut A,
    pub(super) held: &'a mut Option<Box<Input>>,
    pub(super) idx: u32,
}

/// A connection protocol, as the read loop drives it.
pub(super) trait Driver {
    /// Full-buffer reads per readiness event before output is flushed.
    const READS_PER_EVENT: usize = 16;
    /// Its peers pipeline (write on while we read): a short read does not
    /// end the event; reading goes on until EAGAIN or the loop's read budget
    /// runs out (`Server::readable`).
    const PIPELINED: bool = false;
    /// Its connections are clients, counted in the client figures; an
    /// outbound link (the application's own) is not.
    const CLIENT: bool = true;

    /// `data` was read on `conn`, which is not closing: returns how many of
    /// its bytes were handed on. Fewer than all only when the connection
    /// was paused part way (`pause.rs`): the rest is handed in again on
    /// resume.
    fn input<A: App>(conn: Conn<'_, A>, data: &mut [u8]) -> usize;

    /// The peer's end of stream was read; the connection closes next.
    fn eof<A: App>(_conn: Conn<'_, A>) {}
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

/// Hands a read to a parser one unit (frame, line, request) at a time:
/// `step` parses from an offset into the read and handles what it found,
/// returning how many bytes it used and whether to go on (false once the
/// read is used up or the parser failed). Stops early once the connection
/// takes no more messages (closing, or closed by the application) or is
/// paused. Returns how many bytes were used.
fn each_unit(
    cx: &mut Context,
    idx: u32,
    mut step: impl FnMut(&mut Context, usize) -> (usize, bool),
) -> usize {
    let mut pos = 0;
    loop {
        let (used, more) = step(cx, pos);
        pos += used;
        let s = &cx.io.slots[idx as usize];
        if !more || !s.can_send() || s.flags.has(Flags::PAUSED) {
            return pos;
        }
    }
}
