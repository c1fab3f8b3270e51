//! The receiving half of a WebSocket connection as a pull parser: each call
//! to [`next`] consumes client bytes up to one [`Event`] and says how many it
//! took. Whole frames are delivered straight from the caller's buffer
//! (unmasked in place); a [`Partial`] exists only while a frame or a
//! fragmented message is incomplete, so an idle connection holds nothing.
//! On a connection that negotiated permessage-deflate, a compressed message
//! (RSV1 on its first frame) is inflated whole by the server's one
//! [`Inflater`] and delivered from its buffer.

use super::deflate::{InflateError, Inflater};
use super::event::{CloseCode, Event, Failure};
use super::frame::{self, Header, OpCode, MAX_HEADER};
use super::rules::{check_sequence, control_event, data_event, frame_failure};
use super::utf8::Utf8Validator;
use crate::sansio::Held;

#[derive(Clone, Copy, Debug)]
struct FrameProgress {
    opcode: OpCode,
    fin: bool,
    remaining: u64,
    mask: [u8; 4],
    offset: usize,
}

/// Decoder state kept between reads, only while something is incomplete.
#[derive(Debug)]
pub struct Partial {
    header: [u8; MAX_HEADER],
    header_len: u8,
    frame: Option<FrameProgress>,
    /// The data message under way: Text or Binary.
    message: Option<OpCode>,
    /// The message under way is compressed: its body is deflate data,
    /// checked for UTF-8 only once inflated.
    compressed: bool,
    body: Vec<u8>,
    /// `body` holds a message already handed out; it is reset on the next call.
    delivered: bool,
    utf8: Utf8Validator,
    control: [u8; 125],
    control_len: u8,
}

impl Default for Partial {
    fn default() -> Partial {
        Partial {
            header: [0; MAX_HEADER],
            header_len: 0,
            frame: None,
            message: None,
            compressed: false,
            body: Vec::new(),
            delivered: false,
            utf8: Utf8Validator::default(),
            control: [0; 125],
            control_len: 0,
        }
    }
}

impl Partial {
    fn is_idle(&self) -> bool {
        self.header_len == 0 && self.frame.is_none() && self.message.is_none()
    }

    /// Bytes held by this state (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Partial>() + self.body.capacity()
    }
}

/// Where the event found by [`scan`] lies.
enum Found {
    /// A whole data frame in the caller's buffer.
    Data(OpCode, usize, usize),
    /// A whole compressed message (one frame) in the caller's buffer.
    Compressed(OpCode, usize, usize),
    /// A whole control frame in the caller's buffer.
    Control(OpCode, usize, usize),
    /// A control frame assembled in the state.
    HeldControl(OpCode, usize),
    /// A data message assembled in the state's body; compressed or not.
    Body(OpCode, bool),
}

/// Decodes client bytes up to the next event. Returns how many bytes of
/// `data` were consumed and the event, or `None` once all of `data` is
/// consumed without completing one. `data` is unmasked in place.
///
/// `inflater` is given on a connection that negotiated permessage-deflate:
/// messages with RSV1 are then inflated (their inflated size bounded by
/// `max_message` too); without it, RSV1 is a protocol violation.
///
/// After an `Event::Close` or an error the connection reads nothing more;
/// calling again is allowed but meaningless.
pub fn next<'a, H: Held<Partial>>(
    held: &'a mut H,
    data: &'a mut [u8],
    max_message: usize,
    inflater: Option<&'a mut Inflater>,
) -> Result<(usize, Option<Event<'a>>), Failure> {
    if let Some(p) = held.get() {
        if p.delivered {
            p.delivered = false;
            // Keep a small buffer for the next message; free big ones.
            if p.body.capacity() <= 4096 {
                p.body.clear();
            } else {
                p.body = Vec::new();
            }
        }
    }
    let deflate = inflater.is_some();
    let (used, found) = scan(held, data, max_message, deflate)?;
    let event = match found {
        None => {
            if held.get().is_some_and(|p| p.is_idle()) {
                held.clear();
            }
            return Ok((used, None));
        }
        Some(Found::Data(op, start, end)) => data_event(op, &data[start..end])?,
        Some(Found::Compressed(op, start, end)) => {
            let inflater = inflater.ok_or_else(lost_state)?;
            data_event(op, inflate(inflater, &data[start..end], max_message)?)?
        }
        Some(Found::Control(op, start, end)) => control_event(op, &data[start..end])?,
        Some(Found::HeldControl(op, len)) => match held.get() {
            Some(p) => control_event(op, &p.control[..len])?,
            None => return Err(lost_state()),
        },
        Some(Found::Body(op, compressed)) => match (held.get(), inflater) {
            (Some(p), Some(inflater)) if compressed => {
                p.delivered = true;
                data_event(op, inflate(inflater, &p.body, max_message)?)?
            }
            (Some(p), _) if !compressed => {
                p.delivered = true;
                data_event(op, &p.body)?
            }
            _ => return Err(lost_state()),
        },
    };
    Ok((used, Some(event)))
}

/// Inflates one compressed message; its failures are the connection's.
fn inflate<'a>(inflater: &'a mut Inflater, body: &[u8], max: usize) -> Result<&'a [u8], Failure> {
    inflater.inflate(&[body], max).map_err(|e| match e {
        InflateError::TooBig => Failure::new(CloseCode::TOO_BIG, "message too big"),
        InflateError::Invalid => Failure::new(CloseCode::INVALID_DATA, "invalid compressed data"),
    })
}

/// Unreachable: `scan` reports held events only with the state present
/// (and compressed ones only with an inflater).
fn lost_state() -> Failure {
    Failure::new(CloseCode::INTERNAL, "decoder state lost")
}

/// Where a step of [`scan`] left the read.
enum Step {
    /// Stop here: consumed bytes and the event, if one is complete.
    Return(usize, Option<Found>),
    /// Go on from this position.
    Continue(usize),
}

/// Finds the next event in `data`. Split in three steps (a body under way,
/// the next header, the new frame) so that each reads on its own; all are
/// inlined back into this loop.
fn scan<H: Held<Partial>>(
    held: &mut H,
    data: &mut [u8],
    max_message: usize,
    deflate: bool,
) -> Result<(usize, Option<Found>), Failure> {
    let mut pos = 0;
    loop {
        // A frame body under way swallows input first.
        if let Some(p) = held.get() {
            if let Some(f) = p.frame {
                match feed_body(p, f, data, pos, max_message)? {
                    Step::Return(used, found) => return Ok((used, found)),
                    Step::Continue(at) => pos = at,
                }
                continue;
            }
        }
        if pos == data.len() {
            return Ok((pos, None));
        }
        let (h, header_bytes) = match next_header(held, data, pos, max_message as u64)? {
            Ok(found) => found,
            Err(used) => return Ok((used, None)),
        };
        pos += header_bytes;
        match start_frame(held, h, data, pos, max_message, deflate)? {
            Step::Return(used, found) => return Ok((used, found)),
            Step::Continue(at) => pos = at,
        }
    }
}

/// Feeds the body of the frame under way (`f`, from `p.frame`) with what
/// `data` holds from `pos`.
#[inline(always)]
fn feed_body(
    p: &mut Partial,
    mut f: FrameProgress,
    data: &mut [u8],
    mut pos: usize,
    max_message: usize,
) -> Result<Step, Failure> {
    let n = (f.remaining.min((data.len() - pos) as u64)) as usize;
    let chunk = &mut data[pos..pos + n];
    frame::unmask(chunk, f.mask, f.offset);
    pos += n;
    f.remaining -= n as u64;
    f.offset += n;
    if f.opcode.is_control() {
        let at = p.control_len as usize;
        p.control[at..at + n].copy_from_slice(chunk);
        p.control_len += n as u8;
    } else {
        if p.message == Some(OpCode::Text) && !p.compressed && p.utf8.feed(chunk).is_err() {
            return Err(Failure::new(CloseCode::INVALID_DATA, "text is not UTF-8"));
        }
        let need = p.body.len() + n;
        if need > p.body.capacity() {
            // Grow by doubling but never past the message cap
            // (plain doubling could reserve twice the cap).
            let target = (p.body.capacity() * 2).max(need).min(max_message.max(need));
            p.body.reserve_exact(target - p.body.len());
        }
        p.body.extend_from_slice(chunk);
    }
    if f.remaining > 0 {
        p.frame = Some(f);
        return Ok(Step::Return(pos, None));
    }
    p.frame = None;
    if f.opcode.is_control() {
        let len = p.control_len as usize;
        p.control_len = 0;
        return Ok(Step::Return(pos, Some(Found::HeldControl(f.opcode, len))));
    }
    if f.fin {
        let kind = p.message.take().unwrap_or(OpCode::Binary);
        let compressed = std::mem::take(&mut p.compressed);
        if kind == OpCode::Text && !compressed && !p.utf8.is_complete() {
            return Err(Failure::new(
                CloseCode::INVALID_DATA,
                "text ends inside a character",
            ));
        }
        p.utf8 = Utf8Validator::default();
        return Ok(Step::Return(pos, Some(Found::Body(kind, compressed))));
    }
    Ok(Step::Continue(pos))
}

/// Parses the next header at `pos`, completing a cut one from the state
/// first. `Ok(Ok((header, bytes of data it took)))`, or `Ok(Err(used))` when
/// the header is still incomplete (its bytes are kept in the state).
#[inline(always)]
fn next_header<H: Held<Partial>>(
    held: &mut H,
    data: &[u8],
    pos: usize,
    max_frame: u64,
) -> Result<Result<(Header, usize), usize>, Failure> {
    let cut = held.get().map_or(0, |p| p.header_len as usize);
    if cut > 0 {
        let p = held.get_or_insert();
        let take = (MAX_HEADER - cut).min(data.len() - pos);
        p.header[cut..cut + take].copy_from_slice(&data[pos..pos + take]);
        return match Header::parse(&p.header[..cut + take], true, max_frame)
            .map_err(frame_failure)?
        {
            None => {
                p.header_len = (cut + take) as u8;
                Ok(Err(pos + take))
            }
            Some((h, n)) => {
                p.header_len = 0;
                Ok(Ok((h, n - cut)))
            }
        };
    }
    match Header::parse(&data[pos..], true, max_frame).map_err(frame_failure)? {
        None => {
            let rest = &data[pos..];
            let p = held.get_or_insert();
            p.header[..rest.len()].copy_from_slice(rest);
            p.header_len = rest.len() as u8;
            Ok(Err(data.len()))
        }
        Some((h, n)) => Ok(Ok((h, n))),
    }
}

/// A new frame whose body starts at `pos`: delivered in place when it is
/// whole in this read and not a fragment, else recorded in the state.
#[inline(always)]
fn start_frame<H: Held<Partial>>(
    held: &mut H,
    h: Header,
    data: &mut [u8],
    pos: usize,
    max_message: usize,
    deflate: bool,
) -> Result<Step, Failure> {
    let (in_message, so_far) = held.get().map_or((None, 0), |p| (p.message, p.body.len()));
    check_sequence(&h, in_message, so_far, max_message, deflate)?;
    let mask = h.mask.unwrap_or([0; 4]);
    let avail = data.len() - pos;

    // Fast path: a whole frame in this read, not part of a fragmented message.
    if (h.len as usize) <= avail && (h.opcode.is_control() || (h.fin && in_message.is_none())) {
        let len = h.len as usize;
        frame::unmask(&mut data[pos..pos + len], mask, 0);
        let (start, end) = (pos, pos + len);
        let found = if h.opcode.is_control() {
            Found::Control(h.opcode, start, end)
        } else if h.rsv1 {
            Found::Compressed(h.opcode, start, end)
        } else {
            Found::Data(h.opcode, start, end)
        };
        return Ok(Step::Return(end, Some(found)));
    }

    // Slow path: the frame continues past this read, or is a fragment.
    let p = held.get_or_insert();
    if !h.opcode.is_control() && h.opcode != OpCode::Continuation {
        p.message = Some(h.opcode);
        p.compressed = h.rsv1;
    }
    if !h.opcode.is_control() {
        // Reserve what is announced, but never more than arrives soon:
        // a length alone must not make us allocate.
        // `reserve_exact`, capped: plain `reserve` may double past the cap.
        let want = (h.len as usize).min(avail.max(4096));
        let room = max_message.saturating_sub(p.body.len());
        p.body.reserve_exact(want.min(room));
    }
    p.frame = Some(FrameProgress {
        opcode: h.opcode,
        fin: h.fin,
        remaining: h.len,
        mask,
        offset: 0,
    });
    Ok(Step::Continue(pos))
}

#[cfg(test)]
mod tests;
