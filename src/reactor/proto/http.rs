//! HTTP API connections: requests answered by the application, at once or
//! later (deferred), in request order; keep-alive until the client or an
//! error ends it.

use super::{each_unit, Accepted, Conn, Driver};
use crate::http;
use crate::http::conn::{self as http_conn, Step};
use crate::reactor::app::App;
use crate::reactor::context::Context;
use crate::reactor::deadline::schedule_heartbeat;
use crate::reactor::message::{Request, Response};
use crate::reactor::slot::{Flags, Kind};
use crate::reactor::stats::Refusal;

pub(crate) struct Http;

impl Driver for Http {
    fn input<A: App>(conn: Conn<'_, A>, data: &mut [u8]) -> usize {
        let Conn { cx, app, held, idx } = conn;
        let id = cx.io.id(idx);
        let (max_head, max_body) = (cx.limits.max_head, cx.limits.max_body);
        each_unit(cx, idx, |cx, pos| {
            let (used, step) = http_conn::next(held, &data[pos..], max_head, max_body);
            match step {
                None => (used, false),
                Some(Step::Failed(status, reason)) => {
                    cx.note_refusal(id, Refusal::Http(status), reason);
                    http::write_json_error(cx.ordered_buf(idx), status, reason);
                    cx.io.close_after_replies(idx);
                    (used, false)
                }
                Some(Step::Request(p)) => {
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
                    if cx.io.slots[idx as usize].flags.has(Flags::PAUSED) {
                        // The application could not take it now: it comes
                        // again on resume, and this response is not sent.
                        cx.stats.messages_in -= 1;
                        return (http_conn::put_back(held, used), false);
                    }
                    respond(cx, idx, resp, keep_alive);
                    cx.pause_if_backed_up(idx);
                    (used, keep_alive)
                }
            }
        })
    }
}

/// Writes the response to a request taken now (unless it comes later), and
/// closes after it when the request did not keep the connection alive.
fn respond(cx: &mut Context, idx: u32, resp: Response, keep_alive: bool) {
    if resp.later.is_none() && cx.io.slots[idx as usize].live() {
        let out = cx.ordered_buf(idx);
        out.reserve(resp.body.len() + 128);
        http::write_response(
            out,
            resp.status,
            resp.content_type,
            resp.headers,
            &resp.body,
            keep_alive,
        );
    }
    if !keep_alive {
        cx.io.close_after_replies(idx);
    }
}

impl Accepted for Http {
    const KIND: Kind = Kind::Http;

    fn accepted<A: App>(cx: &mut Context, _app: &mut A, idx: u32) {
        schedule_heartbeat(&mut cx.io, &cx.limits, idx);
    }

    fn write_full(out: &mut Vec<u8>) {
        http::write_json_error(out, 503, "server full");
    }
}
