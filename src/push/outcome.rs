//! What a push or a query came to ([`Outcome`]), and the one place each
//! port writes it: the text-port line, the HTTP response, the routed
//! client's `fail UID`. Local delivery and the cluster both produce
//! outcomes; neither writes reply text.

use crate::app::{ConnId, Deferred, Response};
use crate::reactor::Context;
use std::borrow::Cow;

/// The answer to one request, before a port renders it.
#[derive(Debug)]
pub(super) enum Outcome<'a> {
    /// A push reached this many connections (cluster-wide in a cluster).
    Pushed(Push<'a>, u64),
    /// A push reached no connection on this node, and the other nodes could
    /// not be asked: another node may hold its uid.
    Unconfirmed(Push<'a>),
    /// `online UID`: the uid's connections.
    Online(&'a str, u64),
    /// `count`: distinct uids and bound connections.
    Count { uids: u64, connections: u64 },
    /// The /stats document.
    Stats(String),
    /// A topic command or a kick done: how many connections it took in,
    /// out or closed (`ok N`, even 0: a uid joined while away is kept).
    Done(u64),
    /// A JSON answer, the same on both ports (presence, members).
    Json(String),
    /// The asking connection has too many answers outstanding already.
    Backlogged,
    /// The request was not served, and why.
    Failed(Failure, Cow<'a, str>),
}

/// What a push was addressed to, as far as its answer says.
#[derive(Clone, Copy, Debug)]
pub(super) enum Push<'a> {
    /// One uid: `ok` / `fail`, and `fail UID` to a routed client.
    One(&'a str),
    /// Several uids or everyone: `ok N` / `fail`.
    Many,
}

/// Why a request was not served: the HTTP status it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Failure {
    /// The request itself is wrong (400).
    BadRequest,
    /// What it needs is away (503): Redis, or room for it.
    Unavailable,
}

/// Where an answer given later goes.
#[derive(Clone, Copy, Debug)]
pub(super) enum ReplyTo {
    Line(Deferred),
    Http(Deferred),
    /// A routed client message (`uid:msg`): `fail UID` back if nobody took it.
    Route(ConnId),
    Nobody,
}

const UNCONFIRMED: &str =
    "redis unavailable: no connection for it on this node, other nodes not reachable";

impl Outcome<'_> {
    /// The text-port line (without its newline). A push to one uid, the hot
    /// path, allocates nothing.
    pub(super) fn line(&self) -> Cow<'static, [u8]> {
        let text = match self {
            Outcome::Pushed(_, 0) => return Cow::Borrowed(b"fail"),
            Outcome::Pushed(Push::One(_), _) => return Cow::Borrowed(b"ok"),
            Outcome::Pushed(Push::Many, n) => format!("ok {n}"),
            Outcome::Unconfirmed(_) => format!("error {UNCONFIRMED}"),
            Outcome::Online(_, n) => n.to_string(),
            Outcome::Count { uids, connections } => count_json(*uids, *connections),
            Outcome::Stats(doc) | Outcome::Json(doc) => doc.clone(),
            Outcome::Done(n) => format!("ok {n}"),
            Outcome::Backlogged => return Cow::Borrowed(b"error too many replies outstanding"),
            Outcome::Failed(_, why) => format!("error {why}"),
        };
        Cow::Owned(text.into_bytes())
    }

    /// The HTTP API's JSON response.
    pub(super) fn http(self) -> Response {
        let body = match self {
            Outcome::Pushed(_, n) => format!("{{\"ok\":{},\"delivered\":{n}}}", n > 0),
            Outcome::Unconfirmed(_) => return json_error(503, UNCONFIRMED),
            Outcome::Online(uid, n) => format!(
                "{{\"uid\":{},\"online\":{},\"connections\":{n}}}",
                serde_json::Value::from(uid),
                n > 0
            ),
            Outcome::Count { uids, connections } => count_json(uids, connections),
            Outcome::Stats(doc) | Outcome::Json(doc) => doc,
            Outcome::Done(n) => format!("{{\"ok\":true,\"connections\":{n}}}"),
            Outcome::Backlogged => return json_error(503, "too many requests outstanding"),
            Outcome::Failed(Failure::BadRequest, why) => return json_error(400, &why),
            Outcome::Failed(Failure::Unavailable, why) => return json_error(503, &why),
        };
        Response::json(200, body)
    }

    /// What a routed client hears: only that its message reached nobody.
    pub(super) fn route(&self, cx: &mut Context, conn: ConnId) {
        if let Outcome::Pushed(Push::One(uid), 0) | Outcome::Unconfirmed(Push::One(uid)) = self {
            cx.send_text(conn, &format!("fail {uid}"));
        }
    }

    /// Gives an answer that was promised at `to`.
    pub(super) fn answer(self, cx: &mut Context, to: ReplyTo) {
        match to {
            ReplyTo::Line(d) => {
                cx.reply_line(d, &self.line());
            }
            ReplyTo::Http(d) => {
                cx.respond(d, self.http());
            }
            ReplyTo::Route(conn) => self.route(cx, conn),
            ReplyTo::Nobody => {}
        }
    }
}

/// `{"uids":U,"connections":C}`, for `count` on both ports.
fn count_json(uids: u64, connections: u64) -> String {
    format!("{{\"uids\":{uids},\"connections\":{connections}}}")
}

/// `{"error":"..."}` with `status`: every JSON error the HTTP API gives.
pub(super) fn json_error(status: u16, msg: &str) -> Response {
    Response::json(
        status,
        format!("{{\"error\":{}}}", serde_json::Value::from(msg)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(o: Outcome<'_>) -> String {
        String::from_utf8(o.line().into_owned()).unwrap()
    }

    fn http(o: Outcome<'_>) -> (u16, String) {
        let r = o.http();
        (r.status, String::from_utf8(r.body).unwrap())
    }

    #[test]
    fn pushes_read_ok_fail_or_ok_n_on_the_text_port() {
        assert_eq!(line(Outcome::Pushed(Push::One("u"), 2)), "ok");
        assert_eq!(line(Outcome::Pushed(Push::One("u"), 0)), "fail");
        assert_eq!(line(Outcome::Pushed(Push::Many, 3)), "ok 3");
        assert_eq!(line(Outcome::Pushed(Push::Many, 0)), "fail");
        assert!(matches!(
            Outcome::Pushed(Push::One("u"), 1).line(),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            line(Outcome::Unconfirmed(Push::Many)),
            format!("error {UNCONFIRMED}")
        );
    }

    #[test]
    fn queries_and_errors_on_both_ports() {
        assert_eq!(line(Outcome::Online("u", 2)), "2");
        assert_eq!(
            http(Outcome::Online("a\"b", 0)),
            (
                200,
                r#"{"uid":"a\"b","online":false,"connections":0}"#.into()
            )
        );
        let count = Outcome::Count {
            uids: 2,
            connections: 3,
        };
        assert_eq!(line(count), r#"{"uids":2,"connections":3}"#);
        assert_eq!(
            http(Outcome::Pushed(Push::Many, 2)),
            (200, r#"{"ok":true,"delivered":2}"#.into())
        );
        assert_eq!(
            line(Outcome::Backlogged),
            "error too many replies outstanding"
        );
        assert_eq!(
            http(Outcome::Backlogged),
            (503, r#"{"error":"too many requests outstanding"}"#.into())
        );
        let bad = Outcome::Failed(Failure::BadRequest, "empty uid".into());
        assert_eq!(http(bad), (400, r#"{"error":"empty uid"}"#.into()));
        let away = Outcome::Failed(Failure::Unavailable, "redis unavailable".into());
        assert_eq!(line(away), "error redis unavailable");
    }
}
