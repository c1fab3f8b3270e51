//! WebSocket connections: the opening handshake (admission, the
//! application's upgrade hook, the 101 or the refusal), then frames, both
//! driven through the sans-IO `ws::conn`.

use super::{each_unit, Accepted, Conn, Driver};
use crate::http;
use crate::reactor::app::App;
use crate::reactor::context::Context;
use crate::reactor::deadline::schedule_heartbeat;
use crate::reactor::inputs::Input;
use crate::reactor::message::{Message, Upgrade, UpgradeRequest};
use crate::reactor::slot::{Flags, Kind};
use crate::reactor::stats::Refusal;
use crate::reactor::wheel::ms_to_ticks;
use crate::ws::conn::{self as ws_conn, Opening, Step};
use crate::ws::deflate::offer;
use crate::ws::Event;
use std::cell::OnceCell;

pub(crate) struct Ws;

impl Driver for Ws {
    /// WebSockets are never paused: their input is always handed on.
    fn input<A: App>(conn: Conn<'_, A>, data: &mut [u8]) -> usize {
        let flags = conn.cx.io.slots[conn.idx as usize].flags;
        if flags.has(Flags::OPENING) {
            handshake(conn, data);
        } else {
            frames(conn, data);
        }
        data.len()
    }
}

impl Accepted for Ws {
    const KIND: Kind = Kind::WebSocket;

    fn accepted<A: App>(cx: &mut Context, _app: &mut A, idx: u32) {
        cx.io.slots[idx as usize].flags.set(Flags::OPENING);
        let due = cx.io.now + ms_to_ticks(cx.limits.handshake_timeout_ms);
        cx.io.schedule(idx, due);
    }

    fn write_full(out: &mut Vec<u8>) {
        http::write_error(out, 503, "server full", "");
    }
}

/// Feeds handshake bytes; once the request is whole, decides (admission,
/// then the application) and answers, then reads on into frames.
fn handshake<A: App>(conn: Conn<'_, A>, data: &mut [u8]) {
    let Conn { cx, app, held, idx } = conn;
    let id = cx.io.id(idx);
    let max_head = cx.limits.max_head;
    let (accept, consumed, from_held, decision, deflate) =
        match ws_conn::handshake(held, data, max_head, &mut cx.output(idx)) {
            None => return,
            Some(Opening::Refused(e)) => {
                cx.stats.handshake_failures += 1;
                cx.note_refusal(id, Refusal::Http(e.status()), e.reason());
                cx.io.begin_close(idx);
                return;
            }
            Some(Opening::Request {
                head,
                accept,
                consumed,
                from_held,
            }) => {
                let (decision, deflate) = decide(cx, app, idx, &head);
                (accept, consumed, from_held, decision, deflate)
            }
        };
    let s = &cx.io.slots[idx as usize];
    if !s.live() || s.flags.has(Flags::CLOSING) {
        // The application closed it from the hook.
        return;
    }
    let uid = match decision {
        Upgrade::Refuse(status, reason) => {
            cx.stats.handshake_failures += 1;
            cx.note_refusal(id, Refusal::Http(status), &reason);
            ws_conn::refuse(status, &reason, &mut cx.output(idx));
            cx.io.begin_close(idx);
            return;
        }
        Upgrade::Accept | Upgrade::AcceptProtocol(_) => None,
        Upgrade::AcceptAs(ref uid) => Some(uid.clone()),
    };
    let protocol = match decision {
        Upgrade::AcceptProtocol(p) => Some(p),
        _ => None,
    };
    ws_conn::accept(&accept, protocol, deflate, &mut cx.output(idx));
    let s = &mut cx.io.slots[idx as usize];
    if protocol.is_some() {
        s.flags.set(Flags::SUBPROTOCOL);
    }
    if deflate.is_some() {
        s.flags.set(Flags::DEFLATE);
        cx.io.deflate_open += 1;
    }
    s.flags.clear(Flags::OPENING);
    s.flags.set(Flags::OPENED);
    s.t = cx.io.now;
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
    schedule_heartbeat(&mut cx.io, &cx.limits, idx);
    app.on_open(cx, id);
    if !cx.io.slots[idx as usize].can_send() {
        return;
    }
    let conn = Conn { cx, app, held, idx };
    match rest {
        Some(mut v) if consumed < v.len() => frames(conn, &mut v[consumed..]),
        Some(_) => {}
        None if consumed < data.len() => frames(conn, &mut data[consumed..]),
        None => {}
    }
}

/// What to answer a whole upgrade request: admission's refusal, else the
/// application's decision; and the permessage-deflate offer accepted, if
/// any (used only if the upgrade is).
fn decide<A: App>(
    cx: &mut Context,
    app: &mut A,
    idx: u32,
    head: &http::Head<'_>,
) -> (Upgrade, Option<&'static str>) {
    let deflate = (cx.compression.enabled() && !offer::broken_client(head.header("user-agent")))
        .then(|| offer::negotiate(head.values("sec-websocket-extensions")))
        .flatten();
    (admit(cx, app, idx, head), deflate)
}

/// Admission's refusal, else the application's decision.
fn admit<A: App>(cx: &mut Context, app: &mut A, idx: u32, head: &http::Head<'_>) -> Upgrade {
    let fd = cx.io.slots[idx as usize].fd;
    let now_ms = cx.io.now_ms;
    match cx
        .per_ip
        .admit_handshake(&cx.limits, now_ms, (idx, fd), head)
    {
        Err((status, reason)) => Upgrade::Refuse(status, reason.into()),
        Ok(client) => {
            let (path, query) = http::split_target(head.target);
            let req = UpgradeRequest {
                head,
                path,
                query,
                peer: client.map(Some).map(OnceCell::from).unwrap_or_default(),
                fd,
            };
            let id = cx.io.id(idx);
            app.on_upgrade(cx, id, &req)
        }
    }
}

/// Drives an open WebSocket through `data`, one step at a time.
fn frames<A: App>(conn: Conn<'_, A>, data: &mut [u8]) {
    let Conn { cx, app, held, idx } = conn;
    let id = cx.io.id(idx);
    let max = cx.limits.max_message;
    // The server's one inflater, lent to this connection for this read if
    // it negotiated permessage-deflate.
    let mut inflater = cx.io.slots[idx as usize]
        .flags
        .has(Flags::DEFLATE)
        .then(|| cx.compression.lend());
    each_unit(cx, idx, |cx, pos| {
        let z = inflater.as_deref_mut();
        let (used, step) = ws_conn::frames(held, &mut data[pos..], max, z, &mut cx.output(idx));
        match step {
            None => return (used, false),
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
                cx.io.slots[idx as usize].flags.set(Flags::CLOSE_EXCHANGED);
                cx.io.begin_close(idx);
                return (used, false);
            }
            Some(Step::Failed(f)) => {
                cx.stats.protocol_errors += 1;
                cx.note_refusal(id, Refusal::Close(f.code.0), f.reason);
                cx.io.begin_close(idx);
                return (used, false);
            }
        }
        (used, true)
    });
    if let Some(inflater) = inflater {
        cx.compression.give_back(inflater);
    }
}
