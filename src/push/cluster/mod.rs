//! Several herald nodes (processes or machines) as one, through Redis:
//! per-uid channels, one shared broadcast channel, cluster-wide counts, and
//! what is answered while Redis is away. Every Redis call is a pipelined
//! command on one of two non-blocking connections the reactor drives (one
//! for commands, one subscribed); nothing here blocks.
//!
//! Design: a node subscribes to `PREFIX:u:UID` while it holds at least one
//! connection of that uid, and to `PREFIX:all` while it holds any bound
//! connection. A push is delivered to this node's connections directly and
//! published once; `PUBLISH`'s receiver count says whether another node
//! holds the uid, so `ok`/`fail` are true cluster-wide, and a push for one
//! uid costs only the nodes that hold it. Each message carries its origin
//! node, which skips its own, so every connection gets one copy. Counts
//! live in Redis per uid (`PREFIX:o:UID`, node -> connections) and per node
//! (`PREFIX:conns`), kept as absolute values so that a reconnect re-sends
//! them; a node's heartbeat key (`PREFIX:alive:NODE`, 6 s) tells the live
//! from the dead, whose entries any live node's heartbeat sweeps away.
//!
//! The cluster is a service of the push router: it answers with
//! [`Outcome`]s (the ports write them) and learns who is bound here from
//! the reactor's binding events and the hub, so it keeps no uid map. Every
//! outbound connection and timer of the push server is one of its own.
//!
//! Files: this one holds the two Redis links (connect, hello, backoff, the
//! pending FIFO, input buffering) and hands each reply to its meaning;
//! `presence` the presence protocol (subscriptions, counts, heartbeats,
//! queries), `fanout` pushes published and received, `pending` what the
//! replies answer, `scripts` the Lua.

mod fanout;
mod pending;
mod presence;
mod scripts;

use crate::app::ConnId;
use crate::reactor::Context;
use crate::redis::resp::{self, Reply};
use crate::redis::RedisUrl;
use pending::{Agg, Pending};
use scripts::Shas;
use std::collections::{HashMap, HashSet, VecDeque};

/// How a node joins the cluster.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub redis: RedisUrl,
    /// Key and channel prefix, so that applications can share a Redis.
    pub prefix: String,
    /// Bytes of commands sent to Redis and not yet answered; past it, pushes
    /// get `error redis backlog full`.
    pub max_pending: usize,
    /// This node's name (unique per process).
    pub node: String,
    /// The worker index under `--workers` (0 otherwise), for /stats.
    pub worker: usize,
}

/// Redis figures for /stats and /metrics.
#[derive(Clone, Debug, Default)]
pub struct ClusterStats {
    pub reconnects: u64,
    pub published: u64,
    pub received: u64,
    pub pending_bytes: u64,
    pub backlog_refused: u64,
    /// Pushes answered with delivery / with none, cluster-wide.
    pub pushes_ok: u64,
    pub pushes_fail: u64,
}

/// Heartbeat period.
const HEARTBEAT_MS: u64 = 2_000;
/// Reconnect backoff bounds.
const BACKOFF_MIN_MS: u64 = 100;
const BACKOFF_MAX_MS: u64 = 5_000;
/// Timer tokens: every timer of the push server is the cluster's.
const T_CMD: u64 = 1;
const T_SUB: u64 = 2;
const T_HEARTBEAT: u64 = 3;

/// One Redis connection.
#[derive(Default)]
struct Link {
    conn: Option<ConnId>,
    up: bool,
    /// Bytes received and not yet decoded.
    input: Vec<u8>,
    backoff_ms: u64,
    /// Failed attempts since it was last up (for a quiet log while Redis
    /// stays away).
    failures: u32,
}

pub(super) struct Cluster {
    cfg: ClusterConfig,
    cmd: Link,
    sub: Link,
    /// One entry per command sent on `cmd`, in order, with its size.
    pending: VecDeque<(Pending, usize)>,
    aggs: HashMap<u64, Agg>,
    next_agg: u64,
    /// This node listens to the broadcast channel (or will once the
    /// subscribed link is up): it held a bound connection at the last
    /// binding event.
    all_subscribed: bool,
    /// Channels an UNSUBSCRIBE was sent for and not yet confirmed: Redis may
    /// still count this node among their receivers.
    leaving: HashSet<Vec<u8>>,
    pub(super) stats: ClusterStats,
    shas: Shas,
    limits: resp::Limits,
    /// This node's last /stats, published with each heartbeat.
    pub(super) own_stats: String,
}

impl Cluster {
    pub(super) fn new(cfg: ClusterConfig) -> Cluster {
        Cluster {
            cfg,
            cmd: Link::default(),
            sub: Link::default(),
            pending: VecDeque::new(),
            aggs: HashMap::new(),
            next_agg: 0,
            all_subscribed: false,
            leaving: HashSet::new(),
            stats: ClusterStats::default(),
            shas: Shas::new(),
            limits: resp::Limits::default(),
            own_stats: String::new(),
        }
    }

    /// Both Redis connections are up.
    pub(super) fn up(&self) -> bool {
        self.cmd.up && self.sub.up
    }

    pub(super) fn node(&self) -> &str {
        &self.cfg.node
    }

    pub(super) fn worker(&self) -> usize {
        self.cfg.worker
    }

    fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.cfg.prefix)
    }

    fn uid_channel(&self, uid: &str) -> Vec<u8> {
        format!("{}:u:{uid}", self.cfg.prefix).into_bytes()
    }

    fn all_channel(&self) -> Vec<u8> {
        format!("{}:all", self.cfg.prefix).into_bytes()
    }

    /// Starts both connections (call once the reactor runs).
    pub(super) fn start(&mut self, cx: &mut Context) {
        self.connect_cmd(cx);
        self.connect_sub(cx);
        cx.set_timer(HEARTBEAT_MS, T_HEARTBEAT);
    }

    fn connect_cmd(&mut self, cx: &mut Context) {
        self.cmd.conn = Some(cx.connect(self.cfg.redis.addr));
    }

    fn connect_sub(&mut self, cx: &mut Context) {
        self.sub.conn = Some(cx.connect(self.cfg.redis.addr));
    }

    fn send_cmd(&mut self, cx: &mut Context, args: &[&[u8]], why: Pending) -> bool {
        let Some(conn) = self.cmd.conn.filter(|_| self.cmd.up) else {
            return false;
        };
        let mut buf = Vec::new();
        resp::encode(&mut buf, args);
        if !cx.send_bytes(conn, &buf) {
            return false;
        }
        self.stats.pending_bytes += buf.len() as u64;
        self.pending.push_back((why, buf.len()));
        true
    }

    fn send_sub(&mut self, cx: &mut Context, args: &[&[u8]]) {
        if let Some(conn) = self.sub.conn.filter(|_| self.sub.up) {
            let mut buf = Vec::new();
            resp::encode(&mut buf, args);
            cx.send_bytes(conn, &buf);
        }
    }

    /// An outbound connection opened: say hello (AUTH, SELECT), then
    /// restore this node's state on it.
    pub(super) fn on_open(&mut self, cx: &mut Context, conn: ConnId) {
        let is_cmd = self.cmd.conn == Some(conn);
        let link = if is_cmd { &mut self.cmd } else { &mut self.sub };
        link.up = true;
        link.backoff_ms = 0;
        link.failures = 0;
        link.input.clear();
        let mut hello = Vec::new();
        if let Some(pw) = &self.cfg.redis.password {
            resp::encode(&mut hello, &[b"AUTH", pw.as_bytes()]);
        }
        if self.cfg.redis.db != 0 && is_cmd {
            resp::encode(
                &mut hello,
                &[b"SELECT", self.cfg.redis.db.to_string().as_bytes()],
            );
        }
        let hellos = usize::from(self.cfg.redis.password.is_some())
            + usize::from(self.cfg.redis.db != 0 && is_cmd);
        cx.send_bytes(conn, &hello);
        if is_cmd {
            for _ in 0..hellos {
                self.pending.push_back((Pending::Quiet, 0));
            }
            for script in scripts::ALL {
                self.send_cmd(cx, &[b"SCRIPT", b"LOAD", script.as_bytes()], Pending::Quiet);
            }
            self.heartbeat(cx);
            self.announce_all(cx);
        } else {
            // The subscribed connection answers AUTH too: skip those replies
            // by their type (they are not arrays).
            self.resubscribe(cx);
        }
        if self.up() {
            crate::log_info!("redis: up ({:?}), node {}", self.cfg.redis, self.cfg.node);
        }
    }

    /// A connection failed or closed: answer what waited on it, then retry
    /// after a capped, jittered backoff.
    pub(super) fn on_down(&mut self, cx: &mut Context, conn: ConnId, why: &str) {
        let is_cmd = self.cmd.conn == Some(conn);
        if cx.is_stopping() {
            // Herald is stopping: its connections close, Redis's too.
            if is_cmd {
                self.fail_pending(cx);
            }
            self.cmd.conn = self.cmd.conn.filter(|c| *c != conn);
            self.sub.conn = self.sub.conn.filter(|c| *c != conn);
            return;
        }
        let was_up = self.up();
        let link = if is_cmd { &mut self.cmd } else { &mut self.sub };
        let had_been_up = link.up;
        link.failures += 1;
        let failures = link.failures;
        link.conn = None;
        link.up = false;
        link.input.clear();
        link.backoff_ms = (link.backoff_ms * 2).clamp(BACKOFF_MIN_MS, BACKOFF_MAX_MS);
        // Jitter: up to a quarter either way, from the clock's low bits.
        let jitter = crate::sys::monotonic_ms() % (link.backoff_ms / 2 + 1);
        let delay = link.backoff_ms - link.backoff_ms / 4 + jitter;
        cx.set_timer(delay, if is_cmd { T_CMD } else { T_SUB });
        if had_been_up {
            self.stats.reconnects += 1;
        }
        if is_cmd {
            self.fail_pending(cx);
        } else {
            self.leaving.clear();
        }
        // The first failure, then about once a minute while Redis stays away.
        if was_up || had_been_up || failures % 12 == 1 {
            crate::log_warn!(
                "redis: {} connection to {:?} {why}; retrying in {delay} ms (local delivery goes on)",
                if is_cmd { "command" } else { "subscriber" },
                self.cfg.redis
            );
        }
    }

    /// Answers everything that waited on the command connection.
    fn fail_pending(&mut self, cx: &mut Context) {
        for (p, _) in std::mem::take(&mut self.pending) {
            match p {
                Pending::Quiet => {}
                Pending::Publish { agg, .. } => {
                    if let Some(a) = self.aggs.remove(&agg) {
                        self.finish(cx, &a, false);
                    }
                }
                query => self.answer_query(cx, query, None),
            }
        }
        self.stats.pending_bytes = 0;
    }

    pub(super) fn on_timer(&mut self, cx: &mut Context, token: u64) {
        match token {
            T_CMD => self.connect_cmd(cx),
            T_SUB => self.connect_sub(cx),
            _ => {
                self.heartbeat(cx);
                cx.set_timer(HEARTBEAT_MS, T_HEARTBEAT);
            }
        }
    }

    /// Bytes from Redis.
    pub(super) fn on_data(&mut self, cx: &mut Context, conn: ConnId, data: &[u8]) {
        let is_cmd = self.cmd.conn == Some(conn);
        let mut input = std::mem::take(if is_cmd {
            &mut self.cmd.input
        } else {
            &mut self.sub.input
        });
        input.extend_from_slice(data);
        let mut pos = 0;
        loop {
            match resp::decode(&input[pos..], &self.limits) {
                Ok(Some((reply, used))) => {
                    pos += used;
                    if is_cmd {
                        self.on_cmd_reply(cx, reply);
                    } else {
                        self.on_sub_reply(cx, reply);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    crate::log_error!("redis: unreadable reply ({e}); reconnecting");
                    cx.close(conn, crate::ws::CloseCode::NORMAL, "");
                    return;
                }
            }
        }
        input.drain(..pos);
        // What Redis may make herald hold while a reply is incomplete.
        if input.len() > self.limits.max_bulk + self.limits.max_line {
            crate::log_error!("redis: a reply past {} bytes; reconnecting", input.len());
            cx.close(conn, crate::ws::CloseCode::NORMAL, "");
            return;
        }
        let link = if is_cmd { &mut self.cmd } else { &mut self.sub };
        if link.conn == Some(conn) {
            link.input = input;
        }
    }

    fn on_cmd_reply(&mut self, cx: &mut Context, reply: Reply<'_>) {
        let Some((p, size)) = self.pending.pop_front() else {
            return;
        };
        self.stats.pending_bytes = self.stats.pending_bytes.saturating_sub(size as u64);
        if let Reply::Error(e) = &reply {
            if !matches!(p, Pending::Quiet | Pending::Publish { .. }) {
                crate::log_warn!("redis: {}", String::from_utf8_lossy(e));
            }
        }
        match p {
            Pending::Quiet => {
                if let Reply::Error(e) = reply {
                    crate::log_warn!("redis: {}", String::from_utf8_lossy(e));
                }
            }
            Pending::Publish { agg, ours } => {
                let receivers = reply.as_int().unwrap_or(0).max(0) as u64;
                self.on_published(cx, agg, receivers.saturating_sub(u64::from(ours)));
            }
            query => self.answer_query(cx, query, Some(&reply)),
        }
    }

    fn on_sub_reply(&mut self, cx: &mut Context, reply: Reply<'_>) {
        let Reply::Array(Some(parts)) = reply else {
            if let Reply::Error(e) = reply {
                crate::log_warn!("redis: {}", String::from_utf8_lossy(e));
            }
            return;
        };
        let (Some(kind), Some(channel)) = (
            parts.first().and_then(Reply::as_bytes),
            parts.get(1).and_then(Reply::as_bytes),
        ) else {
            return;
        };
        match kind {
            b"message" => {
                let Some(payload) = parts.get(2).and_then(Reply::as_bytes) else {
                    return;
                };
                self.on_message(cx, channel, payload);
            }
            b"unsubscribe" => {
                self.leaving.remove(channel);
            }
            _ => {}
        }
    }
}
