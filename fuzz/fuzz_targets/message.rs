//! `ws::decode::next`, the pull parser that assembles messages: arbitrary bytes under a
//! fuzz-chosen chunking must decode exactly as in one read, with bounded
//! state; valid frame sequences (fragments, interleaved pings) built from
//! the input must decode to what was encoded under every chunking.
//!
//! Input: max_message selector, four chunk sizes (0 = all the rest), then
//! the client's bytes (also the recipe for the round trip).
#![no_main]

use herald::ws::decode::{self, Partial};
use herald::ws::frame::{encode_masked, OpCode};
use herald::ws::{CloseCode, Event};
use herald_fuzz::{chunks, Owned};
use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;

const MAX_MESSAGES: [usize; 8] = [1, 16, 125, 126, 1000, 4096, 8192, 65536];

/// What a decoder may hold besides the message itself: the state struct and
/// the small body buffer (up to 4 KiB) it keeps between messages.
fn heap_bound(max_message: usize) -> usize {
    max_message + std::mem::size_of::<Partial>() + 4096
}

#[derive(Debug, PartialEq)]
struct Outcome {
    events: Vec<Owned>,
    /// The close code of a failure. Its reason text may differ with the
    /// reads (a character cut at the end of a text frame is "text ends
    /// inside a character" when the frame spans reads, "text is not UTF-8"
    /// in one read), and only the code means anything to the peer.
    result: Result<(), CloseCode>,
    /// Whether state is kept for the next read; None once the connection is
    /// over (failure or close), when the reactor drops the state anyway.
    kept: Option<bool>,
}

/// Feeds the reads one by one, as the reactor does: stop at the first
/// failure and after a close frame.
fn decode_all(reads: &[&[u8]], max_message: usize) -> Outcome {
    let mut state: Option<Box<Partial>> = None;
    let mut events = Vec::new();
    let mut result = Ok(());
    let mut closed = false;
    'reads: for read in reads {
        let mut buf = read.to_vec();
        let mut at = 0;
        // Pull events until the read is used up, as the reactor does.
        loop {
            let left = buf.len() - at;
            match decode::next(&mut state, &mut buf[at..], max_message, None) {
                Ok((used, None)) => {
                    assert_eq!(used, left, "no event, yet bytes left over");
                    break;
                }
                Ok((used, Some(e))) => {
                    assert!(used <= left, "consumed {used} of {left}");
                    if let Event::Text(t) = e {
                        assert!(std::str::from_utf8(t.as_bytes()).is_ok());
                    }
                    closed |= matches!(e, Event::Close(..));
                    events.push(Owned::from_event(&e));
                    at += used;
                    if closed {
                        break 'reads;
                    }
                }
                Err(f) => {
                    result = Err(f);
                    break 'reads;
                }
            }
        }
        if let Some(p) = &state {
            assert!(
                p.heap_bytes() <= heap_bound(max_message),
                "decoder state holds {} bytes with max_message {max_message}",
                p.heap_bytes()
            );
        }
    }
    let over = result.is_err() || closed;
    Outcome {
        events,
        result: result.map_err(|f| f.code),
        kept: (!over).then_some(state.is_some()),
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let (cfg, stream) = data.split_at(5);
    let max_message = MAX_MESSAGES[cfg[0] as usize % MAX_MESSAGES.len()];
    let whole = decode_all(&[stream], max_message);
    let split = decode_all(&chunks(stream, &cfg[1..5]), max_message);
    assert_eq!(split, whole, "chunking changed the outcome");

    let mut delivered = 0;
    for e in &whole.events {
        delivered += e.payload_len();
        match e {
            Owned::Text(_) | Owned::Binary(_) => assert!(e.payload_len() <= max_message),
            _ => assert!(e.payload_len() <= 125),
        }
    }
    assert!(
        delivered <= stream.len(),
        "{delivered} bytes out of {}",
        stream.len()
    );

    round_trip(stream);
});

const CLOSE_CODES: [u16; 9] = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011];

fn frame(u: &mut Unstructured<'_>, fin: bool, op: OpCode, payload: &[u8], wire: &mut Vec<u8>) {
    let mask: [u8; 4] = u.arbitrary().unwrap_or_default();
    encode_masked(fin, op, payload, mask, wire);
}

/// A ping or a pong, standalone or between two fragments.
fn control(u: &mut Unstructured<'_>, wire: &mut Vec<u8>, expect: &mut Vec<Owned>) {
    let ping: bool = u.arbitrary().unwrap_or_default();
    let n = u.int_in_range(0..=125).unwrap_or_default();
    let p = u.bytes(n.min(u.len())).unwrap_or_default().to_vec();
    frame(
        u,
        true,
        if ping { OpCode::Ping } else { OpCode::Pong },
        &p,
        wire,
    );
    expect.push(if ping { Owned::Ping(p) } else { Owned::Pong(p) });
}

/// Builds a valid client byte stream from `recipe` and checks that it decodes
/// to exactly the events encoded, whatever the reads look like.
fn round_trip(recipe: &[u8]) {
    let mut u = Unstructured::new(recipe);
    let sizes: [u8; 4] = u.arbitrary().unwrap_or_default();
    let mut wire = Vec::new();
    let mut expect = Vec::new();
    let mut max_message = 1;
    let mut closed = false;

    while !u.is_empty() && wire.len() < 2048 {
        match u.choose_index(4).unwrap_or_default() {
            0 | 1 => {
                let text: bool = u.arbitrary().unwrap_or_default();
                let n = u.int_in_range(0..=600).unwrap_or_default();
                let raw = u.bytes(n.min(u.len())).unwrap_or_default();
                let body = if text {
                    String::from_utf8_lossy(raw).into_owned().into_bytes()
                } else {
                    raw.to_vec()
                };
                max_message = max_message.max(body.len());
                // Fragments cut anywhere, inside UTF-8 characters too.
                let mut cuts: Vec<usize> = (0..u.int_in_range(0..=3).unwrap_or_default())
                    .map(|_| u.int_in_range(0..=body.len()).unwrap_or_default())
                    .collect();
                cuts.sort_unstable();
                cuts.push(body.len());
                let mut from = 0;
                for (i, &to) in cuts.iter().enumerate() {
                    let op = match (i, text) {
                        (0, true) => OpCode::Text,
                        (0, false) => OpCode::Binary,
                        _ => OpCode::Continuation,
                    };
                    let fin = i + 1 == cuts.len();
                    frame(&mut u, fin, op, &body[from..to], &mut wire);
                    from = to;
                    if !fin && u.arbitrary().unwrap_or_default() {
                        control(&mut u, &mut wire, &mut expect);
                    }
                }
                expect.push(if text {
                    Owned::Text(String::from_utf8(body).expect("lossy gives UTF-8"))
                } else {
                    Owned::Binary(body)
                });
            }
            2 => control(&mut u, &mut wire, &mut expect),
            _ => {
                let mut payload = Vec::new();
                if u.arbitrary().unwrap_or_default() {
                    let i = u
                        .int_in_range(0..=CLOSE_CODES.len() + 1999)
                        .unwrap_or_default();
                    let code = match CLOSE_CODES.get(i) {
                        Some(&c) => c,
                        None => 3000 + (i - CLOSE_CODES.len()) as u16,
                    };
                    let n = u.int_in_range(0..=123).unwrap_or_default();
                    let raw = u.bytes(n.min(u.len())).unwrap_or_default();
                    let reason = String::from_utf8_lossy(raw);
                    let mut end = reason.len().min(123);
                    while !reason.is_char_boundary(end) {
                        end -= 1;
                    }
                    payload.extend_from_slice(&code.to_be_bytes());
                    payload.extend_from_slice(&reason.as_bytes()[..end]);
                    expect.push(Owned::Close(Some(code), reason[..end].to_owned()));
                } else {
                    expect.push(Owned::Close(None, String::new()));
                }
                frame(&mut u, true, OpCode::Close, &payload, &mut wire);
                // Whatever follows a close frame is never read.
                let rest = u.len();
                wire.extend_from_slice(u.bytes(rest).unwrap_or_default());
                closed = true;
            }
        }
    }
    // Controls are capped at 125 bytes, and frames at max_message.
    let max_message = max_message.max(125);

    let want = Outcome {
        events: expect,
        result: Ok(()),
        kept: (!closed).then_some(false),
    };
    let check = |reads: &[&[u8]], how: &str| {
        let got = decode_all(reads, max_message);
        assert_eq!(got, want, "{how}, closed {closed}");
    };
    check(&[&wire], "one read");
    check(&chunks(&wire, &sizes), "fuzz-chosen reads");
    check(&chunks(&wire, &[1]), "one byte per read");
    // Every cut into two reads (sampled on long streams).
    let step = (wire.len() / 256).max(1);
    for i in (0..=wire.len()).step_by(step) {
        check(&[&wire[..i], &wire[i..]], &format!("cut at {i}"));
    }
}
