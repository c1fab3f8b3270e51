//! What RFC 6455 allows a client to send, checked once a frame header or a
//! whole payload is known: the order of frames, control payloads and close
//! codes, UTF-8 in text.

use super::event::{CloseCode, Event, Failure};
use super::frame::{self, Header, OpCode};

/// Whether frame `h` may come now. RSV1 marks a compressed message
/// (RFC 7692 section 6): only on a connection that negotiated it (`deflate`),
/// and only on a message's first frame, never on a continuation or control
/// frame.
pub(super) fn check_sequence(
    h: &Header,
    in_message: Option<OpCode>,
    so_far: usize,
    max_message: usize,
    deflate: bool,
) -> Result<(), Failure> {
    if h.rsv1 && !(deflate && matches!(h.opcode, OpCode::Text | OpCode::Binary)) {
        return Err(frame_failure(frame::FrameError::ReservedBits));
    }
    match h.opcode {
        OpCode::Continuation if in_message.is_none() => Err(Failure::new(
            CloseCode::PROTOCOL,
            "continuation frame without a message",
        )),
        OpCode::Text | OpCode::Binary if in_message.is_some() => Err(Failure::new(
            CloseCode::PROTOCOL,
            "new message before the last one finished",
        )),
        _ if !h.opcode.is_control()
            && (so_far as u64).saturating_add(h.len) > max_message as u64 =>
        {
            Err(Failure::new(CloseCode::TOO_BIG, "message too big"))
        }
        _ => Ok(()),
    }
}

/// The event for a complete control frame payload.
pub(super) fn control_event(opcode: OpCode, payload: &[u8]) -> Result<Event<'_>, Failure> {
    match opcode {
        OpCode::Ping => Ok(Event::Ping(payload)),
        OpCode::Pong => Ok(Event::Pong(payload)),
        _ => match payload.len() {
            0 => Ok(Event::Close(None, "")),
            1 => Err(Failure::new(
                CloseCode::PROTOCOL,
                "close frame with a 1-byte payload",
            )),
            _ => {
                let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
                if !code.is_valid_on_wire() {
                    return Err(Failure::new(CloseCode::PROTOCOL, "invalid close code"));
                }
                let reason = std::str::from_utf8(&payload[2..]).map_err(|_| {
                    Failure::new(CloseCode::INVALID_DATA, "close reason is not UTF-8")
                })?;
                Ok(Event::Close(Some(code), reason))
            }
        },
    }
}

pub(super) fn data_event(opcode: OpCode, body: &[u8]) -> Result<Event<'_>, Failure> {
    if opcode == OpCode::Text {
        let text = std::str::from_utf8(body)
            .map_err(|_| Failure::new(CloseCode::INVALID_DATA, "text is not UTF-8"))?;
        Ok(Event::Text(text))
    } else {
        Ok(Event::Binary(body))
    }
}

pub(super) fn frame_failure(e: frame::FrameError) -> Failure {
    Failure::new(e.close_code(), e.reason())
}
