//! Sends to many: to every connection of a uid, to every bound WebSocket.
//! A connection accepted with the application's subprotocol
//! ([`Upgrade::AcceptProtocol`](super::Upgrade)) gets a message's head
//! before its text when the send carries one; a connection held
//! ([`Context::hold`]) gets neither until it is released. A connection
//! with permessage-deflate gets the message compressed: compressed once,
//! for all such recipients.

use super::compress::Frames;
use super::context::Context;
use super::id::ConnId;
use super::slot::{Flags, Kind};
use crate::hub::NIL;
use crate::ws::frame::{FrameHead, OpCode};

impl Context {
    /// Sends a text message to every connection bound to `uid`; returns how
    /// many accepted it into their queues.
    pub fn send_to_uid(&mut self, uid: &str, text: &str) -> usize {
        self.send_to_uid_with(uid, text, None)
    }

    /// [`Context::send_to_uid`], where connections accepted with the
    /// subprotocol get `head` then `text` as one message. Connections with
    /// permessage-deflate get it compressed, compressed once for all of them.
    pub fn send_to_uid_with(&mut self, uid: &str, text: &str, head: Option<&[u8]>) -> usize {
        let mut frames = None;
        let sent = self.send_to_uid_in(&mut frames, uid, text, head);
        if let Some(f) = frames {
            self.keep_frames(f);
        }
        sent
    }

    /// [`Context::send_to_uid_with`] for one of several uids that get the
    /// same `text`: `frames` carries its forms from one uid to the next, so
    /// that it is encoded and compressed once for all of them (only the
    /// head, which names each uid's stream, changes). Made on first need;
    /// give it back with [`Context::keep_frames`].
    pub(crate) fn send_to_uid_in<'m>(
        &mut self,
        frames: &mut Option<Frames<'m>>,
        uid: &str,
        text: &'m str,
        head: Option<&[u8]>,
    ) -> usize {
        let h = FrameHead::new(OpCode::Text, text.len());
        if let Some(f) = frames {
            f.set_head(head);
        }
        let mut at = self.hub.head(&self.io.slots, uid).unwrap_or(NIL);
        let mut sent = 0;
        while at != NIL {
            let s = &self.io.slots[at as usize];
            let next = s.next;
            let can = s.can_send() && !s.flags.has(Flags::HOLD);
            let sub = s.flags.has(Flags::SUBPROTOCOL) && head.is_some();
            let z = s.flags.has(Flags::DEFLATE);
            let queued = match (can, sub || z) {
                (false, _) => false,
                (true, true) => {
                    let f = match frames {
                        Some(f) => f,
                        None => frames.insert(self.frames(head, text)),
                    };
                    let frame = f.get(sub, z, &mut self.compression);
                    self.queue_message(at, frame, &[])
                }
                // The common case: the header and the text copied straight
                // into the queue, no frame buffer.
                (true, false) => self.queue_message(at, h.as_bytes(), text.as_bytes()),
            };
            sent += usize::from(queued);
            at = next;
        }
        sent
    }

    /// Sends a text message to every bound WebSocket; returns how many
    /// accepted it. The frame header is encoded once.
    pub fn broadcast(&mut self, text: &str) -> usize {
        self.broadcast_with(text, None)
    }

    /// [`Context::broadcast`], where connections accepted with the
    /// subprotocol get `head` then `text` as one message, and connections
    /// with permessage-deflate get it compressed. Each form of the message
    /// is encoded (and compressed) once; each recipient then costs one copy
    /// into its queue.
    pub fn broadcast_with(&mut self, text: &str, head: Option<&[u8]>) -> usize {
        let mut frames = self.frames(head, text);
        let mut sent = 0;
        // Two loops, so that the common one (no herald.v1 head, nobody
        // compressed) tests nothing more per connection than the one flag
        // mask it always did.
        if head.is_none() && self.io.deflate_open == 0 {
            let frame = frames.get(false, false, &mut self.compression);
            for idx in 0..self.io.slots.len() as u32 {
                if self.io.slots[idx as usize].takes_broadcast() {
                    sent += usize::from(self.queue_frame(idx, frame));
                }
            }
        } else {
            for idx in 0..self.io.slots.len() as u32 {
                let s = &self.io.slots[idx as usize];
                if s.takes_broadcast() {
                    let sub = s.flags.has(Flags::SUBPROTOCOL);
                    let z = s.flags.has(Flags::DEFLATE);
                    let frame = frames.get(sub, z, &mut self.compression);
                    sent += usize::from(self.queue_frame(idx, frame));
                }
            }
        }
        self.keep_frames(frames);
        sent
    }

    /// Sends a text message to each connection of `slots` (slot indices:
    /// a topic's members, each removed from the list in its `on_close`)
    /// that is a bound WebSocket taking sends now; returns how many
    /// accepted it. As for a broadcast, each form of the message is encoded
    /// once, `head` goes before the text to connections with the
    /// subprotocol, and with nobody to tag or compress for the loop is the
    /// broadcast's own.
    pub fn send_to_slots(&mut self, slots: &[u32], text: &str, head: Option<&[u8]>) -> usize {
        if slots.is_empty() {
            return 0;
        }
        let mut frames = self.frames(head, text);
        let mut sent = 0;
        if head.is_none() && self.io.deflate_open == 0 {
            let frame = frames.get(false, false, &mut self.compression);
            for &idx in slots {
                let takes = self
                    .io
                    .slots
                    .get(idx as usize)
                    .is_some_and(|s| s.takes_broadcast());
                if takes {
                    sent += usize::from(self.queue_frame(idx, frame));
                }
            }
        } else {
            for &idx in slots {
                let Some(s) = self.io.slots.get(idx as usize) else {
                    continue;
                };
                if s.takes_broadcast() {
                    let sub = s.flags.has(Flags::SUBPROTOCOL) && head.is_some();
                    let z = s.flags.has(Flags::DEFLATE);
                    let frame = frames.get(sub, z, &mut self.compression);
                    sent += usize::from(self.queue_frame(idx, frame));
                }
            }
        }
        self.keep_frames(frames);
        sent
    }

    /// The slot indices of the connections bound to `uid` here, but `not`.
    pub fn slots_of(&self, uid: &str, not: Option<ConnId>) -> Vec<u32> {
        let mut at = self.hub.head(&self.io.slots, uid).unwrap_or(NIL);
        let mut out = Vec::new();
        while at != NIL {
            if not.is_none_or(|c| c.idx() != at) {
                out.push(at);
            }
            at = self.io.slots[at as usize].next;
        }
        out
    }

    /// The uid of the connection in slot `idx`, if it is bound.
    pub fn uid_at(&self, idx: u32) -> Option<&str> {
        let s = self.io.slots.get(idx as usize)?;
        s.uid.as_ref().map(crate::hub::Uid::as_str)
    }

    /// The connections bound to `uid` here.
    pub fn conns_of(&self, uid: &str) -> Vec<ConnId> {
        let mut at = self.hub.head(&self.io.slots, uid).unwrap_or(NIL);
        let mut out = Vec::new();
        while at != NIL {
            let s = &self.io.slots[at as usize];
            out.push(ConnId::new(at, s.gen));
            at = s.next;
        }
        out
    }

    /// Holds `conn` out of (`true`) or back into (`false`) sends to its uid
    /// and broadcasts; sends to it by id still go.
    pub fn hold(&mut self, conn: ConnId, held: bool) {
        if self.io.slot_of(conn).is_some() {
            let s = &mut self.io.slots[conn.idx() as usize];
            if held {
                s.flags.set(Flags::HOLD);
            } else {
                s.flags.clear(Flags::HOLD);
            }
        }
    }

    /// Whether `conn` was accepted with the application's subprotocol.
    pub fn has_subprotocol(&self, conn: ConnId) -> bool {
        self.io
            .slot_known(conn)
            .is_some_and(|s| s.flags.has(Flags::SUBPROTOCOL))
    }
}

/// The largest message buffer kept for the next send.
const KEPT: usize = 64 * 1024;

impl Context {
    /// A message's forms, over the buffers kept between sends.
    pub(super) fn frames<'m>(&mut self, head: Option<&[u8]>, text: &'m str) -> Frames<'m> {
        Frames::new(std::mem::take(&mut self.frames), head, text)
    }

    /// Keeps the buffers of `f` (small ones) for the next send.
    pub(crate) fn keep_frames(&mut self, f: Frames<'_>) {
        self.stats.compressed_out += f.compressed();
        self.frames = f
            .into_bufs()
            .map(|b| if b.capacity() <= KEPT { b } else { Vec::new() });
    }

    /// Sends one data message on WebSocket `conn`, compressed if it
    /// negotiated permessage-deflate and compression pays.
    pub(super) fn send_frame(&mut self, conn: ConnId, opcode: OpCode, payload: &[u8]) -> bool {
        let Some(s) = self.io.slot_of(conn) else {
            return false;
        };
        if s.kind != Kind::WebSocket {
            return false;
        }
        let idx = conn.idx();
        if s.flags.has(Flags::DEFLATE) {
            let mut z = std::mem::take(&mut self.frames[2]);
            z.clear();
            if self.compression.frame(opcode, &[payload], &mut z) {
                self.stats.compressed_out += 1;
                let queued = self.queue_message(idx, &z, &[]);
                self.frames[2] = z;
                return queued;
            }
            self.frames[2] = z;
        }
        let h = FrameHead::new(opcode, payload.len());
        self.queue_message(idx, h.as_bytes(), payload)
    }

    /// WebSockets open now with permessage-deflate.
    pub fn deflate_connections(&self) -> usize {
        self.io.deflate_open
    }

    /// Compressed client messages inflated so far (refused ones included).
    pub fn inflated_messages(&self) -> u64 {
        self.compression.inflated()
    }
}
