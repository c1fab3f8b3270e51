//! The push server of the seeds: uid binding on the WebSocket, the text port
//! for backends, optional client routing, and the HTTP API.
//!
//! [`PushApp`], the application the server runs, is a composition of two
//! parts that never see each other's events:
//! - the ports (this file and `http`): WebSocket binding and routing, the
//!   text port, the HTTP API. They open no outbound connection and set no
//!   timer; each hands its pushes and queries to the router and writes the
//!   outcome it gets back.
//! - the router (`router`), which delivers every push and answers every
//!   query, here or through the Redis cluster (`cluster/`). Only its
//!   services open outbound connections and set timers, so every outbound
//!   connection's events and every timer go to the router, by
//!   construction; so do the reactor's binding events (a uid bound or
//!   unbound here), which the cluster mirrors in Redis.
//!
//! Files: `router` (delivery), `outcome` (answers, rendered once per port),
//! `http` (the HTTP API), `command` (the text-port decoder), `cluster/`
//! (nodes as one through Redis), `metrics` (/stats and /metrics), `status`
//! (the same figures for people).

pub mod cluster;
pub mod command;
mod groups;
pub mod history;
mod http;
mod metrics;
mod outcome;
mod replay;
mod resume;
mod router;
pub mod stream;
mod subscribe;
pub mod topics;

pub use metrics::PushStats;

use crate::app::{
    App, ConnId, Message, Protocol, Request, Response, TimerId, Upgrade, UpgradeRequest,
};
use crate::auth::{ApiTokens, Claims, Verifier};
use crate::reactor::{Context, Refusal};
use crate::ws::CloseCode;
use cluster::ClusterConfig;
use command::Command;
use history::HistoryConfig;
use outcome::{Failure, Outcome};
use router::{Answer, Port, Router};
use std::collections::{HashMap, HashSet};
use topics::Topics;

/// The heartbeat timer of herald.v1 clients (`subscribe`); the router's
/// services use small tokens.
const T_HEARTBEAT: u64 = 1 << 40;

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
    /// Where the Redis password came from (`--redis-password-file`),
    /// re-read by [`PushApp::reload`]: used from the next connection on.
    pub redis_password_file: Option<std::path::PathBuf>,
    /// Join a cluster of nodes through Redis (`--redis`).
    pub cluster: Option<ClusterConfig>,
    /// Message history for herald.v1 clients (`--history`): in memory, or
    /// in Redis with a cluster.
    pub history: HistoryConfig,
}

/// The push application: the ports and the router (see the module docs).
pub struct PushApp {
    config: PushConfig,
    stats: PushStats,
    /// RSS when the server was ready, before any connection.
    baseline_rss: u64,
    /// Text-port connections that gave the API token (only with one set).
    authorized: HashSet<ConnId>,
    /// herald.v1 connections whose URL token proved this uid, bound by
    /// their hello.
    url_uids: HashMap<ConnId, Claims>,
    /// Which connections are in which topic here.
    topics: Topics,
    /// herald.v1 connections whose token limits the topics they may
    /// subscribe to: its `topics` claim.
    allowed: HashMap<ConnId, Box<[Box<str>]>>,
    /// herald.v1 connections that asked for heartbeats.
    heartbeats: HashSet<ConnId>,
    /// The heartbeat timer is set.
    heartbeat_armed: bool,
    router: Router,
}

impl PushApp {
    pub fn new(config: PushConfig) -> PushApp {
        PushApp {
            stats: PushStats::default(),
            baseline_rss: 0,
            authorized: HashSet::new(),
            url_uids: HashMap::new(),
            // A cluster listens to the channels of the topics with members.
            topics: if config.cluster.is_some() {
                Topics::tracked()
            } else {
                Topics::default()
            },
            allowed: HashMap::new(),
            heartbeats: HashSet::new(),
            heartbeat_armed: false,
            router: Router::new(config.cluster.clone(), config.history),
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
        let redis = match &self.config.redis_password_file {
            Some(path) => Some(redis_password(path)?),
            None => None,
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
        if let Some(password) = redis {
            if self.router.set_redis_password(password) {
                done.push("the Redis password (used from the next connection)".into());
            }
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

    /// A text-port line: the API token first when one is set, then
    /// commands.
    fn on_line(&mut self, cx: &mut Context, conn: ConnId, line: &[u8]) {
        if self.config.api_tokens.is_some() && !self.authorized.contains(&conn) {
            return self.authorize_line(cx, conn, line);
        }
        let cmd = match command::parse(line) {
            Ok(cmd) => cmd,
            Err(e) => {
                self.stats.bad_requests += 1;
                let refused = Outcome::Failed(Failure::BadRequest, e.to_string().into());
                cx.send_line(conn, &refused.line());
                return;
            }
        };
        // parse() checked that the line is UTF-8.
        let text = std::str::from_utf8(line).unwrap_or_default();
        let port = Port::Line(conn);
        match self
            .router
            .run(cx, &mut self.stats, &mut self.topics, &cmd, text, port)
        {
            Answer::Now(outcome) => {
                cx.send_line(conn, &outcome.line());
            }
            // The line is put back and read again once the router resumes
            // the connection; one that cannot pause (closing) is told.
            Answer::Wait if !cx.pause(conn) => {
                cx.send_line(conn, &Outcome::Backlogged.line());
            }
            Answer::Wait | Answer::Later(_) | Answer::Elsewhere => {}
        }
    }

    fn on_ws_text(&mut self, cx: &mut Context, conn: ConnId, text: &str) {
        if cx.has_subprotocol(conn) {
            if cx.uid(conn).is_none() {
                return self.hello(cx, conn, text);
            }
            // herald.v1's own messages: subscriptions and heartbeats.
            if text.starts_with('{') || text == "h" {
                return self.v1_message(cx, conn, text);
            }
        }
        if cx.uid(conn).is_none() {
            if let Some(v) = &self.config.tokens {
                // Proven uids: the first message is a token, not a uid.
                match prove(v, text, cx.limits().max_uid) {
                    Ok(claims) => {
                        cx.bind_uid(conn, &claims.sub);
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
                let all = Command::Broadcast;
                let topics = &mut self.topics;
                self.router
                    .run(cx, &mut self.stats, topics, &all, msg, Port::Quiet);
            }
            Some((uid, msg)) => {
                let cmd = Command::Push(uid.into());
                let port = Port::Route(conn);
                let topics = &mut self.topics;
                if let Answer::Now(outcome) =
                    self.router
                        .run(cx, &mut self.stats, topics, &cmd, msg, port)
                {
                    // Nothing accepted is silently lost: tell the sender.
                    outcome.route(cx, conn);
                }
            }
        }
    }

    /// Topics that gained their first member here or lost their last: a
    /// cluster listens to their channels, or stops.
    fn sync_topics(&mut self, cx: &mut Context) {
        if self.topics.changed() {
            self.router.on_topics(cx, &mut self.topics);
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
            cluster: self.router.cluster(),
            history: self.router.history().map(|h| h.stats()).unwrap_or_default(),
            rss,
            rss_per_connection,
            topics: (
                self.topics.len() as u64,
                self.topics.memberships() as u64,
                self.topics.heap_bytes() as u64,
            ),
        }
    }
}

/// The uid a token proves (its `sub`, within `max_uid`), or why not: the
/// same for `?token=` and for a first message.
fn prove(v: &Verifier, token: &str, max_uid: usize) -> Result<Claims, String> {
    match v.verify(token, unix_now()) {
        Ok(c) if c.sub.len() > max_uid => Err(format!("uid too long (max {max_uid} bytes)")),
        Ok(c) => Ok(c),
        Err(e) => Err(e.to_string()),
    }
}

/// The Redis password in the first line of `path`.
pub fn redis_password(path: &std::path::Path) -> Result<String, String> {
    let lines = crate::auth::load_secrets(path, 1)?;
    String::from_utf8(lines.into_iter().next().unwrap_or_default())
        .map_err(|_| format!("{}: the Redis password is not UTF-8", path.display()))
}

/// Seconds since the Unix epoch, for token expiry.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The composition: client events go to the ports; binding events, and the
/// events of outbound connections and timers (which only the router's
/// services open and set), go to the router.
impl App for PushApp {
    // ----- the ports -----

    fn on_upgrade(&mut self, cx: &mut Context, conn: ConnId, req: &UpgradeRequest<'_>) -> Upgrade {
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
        let v1 =
            crate::ws::handshake::offers(req.header("sec-websocket-protocol"), stream::SUBPROTOCOL);
        let (Some(v), Some(token)) = (&self.config.tokens, req.query_param("token")) else {
            // No token in the URL: with proven uids the first message is one.
            return if v1 {
                Upgrade::AcceptProtocol(stream::SUBPROTOCOL)
            } else {
                Upgrade::Accept
            };
        };
        match prove(v, &token, cx.limits().max_uid) {
            Ok(claims) if v1 => {
                // Bound by the hello, which says where the client was.
                self.url_uids.insert(conn, claims);
                Upgrade::AcceptProtocol(stream::SUBPROTOCOL)
            }
            Ok(claims) => Upgrade::AcceptAs(claims.sub),
            Err(reason) => {
                self.stats.auth_refused += 1;
                Upgrade::Refuse(401, reason)
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
        self.sync_topics(cx);
    }

    fn on_request(&mut self, cx: &mut Context, conn: ConnId, req: &Request<'_>) -> Response {
        let response = self.on_http(cx, conn, req);
        self.sync_topics(cx);
        response
    }

    fn on_reload(&mut self, _cx: &mut Context) {
        match self.reload() {
            Ok(done) => crate::log_info!("SIGHUP: {done}"),
            Err(e) => crate::log_error!("SIGHUP: {e}; the secrets in use are kept"),
        }
    }

    fn on_close(&mut self, cx: &mut Context, conn: ConnId) {
        if cx.protocol(conn) == Some(Protocol::Outbound) {
            return self.router.on_down(cx, conn, "closed");
        }
        if !self.authorized.is_empty() {
            self.authorized.remove(&conn);
        }
        if !self.topics.is_empty() {
            let uid = cx.uid(conn).map(String::from);
            let siblings = uid.as_deref().map(|u| cx.slots_of(u, Some(conn)));
            let siblings = siblings.unwrap_or_default();
            self.topics
                .remove_conn(conn.idx(), uid.as_deref(), &siblings);
            self.sync_topics(cx);
        }
        if cx.has_subprotocol(conn) {
            self.stats.v1_connections -= 1;
            self.url_uids.remove(&conn);
            self.allowed.remove(&conn);
            self.heartbeats.remove(&conn);
            self.router.on_v1_closed(conn, &self.topics);
        }
    }

    // ----- the router: presence, and its services' connections and timers -----

    fn on_uid_bound(&mut self, cx: &mut Context, uid: &str, first: bool) {
        // The topics a backend joined the uid to take its new connection.
        if !self.topics.is_empty() {
            let conns = cx.slots_of(uid, None);
            for &conn in &conns {
                let siblings: Vec<u32> = conns.iter().copied().filter(|&c| c != conn).collect();
                self.topics.on_bound(uid, conn, &siblings);
            }
            self.sync_topics(cx);
        }
        self.router.on_uid_bound(cx, uid, first);
    }

    fn on_uid_unbound(&mut self, cx: &mut Context, uid: &str, last: bool) {
        self.router.on_uid_unbound(cx, uid, last);
    }

    fn on_start(&mut self, cx: &mut Context) {
        let own = self.stats_json(cx);
        self.router.start(cx, own);
    }

    fn on_open(&mut self, cx: &mut Context, conn: ConnId) {
        // Clients need nothing on open but a count of herald.v1 ones;
        // outbound connections are the router's.
        if cx.protocol(conn) == Some(Protocol::Outbound) {
            self.router.on_open(cx, conn);
        } else if cx.has_subprotocol(conn) {
            self.stats.v1_connections += 1;
        }
    }

    fn on_data(&mut self, cx: &mut Context, conn: ConnId, data: &[u8]) {
        self.router.on_data(cx, conn, data, &mut self.topics);
        self.sync_topics(cx);
    }

    fn on_connect_failed(&mut self, cx: &mut Context, conn: ConnId, error: std::io::Error) {
        self.router
            .on_down(cx, conn, &format!("cannot connect: {error}"));
    }

    fn on_timer(&mut self, cx: &mut Context, _timer: TimerId, token: u64) {
        if token == T_HEARTBEAT {
            return self.heartbeat(cx);
        }
        // What the other nodes see of this one travels with the heartbeat.
        let own = self.stats_json(cx);
        self.router.on_timer(cx, token, own, &mut self.topics);
    }
}
