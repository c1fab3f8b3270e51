//! The receiving half of a WebSocket connection as a pull parser: each call
//! to [`next`] consumes client bytes up to one [`Event`] and says how many it
//! took. Whole frames are delivered straight from the caller's buffer
//! (unmasked in place); a [`Partial`] exists only while a frame or a
//! fragmented message is incomplete, so an idle connection holds nothing.

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
    /// A whole control frame in the caller's buffer.
    Control(OpCode, usize, usize),
    /// A control frame assembled in the state.
    HeldControl(OpCode, usize),
    /// A data message assembled in the state's body.
    Body(OpCode),
}

/// Decodes client bytes up to the next event. Returns how many bytes of
/// `data` were consumed and the event, or `None` once all of `data` is
/// consumed without completing one. `data` is unmasked in place.
///
/// After an `Event::Close` or an error the connection reads nothing more;
/// calling again is allowed but meaningless.
pub fn next<'a, H: Held<Partial>>(
    held: &'a mut H,
    data: &'a mut [u8],
    max_message: usize,
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
    let (used, found) = scan(held, data, max_message)?;
    let event = match found {
        None => {
            if held.get().is_some_and(|p| p.is_idle()) {
                held.clear();
            }
            return Ok((used, None));
        }
        Some(Found::Data(op, start, end)) => data_event(op, &data[start..end])?,
        Some(Found::Control(op, start, end)) => control_event(op, &data[start..end])?,
        Some(Found::HeldControl(op, len)) => match held.get() {
            Some(p) => control_event(op, &p.control[..len])?,
            None => return Err(lost_state()),
        },
        Some(Found::Body(op)) => match held.get() {
            Some(p) => {
                p.delivered = true;
                data_event(op, &p.body)?
            }
            None => return Err(lost_state()),
        },
    };
    Ok((used, Some(event)))
}

/// Unreachable: `scan` reports held events only with the state present.
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
        match start_frame(held, h, data, pos, max_message)? {
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
        if p.message == Some(OpCode::Text) && p.utf8.feed(chunk).is_err() {
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
        if kind == OpCode::Text && !p.utf8.is_complete() {
            return Err(Failure::new(
                CloseCode::INVALID_DATA,
                "text ends inside a character",
            ));
        }
        p.utf8 = Utf8Validator::default();
        return Ok(Step::Return(pos, Some(Found::Body(kind))));
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
) -> Result<Step, Failure> {
    let (in_message, so_far) = held.get().map_or((None, 0), |p| (p.message, p.body.len()));
    check_sequence(&h, in_message, so_far, max_message)?;
    let mask = h.mask.unwrap_or([0; 4]);
    let avail = data.len() - pos;

    // Fast path: a whole frame in this read, not part of a fragmented message.
    if (h.len as usize) <= avail && (h.opcode.is_control() || (h.fin && in_message.is_none())) {
        let len = h.len as usize;
        frame::unmask(&mut data[pos..pos + len], mask, 0);
        let (start, end) = (pos, pos + len);
        let found = if h.opcode.is_control() {
            Found::Control(h.opcode, start, end)
        } else {
            Found::Data(h.opcode, start, end)
        };
        return Ok(Step::Return(end, Some(found)));
    }

    // Slow path: the frame continues past this read, or is a fragment.
    let p = held.get_or_insert();
    if !h.opcode.is_control() && h.opcode != OpCode::Continuation {
        p.message = Some(h.opcode);
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
mod tests {
    use super::*;
    use crate::ws::frame::encode_masked;

    #[derive(Debug, PartialEq, Eq, Clone)]
    enum Owned {
        Text(String),
        Binary(Vec<u8>),
        Ping(Vec<u8>),
        Pong(Vec<u8>),
        Close(Option<u16>, String),
    }

    fn run(chunks: &[&[u8]], max: usize) -> (Vec<Owned>, Result<(), Failure>, bool) {
        let mut state: Option<Box<Partial>> = None;
        let mut events = Vec::new();
        let mut result = Ok(());
        'reads: for c in chunks {
            let mut buf = c.to_vec();
            let mut pos = 0;
            loop {
                match next(&mut state, &mut buf[pos..], max) {
                    Err(f) => {
                        result = Err(f);
                        break 'reads;
                    }
                    Ok((used, ev)) => {
                        pos += used;
                        let Some(e) = ev else { break };
                        let closed = matches!(e, Event::Close(..));
                        events.push(match e {
                            Event::Text(t) => Owned::Text(t.to_string()),
                            Event::Binary(b) => Owned::Binary(b.to_vec()),
                            Event::Ping(b) => Owned::Ping(b.to_vec()),
                            Event::Pong(b) => Owned::Pong(b.to_vec()),
                            Event::Close(c, r) => Owned::Close(c.map(|c| c.0), r.to_string()),
                        });
                        if closed {
                            break 'reads;
                        }
                    }
                }
            }
        }
        (events, result, state.is_none())
    }

    /// Feeds one read to the end, discarding events.
    fn drain(state: &mut Option<Box<Partial>>, mut data: &mut [u8], max: usize) {
        loop {
            let (used, ev) = next(state, data, max).unwrap();
            if ev.is_none() {
                return;
            }
            data = &mut data[used..];
        }
    }

    #[test]
    fn each_call_yields_one_event_and_what_it_consumed() {
        let a = frame(true, OpCode::Text, b"hi");
        let mut wire = a.clone();
        wire.extend(frame(true, OpCode::Binary, b"xyz"));
        let mut state: Option<Box<Partial>> = None;
        let (used, ev) = next(&mut state, &mut wire, 100).unwrap();
        assert_eq!((used, ev), (a.len(), Some(Event::Text("hi"))));
        let (used2, ev) = next(&mut state, &mut wire[used..], 100).unwrap();
        assert_eq!(ev, Some(Event::Binary(b"xyz")));
        assert_eq!(used + used2, wire.len());
        assert_eq!(next(&mut state, &mut [], 100).unwrap(), (0, None));
        assert!(state.is_none());
    }

    fn frame(fin: bool, op: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        encode_masked(fin, op, payload, [0x37, 0xfa, 0x21, 0x3d], &mut v);
        v
    }

    #[test]
    fn whole_frames_in_one_read() {
        let mut wire = frame(true, OpCode::Text, b"hello");
        wire.extend(frame(true, OpCode::Binary, &[1, 2, 3]));
        wire.extend(frame(true, OpCode::Ping, b"p"));
        let (ev, res, idle) = run(&[&wire], 1 << 20);
        assert_eq!(res, Ok(()));
        assert!(idle, "no state survives a read that ends between messages");
        assert_eq!(
            ev,
            vec![
                Owned::Text("hello".into()),
                Owned::Binary(vec![1, 2, 3]),
                Owned::Ping(b"p".to_vec())
            ]
        );
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let mut wire = frame(false, OpCode::Text, "héllo ".as_bytes());
        wire.extend(frame(true, OpCode::Ping, b"x"));
        wire.extend(frame(true, OpCode::Continuation, "wörld".as_bytes()));
        wire.extend(frame(true, OpCode::Binary, &vec![9u8; 300]));
        let expect = vec![
            Owned::Ping(b"x".to_vec()),
            Owned::Text("héllo wörld".into()),
            Owned::Binary(vec![9u8; 300]),
        ];
        for i in 0..wire.len() {
            for j in [i, (i + 7).min(wire.len()), wire.len()] {
                let (ev, res, idle) = run(&[&wire[..i], &wire[i..j], &wire[j..]], 1 << 20);
                assert_eq!(res, Ok(()), "split {i} {j}");
                assert_eq!(ev, expect, "split {i} {j}");
                assert!(idle);
            }
        }
    }

    #[test]
    fn sequencing_errors_are_1002() {
        let (_, res, _) = run(&[&frame(true, OpCode::Continuation, b"x")], 100);
        assert_eq!(res.unwrap_err().code, CloseCode::PROTOCOL);
        let mut w = frame(false, OpCode::Text, b"a");
        w.extend(frame(true, OpCode::Text, b"b"));
        let (_, res, _) = run(&[&w], 100);
        assert_eq!(res.unwrap_err().code, CloseCode::PROTOCOL);
        let (_, res, _) = run(&[&[0x81, 0x05, b'h', b'e', b'l', b'l', b'o']], 100);
        assert_eq!(res.unwrap_err().code, CloseCode::PROTOCOL, "unmasked");
    }

    #[test]
    fn bad_utf8_fails_fast_inside_a_fragmented_message() {
        let mut w = frame(false, OpCode::Text, "κόσμε".as_bytes());
        w.extend(frame(false, OpCode::Continuation, &[0xF4, 0x90]));
        // No final fragment: the failure must come without it.
        let (_, res, _) = run(&[&w], 1000);
        assert_eq!(res.unwrap_err().code, CloseCode::INVALID_DATA);
        // Within one partially received frame too.
        let w = frame(true, OpCode::Text, &[b'a', b'b', 0xFF, b'c', b'd', b'e']);
        let (_, res, _) = run(&[&w[..w.len() - 2]], 1000);
        assert_eq!(res.unwrap_err().code, CloseCode::INVALID_DATA);
        let w = frame(true, OpCode::Text, &[0xE2, 0x82]);
        let (_, res, _) = run(&[&w], 1000);
        assert_eq!(res.unwrap_err().code, CloseCode::INVALID_DATA);
    }

    #[test]
    fn message_size_cap_is_1009_across_fragments() {
        let (_, res, _) = run(&[&frame(true, OpCode::Binary, &[0; 101])], 100);
        assert_eq!(res.unwrap_err().code, CloseCode::TOO_BIG);
        let mut w = frame(false, OpCode::Binary, &[0; 60]);
        w.extend(frame(true, OpCode::Continuation, &[0; 60]));
        let (_, res, _) = run(&[&w], 100);
        assert_eq!(res.unwrap_err().code, CloseCode::TOO_BIG);
    }

    #[test]
    fn close_frames_are_validated() {
        let mut p = 1000u16.to_be_bytes().to_vec();
        p.extend_from_slice(b"bye");
        let (ev, res, _) = run(&[&frame(true, OpCode::Close, &p)], 100);
        assert_eq!(res, Ok(()));
        assert_eq!(ev, vec![Owned::Close(Some(1000), "bye".into())]);
        let (ev, _, _) = run(&[&frame(true, OpCode::Close, &[])], 100);
        assert_eq!(ev, vec![Owned::Close(None, String::new())]);
        for bad in [
            0u16, 999, 1004, 1005, 1006, 1012, 1015, 2000, 2999, 5000, 65535,
        ] {
            let (_, res, _) = run(&[&frame(true, OpCode::Close, &bad.to_be_bytes())], 100);
            assert_eq!(res.unwrap_err().code, CloseCode::PROTOCOL, "{bad}");
        }
        for good in [
            1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            let (_, res, _) = run(&[&frame(true, OpCode::Close, &good.to_be_bytes())], 100);
            assert_eq!(res, Ok(()), "{good}");
        }
        let (_, res, _) = run(&[&frame(true, OpCode::Close, &[3])], 100);
        assert_eq!(res.unwrap_err().code, CloseCode::PROTOCOL);
        let (_, res, _) = run(&[&frame(true, OpCode::Close, &[3, 232, 0xFF])], 100);
        assert_eq!(res.unwrap_err().code, CloseCode::INVALID_DATA);
    }

    #[test]
    fn nothing_after_close_is_delivered() {
        let mut w = frame(true, OpCode::Close, &1000u16.to_be_bytes());
        w.extend(frame(true, OpCode::Text, b"late"));
        let (ev, _, _) = run(&[&w], 100);
        assert_eq!(ev.len(), 1);
    }

    #[test]
    fn assembly_never_reserves_past_the_message_cap() {
        // fuzz/regressions/message-body-capacity-doubles: a new fragment must
        // not double the buffer either.
        let max = 8192;
        let mut state: Option<Box<Partial>> = None;
        let mut w = frame(false, OpCode::Binary, &[b'x'; 6300]);
        w.extend(frame(true, OpCode::Continuation, b"ab"));
        let cut = w.len() - 1;
        drain(&mut state, &mut w[..cut], max);
        assert!(state.unwrap().body.capacity() <= max);

        let max = 100_000;
        let mut state: Option<Box<Partial>> = None;
        let mut w = frame(false, OpCode::Binary, &vec![1u8; 70_000]);
        w.extend(frame(false, OpCode::Continuation, &vec![2u8; 29_000]));
        for chunk in w.chunks_mut(1000) {
            drain(&mut state, chunk, max);
        }
        assert!(state.unwrap().body.capacity() <= max);
    }

    #[test]
    fn an_announced_length_alone_does_not_allocate_it() {
        let mut state: Option<Box<Partial>> = None;
        let mut w = vec![0x82, 0xFF];
        w.extend_from_slice(&(1u64 << 30).to_be_bytes());
        w.extend_from_slice(&[1, 2, 3, 4, 5]);
        drain(&mut state, &mut w, 1 << 31);
        assert!(state.unwrap().heap_bytes() < 64 * 1024);
    }

    #[test]
    fn lengths_past_4_gib_are_refused_or_awaited_never_truncated() {
        // 2^32 + 5 bytes announced with the cap as high as usize allows: a
        // 32-bit build cannot hold such a message and refuses it with 1009
        // (never reading it as a 5-byte frame); a 64-bit build waits for the
        // bytes without reserving them.
        let mut w = vec![0x82, 0xFF];
        w.extend_from_slice(&((1u64 << 32) + 5).to_be_bytes());
        w.extend_from_slice(&[0, 0, 0, 0, 1, 2, 3, 4, 5]);
        let len = w.len();
        let mut state: Option<Box<Partial>> = None;
        let res = next(&mut state, &mut w, usize::MAX);
        #[cfg(target_pointer_width = "32")]
        assert_eq!(res.unwrap_err().code, CloseCode::TOO_BIG);
        #[cfg(target_pointer_width = "64")]
        {
            let (used, ev) = res.unwrap();
            assert_eq!((used, ev.is_none()), (len, true));
            assert!(state.unwrap().heap_bytes() < 64 * 1024);
        }
        let _ = len;
    }
}
