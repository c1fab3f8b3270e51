//! The pull parser: events, splits, sequencing, limits.

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
            match next(&mut state, &mut buf[pos..], max, None) {
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
        let (used, ev) = next(state, data, max, None).unwrap();
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
    let (used, ev) = next(&mut state, &mut wire, 100, None).unwrap();
    assert_eq!((used, ev), (a.len(), Some(Event::Text("hi"))));
    let (used2, ev) = next(&mut state, &mut wire[used..], 100, None).unwrap();
    assert_eq!(ev, Some(Event::Binary(b"xyz")));
    assert_eq!(used + used2, wire.len());
    assert_eq!(next(&mut state, &mut [], 100, None).unwrap(), (0, None));
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
    let res = next(&mut state, &mut w, usize::MAX, None);
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

/// permessage-deflate: compressed messages (RSV1) on a connection that
/// negotiated it.
#[cfg(feature = "deflate")]
mod compressed {
    use super::*;
    use crate::ws::deflate::{Deflater, Inflater};

    /// The compressed payload of `text`, as a client would send it.
    fn deflated(text: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        assert!(Deflater::new(6).frame(OpCode::Text, &[text], false, &mut f));
        let (_, n) = Header::parse(&f, false, u64::MAX >> 1).unwrap().unwrap();
        f[n..].to_vec()
    }

    /// A masked frame with RSV1 set when `rsv1`.
    fn frame1(fin: bool, rsv1: bool, op: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut v = frame(fin, op, payload);
        if rsv1 {
            v[0] |= 0x40;
        }
        v
    }

    /// Runs `chunks` through a deflate connection; owned text events.
    fn run_z(chunks: &[&[u8]], max: usize) -> (Vec<String>, Result<(), Failure>) {
        let mut state: Option<Box<Partial>> = None;
        let mut inflater = Inflater::default();
        let mut got = Vec::new();
        for c in chunks {
            let mut buf = c.to_vec();
            let mut pos = 0;
            loop {
                match next(&mut state, &mut buf[pos..], max, Some(&mut inflater)) {
                    Err(f) => return (got, Err(f)),
                    Ok((used, ev)) => {
                        pos += used;
                        match ev {
                            None => break,
                            Some(Event::Text(t)) => got.push(t.to_string()),
                            Some(e) => got.push(format!("{e:?}")),
                        }
                    }
                }
            }
        }
        assert!(state.is_none(), "no state survives between messages");
        (got, Ok(()))
    }

    #[test]
    fn compressed_and_plain_messages_interleave_in_any_split() {
        let big = "{\"uid\":\"u1\",\"percent\":\"88%\"} ".repeat(40);
        let z = deflated(big.as_bytes());
        let mut wire = frame1(true, true, OpCode::Text, &z);
        wire.extend(frame(true, OpCode::Text, b"plain"));
        // Fragmented: RSV1 on the first frame only, a ping in between.
        let (a, b) = z.split_at(z.len() / 2);
        wire.extend(frame1(false, true, OpCode::Text, a));
        wire.extend(frame(true, OpCode::Ping, b"p"));
        wire.extend(frame1(true, false, OpCode::Continuation, b));
        let want = vec![
            big.clone(),
            "plain".to_string(),
            "Ping([112])".to_string(),
            big.clone(),
        ];
        for i in (0..wire.len()).step_by(7) {
            let (got, res) = run_z(&[&wire[..i], &wire[i..]], 1 << 20);
            assert_eq!(res, Ok(()), "split {i}");
            assert_eq!(got, want, "split {i}");
        }
    }

    #[test]
    fn rsv1_is_refused_where_the_rfc_forbids_it() {
        let z = deflated(&[b'x'; 100]);
        // Not negotiated.
        let (_, res, _) = run(&[&frame1(true, true, OpCode::Text, &z)], 1000);
        assert_eq!(res.unwrap_err().code, CloseCode::PROTOCOL);
        // On a continuation frame, or a control frame.
        let mut w = frame1(false, false, OpCode::Text, b"a");
        w.extend(frame1(true, true, OpCode::Continuation, b"b"));
        assert_eq!(run_z(&[&w], 1000).1.unwrap_err().code, CloseCode::PROTOCOL);
        let w = frame1(true, true, OpCode::Ping, b"");
        assert_eq!(run_z(&[&w], 1000).1.unwrap_err().code, CloseCode::PROTOCOL);
    }

    #[test]
    fn a_bomb_is_1009_and_bad_data_1007() {
        // 4 MiB of one byte: a few KiB compressed, far under the cap as
        // sent, far over it inflated.
        let z = deflated(&vec![b'a'; 4 << 20]);
        assert!(z.len() < 10_000);
        let (_, res) = run_z(&[&frame1(true, true, OpCode::Text, &z)], 1 << 20);
        assert_eq!(res.unwrap_err().code, CloseCode::TOO_BIG);
        // Fragmented, the same.
        let (a, b) = z.split_at(z.len() / 2);
        let mut w = frame1(false, true, OpCode::Binary, a);
        w.extend(frame1(true, false, OpCode::Continuation, b));
        assert_eq!(
            run_z(&[&w], 1 << 20).1.unwrap_err().code,
            CloseCode::TOO_BIG
        );
        // Cut short, garbage, or inflating to invalid UTF-8.
        let z = deflated("{\"uid\":\"u1\"} ".repeat(50).as_bytes());
        let cut = frame1(true, true, OpCode::Text, &z[..z.len() - 1]);
        assert_eq!(
            run_z(&[&cut], 1 << 20).1.unwrap_err().code,
            CloseCode::INVALID_DATA
        );
        let junk = frame1(true, true, OpCode::Text, &[0xff; 20]);
        assert_eq!(
            run_z(&[&junk], 1 << 20).1.unwrap_err().code,
            CloseCode::INVALID_DATA
        );
        let bad = deflated(&[
            0xff, 0xfe, b'a', b'a', b'a', b'a', b'a', b'a', b'a', b'a', b'a', b'a', b'a', b'a',
            b'a', b'a',
        ]);
        let w = frame1(true, true, OpCode::Text, &bad);
        assert_eq!(
            run_z(&[&w], 1 << 20).1.unwrap_err().code,
            CloseCode::INVALID_DATA
        );
    }
}
