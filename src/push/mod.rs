//! The push server of the seeds: uid binding on the WebSocket, the text port
//! for backends, optional client routing, and the HTTP API.

pub mod command;
mod metrics;

use crate::app::{App, ConnId, Message, Request, Response};
use crate::reactor::Context;
use crate::ws::CloseCode;
use command::Command;

/// Settings of the push application (the reactor's are in [`crate::Limits`]).
#[derive(Clone, Debug, Default)]
pub struct PushConfig {
    /// Let bound clients send `uid:message` and `all:message` (the second
    /// seed). Off by default: it lets any browser message any user.
    pub routing: bool,
}

/// Push outcomes, for /stats and /metrics.
#[derive(Clone, Debug, Default)]
pub struct PushStats {
    pub pushes_ok: u64,
    pub pushes_fail: u64,
    pub bad_requests: u64,
}

/// The push application.
pub struct PushApp {
    config: PushConfig,
    stats: PushStats,
    /// RSS when the server was ready, before any connection.
    baseline_rss: u64,
}

impl PushApp {
    pub fn new(config: PushConfig) -> PushApp {
        PushApp {
            config,
            stats: PushStats::default(),
            baseline_rss: 0,
        }
    }

    /// Records the process RSS before connections arrive, for the
    /// per-connection figure in /stats.
    pub fn set_baseline_rss(&mut self, rss: u64) {
        self.baseline_rss = rss;
    }

    pub fn stats(&self) -> &PushStats {
        &self.stats
    }

    fn count(&mut self, delivered: usize) {
        if delivered > 0 {
            self.stats.pushes_ok += 1;
        } else {
            self.stats.pushes_fail += 1;
        }
    }

    /// Delivers a push command; returns how many connections accepted the
    /// message, or `None` for a query.
    fn deliver(&mut self, cx: &mut Context, cmd: &Command<'_>, payload: &str) -> Option<usize> {
        let n = match cmd {
            Command::Push(uid) => cx.send_to_uid(uid, payload),
            Command::PushMany(uids) => uids.iter().map(|u| cx.send_to_uid(u, payload)).sum(),
            Command::Broadcast => cx.broadcast(payload),
            Command::Online(_) | Command::Count => return None,
        };
        self.count(n);
        Some(n)
    }

    /// Runs one decoded command; `payload` is what recipients receive.
    /// Returns the reply line for the text port.
    fn run_command(&mut self, cx: &mut Context, cmd: &Command<'_>, payload: &str) -> String {
        match (cmd, self.deliver(cx, cmd, payload)) {
            (Command::Push(_), Some(n)) => if n > 0 { "ok" } else { "fail" }.to_string(),
            (_, Some(0)) => "fail".to_string(),
            (_, Some(n)) => format!("ok {n}"),
            (Command::Online(uid), None) => cx.connections_of(uid).to_string(),
            (_, None) => format!(
                "{{\"uids\":{},\"connections\":{}}}",
                cx.online_uids(),
                cx.bound_connections()
            ),
        }
    }

    fn on_line(&mut self, cx: &mut Context, conn: ConnId, line: &[u8]) {
        match command::parse(line) {
            Ok(Command::Push(uid)) => {
                // The hot path: no allocation for the reply.
                // parse() checked that the line is UTF-8.
                let text = std::str::from_utf8(line).unwrap_or_default();
                let n = cx.send_to_uid(&uid, text);
                self.count(n);
                cx.send_line(conn, if n > 0 { b"ok" } else { b"fail" });
            }
            Ok(cmd) => {
                let text = std::str::from_utf8(line).unwrap_or_default();
                let reply = self.run_command(cx, &cmd, text);
                cx.send_line(conn, reply.as_bytes());
            }
            Err(e) => {
                self.stats.bad_requests += 1;
                cx.send_line(conn, format!("error {e}").as_bytes());
            }
        }
    }

    fn on_ws_text(&mut self, cx: &mut Context, conn: ConnId, text: &str) {
        if cx.uid(conn).is_none() {
            if text.is_empty() {
                cx.close(
                    conn,
                    CloseCode::POLICY,
                    "empty uid: send your uid as the first message",
                );
            } else if text.len() > cx.limits().max_uid {
                let reason = format!("uid too long (max {} bytes)", cx.limits().max_uid);
                cx.close(conn, CloseCode::POLICY, &reason);
            } else {
                cx.bind_uid(conn, text);
            }
            return;
        }
        if !self.config.routing {
            // Without routing, clients only listen; their messages are ignored.
            return;
        }
        match text.split_once(':') {
            None => {
                cx.send_text(conn, "error expected uid:message or all:message");
            }
            Some(("all", msg)) => {
                let n = cx.broadcast(msg);
                self.count(n);
            }
            Some((uid, msg)) => {
                let n = cx.send_to_uid(uid, msg);
                self.count(n);
                if n == 0 {
                    // Nothing accepted is silently lost: tell the sender.
                    cx.send_text(conn, &format!("fail {uid}"));
                }
            }
        }
    }

    fn http(&mut self, cx: &mut Context, req: &Request<'_>) -> Response {
        match (req.method, req.path) {
            ("POST", "/push") => {
                let body = req.body.strip_suffix(b"\n").unwrap_or(req.body);
                let body = body.strip_suffix(b"\r").unwrap_or(body);
                match command::parse(body) {
                    Ok(cmd @ (Command::Push(_) | Command::PushMany(_) | Command::Broadcast)) => {
                        let text = std::str::from_utf8(body).unwrap_or_default();
                        let delivered = self.deliver(cx, &cmd, text).unwrap_or(0);
                        Response::json(
                            200,
                            format!("{{\"ok\":{},\"delivered\":{delivered}}}", delivered > 0),
                        )
                    }
                    Ok(_) => {
                        self.stats.bad_requests += 1;
                        json_error(400, "POST /push takes \"uid\", \"uids\" or \"all\"; use GET /online for queries")
                    }
                    Err(e) => {
                        self.stats.bad_requests += 1;
                        json_error(400, &e.to_string())
                    }
                }
            }
            ("GET", "/online") => match crate::http::query_param(req.query, "uid") {
                // As on the text port: an empty uid is an error, not "offline".
                Some(uid) if uid.is_empty() => json_error(400, "empty uid"),
                Some(uid) => {
                    let n = cx.connections_of(&uid);
                    Response::json(
                        200,
                        format!(
                            "{{\"uid\":{},\"online\":{},\"connections\":{n}}}",
                            serde_json::Value::from(uid),
                            n > 0
                        ),
                    )
                }
                None => Response::json(
                    200,
                    format!(
                        "{{\"uids\":{},\"connections\":{}}}",
                        cx.online_uids(),
                        cx.bound_connections()
                    ),
                ),
            },
            ("GET", "/stats") => Response::json(200, self.stats_json(cx)),
            ("GET", "/metrics") => Response::new(
                200,
                "text/plain; version=0.0.4",
                self.metrics(cx).into_bytes(),
            ),
            ("GET", "/") => Response::text(
                200,
                "herald push server: POST /push, GET /online[?uid=U], GET /stats, GET /metrics",
            ),
            (_, "/push" | "/online" | "/stats" | "/metrics") => {
                json_error(405, "method not allowed")
            }
            _ => json_error(404, "not found"),
        }
    }

    /// The /stats document.
    pub fn stats_json(&self, cx: &Context) -> String {
        metrics::stats_json(&self.figures(cx))
    }

    /// The /metrics document (Prometheus text format 0.0.4).
    pub fn metrics(&self, cx: &Context) -> String {
        metrics::prometheus(&self.figures(cx))
    }

    fn figures<'a>(&'a self, cx: &'a Context) -> metrics::Figures<'a> {
        let rss = cx.rss_bytes();
        let conns = cx.open_connections() as u64;
        let rss_per_connection = rss
            .saturating_sub(self.baseline_rss)
            .checked_div(conns)
            .unwrap_or(0);
        metrics::Figures {
            cx,
            push: &self.stats,
            rss,
            rss_per_connection,
        }
    }
}

fn json_error(status: u16, msg: &str) -> Response {
    Response::json(
        status,
        format!("{{\"error\":{}}}", serde_json::Value::from(msg)),
    )
}

impl App for PushApp {
    fn on_message(&mut self, cx: &mut Context, conn: ConnId, msg: Message<'_>) {
        match msg {
            Message::Line(line) => self.on_line(cx, conn, line),
            Message::Text(t) => self.on_ws_text(cx, conn, t),
            Message::Binary(_) => {
                if cx.uid(conn).is_none() {
                    cx.close(
                        conn,
                        CloseCode::UNSUPPORTED,
                        "the first message must be your uid, as text",
                    );
                } else if self.config.routing {
                    cx.send_text(conn, "error binary messages are not routed");
                }
            }
        }
    }

    fn on_request(&mut self, cx: &mut Context, _conn: ConnId, req: &Request<'_>) -> Response {
        self.http(cx, req)
    }
}
