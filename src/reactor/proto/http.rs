//! HTTP API connections: requests answered by the application, at once or
//! later (deferred), in request order; keep-alive until the client or an
//! error ends it.

use super::{each_unit, Accepted, Conn, Driver};
use crate::http;
use crate::http::conn::{self as http_conn, Step};
use crate::reactor::app::App;
use crate::reactor::context::Context;
use crate::reactor::deadline::schedule_heartbeat;
use crate::reactor::message::Request;
use crate::reactor::slot::Kind;
use crate::reactor::stats::Refusal;

pub(crate) struct Http;

impl Driver for Http {
    fn input<A: App>(conn: Conn<'_, A>, data: &mut [u8]) {
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
                    (used, keep_alive)
                }
            }
        });
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
