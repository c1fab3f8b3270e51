//! One WebSocket client's protocol side, without I/O: its state, the
//! opening handshake it sends, and the parser for what the server sends it
//! (the 101 response, unmasked frames, permessage-deflate messages),
//! answering pings and closes.

use crate::deflate::{self, Inflater};
use crate::event::{End, Event};
use base64::Engine as _;
use herald::ws::frame::{self, Header, OpCode};
use herald::ws::handshake;
use std::borrow::Cow;
use std::os::fd::RawFd;
use std::time::Instant;

const MAX_HEAD: usize = 16 * 1024;
/// The largest frame, and the largest inflated message, a client accepts.
pub const MAX_FRAME: u64 = 16 << 20;

/// Where a client is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// A slot without a socket (never connected, or finished).
    Idle,
    Connecting,
    /// Request sent, waiting for the 101 response.
    Handshake,
    Open,
    /// We sent a close frame and wait for the server's close frame, then for
    /// its end of stream (the server closes TCP first, RFC 6455 section 7.1.1,
    /// so that TIME_WAIT stays on its side and the client's ports are not
    /// used up by churn).
    Closing,
}

/// One client slot: its socket (owned by the fleet that drives it) and its
/// protocol state.
pub struct Client {
    /// The socket, or -1 while Idle.
    pub fd: RawFd,
    pub state: State,
    /// Bytes not yet accepted by the kernel.
    pub out: Vec<u8>,
    /// Unparsed bytes (an incomplete response head or frame).
    pub inbuf: Vec<u8>,
    /// A fragmented message under way (servers here never fragment, but may).
    pub frag: Option<Vec<u8>>,
    /// The message under way in `frag` is compressed (RSV1 on its first frame).
    pub frag_compressed: bool,
    /// The server accepted permessage-deflate on this connection.
    pub deflate: bool,
    /// Bytes read from the socket after the 101 response head, over every
    /// connection of this slot (counted by the fleet).
    pub wire: u64,
    /// Writability is in the socket's epoll interest set.
    pub polled_out: bool,
    rng: u32,
    key: [u8; 24],
    /// When we sent our close frame.
    pub closing_since: Option<Instant>,
    /// The server's close frame arrived (we wait for its end of stream).
    pub close_seen: bool,
}

impl Client {
    pub fn new(idx: usize) -> Client {
        Client {
            fd: -1,
            state: State::Idle,
            out: Vec::new(),
            inbuf: Vec::new(),
            frag: None,
            frag_compressed: false,
            deflate: false,
            wire: 0,
            polled_out: false,
            rng: (idx as u32).wrapping_mul(2_654_435_761) | 1,
            key: [0; 24],
            closing_since: None,
            close_seen: false,
        }
    }

    fn next_rand(&mut self) -> u32 {
        // xorshift32: masks and keys only need to vary, not to be secret.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng = x;
        x
    }

    fn mask(&mut self) -> [u8; 4] {
        self.next_rand().to_ne_bytes()
    }

    /// Queues a masked frame in `out`.
    pub fn push_frame(&mut self, opcode: OpCode, payload: &[u8]) {
        let mask = self.mask();
        frame::encode_masked(true, opcode, payload, mask, &mut self.out);
    }

    /// Queues the opening handshake in `out` (`request_head` ends with
    /// `Sec-WebSocket-Key: `), with a fresh key, and waits for the 101.
    pub fn start_handshake(&mut self, request_head: &str) {
        let mut raw = [0u8; 16];
        for chunk in raw.chunks_mut(4) {
            chunk.copy_from_slice(&self.next_rand().to_ne_bytes());
        }
        let n = base64::engine::general_purpose::STANDARD
            .encode_slice(raw, &mut self.key)
            .unwrap_or(0);
        debug_assert_eq!(n, 24);
        self.out.extend_from_slice(request_head.as_bytes());
        self.out.extend_from_slice(&self.key);
        self.out.extend_from_slice(b"\r\n\r\n");
        self.state = State::Handshake;
    }
}

/// Checks the server's response head (without its final blank line);
/// returns whether it accepted permessage-deflate (`offered`: we asked).
fn check_response(head: &[u8], key: &[u8; 24], offered: bool) -> Result<bool, Cow<'static, str>> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap_or("");
    let mut parts = status.split_ascii_whitespace();
    let (version, code) = (parts.next(), parts.next());
    if !matches!(version, Some("HTTP/1.1")) || code != Some("101") {
        let shown: String = status.chars().take(120).collect();
        return Err(format!("handshake refused: {shown:?}").into());
    }
    let mut accept = None;
    let mut extensions = Vec::new();
    for (name, value) in lines.filter_map(|l| l.split_once(':')) {
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("sec-websocket-accept") {
            accept = Some(value);
        } else if name.eq_ignore_ascii_case("sec-websocket-extensions") {
            extensions.push(value);
        }
    }
    let expected = handshake::accept_key(key);
    match accept {
        Some(a) if a.as_bytes() == expected => deflate::accepted(&extensions, offered),
        Some(a) => Err(format!("wrong Sec-WebSocket-Accept {a:?}").into()),
        None => Err("101 response without Sec-WebSocket-Accept".into()),
    }
}

/// Parses what client `idx` received. Returns the bytes consumed and, when
/// the connection must end, why. Replies (pong, close) go to `c.out`.
/// `inflater` is there when the request offered permessage-deflate.
pub fn process(
    c: &mut Client,
    idx: usize,
    data: &[u8],
    mut inflater: Option<&mut Inflater>,
    on: &mut dyn FnMut(Event<'_>),
) -> (usize, Option<End>) {
    let fail = |why: Cow<'static, str>| End {
        requested: false,
        why,
    };
    let mut pos = 0;
    if c.state == State::Handshake {
        let Some(end) = memchr::memmem::find(data, b"\r\n\r\n") else {
            if data.len() > MAX_HEAD {
                return (0, Some(fail("handshake response head too long".into())));
            }
            return (0, None);
        };
        match check_response(&data[..end], &c.key, inflater.is_some()) {
            Ok(deflate) => c.deflate = deflate,
            Err(why) => return (0, Some(fail(why))),
        }
        c.state = State::Open;
        pos = end + 4;
        // Frames that came with the head: the first bytes on the wire.
        c.wire += (data.len() - pos) as u64;
        on(Event::Open(idx));
    }
    loop {
        let rest = &data[pos..];
        let (h, hl) = match Header::parse(rest, false, MAX_FRAME) {
            Ok(Some(x)) => x,
            Ok(None) => return (pos, None),
            Err(e) => {
                let why = format!("bad frame from the server: {}", e.reason());
                return (pos, Some(fail(why.into())));
            }
        };
        if h.mask.is_some() {
            return (pos, Some(fail("the server sent a masked frame".into())));
        }
        let len = h.len as usize;
        if rest.len() < hl + len {
            return (pos, None);
        }
        let payload = &rest[hl..hl + len];
        pos += hl + len;
        if let Err(why) = on_frame(c, idx, &h, payload, inflater.as_deref_mut(), on) {
            return (pos, Some(fail(why)));
        }
    }
}

/// One whole frame from the server; an error ends the connection.
fn on_frame(
    c: &mut Client,
    idx: usize,
    h: &Header,
    payload: &[u8],
    inflater: Option<&mut Inflater>,
    on: &mut dyn FnMut(Event<'_>),
) -> Result<(), Cow<'static, str>> {
    if h.rsv1 {
        // RFC 7692 section 6: the first frame of a data message, and only
        // with the extension negotiated.
        if !c.deflate {
            return Err("RSV1 set but permessage-deflate was not negotiated".into());
        }
        if h.opcode == OpCode::Continuation || h.opcode.is_control() {
            return Err(format!("RSV1 set on a {:?} frame", h.opcode).into());
        }
    }
    match h.opcode {
        OpCode::Text | OpCode::Binary if h.fin => deliver(idx, payload, h.rsv1, inflater, on)?,
        OpCode::Text | OpCode::Binary => {
            c.frag = Some(payload.to_vec());
            c.frag_compressed = h.rsv1;
        }
        OpCode::Continuation => {
            let Some(f) = c.frag.as_mut() else {
                return Err("continuation without a message".into());
            };
            f.extend_from_slice(payload);
            if h.fin {
                let whole = c.frag.take().unwrap_or_default();
                deliver(idx, &whole, c.frag_compressed, inflater, on)?;
            }
        }
        OpCode::Ping => c.push_frame(OpCode::Pong, payload),
        OpCode::Pong => {}
        OpCode::Close => {
            if c.state == State::Closing {
                // Done on our side; the end of stream completes it.
                c.close_seen = true;
                return Ok(());
            }
            // Echo the status code, as RFC 6455 section 5.5.1 asks.
            let code = payload.get(..2).unwrap_or(&[]).to_vec();
            c.push_frame(OpCode::Close, &code);
            let status = payload
                .get(..2)
                .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
            let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or(&[]));
            return Err(format!("the server closed the WebSocket ({status}: {reason})").into());
        }
    }
    Ok(())
}

/// Hands a whole message to the mode, inflated first if `compressed`.
fn deliver(
    idx: usize,
    payload: &[u8],
    compressed: bool,
    inflater: Option<&mut Inflater>,
    on: &mut dyn FnMut(Event<'_>),
) -> Result<(), Cow<'static, str>> {
    if !compressed {
        on(Event::Message(idx, payload));
        return Ok(());
    }
    let inflater =
        inflater.ok_or("a compressed message, but no inflater (permessage-deflate not offered)")?;
    on(Event::Message(idx, inflater.message(payload)?));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8; 24] = b"dGhlIHNhbXBsZSBub25jZQ==";

    fn client(state: State) -> Client {
        let mut c = Client::new(7);
        c.key = *KEY;
        c.state = state;
        c
    }

    fn response(accept: &[u8]) -> Vec<u8> {
        let mut v = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                      Connection: Upgrade\r\nsec-websocket-accept: "
            .to_vec();
        v.extend_from_slice(accept);
        v.extend_from_slice(b"\r\n\r\n");
        v
    }

    fn feed(c: &mut Client, data: &[u8]) -> (usize, Option<End>, Vec<String>) {
        feed_with(c, data, None)
    }

    fn feed_with(
        c: &mut Client,
        data: &[u8],
        inflater: Option<&mut Inflater>,
    ) -> (usize, Option<End>, Vec<String>) {
        let mut got = Vec::new();
        let (used, end) = process(c, 7, data, inflater, &mut |ev| {
            got.push(match ev {
                Event::Open(i) => format!("open {i}"),
                Event::Message(i, m) => format!("{i}: {}", String::from_utf8_lossy(m)),
                _ => "other".into(),
            })
        });
        (used, end, got)
    }

    #[test]
    fn the_101_and_frames_arrive_the_same_in_any_split() {
        let mut data = response(&handshake::accept_key(KEY));
        frame::encode_frame(OpCode::Text, b"hello", &mut data);
        frame::encode_frame(OpCode::Text, &[b'x'; 300], &mut data);
        let mut c = client(State::Handshake);
        let (used, end, whole) = feed(&mut c, &data);
        assert!(end.is_none());
        assert_eq!(used, data.len());
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[1], "7: hello");
        for cut in 0..data.len() {
            let mut c = client(State::Handshake);
            let (mut inbuf, mut events) = (Vec::new(), Vec::new());
            for chunk in [&data[..cut], &data[cut..]] {
                inbuf.extend_from_slice(chunk);
                let (used, end, got) = feed(&mut c, &inbuf);
                assert!(end.is_none(), "cut {cut}");
                inbuf.drain(..used);
                events.extend(got);
            }
            assert_eq!(events, whole, "cut {cut}");
            assert!(inbuf.is_empty());
        }
    }

    #[test]
    fn refused_or_wrong_handshakes_end_the_client() {
        let (_, end, _) = feed(
            &mut client(State::Handshake),
            b"HTTP/1.1 503 Service Unavailable\r\n\r\n",
        );
        assert!(end.unwrap().why.contains("503"));
        let (_, end, _) = feed(&mut client(State::Handshake), &response(b"bogus"));
        assert!(end.unwrap().why.contains("Sec-WebSocket-Accept"));
    }

    #[test]
    fn pings_are_answered_and_closes_complete() {
        let mut c = client(State::Open);
        let mut data = Vec::new();
        frame::encode_frame(OpCode::Ping, b"hi", &mut data);
        let (_, end, _) = feed(&mut c, &data);
        assert!(end.is_none());
        let (h, n) = Header::parse(&c.out, true, 125).unwrap().unwrap();
        assert_eq!(h.opcode, OpCode::Pong);
        let mut payload = c.out[n..].to_vec();
        frame::unmask(&mut payload, h.mask.unwrap(), 0);
        assert_eq!(payload, b"hi");

        // We asked: the server's close frame waits for its end of stream.
        let mut c = client(State::Closing);
        let mut data = Vec::new();
        frame::encode_close(herald::ws::CloseCode(1000), "", &mut data);
        let (_, end, _) = feed(&mut c, &data);
        assert!(end.is_none() && c.close_seen);

        // The server asked: we echo the code and end.
        let mut c = client(State::Open);
        let (_, end, _) = feed(&mut c, &data);
        let end = end.unwrap();
        assert!(!end.requested && end.why.contains("1000"));
        let (h, _) = Header::parse(&c.out, true, 125).unwrap().unwrap();
        assert_eq!(h.opcode, OpCode::Close);
    }

    /// A server frame with RSV1 as given.
    fn frame_with(fin: bool, rsv1: bool, opcode: OpCode, payload: &[u8], out: &mut Vec<u8>) {
        let h = frame::FrameHead::with_bits(fin, rsv1, opcode, payload.len());
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(payload);
    }

    const ANSWER: &str =
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

    /// A 101 accepting permessage-deflate, then compressed messages: one in
    /// one frame, one in three frames (RSV1 on the first only), an
    /// uncompressed one between them.
    fn compressed_stream() -> (Vec<u8>, Vec<String>) {
        let mut data = response(&handshake::accept_key(KEY));
        data.truncate(data.len() - 2);
        data.extend_from_slice(format!("Sec-WebSocket-Extensions: {ANSWER}\r\n\r\n").as_bytes());
        let one = br#"{"items":[{"id":1,"name":"Desk lamp"},{"id":2,"name":"Desk lamp"}]}"#;
        let two = br#"{"uid":"u7","tags":["sale","sale","sale","new"]}"#.repeat(9);
        frame_with(true, true, OpCode::Text, &deflate::compress(one), &mut data);
        frame_with(true, false, OpCode::Text, b"plain", &mut data);
        let z = deflate::compress(&two);
        let (a, rest) = z.split_at(z.len() / 3);
        let (b, c) = rest.split_at(rest.len() / 2);
        frame_with(false, true, OpCode::Text, a, &mut data);
        frame_with(false, false, OpCode::Continuation, b, &mut data);
        frame_with(true, false, OpCode::Continuation, c, &mut data);
        let text = |m: &[u8]| format!("7: {}", String::from_utf8_lossy(m));
        let events = vec!["open 7".into(), text(one), text(b"plain"), text(&two)];
        (data, events)
    }

    #[test]
    fn compressed_messages_arrive_once_and_inflated_in_any_split() {
        let (data, whole) = compressed_stream();
        let mut inf = Inflater::new(1 << 20);
        let mut c = client(State::Handshake);
        let (used, end, got) = feed_with(&mut c, &data, Some(&mut inf));
        assert!(end.is_none(), "{end:?}");
        assert_eq!((used, &got), (data.len(), &whole));
        assert!(c.deflate);
        let head = data.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert_eq!(c.wire, (data.len() - head) as u64);
        // Split at every byte, and fed one byte at a time.
        let splits = (0..data.len()).map(|cut| vec![&data[..cut], &data[cut..]]);
        let bytes = std::iter::once(data.chunks(1).collect::<Vec<_>>());
        for chunks in splits.chain(bytes) {
            let mut c = client(State::Handshake);
            let (mut inbuf, mut events) = (Vec::new(), Vec::new());
            for chunk in &chunks {
                inbuf.extend_from_slice(chunk);
                let (used, end, got) = feed_with(&mut c, &inbuf, Some(&mut inf));
                assert!(end.is_none(), "{} chunks: {end:?}", chunks.len());
                inbuf.drain(..used);
                events.extend(got);
            }
            assert_eq!(events, whole, "first chunk {} bytes", chunks[0].len());
            assert!(inbuf.is_empty());
        }
    }

    #[test]
    fn rsv1_out_of_place_ends_the_client_with_the_reason() {
        let z = deflate::compress(b"hello");
        let mut inf = Inflater::new(1 << 20);
        // Not negotiated (not offered, or offered and declined).
        let mut data = Vec::new();
        frame_with(true, true, OpCode::Text, &z, &mut data);
        let (_, end, got) = feed(&mut client(State::Open), &data);
        assert!(end.unwrap().why.contains("not negotiated") && got.is_empty());
        let (_, end, _) = feed_with(&mut client(State::Open), &data, Some(&mut inf));
        assert!(end.unwrap().why.contains("not negotiated"));
        // Negotiated, but on a continuation or a control frame.
        let mut data = Vec::new();
        frame_with(false, true, OpCode::Text, &z[..2], &mut data);
        frame_with(true, true, OpCode::Continuation, &z[2..], &mut data);
        let mut c = client(State::Open);
        c.deflate = true;
        let (_, end, got) = feed_with(&mut c, &data, Some(&mut inf));
        let why = end.unwrap().why;
        assert!(
            why.contains("RSV1") && why.contains("Continuation"),
            "{why}"
        );
        assert!(got.is_empty());
        let mut data = Vec::new();
        frame_with(true, true, OpCode::Ping, b"", &mut data);
        let mut c = client(State::Open);
        c.deflate = true;
        let (_, end, _) = feed_with(&mut c, &data, Some(&mut inf));
        assert!(end.unwrap().why.contains("Ping"));
        // Garbage behind RSV1.
        let mut data = Vec::new();
        frame_with(true, true, OpCode::Text, &[0xff; 8], &mut data);
        let mut c = client(State::Open);
        c.deflate = true;
        let (_, end, _) = feed_with(&mut c, &data, Some(&mut inf));
        assert!(end.unwrap().why.contains("inflate"));
    }

    #[test]
    fn an_extension_answer_is_checked_against_the_offer() {
        let mut head = response(&handshake::accept_key(KEY));
        head.truncate(head.len() - 2);
        head.extend_from_slice(format!("sec-websocket-extensions: {ANSWER}\r\n\r\n").as_bytes());
        let (_, end, _) = feed(&mut client(State::Handshake), &head);
        assert!(end.unwrap().why.contains("not offered"));
        // Offered and declined: an uncompressed connection.
        let mut inf = Inflater::new(1 << 20);
        let mut c = client(State::Handshake);
        let plain = response(&handshake::accept_key(KEY));
        let (_, end, got) = feed_with(&mut c, &plain, Some(&mut inf));
        assert!(end.is_none() && !c.deflate && got == ["open 7"]);
    }
}
