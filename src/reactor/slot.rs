//! One entry of the slot table: what a connection (or listener) costs while
//! idle, its kind and its state flags.

use super::inputs::Input;
use crate::hub::{Member, Uid, NIL};
use std::os::fd::RawFd;

/// What an idle connection costs: its slot and its parser-state pointer.
pub(super) fn bytes_per_slot() -> usize {
    std::mem::size_of::<Slot>() + std::mem::size_of::<Option<Box<Input>>>()
}

/// What a slot holds. Every `match` on it is exhaustive: a new kind has to
/// be handled everywhere it matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Kind {
    Free,
    Listener,
    /// The signalfd for SIGINT / SIGTERM.
    Signal,
    /// A stop handle's eventfd.
    Waker,
    WebSocket,
    Text,
    Http,
    /// A connection opened with `Context::connect`.
    Outbound,
}

impl Kind {
    /// Kinds that are connections to a peer.
    pub(super) fn is_conn(self) -> bool {
        match self {
            Kind::WebSocket | Kind::Text | Kind::Http | Kind::Outbound => true,
            Kind::Free | Kind::Listener | Kind::Signal | Kind::Waker => false,
        }
    }
}

/// State bits of a slot, in two bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Flags(u16);

impl Flags {
    /// Not open yet: a WebSocket before its 101, or an outbound connect in
    /// progress (or not yet started). One bit for both, since the kind
    /// tells which: see [`Slot::handshaking`] and [`Slot::connecting`].
    pub const OPENING: Flags = Flags(1 << 0);
    /// `on_open` was called: `on_close` is owed.
    pub const OPENED: Flags = Flags(1 << 1);
    /// No more input is read; output drains, then the socket closes.
    pub const CLOSING: Flags = Flags(1 << 2);
    /// Our write side is shut down.
    pub const FIN_SENT: Flags = Flags(1 << 3);
    /// The peer's end of stream was read.
    pub const PEER_EOF: Flags = Flags(1 << 4);
    /// Registered for EPOLLOUT: the socket did not take all output.
    pub const WANT_OUT: Flags = Flags(1 << 5);
    /// On the list of slots to flush at the end of this loop iteration.
    pub const DIRTY: Flags = Flags(1 << 6);
    /// A heartbeat ping is outstanding.
    pub const PINGED: Flags = Flags(1 << 7);
    /// The socket is closed; the slot is freed at the end of the iteration.
    pub const DEAD: Flags = Flags(1 << 8);
    /// A WebSocket that negotiated permessage-deflate: its compressed
    /// messages are inflated, and sends give it the compressed frame of a
    /// message (made once for all such recipients) when there is one.
    pub const DEFLATE: Flags = Flags(1 << 9);
    /// Deferred replies are outstanding: later output waits behind them.
    pub const DEFERRED: Flags = Flags(1 << 10);
    /// Close once the outstanding deferred replies are written.
    pub const CLOSE_AFTER_REPLIES: Flags = Flags(1 << 11);
    /// Both close frames are exchanged (the peer's read, ours queued): our
    /// close frame leaves with the FIN in one segment, and the peer's end of
    /// stream (EPOLLRDHUP) closes the socket without a read, since only a
    /// misbehaving peer has sent anything after its close frame.
    pub const CLOSE_EXCHANGED: Flags = Flags(1 << 12);
    /// A WebSocket accepted with the application's subprotocol: sends that
    /// carry a head for such connections give it to this one.
    pub const SUBPROTOCOL: Flags = Flags(1 << 13);
    /// Input is not read, nor buffered input handed on (backpressure: the
    /// application cannot take the next request now, or the peer is not
    /// reading its replies). Whoever paused it resumes it
    /// (`Context::resume`, or a flush below the low-water mark).
    pub const PAUSED: Flags = Flags(1 << 14);
    /// Bound, but held out of sends to its uid and broadcasts (a resume
    /// being read): the application sends to it by its id meanwhile.
    pub const HOLD: Flags = Flags(1 << 15);

    pub fn has(self, f: Flags) -> bool {
        self.0 & f.0 != 0
    }
    pub fn set(&mut self, f: Flags) {
        self.0 |= f.0;
    }
    pub fn clear(&mut self, f: Flags) {
        self.0 &= !f.0;
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, o: Flags) -> Flags {
        Flags(self.0 | o.0)
    }
}

/// One connection (or listener). Kept small: this is the per-connection cost.
/// The parser state of a connection lives beside it (the server's input
/// table), so that events can borrow it while the application holds the
/// `Context`.
pub(super) struct Slot {
    pub fd: RawFd,
    pub gen: u32,
    /// Tick of the last event that matters for timers: accept (handshake),
    /// last input (open), close start (closing).
    pub t: u32,
    /// Tick of this slot's one valid timer-wheel entry.
    pub due: u32,
    /// Tick it was allocated (accepted), for `herald connections`. Fills
    /// padding on 64-bit targets; 4 bytes on 32-bit ones.
    pub opened: u32,
    pub flags: Flags,
    pub kind: Kind,
    /// Index of the accepting listener (0 for other kinds).
    pub listener: u8,
    pub prev: u32,
    pub next: u32,
    #[allow(clippy::box_collection)] // 8 bytes per idle slot instead of 24
    pub out: Option<Box<Vec<u8>>>,
    pub uid: Option<Uid>,
}

impl Slot {
    pub fn new(fd: RawFd, kind: Kind, listener: u8, now: u32) -> Slot {
        Slot {
            fd,
            gen: 0,
            t: now,
            due: 0,
            opened: now,
            flags: Flags::default(),
            kind,
            listener,
            prev: NIL,
            next: NIL,
            out: None,
            uid: None,
        }
    }
    /// A connection whose socket is open.
    pub fn live(&self) -> bool {
        self.kind.is_conn() && !self.flags.has(Flags::DEAD)
    }
    /// A connection that takes new messages.
    pub fn can_send(&self) -> bool {
        self.live() && !self.flags.has(Flags::CLOSING | Flags::OPENING)
    }
    /// A WebSocket before its 101.
    pub fn handshaking(&self) -> bool {
        self.kind == Kind::WebSocket && self.flags.has(Flags::OPENING)
    }
    /// An outbound connection whose connect has not completed.
    pub fn connecting(&self) -> bool {
        self.kind == Kind::Outbound && self.flags.has(Flags::OPENING)
    }
    /// A bound WebSocket that takes a broadcast now: [`Slot::can_send`]
    /// and not held, in one test of the flags (the fan-out's inner loop).
    #[inline]
    pub fn takes_broadcast(&self) -> bool {
        const NOT: Flags =
            Flags(Flags::DEAD.0 | Flags::CLOSING.0 | Flags::OPENING.0 | Flags::HOLD.0);
        self.kind == Kind::WebSocket && self.uid.is_some() && !self.flags.has(NOT)
    }
    pub fn out_empty(&self) -> bool {
        self.out.as_ref().is_none_or(|o| o.is_empty())
    }
}

impl Member for Slot {
    fn uid(&self) -> Option<&Uid> {
        self.uid.as_ref()
    }
    fn set_uid(&mut self, uid: Option<Uid>) {
        self.uid = uid;
    }
    fn links(&self) -> (u32, u32) {
        (self.prev, self.next)
    }
    fn set_links(&mut self, prev: u32, next: u32) {
        self.prev = prev;
        self.next = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_connection_costs_64_bytes_on_64_bit_and_52_on_32_bit() {
        // The density target depends on it: grow this only with a reason.
        // The slot and its parser-state pointer, per pointer width.
        #[cfg(target_pointer_width = "64")]
        assert_eq!((std::mem::size_of::<Slot>(), bytes_per_slot()), (56, 64));
        #[cfg(target_pointer_width = "32")]
        assert_eq!((std::mem::size_of::<Slot>(), bytes_per_slot()), (52, 56));
    }
}
