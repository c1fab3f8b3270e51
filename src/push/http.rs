//! The HTTP API: `POST /push`, `GET /online[?uid=U]`, `GET /stats`,
//! `GET /metrics`, `GET /connections[?limit=N]`. Pushes, queries and /stats
//! go through the router; this port renders what comes back
//! ([`Outcome::http`]).

use super::command::{self, Command};
use super::outcome::{json_error, Failure, Outcome};
use super::router::{Answer, Port};
use super::PushApp;
use crate::app::{ConnId, Request, Response};
use crate::reactor::{Context, Refusal};

/// Connections `GET /connections` lists without `?limit=`, and at most.
const DEFAULT_LISTED: usize = 100;
const MAX_LISTED: usize = 10_000;

impl PushApp {
    /// One API request (answered now, or later through the router).
    pub(super) fn on_http(
        &mut self,
        cx: &mut Context,
        conn: ConnId,
        req: &Request<'_>,
    ) -> Response {
        if let Some(refused) = self.authorize_http(cx, conn, req) {
            return refused;
        }
        match (req.method, req.path) {
            ("POST", "/push") => self.http_command(cx, conn, req.body, PUSHES),
            ("POST", "/topics") => self.http_command(cx, conn, req.body, TOPICS),
            ("POST", "/kick") => self.http_command(cx, conn, req.body, KICK),
            ("GET", "/presence" | "/members") => self.http_topic(cx, conn, req.path, req.query),
            ("GET", "/online") => self.http_online(cx, conn, req.query),
            ("GET", "/stats") => {
                let own = self.stats_json(cx);
                let answer = self.router.stats(cx, conn, own);
                respond(cx, conn, answer)
            }
            ("GET", "/connections") => {
                let limit = match crate::http::query_param(req.query, "limit") {
                    None => DEFAULT_LISTED,
                    Some(v) => match v.parse::<usize>() {
                        Ok(n) => n.min(MAX_LISTED),
                        Err(_) => return json_error(400, "limit must be a whole number"),
                    },
                };
                let node = self.router.cluster().map(|c| (c.node(), c.worker()));
                Response::json(200, connections_json(cx, limit, node))
            }
            ("GET", "/metrics") => Response::new(
                200,
                "text/plain; version=0.0.4",
                self.metrics(cx).into_bytes(),
            ),
            ("GET", "/") => Response::text(
                200,
                "herald push server: POST /push, POST /topics, POST /kick, GET /online[?uid=U], GET /presence?topic=T, GET /members?topic=T[&after=U][&limit=N], GET /stats, GET /metrics, GET /connections[?limit=N]",
            ),
            // RFC 9110 15.5.6: a 405 says which methods the resource takes.
            (_, "/push" | "/topics" | "/kick") => {
                json_error(405, "method not allowed").with_header("Allow: POST\r\n")
            }
            (_, "/online" | "/stats" | "/metrics" | "/connections" | "/presence" | "/members") => {
                json_error(405, "method not allowed").with_header("Allow: GET\r\n")
            }
            _ => json_error(404, "not found"),
        }
    }

    /// With an API token set, a request without it gets 401.
    fn authorize_http(
        &mut self,
        cx: &mut Context,
        conn: ConnId,
        req: &Request<'_>,
    ) -> Option<Response> {
        let tokens = self.config.api_tokens.as_ref()?;
        let bearer = req.header("authorization").and_then(bearer_token);
        if bearer.is_some_and(|t| tokens.accepts(t)) {
            return None;
        }
        self.stats.unauthorized += 1;
        cx.note_refusal(conn, Refusal::Unauthorized, "HTTP API");
        Some(json_error(
            401,
            "unauthorized: send Authorization: Bearer <API token>",
        ))
    }

    /// `POST /push`, `/topics`, `/kick`: the body is one text-port line
    /// of the commands `route` takes.
    fn http_command(
        &mut self,
        cx: &mut Context,
        conn: ConnId,
        body: &[u8],
        route: Route,
    ) -> Response {
        let body = body.strip_suffix(b"\n").unwrap_or(body);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        let why = match command::parse(body) {
            Ok(cmd) if (route.takes)(&cmd) => {
                // parse() checked that the body is UTF-8.
                let text = std::str::from_utf8(body).unwrap_or_default();
                let port = Port::Http(conn);
                let answer =
                    self.router
                        .run(cx, &mut self.stats, &mut self.topics, &cmd, text, port);
                return respond(cx, conn, answer);
            }
            Ok(_) => route.refusal.into(),
            Err(e) => e.to_string().into(),
        };
        self.stats.bad_requests += 1;
        Outcome::Failed(Failure::BadRequest, why).http()
    }

    /// `GET /presence?topic=T`, `GET /members?topic=T[&after=U][&limit=N]`.
    fn http_topic(&mut self, cx: &mut Context, conn: ConnId, path: &str, query: &str) -> Response {
        let param = |k| crate::http::query_param(query, k);
        let Some(topic) = param("topic").filter(|t| command::valid_topic(t)) else {
            return json_error(
                400,
                "?topic= must name a topic: 1 to 64 printable ASCII characters, no space or %",
            );
        };
        let cmd = if path == "/presence" {
            Command::Presence(topic.into())
        } else {
            let limit = match param("limit").map(|v| v.parse::<usize>()) {
                None => command::DEFAULT_MEMBERS,
                Some(Ok(n)) if n > 0 => n.min(command::MAX_MEMBERS),
                Some(_) => return json_error(400, "limit must be a positive whole number"),
            };
            Command::Members(topic.into(), param("after").map(Into::into), limit)
        };
        let port = Port::Http(conn);
        let answer = self
            .router
            .run(cx, &mut self.stats, &mut self.topics, &cmd, "", port);
        respond(cx, conn, answer)
    }

    /// `GET /online?uid=U` (that uid) or `GET /online` (the counts).
    fn http_online(&mut self, cx: &mut Context, conn: ConnId, query: &str) -> Response {
        let cmd = match crate::http::query_param(query, "uid") {
            // As on the text port: an empty uid is an error, not "offline".
            Some(uid) if uid.is_empty() => {
                return Outcome::Failed(Failure::BadRequest, "empty uid".into()).http()
            }
            Some(uid) => Command::Online(uid.into()),
            None => Command::Count,
        };
        let port = Port::Http(conn);
        let answer = self
            .router
            .run(cx, &mut self.stats, &mut self.topics, &cmd, "", port);
        respond(cx, conn, answer)
    }
}

/// Which commands a `POST` path takes, and what it says of the others.
#[derive(Clone, Copy)]
struct Route {
    takes: fn(&Command<'_>) -> bool,
    refusal: &'static str,
}

const PUSHES: Route = Route {
    takes: |c| {
        matches!(
            c,
            Command::Push(_) | Command::PushMany(_) | Command::Broadcast | Command::Publish(_)
        )
    },
    refusal: "POST /push takes \"uid\", \"uids\", \"all\" or \"topic\"; POST /topics joins and leaves, GET /online and GET /presence answer queries",
};
const TOPICS: Route = Route {
    takes: |c| matches!(c, Command::Join(..) | Command::Leave(..) | Command::Drop(_)),
    refusal: "POST /topics takes \"join\" or \"leave\" (with \"uid\" or \"uids\") or \"drop\"",
};
const KICK: Route = Route {
    takes: |c| matches!(c, Command::Kick(_)),
    refusal: "POST /kick takes {\"kick\":UID}",
};

/// The response to a request the router took.
fn respond(cx: &mut Context, conn: ConnId, answer: Answer<'_>) -> Response {
    match answer {
        Answer::Now(outcome) => outcome.http(),
        Answer::Later(d) => Response::later(d),
        // The request is put back and read again once the router resumes
        // the connection: what is returned now is not sent.
        Answer::Wait if cx.pause(conn) => Response::new(503, "", Vec::new()),
        // A connection that cannot pause (closing) is told.
        Answer::Wait => Outcome::Backlogged.http(),
        Answer::Elsewhere => {
            unreachable!("the router answers HTTP requests now or at a deferred place")
        }
    }
}

/// `{"total":N,"listed":M,"connections":[{"id":..,"protocol":"ws","peer":"ip:port",
/// "uid":"u","age_s":12,"queued":0},...]}`: the first `limit` connections.
fn connections_json(cx: &Context, limit: usize, node: Option<(&str, Option<usize>)>) -> String {
    use std::fmt::Write as _;
    let mut items = String::new();
    let mut listed = 0;
    for c in cx.connections().take(limit) {
        let peer = cx
            .peer_addr(c.id)
            .map_or(serde_json::Value::Null, |a| a.to_string().into());
        let uid = c.uid.map_or(serde_json::Value::Null, Into::into);
        let sep = if listed == 0 { "" } else { "," };
        let _ = write!(
            items,
            "{sep}{{\"id\":{},\"protocol\":\"{}\",\"peer\":{peer},\"uid\":{uid},\"age_s\":{},\"queued\":{}}}",
            c.id.as_u64(),
            c.protocol.name(),
            c.age_ms / 1000,
            c.queued
        );
        listed += 1;
    }
    // In a cluster, say whose connections these are: each node (each
    // worker) lists only its own.
    let whose = node.map_or(String::new(), |(node, worker)| {
        format!(
            ",\"node\":{},\"worker\":{}",
            serde_json::Value::from(node),
            serde_json::Value::from(worker)
        )
    });
    format!(
        "{{\"total\":{},\"listed\":{listed}{whose},\"connections\":[{items}]}}",
        cx.open_connections()
    )
}

/// The token of an `Authorization: Bearer TOKEN` value. The scheme is
/// matched without regard to case (RFC 9110 11.1: `bearer` is the same
/// scheme), and spaces around the token are dropped.
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let value = value.trim_ascii_start();
    let (scheme, token) = value.split_at_checked(6)?;
    let token = token.strip_prefix(b" ")?;
    scheme
        .eq_ignore_ascii_case(b"Bearer")
        .then(|| token.trim_ascii())
}
