//! Sends to many: to every connection of a uid, to every bound WebSocket.
//! A connection accepted with the application's subprotocol
//! ([`Upgrade::AcceptProtocol`](super::Upgrade)) gets a message's head
//! before its text when the send carries one; a connection held
//! ([`Context::hold`]) gets neither until it is released.

use super::context::Context;
use super::id::ConnId;
use super::slot::Flags;
use crate::hub::NIL;
use crate::ws::frame::{FrameHead, OpCode};

/// The largest broadcast frame buffer kept for the next broadcast.
const FRAME_KEPT: usize = 64 * 1024;

impl Context {
    /// Sends a text message to every connection bound to `uid`; returns how
    /// many accepted it into their queues.
    pub fn send_to_uid(&mut self, uid: &str, text: &str) -> usize {
        self.send_to_uid_with(uid, text, None)
    }

    /// [`Context::send_to_uid`], where connections accepted with the
    /// subprotocol get `head` then `text` as one message.
    pub fn send_to_uid_with(&mut self, uid: &str, text: &str, head: Option<&[u8]>) -> usize {
        let h = FrameHead::new(OpCode::Text, text.len());
        let mut tagged = Vec::new();
        let mut at = self.hub.head(&self.io.slots, uid).unwrap_or(NIL);
        let mut sent = 0;
        while at != NIL {
            let s = &self.io.slots[at as usize];
            let next = s.next;
            let (can, sub) = (
                s.can_send() && !s.flags.has(Flags::HOLD),
                s.flags.has(Flags::SUBPROTOCOL),
            );
            let queued = match (can, sub, head) {
                (false, _, _) => false,
                (true, true, Some(head)) => {
                    if tagged.is_empty() {
                        encode(&mut tagged, head, text);
                    }
                    self.queue_message(at, &tagged, &[])
                }
                (true, _, _) => self.queue_message(at, h.as_bytes(), text.as_bytes()),
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
    /// subprotocol get `head` then `text` as one message. Each of the two
    /// frames is encoded once.
    pub fn broadcast_with(&mut self, text: &str, head: Option<&[u8]>) -> usize {
        // The whole frame, encoded once into a buffer kept between calls:
        // each recipient then costs one copy into its queue.
        let mut frame = std::mem::take(&mut self.frame);
        frame.clear();
        encode(&mut frame, b"", text);
        let mut tagged = Vec::new();
        if let Some(head) = head {
            encode(&mut tagged, head, text);
        }
        let mut sent = 0;
        // Two loops, so that the common one (no herald.v1 head) tests
        // nothing more per connection than it did before heads existed.
        if head.is_none() {
            for idx in 0..self.io.slots.len() as u32 {
                if self.io.slots[idx as usize].takes_broadcast() {
                    sent += usize::from(self.queue_frame(idx, &frame));
                }
            }
        } else {
            for idx in 0..self.io.slots.len() as u32 {
                let s = &self.io.slots[idx as usize];
                if s.takes_broadcast() {
                    let sub = s.flags.has(Flags::SUBPROTOCOL);
                    sent += usize::from(self.queue_frame(idx, if sub { &tagged } else { &frame }));
                }
            }
        }
        if frame.capacity() <= FRAME_KEPT {
            self.frame = frame;
        }
        sent
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

/// Appends one text frame holding `head` then `text`.
fn encode(out: &mut Vec<u8>, head: &[u8], text: &str) {
    let len = head.len() + text.len();
    out.reserve(len + 14);
    out.extend_from_slice(FrameHead::new(OpCode::Text, len).as_bytes());
    out.extend_from_slice(head);
    out.extend_from_slice(text.as_bytes());
}
