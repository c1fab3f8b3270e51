//! The push server of the seeds: uid binding on the WebSocket, the text port
//! for backends, optional client routing, and the HTTP API.

pub mod cluster;
pub mod command;
mod metrics;

use crate::app::{App, ConnId, Message, Request, Response, TimerId, Upgrade, UpgradeRequest};
use crate::auth::{ApiTokens, Verifier};
use crate::reactor::{Context, Refusal};
use crate::ws::CloseCode;
use cluster::{Cluster, ClusterConfig, PushKind, ReplyTo};
use command::Command;
use std::collections::HashSet;

/// Settings of the push application (the reactor's are in [`crate::Limits`]).
#[derive(Clone, Debug, Default)]
pub struct PushConfig {
    /// Let bound clients send `uid:message` and `all:message` (the second
    /// seed). Off by default: it lets any browser message any user.
    pub routing: bool,
    /// Proven uids: a WebSocket binds only the `sub` of a valid token, given
    /// as `?token=` (else HTTP 401) or as its first message (else close
    /// 1008). `None` is the seeds' demo mode: any client claims any uid.
    pub tokens: Option<Verifier>,
    /// The internal ports' token: the text port's first line must be
    /// `{"auth":"TOKEN"}`, HTTP API requests need `Authorization: Bearer`.
    pub api_tokens: Option<ApiTokens>,
    /// Origins allowed to open a WebSocket (403 for others); empty allows
    /// all. Requests without `Origin` (not browsers) are always allowed.
    pub allow_origins: Vec<String>,
    /// Where `tokens`' keys came from, re-read by [`PushApp::reload`].
    pub auth_secret_file: Option<std::path::PathBuf>,
    /// Where `api_tokens` came from, re-read by [`PushApp::reload`].
    pub api_token_file: Option<std::path::PathBuf>,
    /// Join a cluster of nodes through Redis (`--redis`).
    pub cluster: Option<ClusterConfig>,
}

/// Push outcomes, for /stats and /metrics.
#[derive(Clone, Debug, Default)]
pub struct PushStats {
    pub pushes_ok: u64,
    pub pushes_fail: u64,
    pub bad_requests: u64,
    pub auth_refused: u64,
    pub origin_refused: u64,
    pub unauthorized: u64,
}

/// The push application.
pub struct PushApp {
    config: PushConfig,
    stats: PushStats,
    /// RSS when the server was ready, before any connection.
    baseline_rss: u64,
    /// Text-port connections that gave the API token (only with one set).
    authorized: HashSet<ConnId>,
    cluster: Option<Cluster>,
}

impl PushApp {
    pub fn new(config: PushConfig) -> PushApp {
        PushApp {
            stats: PushStats::default(),
            baseline_rss: 0,
            authorized: HashSet::new(),
            cluster: config.cluster.clone().map(Cluster::new),
            config,
        }
    }

    /// Re-reads the secret files (a live rotation, on SIGHUP): the uid-token
    /// keys and the API tokens. Connections already open or authorized stay
    /// so. Nothing changes unless every file reads well; the message says
    /// what was loaded or why nothing was.
    pub fn reload(&mut self) -> Result<String, String> {
        use crate::auth::{load_secrets, MIN_API_TOKEN, MIN_KEY};
        let keys = match (&self.config.auth_secret_file, &self.config.tokens) {
            (Some(path), Some(_)) => Some(load_secrets(path, MIN_KEY)?),
            _ => None,
        };
        let api = match (&self.config.api_token_file, &self.config.api_tokens) {
            (Some(path), Some(_)) => Some(load_secrets(path, MIN_API_TOKEN)?),
            _ => None,
        };
        let mut done = Vec::new();
        if let (Some(v), Some(keys)) = (self.config.tokens.as_mut(), keys) {
            done.push(format!("{} uid-token key(s)", keys.len()));
            v.set_keys(keys);
        }
        if let (Some(t), Some(new)) = (self.config.api_tokens.as_mut(), api) {
            done.push(format!("{} API token(s)", new.len()));
            *t = ApiTokens::new(&new);
        }
        if done.is_empty() {
            return Ok("reload: no secret file to re-read".into());
        }
        Ok(format!("reload: {}", done.join(", ")))
    }

    pub fn config(&self) -> &PushConfig {
        &self.config
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

    /// The text port's first line when an API token is set: `{"auth":"TOKEN"}`.
    fn authorize_line(&mut self, cx: &mut Context, conn: ConnId, line: &[u8]) {
        let tokens = self.config.api_tokens.as_ref();
        let given = serde_json::from_slice::<serde_json::Value>(line).ok();
        let given = given.as_ref().and_then(|v| v.get("auth")?.as_str());
        if given.is_some_and(|t| tokens.is_some_and(|k| k.accepts(t.as_bytes()))) {
            self.authorized.insert(conn);
            cx.send_line(conn, b"ok");
        } else {
            self.stats.unauthorized += 1;
            cx.note_refusal(conn, Refusal::Unauthorized, "text port");
            cx.send_line(conn, b"error unauthorized");
            cx.close(conn, CloseCode::POLICY, "");
        }
    }

    /// A command in cluster mode: delivered here at once, published to the
    /// other nodes, answered at `to` when the cluster has said.
    fn cluster_command(&mut self, cx: &mut Context, cmd: &Command<'_>, text: &str, to: ReplyTo) {
        let Some(cl) = self.cluster.as_mut() else {
            return;
        };
        match cmd {
            Command::Push(uid) => {
                let n = cx.send_to_uid(uid, text);
                cl.publish(cx, &[uid], text, n, PushKind::One, to);
            }
            Command::PushMany(uids) => {
                let n = uids.iter().map(|u| cx.send_to_uid(u, text)).sum();
                let uids: Vec<&str> = uids.iter().map(|u| u.as_ref()).collect();
                cl.publish(cx, &uids, text, n, PushKind::Many, to);
            }
            Command::Broadcast => {
                let n = cx.broadcast(text);
                cl.publish(cx, &[], text, n, PushKind::Many, to);
            }
            Command::Online(uid) => cl.online(cx, uid, to),
            Command::Count => cl.count(cx, to),
        }
    }

    fn on_line(&mut self, cx: &mut Context, conn: ConnId, line: &[u8]) {
        if self.config.api_tokens.is_some() && !self.authorized.contains(&conn) {
            return self.authorize_line(cx, conn, line);
        }
        if self.cluster.is_some() {
            match command::parse(line) {
                Ok(cmd) => {
                    let Some(d) = cx.defer(conn) else {
                        cx.send_line(conn, b"error too many replies outstanding");
                        return;
                    };
                    let text = std::str::from_utf8(line).unwrap_or_default();
                    self.cluster_command(cx, &cmd, text, ReplyTo::Line(d));
                }
                Err(e) => {
                    self.stats.bad_requests += 1;
                    cx.send_line(conn, format!("error {e}").as_bytes());
                }
            }
            return;
        }
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
            if let Some(v) = &self.config.tokens {
                // Proven uids: the first message is a token, not a uid.
                match prove(v, text, cx.limits().max_uid) {
                    Ok(uid) => {
                        cx.bind_uid(conn, &uid);
                        if let Some(cl) = self.cluster.as_mut() {
                            cl.bound(cx, &uid);
                        }
                    }
                    Err(reason) => {
                        self.stats.auth_refused += 1;
                        cx.note_refusal(conn, Refusal::Close(CloseCode::POLICY.0), &reason);
                        cx.close(conn, CloseCode::POLICY, &reason);
                    }
                }
            } else if text.is_empty() {
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
                if let Some(cl) = self.cluster.as_mut() {
                    cl.bound(cx, text);
                }
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
                if let Some(cl) = self.cluster.as_mut() {
                    cl.publish(cx, &[], msg, n, PushKind::Many, ReplyTo::Nobody);
                }
            }
            Some((uid, msg)) => {
                let n = cx.send_to_uid(uid, msg);
                if let Some(cl) = self.cluster.as_mut() {
                    // The cluster says whether anyone took it.
                    cl.publish(cx, &[uid], msg, n, PushKind::One, ReplyTo::Route(conn));
                    return;
                }
                self.count(n);
                if n == 0 {
                    // Nothing accepted is silently lost: tell the sender.
                    cx.send_text(conn, &format!("fail {uid}"));
                }
            }
        }
    }

    fn http(&mut self, cx: &mut Context, conn: ConnId, req: &Request<'_>) -> Response {
        if let Some(tokens) = &self.config.api_tokens {
            let bearer = req
                .header("authorization")
                .and_then(|v| v.strip_prefix(b"Bearer "))
                .map(<[u8]>::trim_ascii);
            if !bearer.is_some_and(|t| tokens.accepts(t)) {
                self.stats.unauthorized += 1;
                cx.note_refusal(conn, Refusal::Unauthorized, "HTTP API");
                return json_error(401, "unauthorized: send Authorization: Bearer <API token>");
            }
        }
        match (req.method, req.path) {
            ("POST", "/push") => {
                let body = req.body.strip_suffix(b"\n").unwrap_or(req.body);
                let body = body.strip_suffix(b"\r").unwrap_or(body);
                match command::parse(body) {
                    Ok(cmd @ (Command::Push(_) | Command::PushMany(_) | Command::Broadcast))
                        if self.cluster.is_some() =>
                    {
                        let text = std::str::from_utf8(body).unwrap_or_default();
                        match cx.defer(conn) {
                            Some(d) => {
                                self.cluster_command(cx, &cmd, text, ReplyTo::Http(d));
                                Response::later(d)
                            }
                            None => json_error(503, "too many requests outstanding"),
                        }
                    }
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
                Some(uid) if self.cluster.is_some() => match cx.defer(conn) {
                    Some(d) => {
                        self.cluster_command(cx, &Command::Online(uid.into()), "", ReplyTo::Http(d));
                        Response::later(d)
                    }
                    None => json_error(503, "too many requests outstanding"),
                },
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
                None if self.cluster.is_some() => match cx.defer(conn) {
                    Some(d) => {
                        self.cluster_command(cx, &Command::Count, "", ReplyTo::Http(d));
                        Response::later(d)
                    }
                    None => json_error(503, "too many requests outstanding"),
                },
                None => Response::json(
                    200,
                    format!(
                        "{{\"uids\":{},\"connections\":{}}}",
                        cx.online_uids(),
                        cx.bound_connections()
                    ),
                ),
            },
            ("GET", "/stats") if self.cluster.is_some() => {
                let own = self.stats_json(cx);
                match (cx.defer(conn), self.cluster.as_mut()) {
                    (Some(d), Some(cl)) => {
                        cl.stats(cx, d, own);
                        Response::later(d)
                    }
                    _ => Response::json(200, own),
                }
            }
            ("GET", "/stats") => Response::json(200, self.stats_json(cx)),
            ("GET", "/connections") => {
                let limit = crate::http::query_param(req.query, "limit")
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(DEFAULT_LISTED)
                    .min(MAX_LISTED);
                Response::json(200, connections_json(cx, limit))
            }
            ("GET", "/metrics") => Response::new(
                200,
                "text/plain; version=0.0.4",
                self.metrics(cx).into_bytes(),
            ),
            ("GET", "/") => Response::text(
                200,
                "herald push server: POST /push, GET /online[?uid=U], GET /stats, GET /metrics, GET /connections[?limit=N]",
            ),
            (_, "/push" | "/online" | "/stats" | "/metrics" | "/connections") => {
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
            cluster: self.cluster.as_ref(),
            rss,
            rss_per_connection,
        }
    }
}

/// Connections `GET /connections` lists without `?limit=`, and at most.
const DEFAULT_LISTED: usize = 100;
const MAX_LISTED: usize = 10_000;

/// `{"total":N,"listed":M,"connections":[{"id":..,"protocol":"ws","peer":"ip:port",
/// "uid":"u","age_s":12,"queued":0},...]}`: the first `limit` connections.
fn connections_json(cx: &Context, limit: usize) -> String {
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
    format!(
        "{{\"total\":{},\"listed\":{listed},\"connections\":[{items}]}}",
        cx.open_connections()
    )
}

fn json_error(status: u16, msg: &str) -> Response {
    Response::json(
        status,
        format!("{{\"error\":{}}}", serde_json::Value::from(msg)),
    )
}

/// The uid a token proves (its `sub`, within `max_uid`), or why not: the
/// same for `?token=` and for a first message.
fn prove(v: &Verifier, token: &str, max_uid: usize) -> Result<String, String> {
    match v.verify(token, unix_now()) {
        Ok(c) if c.sub.len() > max_uid => Err(format!("uid too long (max {max_uid} bytes)")),
        Ok(c) => Ok(c.sub),
        Err(e) => Err(e.to_string()),
    }
}

/// Seconds since the Unix epoch, for token expiry.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl App for PushApp {
    fn on_upgrade(&mut self, cx: &mut Context, _conn: ConnId, req: &UpgradeRequest<'_>) -> Upgrade {
        let origins = &self.config.allow_origins;
        if let (false, Some(origin)) = (origins.is_empty(), req.header("origin")) {
            if !origins
                .iter()
                .any(|o| o.as_bytes().eq_ignore_ascii_case(origin))
            {
                self.stats.origin_refused += 1;
                return Upgrade::Refuse(403, "origin not allowed".into());
            }
        }
        let (Some(v), Some(token)) = (&self.config.tokens, req.query_param("token")) else {
            // No token in the URL: with proven uids the first message is one.
            return Upgrade::Accept;
        };
        match prove(v, &token, cx.limits().max_uid) {
            Ok(uid) => Upgrade::AcceptAs(uid),
            Err(reason) => {
                self.stats.auth_refused += 1;
                Upgrade::Refuse(401, reason)
            }
        }
    }

    fn on_start(&mut self, cx: &mut Context) {
        let own = self.stats_json(cx);
        if let Some(cl) = self.cluster.as_mut() {
            cl.own_stats = own;
            cl.start(cx);
        }
    }

    fn on_open(&mut self, cx: &mut Context, conn: ConnId) {
        match self.cluster.as_mut() {
            Some(cl) if cl.owns(conn) => cl.on_open(cx, conn),
            // Bound by the upgrade hook (`?token=`) before it opened.
            Some(cl) => {
                if let Some(uid) = cx.uid(conn).map(str::to_string) {
                    cl.bound(cx, &uid);
                }
            }
            None => {}
        }
    }

    fn on_data(&mut self, cx: &mut Context, conn: ConnId, data: &[u8]) {
        if let Some(cl) = self.cluster.as_mut().filter(|c| c.owns(conn)) {
            cl.on_data(cx, conn, data);
        }
    }

    fn on_connect_failed(&mut self, cx: &mut Context, conn: ConnId, error: std::io::Error) {
        if let Some(cl) = self.cluster.as_mut().filter(|c| c.owns(conn)) {
            cl.on_down(cx, conn, &format!("cannot connect: {error}"));
        }
    }

    fn on_timer(&mut self, cx: &mut Context, _timer: TimerId, token: u64) {
        if self.cluster.is_none() || !Cluster::owns_timer(token) {
            return;
        }
        // What the other nodes see of this one, with each heartbeat.
        let own = (token == cluster::HEARTBEAT_TOKEN).then(|| self.stats_json(cx));
        if let Some(cl) = self.cluster.as_mut() {
            if let Some(own) = own {
                cl.own_stats = own;
            }
            cl.on_timer(cx, token);
        }
    }

    fn on_reload(&mut self, _cx: &mut Context) {
        match self.reload() {
            Ok(done) => crate::log_info!("SIGHUP: {done}"),
            Err(e) => crate::log_error!("SIGHUP: {e}; the secrets in use are kept"),
        }
    }

    fn on_close(&mut self, cx: &mut Context, conn: ConnId) {
        if !self.authorized.is_empty() {
            self.authorized.remove(&conn);
        }
        if let Some(cl) = self.cluster.as_mut() {
            if cl.owns(conn) {
                cl.on_down(cx, conn, "closed");
            } else if let Some(uid) = cx.uid(conn).map(str::to_string) {
                cl.unbound(cx, &uid);
            }
        }
    }

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

    fn on_request(&mut self, cx: &mut Context, conn: ConnId, req: &Request<'_>) -> Response {
        self.http(cx, conn, req)
    }
}
