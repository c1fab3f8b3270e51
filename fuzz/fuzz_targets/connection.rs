//! A whole server-side connection, sans-IO: arbitrary client bytes through
//! the same state machines the reactor drives (`ws::conn` handshake and
//! frames, `line::next` plus the command parser, `http::conn::next`), with
//! no socket and no thread. The outcome (what the application hears, what
//! the peer is sent first, how the connection ends) must not depend on how
//! the bytes are cut into reads; the parse state kept between reads must
//! stay within the limits; and WebSocket and HTTP connections answer with
//! an HTTP response before anything else.
//!
//! Input: listener selector (0 WebSocket, 1 text port, 2 HTTP; its top
//! bits pick a second read size), a flags byte (bit 0: a valid WebSocket
//! handshake precedes the rest; bits 1-7: a read size, 0 = all the rest),
//! then the client's bytes. The layout is the one of the earlier live-server
//! target, so its corpus still applies.
#![no_main]

use herald::http::conn::{self as http_conn, HttpState, Step as HttpStep};
use herald::line::{self, Line, LineState};
use herald::push::command;
use herald::ws::conn::{self as ws_conn, Opening, Step as WsStep};
use herald::ws::decode::Partial;
use herald::ws::deflate::{offer, Inflater};
use herald::ws::CloseCode;
use herald_fuzz::{chunks, Owned};
use libfuzzer_sys::fuzz_target;

/// A valid upgrade request (the RFC 6455 example key).
const HANDSHAKE: &[u8] = b"GET /fuzz?uid=a HTTP/1.1\r\nHost: herald\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// Small limits, so that inputs reach them.
const MAX_HEAD: usize = 1024;
const MAX_MESSAGE: usize = 4096;
const MAX_LINE: usize = 1024;
const MAX_BODY: usize = 2048;

#[derive(Debug, PartialEq)]
enum Seen {
    /// The upgrade request the application would be asked about.
    Upgrade(String),
    Message(Owned),
    Control,
    /// A text-port line: whether it parsed as a command.
    Command(bool),
    LineTooLong,
    Request(String, usize),
}

#[derive(Debug, PartialEq)]
enum End {
    /// All input consumed; the connection stays open.
    Open,
    /// Refused before the upgrade (HTTP status of the response written).
    Refused(u16),
    Closed,
    /// A WebSocket protocol violation, with its close code.
    Failed(CloseCode),
    /// An HTTP request refused with this status.
    HttpFailed(u16),
}

#[derive(Debug, PartialEq)]
struct Outcome {
    seen: Vec<Seen>,
    end: End,
}

fn status_of(out: &[u8]) -> u16 {
    assert!(
        out.starts_with(b"HTTP/1.1 "),
        "first bytes sent are not an HTTP response: {:?}",
        String::from_utf8_lossy(&out[..out.len().min(120)])
    );
    std::str::from_utf8(&out[9..12])
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("a three-digit status")
}

/// WebSocket: the handshake, then frames, as `reactor::input` sequences them.
fn websocket(reads: &[&[u8]]) -> Outcome {
    let mut seen = Vec::new();
    let mut head: Option<Box<Vec<u8>>> = None;
    let mut partial: Option<Box<Partial>> = None;
    let mut out = Vec::new();
    let mut open = false;
    // permessage-deflate, when the request offers it acceptably.
    let mut inflater: Option<Inflater> = None;
    for read in reads {
        let mut buf = read.to_vec();
        let mut start = 0;
        if !open {
            let (consumed, from_held) =
                match ws_conn::handshake(&mut head, &buf, MAX_HEAD, &mut out) {
                    None => {
                        let held = head.as_ref().map_or(0, |h| h.len());
                        assert!(held <= MAX_HEAD, "{held} head bytes held");
                        continue;
                    }
                    Some(Opening::Refused(_)) => {
                        let status = status_of(&out);
                        assert!((400..600).contains(&status), "refused with {status}");
                        return Outcome {
                            seen,
                            end: End::Refused(status),
                        };
                    }
                    Some(Opening::Request {
                        head: h,
                        accept,
                        consumed,
                        from_held,
                    }) => {
                        seen.push(Seen::Upgrade(h.target.to_owned()));
                        let deflate = offer::negotiate(h.values("sec-websocket-extensions"));
                        inflater = deflate.map(|_| Inflater::default());
                        ws_conn::accept(&accept, None, deflate, &mut out);
                        (consumed, from_held)
                    }
                };
            assert_eq!(status_of(&out), 101);
            open = true;
            if from_held {
                // Frames that came with the head's last read.
                let held = *head.take().expect("the head was held");
                buf = held[consumed..].to_vec();
            } else {
                start = consumed;
            }
        }
        let mut at = start;
        loop {
            let left = buf.len() - at;
            let (used, step) = ws_conn::frames(
                &mut partial,
                &mut buf[at..],
                MAX_MESSAGE,
                inflater.as_mut(),
                &mut out,
            );
            assert!(used <= left, "consumed {used} of {left}");
            at += used;
            match step {
                None => {
                    assert_eq!(used, left, "no step, yet bytes left over");
                    break;
                }
                Some(WsStep::Message(e)) => {
                    let e = Owned::from_event(&e);
                    assert!(e.payload_len() <= MAX_MESSAGE);
                    seen.push(Seen::Message(e));
                }
                Some(WsStep::Handled) => seen.push(Seen::Control),
                Some(WsStep::Closed) => {
                    return Outcome {
                        seen,
                        end: End::Closed,
                    }
                }
                Some(WsStep::Failed(f)) => {
                    return Outcome {
                        seen,
                        end: End::Failed(f.code),
                    }
                }
            }
        }
        if let Some(p) = &partial {
            assert!(p.heap_bytes() <= MAX_MESSAGE + std::mem::size_of::<Partial>() + 4096);
        }
    }
    if !open && !out.is_empty() {
        panic!("bytes sent before the handshake finished");
    }
    Outcome {
        seen,
        end: End::Open,
    }
}

/// Text port: lines, each parsed as a push command.
fn text(reads: &[&[u8]]) -> Outcome {
    let mut seen = Vec::new();
    let mut state: Option<Box<LineState>> = None;
    for read in reads {
        let mut rest: &[u8] = read;
        loop {
            let (used, found) = line::next(&mut state, rest, MAX_LINE);
            match found {
                None => {
                    assert_eq!(used, rest.len());
                    break;
                }
                Some(Line::TooLong) => seen.push(Seen::LineTooLong),
                Some(Line::Complete(l)) => {
                    assert!(l.len() <= MAX_LINE);
                    seen.push(Seen::Command(command::parse(l).is_ok()));
                }
            }
            rest = &rest[used..];
        }
        if let Some(st) = &state {
            assert!(st.heap_bytes() <= std::mem::size_of::<LineState>() + 2 * MAX_LINE + 16);
        }
    }
    Outcome {
        seen,
        end: End::Open,
    }
}

/// HTTP API: pipelined requests, each with its body.
fn http(reads: &[&[u8]]) -> Outcome {
    let mut seen = Vec::new();
    let mut state: Option<Box<HttpState>> = None;
    for read in reads {
        let mut rest: &[u8] = read;
        loop {
            let (used, found) = http_conn::next(&mut state, rest, MAX_HEAD, MAX_BODY);
            assert!(used <= rest.len());
            match found {
                None => {
                    assert_eq!(used, rest.len());
                    break;
                }
                Some(HttpStep::Failed(status, reason)) => {
                    assert!((400..600).contains(&status), "{status} {reason}");
                    let mut out = Vec::new();
                    herald::http::write_error(&mut out, status, reason, "");
                    assert_eq!(status_of(&out), status);
                    return Outcome {
                        seen,
                        end: End::HttpFailed(status),
                    };
                }
                Some(HttpStep::Request(p)) => {
                    assert!(p.body.len() <= MAX_BODY);
                    seen.push(Seen::Request(p.head.target.to_owned(), p.body.len()));
                }
            }
            rest = &rest[used..];
        }
        if let Some(st) = &state {
            assert!(
                st.heap_bytes() <= std::mem::size_of::<HttpState>() + 4 * (MAX_HEAD + MAX_BODY)
            );
        }
    }
    Outcome {
        seen,
        end: End::Open,
    }
}

fuzz_target!(|data: &[u8]| {
    let [which, flags, bytes @ ..] = data else {
        return;
    };
    let mut input = Vec::new();
    let sizes = [flags >> 1, which >> 2];
    let which = which % 3;
    if which == 0 && flags & 1 != 0 {
        input.extend_from_slice(HANDSHAKE);
    }
    input.extend_from_slice(bytes);
    let run = match which {
        0 => websocket,
        1 => text,
        _ => http,
    };
    let whole = run(&[&input]);
    let split = run(&chunks(&input, &sizes));
    assert_eq!(split, whole, "the reads changed the outcome");
    // One byte per read on short inputs (the handshake phase re-scans the
    // held head per read, so long inputs would cost quadratic time here; the
    // fuzz-chosen sizes reach 1 on those).
    if input.len() <= 512 {
        let bytewise = run(&chunks(&input, &[1]));
        assert_eq!(bytewise, whole, "one byte per read changed the outcome");
    }
});
