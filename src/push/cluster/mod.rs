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
//! [`Outcome`](crate::push::outcome::Outcome)s (the ports write them) and
//! learns who is bound here from the reactor's binding events and the hub,
//! so it keeps no uid map. Every outbound connection and timer of the push
//! server is one of its own.
//!
//! Files: this one moves bytes and time between the reactor and the two
//! links of [`crate::redis`] (a [`Client`] whose replies come back tagged
//! with what they answer, and a [`Subscriber`]), which do the connecting,
//! the login, the backoff and the decoding; `presence` the presence
//! protocol (subscriptions, counts, heartbeats, queries), `fanout` pushes
//! published and received, `pending` what the replies answer, `names` the
//! keys and channels, `scripts` the Lua.

mod fanout;
mod history;
mod joins;
mod names;
mod pending;
mod presence;
mod resumes;
mod scripts;
mod topics;

pub use pending::ClusterStats;

use crate::app::ConnId;
use crate::push::history::HistoryConfig;
use crate::push::replay::ResumeStats;
use crate::reactor::Context;
use crate::redis::{Client, Link, LinkError, Push, RedisUrl, Subscriber};
use crate::ws::CloseCode;
use crate::xorshift;
use names::Names;
use pending::{Pending, Waiting};
use scripts::Shas;
use std::collections::HashSet;

/// How a node joins the cluster.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub redis: RedisUrl,
    /// Key and channel prefix, so that applications can share a Redis.
    pub prefix: String,
    /// Bytes of commands sent to Redis and not yet answered; past it,
    /// backends wait (their connections are not read until Redis caught up).
    pub max_pending: usize,
    /// This node's name. The pid of the process that serves is appended
    /// when the server starts (`NAME-PID`), so that each process's name is
    /// its own and carries its real pid, a daemon's or a worker's too.
    pub node: String,
    /// The worker index under `--workers` (`None` for a lone process), for
    /// /stats.
    pub worker: Option<usize>,
}

/// Heartbeat period.
const HEARTBEAT_MS: u64 = 2_000;
/// Timer tokens: every timer of the push server is the cluster's.
const T_CMD: u64 = 1;
const T_SUB: u64 = 2;
const T_HEARTBEAT: u64 = 3;
/// While a link keeps failing, its first failure is logged, then one in
/// this many (about once a minute at the backoff's cap).
const LOG_EVERY: u32 = 12;

/// One of the two links.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Command,
    Subscribed,
}

impl Side {
    fn timer(self) -> u64 {
        match self {
            Side::Command => T_CMD,
            Side::Subscribed => T_SUB,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Side::Command => "command",
            Side::Subscribed => "subscriber",
        }
    }
}

pub(super) struct Cluster {
    cfg: ClusterConfig,
    /// The command link; each command's tag says what its reply answers.
    cmd: Client<Pending>,
    /// The command link's socket, while it has one.
    cmd_conn: Option<ConnId>,
    sub: Subscriber,
    sub_conn: Option<ConnId>,
    names: Names,
    shas: Shas,
    /// Pushes waiting for their PUBLISH replies.
    waiting: Waiting,
    /// This node listens to the broadcast channel (or will once the
    /// subscribed link is up): it held a bound connection at the last
    /// binding event.
    all_subscribed: bool,
    /// Channels an UNSUBSCRIBE was sent for and not yet confirmed: Redis may
    /// still count this node among their receivers.
    leaving: HashSet<Vec<u8>>,
    /// A push's channel and payload, built in buffers kept between pushes.
    channel: Vec<u8>,
    payload: Vec<u8>,
    /// A herald.v1 head of a message heard, in a buffer kept too.
    head: Vec<u8>,
    /// The cluster's counters (the links keep their own: `pending_bytes`,
    /// `reconnects`).
    pub(super) stats: ClusterStats,
    /// This node's last /stats, published with each heartbeat.
    pub(super) own_stats: String,
    /// The history kept in Redis (`size` 0: none).
    history: HistoryConfig,
    /// `history`'s script arguments, spelled once (`HistoryConfig::redis_args`).
    history_args: [String; 3],
    /// herald.v1 connections resuming.
    resumes: resumes::Resumes,
    /// The channels of the topics with a member here.
    topic_subs: HashSet<Vec<u8>>,
    /// Both links came up: report every topic here for presence again.
    report_all: bool,
    /// Some backend joined a uid to a topic on this Redis (`joins`).
    joins_used: bool,
    /// For new epochs.
    rng: u64,
    /// Text-port and HTTP connections paused until Redis has answered
    /// enough (`Answer::Wait`), each once.
    waiters: Vec<ConnId>,
}

impl Cluster {
    pub(super) fn new(cfg: ClusterConfig, history: HistoryConfig) -> Cluster {
        Cluster {
            cmd: Client::new(&cfg.redis, cfg.max_pending, xorshift::seed(1)),
            cmd_conn: None,
            // Its own jitter: the two links of a node reconnect apart too.
            sub: Subscriber::new(&cfg.redis, xorshift::seed(2)),
            sub_conn: None,
            names: Names::new(&cfg.prefix, &cfg.node),
            shas: Shas::new(),
            waiting: Waiting::default(),
            all_subscribed: false,
            leaving: HashSet::new(),
            channel: Vec::new(),
            payload: Vec::new(),
            head: Vec::new(),
            stats: ClusterStats::default(),
            own_stats: String::new(),
            history_args: history.redis_args(),
            history,
            resumes: resumes::Resumes::default(),
            topic_subs: HashSet::new(),
            report_all: false,
            joins_used: false,
            rng: xorshift::seed(4) | 1,
            waiters: Vec::new(),
            cfg,
        }
    }

    /// Resumes answered from the Redis history.
    pub(in crate::push) fn resume_stats(&self) -> ResumeStats {
        self.resumes.stats
    }

    /// Both Redis connections are up (logged in).
    pub(super) fn up(&self) -> bool {
        self.cmd.link().is_up() && self.sub.link().is_up()
    }

    pub(super) fn node(&self) -> &str {
        &self.cfg.node
    }

    pub(super) fn worker(&self) -> Option<usize> {
        self.cfg.worker
    }

    fn link(&self, side: Side) -> &Link {
        match side {
            Side::Command => self.cmd.link(),
            Side::Subscribed => self.sub.link(),
        }
    }

    fn link_mut(&mut self, side: Side) -> &mut Link {
        match side {
            Side::Command => self.cmd.link_mut(),
            Side::Subscribed => self.sub.link_mut(),
        }
    }

    fn conn_mut(&mut self, side: Side) -> &mut Option<ConnId> {
        match side {
            Side::Command => &mut self.cmd_conn,
            Side::Subscribed => &mut self.sub_conn,
        }
    }

    /// The link `conn` is the socket of; `None` for a socket a link gave
    /// up on (its late events are not the link's any more).
    fn side_of(&self, conn: ConnId) -> Option<Side> {
        if self.cmd_conn == Some(conn) {
            Some(Side::Command)
        } else if self.sub_conn == Some(conn) {
            Some(Side::Subscribed)
        } else {
            None
        }
    }

    /// Starts both connections (call once the reactor runs).
    pub(super) fn start(&mut self, cx: &mut Context) {
        // Now, in the process that serves (after a daemon's or a worker's
        // fork): its own pid.
        self.cfg.node = format!("{}-{}", self.cfg.node, std::process::id());
        self.names = Names::new(&self.cfg.prefix, &self.cfg.node);
        self.connect(cx, Side::Command);
        self.connect(cx, Side::Subscribed);
        cx.set_timer(HEARTBEAT_MS, T_HEARTBEAT);
    }

    pub(super) fn on_timer(&mut self, cx: &mut Context, token: u64) {
        match token {
            T_CMD => self.connect(cx, Side::Command),
            T_SUB => self.connect(cx, Side::Subscribed),
            _ => {
                self.heartbeat();
                cx.set_timer(HEARTBEAT_MS, T_HEARTBEAT);
            }
        }
        self.flush(cx);
    }

    /// Opens `side`'s socket once its link is due to connect; until then,
    /// waits for it with a timer.
    fn connect(&mut self, cx: &mut Context, side: Side) {
        let now = crate::sys::monotonic_ms();
        if let Some(addr) = self.link_mut(side).poll_connect(now) {
            *self.conn_mut(side) = Some(cx.connect(addr));
        } else if let Some(at) = self.link(side).poll_timeout() {
            cx.set_timer(at.saturating_sub(now).max(1), side.timer());
        }
    }

    /// An outbound connection opened: its link logs in (and is up at once
    /// when there is nothing to log in with).
    pub(super) fn on_open(&mut self, cx: &mut Context, conn: ConnId) {
        let Some(side) = self.side_of(conn) else {
            return;
        };
        if self.link_mut(side).on_connected() {
            self.came_up(cx, side);
        }
        self.flush(cx);
    }

    /// Bytes from Redis: replies settle what they answer, messages are
    /// delivered here.
    pub(super) fn on_data(
        &mut self,
        cx: &mut Context,
        conn: ConnId,
        data: &[u8],
        topic_store: &mut crate::push::topics::Topics,
    ) {
        let Some(side) = self.side_of(conn) else {
            return;
        };
        let read = match side {
            Side::Command => {
                let (waiting, stats) = (&mut self.waiting, &mut self.stats);
                let resumes = &mut self.resumes;
                let mut used = None;
                let read = self.cmd.handle_data(data, |tag, reply| match tag {
                    Pending::JoinsUsed => used = Some(reply.as_int() == Some(1)),
                    Pending::Joins { uid } => Cluster::on_joins(cx, topic_store, &uid, reply),
                    Pending::Range { conn, which } => resumes.on_range(conn, which, Some(reply)),
                    Pending::TopicRange { conn, topic } => {
                        resumes.on_topic_range(conn, &topic, Some(reply))
                    }
                    tag => waiting.settle(cx, stats, tag, Some(reply)),
                });
                if let Some(used) = used {
                    self.on_joins_used(cx, used);
                }
                read
            }
            Side::Subscribed => {
                let (names, stats, leaving) = (&self.names, &mut self.stats, &mut self.leaving);
                let (resumes, kept) = (&mut self.resumes, self.history.enabled());
                let head = &mut self.head;
                let mut pongs = 0;
                let read = self.sub.handle_data(data, |push| match push {
                    Push::Message { channel, payload } => {
                        let cl = (names, &mut *stats, &mut *resumes, kept);
                        if !Cluster::heard_topic(cx, cl, topic_store, channel, payload) {
                            let heard = (channel, payload);
                            Cluster::deliver(cx, names, stats, resumes, head, kept, heard);
                        }
                    }
                    Push::Unsubscribed { channel, .. } => {
                        leaving.remove(channel);
                    }
                    Push::Pong(tag) => pongs += usize::from(resumes::is_barrier(tag)),
                    Push::Error(e) => crate::log_warn!("redis: {}", String::from_utf8_lossy(e)),
                    Push::Subscribed { .. } => {}
                });
                for _ in 0..pongs {
                    self.on_pong(cx, topic_store);
                }
                read
            }
        };
        match read {
            Ok(true) => self.came_up(cx, side),
            Ok(false) => {}
            Err(e) => return self.give_up(cx, side, conn, &e),
        }
        // Half the bound free again: the waiting connections retry (a
        // margin, so that each resume takes many requests, not one).
        if side == Side::Command && self.cmd.pending_bytes() <= self.cfg.max_pending / 2 {
            self.wake_waiters(cx);
        }
        self.flush(cx);
    }

    /// `conn`'s request waits for Redis to answer earlier ones; the port
    /// pauses it.
    pub(in crate::push) fn wait(&mut self, conn: ConnId) {
        if !self.waiters.contains(&conn) {
            self.waiters.push(conn);
        }
    }

    /// Resumes every connection waiting for Redis: each retries its request.
    fn wake_waiters(&mut self, cx: &mut Context) {
        for conn in self.waiters.drain(..) {
            cx.resume(conn);
        }
    }

    /// A link is up (logged in): Redis is told again what it should know
    /// of this node, its counts once both links are up.
    fn came_up(&mut self, cx: &mut Context, side: Side) {
        match side {
            Side::Command => self.reload(),
            Side::Subscribed => self.resubscribe(cx),
        }
        if self.up() {
            self.announce_all(cx);
            self.report_all = true;
            self.ask_joins_used();
            crate::log_info!("redis: up ({:?}), node {}", self.cfg.redis, self.cfg.node);
        }
    }

    /// A link's connection failed or closed.
    pub(super) fn on_down(&mut self, cx: &mut Context, conn: ConnId, why: &str) {
        if let Some(side) = self.side_of(conn) {
            self.went_down(cx, side, why, false);
        }
    }

    /// The link refused what it read (a refused login, bytes that are no
    /// reply): its socket is closed, and its late close is not the link's.
    fn give_up(&mut self, cx: &mut Context, side: Side, conn: ConnId, e: &LinkError) {
        cx.close(conn, CloseCode::NORMAL, "");
        self.went_down(cx, side, &format!("dropped ({e})"), true);
    }

    /// `side` lost its connection: what waited on it is answered, and it
    /// reconnects after its backoff (unless herald is stopping).
    fn went_down(&mut self, cx: &mut Context, side: Side, why: &str, error: bool) {
        let now = crate::sys::monotonic_ms();
        *self.conn_mut(side) = None;
        match side {
            Side::Command => {
                for tag in self.cmd.on_down(now) {
                    match tag {
                        Pending::Range { conn, .. } => self.resumes.retry(conn),
                        Pending::TopicRange { conn, topic } => {
                            self.resumes.retry_topic(conn, &topic)
                        }
                        tag => self.waiting.settle(cx, &mut self.stats, tag, None),
                    }
                }
                // Nothing waits for a link that is down: requests are
                // answered from this node.
                self.wake_waiters(cx);
            }
            Side::Subscribed => {
                self.sub.on_down(now);
                self.leaving.clear();
                self.barriers_lost();
            }
        }
        if cx.is_stopping() {
            // Herald is stopping: its connections close, Redis's too.
            return;
        }
        let link = self.link(side);
        let delay = link.poll_timeout().map_or(0, |at| at.saturating_sub(now));
        if link.failures() % LOG_EVERY == 1 {
            let text = format!(
                "redis: {} connection to {:?} {why}; retrying in {delay} ms (local delivery goes on)",
                side.name(),
                self.cfg.redis
            );
            if error {
                crate::log_error!("{text}");
            } else {
                crate::log_warn!("{text}");
            }
        }
        cx.set_timer(delay.max(1), side.timer());
    }

    /// Hands what the links have to write to their sockets. A socket that
    /// takes no more (closing, or its queue full) takes its link down.
    fn flush(&mut self, cx: &mut Context) {
        // After whatever SUBSCRIBE this turn wrote: see `history`.
        self.barrier();
        for side in [Side::Command, Side::Subscribed] {
            let Some(conn) = *self.conn_mut(side) else {
                continue;
            };
            let link = self.link_mut(side);
            let Some(bytes) = link.poll_transmit() else {
                continue;
            };
            let n = bytes.len();
            if cx.send_bytes(conn, bytes) {
                link.advance_transmit(n);
            } else {
                cx.close(conn, CloseCode::NORMAL, "");
                self.went_down(cx, side, "could not be written to", true);
            }
        }
    }

    /// Logs in with `password` from the next connection on (a rotation on
    /// reload); the links up now stay up.
    pub(in crate::push) fn set_password(&mut self, password: Option<String>) {
        self.cfg.redis.password = password;
        self.cmd.link_mut().set_login(&self.cfg.redis);
        self.sub.link_mut().set_login(&self.cfg.redis);
    }

    /// Bytes sent to Redis and not yet answered (the command link's).
    pub(super) fn pending_bytes(&self) -> u64 {
        self.cmd.pending_bytes() as u64
    }

    /// Connections to Redis lost and retried, both links.
    pub(super) fn reconnects(&self) -> u64 {
        self.cmd.link().reconnects() + self.sub.link().reconnects()
    }
}
