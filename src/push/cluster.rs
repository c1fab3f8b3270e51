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

use crate::app::{ConnId, Deferred, Response};
use crate::reactor::Context;
use crate::redis::resp::{self, Reply};
use crate::redis::RedisUrl;
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

/// Heartbeat period; a node is dead once its key is 3 periods old.
const HEARTBEAT_MS: u64 = 2_000;
const ALIVE_MS: u64 = 3 * HEARTBEAT_MS;
/// Reconnect backoff bounds.
const BACKOFF_MIN_MS: u64 = 100;
const BACKOFF_MAX_MS: u64 = 5_000;
/// Timer tokens (the push application has no other timers).
const T_CMD: u64 = 1;
const T_SUB: u64 = 2;
const T_HEARTBEAT: u64 = 3;
/// The heartbeat's timer token: the application refreshes `own_stats` first.
pub(super) const HEARTBEAT_TOKEN: u64 = T_HEARTBEAT;

const SET_COUNT: &str = r#"local n = tonumber(ARGV[2])
if n > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], n)
  redis.call('SADD', KEYS[2], ARGV[3])
  redis.call('SADD', KEYS[3], ARGV[3])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[3], ARGV[3])
  if redis.call('HLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[3]) end
end
redis.call('HSET', KEYS[4], ARGV[1], ARGV[4])
return 0"#;

const ONLINE: &str = r#"local t = redis.call('HGETALL', KEYS[1])
local sum = 0
for i = 1, #t, 2 do
  if redis.call('EXISTS', ARGV[1] .. t[i]) == 1 then sum = sum + tonumber(t[i + 1]) end
end
return sum"#;

const COUNT: &str = r#"local t = redis.call('HGETALL', KEYS[1])
local sum = 0
for i = 1, #t, 2 do
  if redis.call('EXISTS', ARGV[1] .. t[i]) == 1 then sum = sum + tonumber(t[i + 1]) end
end
return {redis.call('SCARD', KEYS[2]), sum}"#;

const REAP: &str = r#"local p = ARGV[1]
for _, n in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', p .. 'alive:' .. n) == 0 then
    for _, u in ipairs(redis.call('SMEMBERS', p .. 'held:' .. n)) do
      redis.call('HDEL', p .. 'o:' .. u, n)
      if redis.call('HLEN', p .. 'o:' .. u) == 0 then redis.call('SREM', p .. 'uids', u) end
    end
    redis.call('DEL', p .. 'held:' .. n)
    redis.call('HDEL', p .. 'conns', n)
    redis.call('SREM', KEYS[1], n)
  end
end
return 0"#;

const NODE_STATS: &str = r#"local out = {}
for _, n in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local s = redis.call('GET', ARGV[1] .. 'stats:' .. n)
  if s then table.insert(out, s) end
end
return out"#;

fn sha(script: &str) -> String {
    sha1_smol::Sha1::from(script).digest().to_string()
}

/// Where an answer goes.
#[derive(Clone, Copy, Debug)]
pub(super) enum ReplyTo {
    Line(Deferred),
    Http(Deferred),
    /// A routed client message (`uid:msg`): `fail uid` back if nobody took it.
    Route(ConnId),
    Nobody,
}

/// What kind of push an aggregate answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PushKind {
    /// One uid: `ok` / `fail`.
    One,
    /// Several uids or everyone: `ok N` / `fail`.
    Many,
}

/// A push waiting for its PUBLISH replies.
struct Agg {
    to: ReplyTo,
    kind: PushKind,
    /// Connections reached on this node.
    local: usize,
    /// Other nodes that took it.
    remote: u64,
    /// PUBLISH replies still to come.
    waiting: usize,
    /// For `fail UID` after a routed message.
    uid: String,
}

/// What a reply on the command connection answers.
enum Pending {
    /// Nobody waits (bookkeeping, heartbeat, scripts).
    Quiet,
    /// One PUBLISH of the aggregate; `ours` when this node is (or may still
    /// be) subscribed to the channel, so its receiver count includes us.
    Publish {
        agg: u64,
        ours: bool,
    },
    Online {
        to: ReplyTo,
        uid: String,
    },
    Count {
        to: ReplyTo,
    },
    Stats {
        to: Deferred,
        own: String,
    },
}

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
    /// Local connections per uid (what this node announces).
    held: HashMap<String, u32>,
    bound: u64,
    /// Channels an UNSUBSCRIBE was sent for and not yet confirmed: Redis may
    /// still count this node among their receivers.
    leaving: HashSet<Vec<u8>>,
    pub(super) stats: ClusterStats,
    shas: [String; 5],
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
            held: HashMap::new(),
            bound: 0,
            leaving: HashSet::new(),
            stats: ClusterStats::default(),
            shas: [SET_COUNT, ONLINE, COUNT, REAP, NODE_STATS].map(sha),
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

    /// True when `conn` is one of the Redis connections (the application
    /// then hands its events here).
    pub(super) fn owns(&self, conn: ConnId) -> bool {
        self.cmd.conn == Some(conn) || self.sub.conn == Some(conn)
    }

    pub(super) fn owns_timer(token: u64) -> bool {
        matches!(token, T_CMD | T_SUB | T_HEARTBEAT)
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
            for script in [SET_COUNT, ONLINE, COUNT, REAP, NODE_STATS] {
                self.send_cmd(cx, &[b"SCRIPT", b"LOAD", script.as_bytes()], Pending::Quiet);
            }
            self.heartbeat(cx);
            let held: Vec<(String, u32)> = self.held.iter().map(|(u, n)| (u.clone(), *n)).collect();
            for (uid, n) in held {
                self.announce(cx, &uid, n);
            }
            if self.held.is_empty() {
                let (conns, node) = (self.key("conns"), self.cfg.node.clone());
                self.send_cmd(
                    cx,
                    &[b"HSET", conns.as_bytes(), node.as_bytes(), b"0"],
                    Pending::Quiet,
                );
            }
        } else {
            // The subscribed connection answers AUTH too: skip those replies
            // by their type (they are not arrays).
            let mut channels: Vec<Vec<u8>> =
                self.held.keys().map(|u| self.uid_channel(u)).collect();
            if self.bound > 0 {
                channels.push(self.all_channel());
            }
            for chunk in channels.chunks(256) {
                let mut args: Vec<&[u8]> = vec![b"SUBSCRIBE"];
                args.extend(chunk.iter().map(Vec::as_slice));
                self.send_sub(cx, &args);
            }
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
                Pending::Online { to, .. } | Pending::Count { to } => {
                    answer_error(cx, to, "redis unavailable")
                }
                Pending::Stats { to, own } => {
                    cx.respond(to, Response::json(200, own));
                }
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

    fn heartbeat(&mut self, cx: &mut Context) {
        let (alive, nodes, stats) = (
            self.key(&format!("alive:{}", self.cfg.node)),
            self.key("nodes"),
            self.key(&format!("stats:{}", self.cfg.node)),
        );
        let node = self.cfg.node.clone();
        let ttl = ALIVE_MS.to_string();
        self.send_cmd(
            cx,
            &[b"SET", alive.as_bytes(), b"1", b"PX", ttl.as_bytes()],
            Pending::Quiet,
        );
        self.send_cmd(
            cx,
            &[b"SADD", nodes.as_bytes(), node.as_bytes()],
            Pending::Quiet,
        );
        let prefix = format!("{}:", self.cfg.prefix);
        let reap = self.shas[3].clone();
        self.send_cmd(
            cx,
            &[
                b"EVALSHA",
                reap.as_bytes(),
                b"1",
                nodes.as_bytes(),
                prefix.as_bytes(),
            ],
            Pending::Quiet,
        );
        if !self.own_stats.is_empty() {
            let s = self.own_stats.clone();
            self.send_cmd(
                cx,
                &[
                    b"SET",
                    stats.as_bytes(),
                    s.as_bytes(),
                    b"PX",
                    ttl.as_bytes(),
                ],
                Pending::Quiet,
            );
        }
    }

    /// Tells Redis how many connections of `uid` this node holds.
    fn announce(&mut self, cx: &mut Context, uid: &str, n: u32) {
        let (o, uids, held, conns) = (
            self.key(&format!("o:{uid}")),
            self.key("uids"),
            self.key(&format!("held:{}", self.cfg.node)),
            self.key("conns"),
        );
        let (node, n, total, sha) = (
            self.cfg.node.clone(),
            n.to_string(),
            self.bound.to_string(),
            self.shas[0].clone(),
        );
        let args: [&[u8]; 11] = [
            b"EVALSHA",
            sha.as_bytes(),
            b"4",
            o.as_bytes(),
            uids.as_bytes(),
            held.as_bytes(),
            conns.as_bytes(),
            node.as_bytes(),
            n.as_bytes(),
            uid.as_bytes(),
            total.as_bytes(),
        ];
        self.send_cmd(cx, &args, Pending::Quiet);
    }

    /// A local connection was bound to `uid`.
    pub(super) fn bound(&mut self, cx: &mut Context, uid: &str) {
        let n = {
            let c = self.held.entry(uid.to_string()).or_insert(0);
            *c += 1;
            *c
        };
        self.bound += 1;
        if n == 1 {
            let ch = self.uid_channel(uid);
            self.leaving.remove(&ch);
            self.send_sub(cx, &[b"SUBSCRIBE", &ch]);
        }
        if self.bound == 1 {
            let ch = self.all_channel();
            self.leaving.remove(&ch);
            self.send_sub(cx, &[b"SUBSCRIBE", &ch]);
        }
        self.announce(cx, uid, n);
    }

    /// A local connection bound to `uid` closed.
    pub(super) fn unbound(&mut self, cx: &mut Context, uid: &str) {
        let Some(c) = self.held.get_mut(uid) else {
            return;
        };
        *c -= 1;
        let n = *c;
        if n == 0 {
            self.held.remove(uid);
            let ch = self.uid_channel(uid);
            self.send_sub(cx, &[b"UNSUBSCRIBE", &ch]);
            self.leaving.insert(ch);
        }
        self.bound = self.bound.saturating_sub(1);
        if self.bound == 0 {
            let ch = self.all_channel();
            self.send_sub(cx, &[b"UNSUBSCRIBE", &ch]);
            self.leaving.insert(ch);
        }
        self.announce(cx, uid, n);
    }

    /// Publishes a push that reached `local` connections here to the other
    /// nodes; the answer goes to `to` once Redis has counted its receivers
    /// (at once when the answer is already known). `targets` are the uids,
    /// or empty for everyone.
    pub(super) fn publish(
        &mut self,
        cx: &mut Context,
        targets: &[&str],
        text: &str,
        local: usize,
        kind: PushKind,
        to: ReplyTo,
    ) {
        let channels: Vec<(Vec<u8>, bool)> = if targets.is_empty() {
            let ch = self.all_channel();
            let ours = self.bound > 0 || self.leaving.contains(&ch);
            vec![(ch, ours)]
        } else {
            targets
                .iter()
                .map(|u| {
                    let ch = self.uid_channel(u);
                    let ours = self.held.contains_key(*u) || self.leaving.contains(&ch);
                    (ch, ours)
                })
                .collect()
        };
        let size: usize = channels
            .iter()
            .map(|(c, _)| c.len() + text.len() + 64)
            .sum();
        let agg_id = self.next_agg;
        self.next_agg += 1;
        let uid = targets.first().map_or(String::new(), |u| u.to_string());
        let mut agg = Agg {
            to,
            kind,
            local,
            remote: 0,
            waiting: 0,
            uid,
        };
        if !self.cmd.up {
            // Local delivery only: the answer says what happened here.
            self.finish(cx, &agg, false);
            return;
        }
        // Known already: this node reached someone, and one uid was asked.
        if kind == PushKind::One && local > 0 {
            self.finish(cx, &agg, true);
            agg.to = ReplyTo::Nobody;
        }
        if self.stats.pending_bytes as usize + size > self.cfg.max_pending {
            self.stats.backlog_refused += 1;
            let why = format!(
                "redis backlog full (--redis-max-pending): delivered to {local} connection(s) on this node only"
            );
            answer_error(cx, agg.to, &why);
            return;
        }
        let mut payload = Vec::with_capacity(self.cfg.node.len() + 1 + text.len());
        payload.extend_from_slice(self.cfg.node.as_bytes());
        payload.push(b'\n');
        payload.extend_from_slice(text.as_bytes());
        for (ch, ours) in channels {
            if self.send_cmd(
                cx,
                &[b"PUBLISH", &ch, &payload],
                Pending::Publish { agg: agg_id, ours },
            ) {
                agg.waiting += 1;
                self.stats.published += 1;
            }
        }
        if agg.waiting == 0 {
            self.finish(cx, &agg, true);
        } else {
            self.aggs.insert(agg_id, agg);
        }
    }

    /// Answers a push and counts it (once: an aggregate answered early goes
    /// on with nobody to tell).
    fn finish(&mut self, cx: &mut Context, a: &Agg, cluster: bool) {
        if !matches!(a.to, ReplyTo::Nobody) {
            if a.local > 0 || cluster && a.remote > 0 {
                self.stats.pushes_ok += 1;
            } else {
                self.stats.pushes_fail += 1;
            }
        }
        answer_push(cx, a, cluster);
    }

    /// `online` for the whole cluster.
    pub(super) fn online(&mut self, cx: &mut Context, uid: &str, to: ReplyTo) {
        let (sha, key, alive) = (
            self.shas[1].clone(),
            self.key(&format!("o:{uid}")),
            self.key("alive:"),
        );
        let args: [&[u8]; 5] = [
            b"EVALSHA",
            sha.as_bytes(),
            b"1",
            key.as_bytes(),
            alive.as_bytes(),
        ];
        let p = Pending::Online {
            to,
            uid: uid.to_string(),
        };
        if !self.send_cmd(cx, &args, p) {
            answer_error(cx, to, "redis unavailable");
        }
    }

    /// `count` for the whole cluster.
    pub(super) fn count(&mut self, cx: &mut Context, to: ReplyTo) {
        let (sha, conns, uids, alive) = (
            self.shas[2].clone(),
            self.key("conns"),
            self.key("uids"),
            self.key("alive:"),
        );
        let args: [&[u8]; 6] = [
            b"EVALSHA",
            sha.as_bytes(),
            b"2",
            conns.as_bytes(),
            uids.as_bytes(),
            alive.as_bytes(),
        ];
        if !self.send_cmd(cx, &args, Pending::Count { to }) {
            answer_error(cx, to, "redis unavailable");
        }
    }

    /// /stats with every live node's figures (`nodes`), or this node's alone
    /// while Redis is away.
    pub(super) fn stats(&mut self, cx: &mut Context, to: Deferred, own: String) {
        let (sha, nodes, prefix) = (
            self.shas[4].clone(),
            self.key("nodes"),
            format!("{}:", self.cfg.prefix),
        );
        let args: [&[u8]; 5] = [
            b"EVALSHA",
            sha.as_bytes(),
            b"1",
            nodes.as_bytes(),
            prefix.as_bytes(),
        ];
        let p = Pending::Stats {
            to,
            own: own.clone(),
        };
        if !self.send_cmd(cx, &args, p) {
            cx.respond(to, Response::json(200, own));
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
                let remote = receivers.saturating_sub(u64::from(ours));
                let done = match self.aggs.get_mut(&agg) {
                    Some(a) => {
                        a.remote += remote;
                        a.waiting -= 1;
                        a.waiting == 0
                    }
                    None => false,
                };
                if done {
                    if let Some(a) = self.aggs.remove(&agg) {
                        self.finish(cx, &a, true);
                    }
                }
            }
            Pending::Online { to, uid } => match reply.as_int() {
                Some(n) => answer_online(cx, to, &uid, n.max(0) as u64),
                None => answer_error(cx, to, "redis refused the query"),
            },
            Pending::Count { to } => {
                let nums = match &reply {
                    Reply::Array(Some(v)) if v.len() == 2 => v[0].as_int().zip(v[1].as_int()),
                    _ => None,
                };
                match nums {
                    Some((u, c)) => answer_text(
                        cx,
                        to,
                        format!("{{\"uids\":{},\"connections\":{}}}", u.max(0), c.max(0)),
                    ),
                    None => answer_error(cx, to, "redis refused the query"),
                }
            }
            Pending::Stats { to, own } => {
                let nodes: Vec<&[u8]> = match &reply {
                    Reply::Array(Some(v)) => v.iter().filter_map(|r| r.as_bytes()).collect(),
                    _ => Vec::new(),
                };
                let mut body = own;
                body.pop(); // the closing brace
                body.push_str(",\"nodes\":[");
                for (i, n) in nodes.iter().enumerate() {
                    if i > 0 {
                        body.push(',');
                    }
                    body.push_str(&String::from_utf8_lossy(n));
                }
                body.push_str("]}");
                cx.respond(to, Response::json(200, body));
            }
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

    /// A message another node (or this one) published.
    fn on_message(&mut self, cx: &mut Context, channel: &[u8], payload: &[u8]) {
        let Some(nl) = payload.iter().position(|&b| b == b'\n') else {
            return;
        };
        let (origin, text) = (&payload[..nl], &payload[nl + 1..]);
        if origin == self.cfg.node.as_bytes() {
            // Delivered here directly when it was pushed.
            return;
        }
        let Ok(text) = std::str::from_utf8(text) else {
            return;
        };
        self.stats.received += 1;
        let all = self.all_channel();
        if channel == all.as_slice() {
            cx.broadcast(text);
            return;
        }
        let prefix = format!("{}:u:", self.cfg.prefix);
        if let Some(uid) = channel.strip_prefix(prefix.as_bytes()) {
            if let Ok(uid) = std::str::from_utf8(uid) {
                cx.send_to_uid(uid, text);
            }
        }
    }
}

/// The answer to a push: `ok` / `fail` (one uid), `ok N` / `fail`
/// (several, everyone), as a text-port line or an HTTP response. `cluster`
/// says whether other nodes could be asked; when not, a push that reached
/// nobody here gets an error, since another node may hold the uid.
fn answer_push(cx: &mut Context, a: &Agg, cluster: bool) {
    let n = a.local as u64 + a.remote;
    if !cluster && a.local == 0 {
        match a.to {
            ReplyTo::Route(conn) => {
                cx.send_text(conn, &format!("fail {}", a.uid));
            }
            to => answer_error(
                cx,
                to,
                "redis unavailable: no connection for it on this node, other nodes not reachable",
            ),
        }
        return;
    }
    match a.to {
        ReplyTo::Line(d) => {
            let line = match (a.kind, n) {
                (_, 0) => "fail".to_string(),
                (PushKind::One, _) => "ok".to_string(),
                (PushKind::Many, n) => format!("ok {n}"),
            };
            cx.reply_line(d, line.as_bytes());
        }
        ReplyTo::Http(d) => {
            cx.respond(
                d,
                Response::json(200, format!("{{\"ok\":{},\"delivered\":{n}}}", n > 0)),
            );
        }
        ReplyTo::Route(conn) => {
            if n == 0 {
                cx.send_text(conn, &format!("fail {}", a.uid));
            }
        }
        ReplyTo::Nobody => {}
    }
}

fn answer_error(cx: &mut Context, to: ReplyTo, why: &str) {
    match to {
        ReplyTo::Line(d) => {
            cx.reply_line(d, format!("error {why}").as_bytes());
        }
        ReplyTo::Http(d) => {
            let body = format!("{{\"error\":{}}}", serde_json::Value::from(why));
            cx.respond(d, Response::json(503, body));
        }
        ReplyTo::Route(_) | ReplyTo::Nobody => {}
    }
}

fn answer_text(cx: &mut Context, to: ReplyTo, body: String) {
    match to {
        ReplyTo::Line(d) => {
            cx.reply_line(d, body.as_bytes());
        }
        ReplyTo::Http(d) => {
            cx.respond(d, Response::json(200, body));
        }
        ReplyTo::Route(_) | ReplyTo::Nobody => {}
    }
}

fn answer_online(cx: &mut Context, to: ReplyTo, uid: &str, n: u64) {
    match to {
        ReplyTo::Http(_) => answer_text(
            cx,
            to,
            format!(
                "{{\"uid\":{},\"online\":{},\"connections\":{n}}}",
                serde_json::Value::from(uid),
                n > 0
            ),
        ),
        _ => answer_text(cx, to, n.to_string()),
    }
}
