//! One server-side WebSocket connection as a sans-IO state machine: the
//! opening handshake, then frames. Client bytes go in; events for the
//! application and the bytes to send (101, error responses, pongs, close
//! replies) come out. The reactor owns the socket and the clock; the
//! connection's phase is the reactor's to keep (one flag), and its parser
//! state lives in a [`Held`] only while input is incomplete.

use super::decode::{self, Partial};
use super::deflate::Inflater;
use super::event::{CloseCode, Event, Failure};
use super::frame::{self, OpCode};
use super::handshake::{self, HandshakeError};
use crate::http::{self, Head};
use crate::sansio::{Held, Output};

/// What the handshake phase found.
#[allow(clippy::large_enum_variant)] // the head lives on the stack, briefly: boxing it would allocate per handshake
pub enum Opening<'a> {
    /// A complete, valid upgrade request. The owner decides, then calls
    /// [`accept`] or [`refuse`]. Frames after the head start at `consumed`
    /// of the buffer the head came from: the held bytes when `from_held`,
    /// else the caller's `data` (all of which was then consumed).
    Request {
        head: Head<'a>,
        accept: [u8; 28],
        consumed: usize,
        from_held: bool,
    },
    /// A malformed request: its error response is in the output; close.
    Refused(HandshakeError),
}

/// Feeds handshake bytes. `None`: the head is incomplete, all of `data` is
/// held.
pub fn handshake<'a, H: Held<Vec<u8>>>(
    held: &'a mut H,
    data: &'a [u8],
    max_head: usize,
    out: &mut dyn Output,
) -> Option<Opening<'a>> {
    if held.get().is_some() {
        let bytes = held.get_or_insert();
        bytes.extend_from_slice(data);
        return opening(handshake::parse_request(bytes, max_head), true, out);
    }
    match handshake::parse_request(data, max_head) {
        Ok(None) if data.is_empty() => None,
        Ok(None) => {
            held.get_or_insert().extend_from_slice(data);
            None
        }
        found => opening(found, false, out),
    }
}

fn opening<'a>(
    found: Result<Option<(Head<'a>, handshake::Accepted)>, HandshakeError>,
    from_held: bool,
    out: &mut dyn Output,
) -> Option<Opening<'a>> {
    match found {
        Ok(None) => None,
        Ok(Some((head, a))) => Some(Opening::Request {
            head,
            accept: a.accept,
            consumed: a.consumed,
            from_held,
        }),
        Err(e) => {
            e.write_response(out.buf());
            Some(Opening::Refused(e))
        }
    }
}

/// Writes the 101 for an accepted request (naming the subprotocol chosen
/// and the extensions accepted).
pub fn accept(
    accept: &[u8; 28],
    protocol: Option<&str>,
    extensions: Option<&str>,
    out: &mut dyn Output,
) {
    handshake::write_accept(accept, protocol, extensions, out.buf());
}

/// Writes the refusal of a request the application turned down.
pub fn refuse(status: u16, reason: &str, out: &mut dyn Output) {
    http::write_error(out.buf(), status, reason, "");
}

/// What one step of an open connection produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// A data message for the application: `Event::Text` or `Event::Binary`.
    Message(Event<'a>),
    /// A control frame was answered (ping) or absorbed (pong).
    Handled,
    /// The peer closed: the close reply is in the output; read no more.
    Closed,
    /// A protocol violation: the close frame is in the output; read no more.
    Failed(Failure),
}

/// Feeds frame bytes of an open connection up to the next step; returns how
/// many bytes of `data` it consumed, or `None` as the step once all of them
/// are consumed. `inflater`: the connection negotiated permessage-deflate.
pub fn frames<'a, H: Held<Partial>>(
    held: &'a mut H,
    data: &'a mut [u8],
    max_message: usize,
    inflater: Option<&'a mut Inflater>,
    out: &mut dyn Output,
) -> (usize, Option<Step<'a>>) {
    let len = data.len();
    let (used, event) = match decode::next(held, data, max_message, inflater) {
        Ok(x) => x,
        Err(f) => {
            close(f.code, f.reason, out);
            return (len, Some(Step::Failed(f)));
        }
    };
    let step = match event {
        None => return (used, None),
        Some(ev @ (Event::Text(_) | Event::Binary(_))) => Step::Message(ev),
        Some(Event::Ping(p)) => {
            frame::encode_frame(OpCode::Pong, p, out.buf());
            Step::Handled
        }
        Some(Event::Pong(_)) => Step::Handled,
        Some(Event::Close(code, _reason)) => {
            // Echo the peer's code (RFC 6455 5.5.1), or an empty close.
            match code {
                Some(c) => frame::encode_close(c, "", out.buf()),
                None => frame::encode_frame(OpCode::Close, &[], out.buf()),
            }
            Step::Closed
        }
    };
    (used, Some(step))
}

/// Writes a close frame: the server starts the close handshake.
pub fn close(code: CloseCode, reason: &str, out: &mut dyn Output) {
    frame::encode_close(code, reason, out.buf());
}

/// Writes the heartbeat ping (empty: two bytes).
pub fn ping(out: &mut dyn Output) {
    frame::encode_frame(OpCode::Ping, &[], out.buf());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::frame::encode_masked;

    const GOOD: &[u8] = b"GET /chat?token=t HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

    fn masked(op: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        encode_masked(true, op, payload, [1, 2, 3, 4], &mut v);
        v
    }

    #[test]
    fn a_request_cut_anywhere_opens_once_with_its_head() {
        for cut in 0..GOOD.len() {
            let mut held: Option<Box<Vec<u8>>> = None;
            let mut out = Vec::new();
            assert!(handshake(&mut held, &GOOD[..cut], 8192, &mut out).is_none());
            match handshake(&mut held, &GOOD[cut..], 8192, &mut out) {
                Some(Opening::Request { head, consumed, .. }) => {
                    assert_eq!(head.target, "/chat?token=t");
                    assert_eq!(consumed, GOOD.len());
                }
                _ => panic!("cut {cut}: no request"),
            }
            assert!(
                out.is_empty(),
                "nothing is answered before the owner decides"
            );
        }
    }

    #[test]
    fn a_bad_request_is_answered_with_its_status() {
        let mut held: Option<Box<Vec<u8>>> = None;
        let mut out = Vec::new();
        let bad = b"POST / HTTP/1.1\r\n\r\n";
        assert!(matches!(
            handshake(&mut held, bad, 8192, &mut out),
            Some(Opening::Refused(HandshakeError::Method))
        ));
        assert!(out.starts_with(b"HTTP/1.1 405 "));
    }

    #[test]
    fn pings_are_answered_and_closes_echoed() {
        let mut held: Option<Box<Partial>> = None;
        let mut out = Vec::new();
        let mut wire = masked(OpCode::Ping, b"hb");
        wire.extend(masked(OpCode::Text, b"hi"));
        wire.extend(masked(OpCode::Close, &1000u16.to_be_bytes()));
        let mut steps = Vec::new();
        let mut pos = 0;
        loop {
            let (used, step) = frames(&mut held, &mut wire[pos..], 100, None, &mut out);
            pos += used;
            match step {
                None => break,
                Some(Step::Message(Event::Text(t))) => steps.push(t.to_string()),
                Some(Step::Closed) => {
                    steps.push("closed".into());
                    break;
                }
                Some(s) => steps.push(format!("{s:?}")),
            }
        }
        assert_eq!(steps, ["Handled", "hi", "closed"]);
        assert_eq!(out, [0x8A, 2, b'h', b'b', 0x88, 2, 0x03, 0xE8]);
    }

    #[test]
    fn a_violation_writes_its_close_code() {
        let mut held: Option<Box<Partial>> = None;
        let mut out = Vec::new();
        let mut unmasked = vec![0x81, 1, b'x'];
        let (_, step) = frames(&mut held, &mut unmasked, 100, None, &mut out);
        assert!(matches!(step, Some(Step::Failed(f)) if f.code == CloseCode::PROTOCOL));
        assert_eq!(&out[..4], &[0x88, out[1], 0x03, 0xEA]);
    }
}
