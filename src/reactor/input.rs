//! Input: reads into the shared buffer and drives each connection's sans-IO
//! state machine (WebSocket, line, HTTP, outbound bytes), handing the events
//! to the application. Parser state lives in [`Inputs`], beside the slots,
//! so an event can borrow it while the application holds the `Context`.

use super::app::App;
use super::message::{Message, Request, Upgrade, UpgradeRequest};
use super::slot::{Flags, Kind};
use super::{Refusal, Server};
use crate::http::conn::{self as http_conn, HttpState};
use crate::http::{self};
use crate::line::{self, Line, LineState};
use crate::sansio::Held;
use crate::sys;
use crate::ws::conn::{self as ws_conn, Opening, Step};
use crate::ws::{Event, Partial};
use std::io;

/// A connection's parser state between reads: which one depends on its kind
/// and phase. Held as `Option<Box<Input>>`: one thin pointer per idle
/// connection, `None` while no input is pending.
pub(super) enum Input {
    /// WebSocket handshake bytes not yet forming a whole request head.
    Head(Vec<u8>),
    Ws(Partial),
    Lines(LineState),
    Http(HttpState),
}

impl Input {
    fn heap_bytes(this: &Option<Box<Input>>) -> usize {
        match this.as_deref() {
            None => 0,
            Some(Input::Head(v)) => v.capacity() + 32,
            Some(Input::Ws(p)) => p.heap_bytes() + 8,
            Some(Input::Lines(l)) => l.heap_bytes() + 8,
            Some(Input::Http(h)) => h.heap_bytes() + 8,
        }
    }
}

macro_rules! held_as {
    ($t:ty, $variant:ident) => {
        impl Held<$t> for Option<Box<Input>> {
            fn get(&mut self) -> Option<&mut $t> {
                match self.as_deref_mut() {
                    Some(Input::$variant(x)) => Some(x),
                    _ => None,
                }
            }
            fn get_or_insert(&mut self) -> &mut $t {
                if !matches!(self.as_deref(), Some(Input::$variant(_))) {
                    *self = Some(Box::new(Input::$variant(<$t>::default())));
                }
                match self.as_deref_mut() {
                    Some(Input::$variant(x)) => x,
                    _ => unreachable!("the variant was just stored"),
                }
            }
            fn clear(&mut self) {
                *self = None;
            }
        }
    };
}

held_as!(Vec<u8>, Head);
held_as!(Partial, Ws);
held_as!(LineState, Lines);
held_as!(HttpState, Http);

/// Parser states by slot index.
#[derive(Default)]
pub(super) struct Inputs(Vec<Option<Box<Input>>>);

impl Inputs {
    pub(super) fn at(&mut self, idx: u32) -> &mut Option<Box<Input>> {
        let i = idx as usize;
        if i >= self.0.len() {
            self.0.resize_with(i + 1, || None);
        }
        &mut self.0[i]
    }

    /// Drops the state of `idx`, keeping the byte count in step.
    pub(super) fn clear_at(&mut self, idx: u32, accounted: &mut usize) {
        if let Some(slot) = self.0.get_mut(idx as usize) {
            *accounted -= Input::heap_bytes(slot);
            *slot = None;
        }
    }
}

/// Full-buffer reads handled per readiness event before output is flushed.
const MAX_READS_PER_EVENT: usize = 16;

/// A text-port backend that keeps writing (pipelining faster than herald
/// delivers) is read for longer before output is flushed, so that each
/// recipient gets many messages per write: on loopback a write costs 5-10 us
/// of kernel time whatever it carries, so a flood's throughput is set by how
/// many flush rounds it takes. Bounded so that one busy backend cannot
/// starve the others or hold latency hostage:
/// - in bytes: at most this many reads per event (16 MiB with the default
///   read buffer);
/// - in time, per loop iteration (shared by every text connection read in
///   it): no new read once the iteration has read for as long as its last
///   flush took, at least `TEXT_READ_MIN_MS` and at most `TEXT_READ_MAX_MS`.
///   Reading then takes at most about half of a flood's time, and other
///   connections wait at most `TEXT_READ_MAX_MS` beyond the flush itself.
///
/// A backend that is not flooding is unaffected: its reads end at EAGAIN.
/// Measured (BENCHMARKS.md, 10,000 recipients, 300,000 pipelined pushes):
/// a fixed 20 ms gave 8-9 flush rounds and about 330 k pushes/s; this rule
/// 2-3 rounds.
const TEXT_READS_PER_EVENT: usize = 256;
const TEXT_READ_MIN_MS: u64 = 20;
const TEXT_READ_MAX_MS: u64 = 100;

impl<A: App> Server<A> {
    /// Reads and handles input. A read that fills the whole buffer is
    /// followed by another (up to `MAX_READS_PER_EVENT`) before output is
    /// flushed: a backend pipelining thousands of pushes then reaches each
    /// recipient with one write for all of its messages, not one per message.
    pub(super) fn readable(&mut self, idx: u32) {
        let fd = self.cx.slots[idx as usize].fd;
        let text = self.cx.slots[idx as usize].kind == Kind::Text;
        let reads = if text {
            TEXT_READS_PER_EVENT
        } else {
            MAX_READS_PER_EVENT
        };
        let until = if text { self.text_read_until() } else { 0 };
        for _ in 0..reads {
            let n = match sys::read(fd, &mut self.rbuf) {
                Ok(0) => {
                    self.peer_eof(idx);
                    break;
                }
                Ok(n) => n,
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::Interrupted =>
                {
                    break
                }
                Err(_) => {
                    self.cx.kill(idx, true);
                    break;
                }
            };
            self.cx.stats.bytes_in += n as u64;
            let s = &mut self.cx.slots[idx as usize];
            let kind = s.kind;
            if !s.flags.has(Flags::CLOSING) {
                if !s.flags.has(Flags::HANDSHAKE) {
                    s.t = self.cx.now;
                    s.flags.clear(Flags::PINGED);
                }
                let before = Input::heap_bytes(self.inputs.at(idx));
                match kind {
                    Kind::WebSocket => self.ws_input(idx, n),
                    Kind::Text => self.text_input(idx, n),
                    Kind::Http => self.http_input(idx, n),
                    Kind::Outbound => {
                        let id = self.cx.id(idx);
                        self.app.on_data(&mut self.cx, id, &self.rbuf[..n]);
                    }
                    Kind::Free | Kind::Listener | Kind::Signal | Kind::Waker => return,
                }
                let held = self.inputs.at(idx);
                self.cx.input_bytes = self.cx.input_bytes + Input::heap_bytes(held) - before;
            }
            let s = &self.cx.slots[idx as usize];
            if s.flags.has(Flags::CLOSING) || !s.live() {
                // Draining a closing connection: input is discarded.
                self.inputs.clear_at(idx, &mut self.cx.input_bytes);
            }
            // A short read usually means the socket is drained. A backend on
            // the text port that pipelines keeps writing while we read, so
            // there we read on until EAGAIN: one more syscall per event buys
            // more messages per recipient write.
            if !s.live() || (n < self.rbuf.len() && kind != Kind::Text) {
                break;
            }
            if text && sys::monotonic_ms() >= until {
                break;
            }
        }
    }

    /// When this iteration's text-port reading ends (see `TEXT_READ_MIN_MS`):
    /// fixed at the first text read of the iteration.
    fn text_read_until(&mut self) -> u64 {
        *self.text_until.get_or_insert_with(|| {
            let budget = self.last_flush_ms.clamp(TEXT_READ_MIN_MS, TEXT_READ_MAX_MS);
            sys::monotonic_ms() + budget
        })
    }

    fn peer_eof(&mut self, idx: u32) {
        if self.cx.slots[idx as usize].kind == Kind::Text {
            self.text_eof(idx);
        }
        self.inputs.clear_at(idx, &mut self.cx.input_bytes);
        let cx = &mut self.cx;
        let s = &mut cx.slots[idx as usize];
        if s.out_empty() && !s.flags.has(Flags::DIRTY | Flags::DEFERRED) {
            cx.kill(idx, false);
            return;
        }
        // Let queued (and deferred) replies reach a peer that only
        // half-closed (`nc -q`).
        s.flags.set(Flags::PEER_EOF | Flags::CLOSING);
        s.t = cx.now;
        let token = cx.id(idx).as_u64();
        let s = &cx.slots[idx as usize];
        let want_out = s.flags.has(Flags::WANT_OUT);
        let _ = cx.epoll.modify(s.fd, token, false, want_out);
        let due = cx.now + super::output::ms_to_ticks(cx.limits.close_timeout_ms);
        cx.schedule(idx, due);
    }

    fn ws_input(&mut self, idx: u32, n: usize) {
        if !self.cx.slots[idx as usize].flags.has(Flags::HANDSHAKE) {
            let Server {
                cx,
                app,
                rbuf,
                inputs,
                ..
            } = self;
            ws_frames(cx, app, inputs.at(idx), idx, &mut rbuf[..n]);
            return;
        }
        let fd = self.cx.slots[idx as usize].fd;
        let Server {
            cx,
            app,
            rbuf,
            inputs,
            ..
        } = self;
        let id = cx.id(idx);
        let held = inputs.at(idx);
        let max_head = cx.limits.max_head;
        let (accept, consumed, from_held, decision) =
            match ws_conn::handshake(held, &rbuf[..n], max_head, &mut cx.output(idx)) {
                None => return,
                Some(Opening::Refused(e)) => {
                    cx.stats.handshake_failures += 1;
                    cx.note_refusal(id, Refusal::Http(e.status()), e.reason());
                    cx.begin_close(idx);
                    return;
                }
                Some(Opening::Request {
                    head,
                    accept,
                    consumed,
                    from_held,
                }) => {
                    let decision = match cx.admit_handshake(idx, fd, &head) {
                        Err((status, reason)) => Upgrade::Refuse(status, reason.into()),
                        Ok(client) => {
                            let (path, query) = http::split_target(head.target);
                            let req = UpgradeRequest {
                                head: &head,
                                path,
                                query,
                                peer: client
                                    .map(Some)
                                    .map(std::cell::OnceCell::from)
                                    .unwrap_or_default(),
                                fd,
                            };
                            app.on_upgrade(cx, id, &req)
                        }
                    };
                    (accept, consumed, from_held, decision)
                }
            };
        let s = &cx.slots[idx as usize];
        if !s.live() || s.flags.has(Flags::CLOSING) {
            // The application closed it from the hook.
            return;
        }
        let uid = match decision {
            Upgrade::Refuse(status, reason) => {
                cx.stats.handshake_failures += 1;
                cx.note_refusal(id, Refusal::Http(status), &reason);
                ws_conn::refuse(status, &reason, &mut cx.output(idx));
                cx.begin_close(idx);
                return;
            }
            Upgrade::Accept => None,
            Upgrade::AcceptAs(uid) => Some(uid),
        };
        ws_conn::accept(&accept, &mut cx.output(idx));
        let s = &mut cx.slots[idx as usize];
        s.flags.clear(Flags::HANDSHAKE);
        s.flags.set(Flags::OPENED);
        s.t = cx.now;
        if let Some(uid) = uid {
            cx.bind_uid(id, &uid);
        }
        // The head's bytes are done with: frames start from here.
        let rest = if from_held {
            match held.take().map(|b| *b) {
                Some(Input::Head(v)) => Some(v),
                _ => None,
            }
        } else {
            None
        };
        self.schedule_heartbeat(idx);
        let Server {
            cx,
            app,
            rbuf,
            inputs,
            ..
        } = self;
        app.on_open(cx, id);
        if !cx.slots[idx as usize].can_send() {
            return;
        }
        let held = inputs.at(idx);
        match rest {
            Some(mut v) if consumed < v.len() => ws_frames(cx, app, held, idx, &mut v[consumed..]),
            Some(_) => {}
            None if consumed < n => ws_frames(cx, app, held, idx, &mut rbuf[consumed..n]),
            None => {}
        }
    }

    fn text_input(&mut self, idx: u32, n: usize) {
        let Server {
            cx,
            app,
            rbuf,
            inputs,
            ..
        } = self;
        let held = inputs.at(idx);
        let data = &rbuf[..n];
        let id = cx.id(idx);
        let max = cx.limits.max_line;
        let mut pos = 0;
        loop {
            let (used, found) = line::next(held, &data[pos..], max);
            pos += used;
            match found {
                None => break,
                Some(Line::Complete(bytes)) => {
                    cx.stats.messages_in += 1;
                    app.on_message(cx, id, Message::Line(bytes));
                }
                Some(Line::TooLong) => {
                    let msg = format!("error line too long (max {max} bytes)");
                    cx.send_line(id, msg.as_bytes());
                }
            }
            if !cx.slots[idx as usize].can_send() {
                break;
            }
        }
    }

    /// The stream ended: a last line without its newline is still a line.
    fn text_eof(&mut self, idx: u32) {
        let Server {
            cx, app, inputs, ..
        } = self;
        if !cx.slots[idx as usize].can_send() {
            return;
        }
        if let Some(Line::Complete(bytes)) = line::finish(inputs.at(idx)) {
            cx.stats.messages_in += 1;
            let id = cx.id(idx);
            app.on_message(cx, id, Message::Line(bytes));
        }
    }

    fn http_input(&mut self, idx: u32, n: usize) {
        let Server {
            cx,
            app,
            rbuf,
            inputs,
            ..
        } = self;
        let held = inputs.at(idx);
        let data = &rbuf[..n];
        let id = cx.id(idx);
        let (max_head, max_body) = (cx.limits.max_head, cx.limits.max_body);
        let mut pos = 0;
        loop {
            let (used, step) = http_conn::next(held, &data[pos..], max_head, max_body);
            pos += used;
            match step {
                None => break,
                Some(http_conn::Step::Failed(status, reason)) => {
                    cx.note_refusal(id, Refusal::Http(status), reason);
                    http::write_json_error(cx.ordered_buf(idx), status, reason);
                    cx.close_after_replies(idx);
                    break;
                }
                Some(http_conn::Step::Request(p)) => {
                    let keep_alive = p.head.keep_alive();
                    let (path, query) = http::split_target(p.head.target);
                    let req = Request {
                        method: p.head.method,
                        path,
                        query,
                        body: p.body,
                        head: &p.head,
                    };
                    cx.stats.messages_in += 1;
                    let resp = app.on_request(cx, id, &req);
                    if resp.later.is_none() && cx.slots[idx as usize].live() {
                        let out = cx.ordered_buf(idx);
                        out.reserve(resp.body.len() + 128);
                        http::write_response(
                            out,
                            resp.status,
                            resp.content_type,
                            "",
                            &resp.body,
                            keep_alive,
                        );
                    }
                    if !keep_alive {
                        cx.close_after_replies(idx);
                        break;
                    }
                }
            }
            if !cx.slots[idx as usize].can_send() {
                break;
            }
        }
    }
}

/// Drives an open WebSocket through `data`, one step at a time.
fn ws_frames<A: App>(
    cx: &mut super::Context,
    app: &mut A,
    held: &mut Option<Box<Input>>,
    idx: u32,
    data: &mut [u8],
) {
    let id = cx.id(idx);
    let max = cx.limits.max_message;
    let mut pos = 0;
    loop {
        let (used, step) = ws_conn::frames(held, &mut data[pos..], max, &mut cx.output(idx));
        pos += used;
        match step {
            None => break,
            Some(Step::Handled) => {}
            Some(Step::Message(Event::Text(t))) => {
                cx.stats.messages_in += 1;
                app.on_message(cx, id, Message::Text(t));
            }
            Some(Step::Message(Event::Binary(b))) => {
                cx.stats.messages_in += 1;
                app.on_message(cx, id, Message::Binary(b));
            }
            Some(Step::Message(Event::Ping(_) | Event::Pong(_) | Event::Close(..))) => {
                // `frames` answers control frames itself.
            }
            Some(Step::Closed) => {
                cx.slots[idx as usize].flags.set(Flags::CLOSE_EXCHANGED);
                cx.begin_close(idx);
                break;
            }
            Some(Step::Failed(f)) => {
                cx.stats.protocol_errors += 1;
                let id = cx.id(idx);
                cx.note_refusal(id, Refusal::Close(f.code.0), f.reason);
                cx.begin_close(idx);
                break;
            }
        }
        if !cx.slots[idx as usize].can_send() {
            break;
        }
    }
}
