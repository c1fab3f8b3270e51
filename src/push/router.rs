//! One router for pushes and queries. Every port (a text-port line, an HTTP
//! request, a routed client message) hands its request to [`Router::run`]
//! and renders the [`Answer`]; whether other nodes take part is decided
//! here and nowhere else.
//!
//! The router also owns the services delivery needs beyond this node (the
//! Redis cluster): their outbound connections, their timers and the
//! binding events they mirror come here, and only here. A new delivery
//! target (history streams, topics) is a new arm in the methods below and
//! nothing else: the ports only see outcomes.

use super::cluster::{Cluster, ClusterConfig};
use super::command::Command;
use super::history::{History, HistoryConfig};
use super::metrics::PushStats;
use super::outcome::{Outcome, Push, ReplyTo};
use super::stream::{self, Stream};
use super::topics::Topics;
use crate::app::{ConnId, Deferred};
use crate::reactor::Context;
use std::borrow::Cow;

/// Who asked, hence where the answer goes.
#[derive(Clone, Copy, Debug)]
pub(super) enum Port {
    /// A text-port line.
    Line(ConnId),
    /// An HTTP API request.
    Http(ConnId),
    /// A routed client message (`uid:msg`): only a loss is reported back.
    Route(ConnId),
    /// Nobody waits for the answer (`all:msg`).
    Quiet,
}

/// What a port gets back for a request.
pub(super) enum Answer<'a> {
    /// Known now: the port renders it.
    Now(Outcome<'a>),
    /// Promised at this place in the asking connection's reply order and
    /// given there later (an HTTP request answers `Response::later`).
    Later(Deferred),
    /// Given later without a place in a reply order (a routed message), or
    /// to nobody.
    Elsewhere,
    /// Not taken now (the Redis backlog is full, or the asking connection
    /// has too many answers outstanding): the port pauses the connection
    /// with the request put back, and the router resumes it once there is
    /// room. Only text-port lines and HTTP requests wait.
    Wait,
}

/// Where pushes are delivered and queries answered.
pub(super) enum Router {
    /// This node alone: everything is delivered and answered at once, and
    /// the history (with `--history`) is kept in memory.
    Local(Option<Box<History>>),
    /// Several nodes through Redis: delivered here at once, published to
    /// the others, answered once Redis has counted them.
    Cluster(Box<Cluster>),
}

impl Router {
    pub(super) fn new(cluster: Option<ClusterConfig>, history: HistoryConfig) -> Router {
        match cluster {
            Some(cfg) => Router::Cluster(Box::new(Cluster::new(cfg, history))),
            None => {
                let seed = crate::xorshift::seed(3);
                Router::Local(
                    history
                        .enabled()
                        .then(|| Box::new(History::new(history, seed))),
                )
            }
        }
    }

    /// The cluster, for its figures in /stats and /metrics.
    pub(super) fn cluster(&self) -> Option<&Cluster> {
        match self {
            Router::Local(_) => None,
            Router::Cluster(cl) => Some(cl),
        }
    }

    /// Subscribes `conn` to topic `name` from `since` through the Redis
    /// history; false when there is none (a node alone, or no history).
    pub(super) fn resume_topic(
        &mut self,
        conn: ConnId,
        name: &str,
        since: Option<&super::stream::Position>,
    ) -> bool {
        match self {
            Router::Cluster(cl) if cl.keeps_history() => {
                cl.resume_topic(conn, name, since.cloned());
                true
            }
            _ => false,
        }
    }

    /// `conn` unsubscribed from topic `name`: a subscription of it still
    /// waiting for its replay is dropped.
    pub(super) fn drop_topic_resume(&mut self, conn: ConnId, name: &str) {
        if let Router::Cluster(cl) = self {
            cl.drop_topic_resume(conn, name);
        }
    }

    /// The in-memory history, to resume topics from.
    pub(super) fn history_mut(&mut self) -> Option<&mut History> {
        match self {
            Router::Local(h) => h.as_deref_mut(),
            Router::Cluster(_) => None,
        }
    }

    /// The in-memory history, for its figures.
    pub(super) fn history(&self) -> Option<&History> {
        match self {
            Router::Local(h) => h.as_deref(),
            Router::Cluster(_) => None,
        }
    }

    /// Delivers a push (`text` is what recipients get) or answers a query,
    /// asked at `port`. Pushes answered here are counted in `stats`.
    pub(super) fn run<'c>(
        &mut self,
        cx: &mut Context,
        stats: &mut PushStats,
        topics: &mut Topics,
        cmd: &'c Command<'c>,
        text: &str,
        port: Port,
    ) -> Answer<'c> {
        let Some(request) = Request::of(cmd) else {
            return self.topic_command(cx, stats, topics, cmd, text, port);
        };
        let cl = match self {
            Router::Local(history) => {
                return Answer::Now(local(cx, stats, history.as_deref_mut(), request, text));
            }
            Router::Cluster(cl) => cl,
        };
        if let Port::Line(conn) | Port::Http(conn) = port {
            // Decided before anything is delivered: a request put back is
            // run again from the start, and must not reach anyone twice.
            let push = match request {
                Request::Push(_, uids) => Some((uids, text)),
                Request::Online(_) | Request::Count => None,
            };
            if cl.backlogged(push) || !cx.can_defer(conn) {
                cl.wait(conn);
                return Answer::Wait;
            }
        }
        let Some(to) = promise(cx, port) else {
            return Answer::Now(Outcome::Backlogged);
        };
        match request {
            Request::Online(uid) => cl.online(cx, uid, to),
            Request::Count => cl.count(cx, to),
            Request::Push(push, uids) => {
                let n = if cl.keeps_history() && cl.command_up() {
                    // Delivered here too when Redis hands it back with its
                    // offset, and counted then, in PUBLISH's count. (Redis
                    // away: delivered here at once, as not kept.)
                    0
                } else {
                    deliver_here(cx, None, uids, text, stats.v1_connections > 0)
                };
                if matches!(port, Port::Quiet) {
                    // Nobody waits for the cluster's count: what this node
                    // did is the tally.
                    stats.count(n);
                }
                cl.publish(cx, uids, push, text, n, to);
            }
        }
        later(to)
    }

    /// A topic command or a kick: run on this node's connections, and in a
    /// cluster sent to the other nodes too (`cluster/topics`). Presence
    /// and members are this node's.
    fn topic_command<'c>(
        &mut self,
        cx: &mut Context,
        stats: &mut PushStats,
        topics: &mut Topics,
        cmd: &'c Command<'c>,
        text: &str,
        port: Port,
    ) -> Answer<'c> {
        let tagged = stats.v1_connections > 0;
        let mut here = |cx: &mut Context, stats: &mut PushStats, h: Option<&mut History>| {
            let outcome = super::groups::run_here(cx, topics, h, cmd, text, tagged);
            if let Some(Outcome::Pushed(_, n)) = &outcome {
                stats.count(*n as usize);
            }
            outcome.unwrap_or(Outcome::Backlogged)
        };
        let cl = match self {
            Router::Cluster(cl) if cl.command_up() => cl,
            Router::Local(h) => return Answer::Now(here(cx, stats, h.as_deref_mut())),
            // Redis away: what this node did.
            Router::Cluster(_) => return Answer::Now(here(cx, stats, None)),
        };
        if let Port::Line(conn) | Port::Http(conn) = port {
            // Decided before anything is run, as for pushes.
            if cl.backlogged_by(text.len() + 256) || !cx.can_defer(conn) {
                cl.wait(conn);
                return Answer::Wait;
            }
        }
        let Some(to) = promise(cx, port) else {
            return Answer::Now(Outcome::Backlogged);
        };
        if let Command::Presence(name) = cmd {
            cl.presence(cx, topics, name, None, to);
            return later(to);
        }
        if let Command::Members(name, after, limit) = cmd {
            cl.presence(cx, topics, name, Some((after.as_deref(), *limit)), to);
            return later(to);
        }
        // With history a publish is delivered here too when Redis hands
        // it back with its offset (as a push is).
        let kept = matches!(cmd, Command::Publish(_)) && cl.keeps_history();
        let here = match (
            kept,
            super::groups::run_here_unless(kept, cx, topics, cmd, text, tagged),
        ) {
            (false, Some(Outcome::Done(n) | Outcome::Pushed(_, n))) => n,
            _ => 0,
        };
        match cmd {
            Command::Publish(name) => {
                cl.publish_topic(cx, name, text, here as usize, to);
            }
            Command::Join(_, uids) | Command::Leave(_, uids) => {
                cl.control(cx, text);
                cl.store_joins(cx, cmd);
                cl.tally(cx, uids, here, to);
            }
            Command::Kick(uid) => {
                cl.control(cx, text);
                cl.tally(cx, std::slice::from_ref(uid), here, to);
            }
            _ => {
                // drop: every node empties the topic; the answer is this
                // node's count.
                cl.control(cx, text);
                cl.store_joins(cx, cmd);
                Outcome::Done(here).answer(cx, to);
            }
        }
        later(to)
    }

    /// Topics gained their first member here or lost their last.
    pub(super) fn on_topics(&mut self, cx: &mut Context, topics: &mut Topics) {
        let changes = topics.take_changes();
        if let Router::Cluster(cl) = self {
            cl.on_topics(cx, changes);
        }
    }

    /// The /stats document asked on HTTP connection `conn`: this node's
    /// (`own`), and in a cluster every live node's beside it.
    pub(super) fn stats(&mut self, cx: &mut Context, conn: ConnId, own: String) -> Answer<'static> {
        let Router::Cluster(cl) = self else {
            return Answer::Now(Outcome::Stats(own));
        };
        match cx.defer(conn) {
            Some(d) => {
                cl.stats(cx, d, own);
                Answer::Later(d)
            }
            None => Answer::Now(Outcome::Stats(own)),
        }
    }

    /// A herald.v1 connection closed.
    pub(super) fn on_v1_closed(&mut self, conn: ConnId, topics: &Topics) {
        if let Router::Cluster(cl) = self {
            cl.on_v1_closed(conn, topics);
        }
    }

    /// A rotated Redis password (on reload); false without a cluster.
    pub(super) fn set_redis_password(&mut self, password: String) -> bool {
        match self {
            Router::Local(_) => false,
            Router::Cluster(cl) => {
                cl.set_password(Some(password));
                true
            }
        }
    }

    // ----- the services' own events -----

    /// The server runs: the services connect. `own` is this node's /stats,
    /// which the cluster shows the other nodes.
    pub(super) fn start(&mut self, cx: &mut Context, own: String) {
        if let Router::Cluster(cl) = self {
            cl.own_stats = own;
            cl.start(cx);
        }
    }

    /// A timer of a service fired (`own`: as for [`Router::start`]); a
    /// cluster reports its topics' presence too.
    pub(super) fn on_timer(
        &mut self,
        cx: &mut Context,
        token: u64,
        own: String,
        topics: &mut Topics,
    ) {
        if let Router::Cluster(cl) = self {
            cl.own_stats = own;
            cl.on_timer(cx, token);
            cl.report_topics(cx, topics);
            cl.flush_now(cx);
        }
    }

    /// An outbound connection of a service opened.
    pub(super) fn on_open(&mut self, cx: &mut Context, conn: ConnId) {
        if let Router::Cluster(cl) = self {
            cl.on_open(cx, conn);
        }
    }

    /// Bytes on an outbound connection of a service.
    pub(super) fn on_data(
        &mut self,
        cx: &mut Context,
        conn: ConnId,
        data: &[u8],
        topics: &mut Topics,
    ) {
        if let Router::Cluster(cl) = self {
            cl.on_data(cx, conn, data, topics);
        }
    }

    /// An outbound connection of a service failed to open, or closed.
    pub(super) fn on_down(&mut self, cx: &mut Context, conn: ConnId, why: &str) {
        if let Router::Cluster(cl) = self {
            cl.on_down(cx, conn, why);
        }
    }

    /// A connection here was bound to `uid` (`first`: the uid came online
    /// here): the cluster listens for it and counts it.
    pub(super) fn on_uid_bound(&mut self, cx: &mut Context, uid: &str, first: bool) {
        if let Router::Cluster(cl) = self {
            cl.on_uid_bound(cx, uid, first);
        }
    }

    /// A connection's binding to `uid` ended (`last`: none is left here).
    pub(super) fn on_uid_unbound(&mut self, cx: &mut Context, uid: &str, last: bool) {
        if let Router::Cluster(cl) = self {
            cl.on_uid_unbound(cx, uid, last);
        }
    }
}

/// A request served by this node alone.
fn local<'c>(
    cx: &mut Context,
    stats: &mut PushStats,
    history: Option<&mut History>,
    request: Request<'c>,
    text: &str,
) -> Outcome<'c> {
    match request {
        Request::Online(uid) => Outcome::Online(uid, cx.connections_of(uid) as u64),
        Request::Count => Outcome::Count {
            uids: cx.online_uids() as u64,
            connections: cx.bound_connections() as u64,
        },
        Request::Push(push, uids) => {
            let n = deliver_here(cx, history, uids, text, stats.v1_connections > 0);
            stats.count(n);
            Outcome::Pushed(push, n as u64)
        }
    }
}

/// Where the cluster's answer to a request asked at `port` will go: a place
/// reserved in the asker's reply order, or `None` when it has too many.
fn promise(cx: &mut Context, port: Port) -> Option<ReplyTo> {
    Some(match port {
        Port::Line(conn) => ReplyTo::Line(cx.defer(conn)?),
        Port::Http(conn) => ReplyTo::Http(cx.defer(conn)?),
        Port::Route(conn) => ReplyTo::Route(conn),
        Port::Quiet => ReplyTo::Nobody,
    })
}

/// The answer to a request whose outcome goes to `to` later.
fn later(to: ReplyTo) -> Answer<'static> {
    match to {
        ReplyTo::Line(d) | ReplyTo::Http(d) => Answer::Later(d),
        ReplyTo::Route(_) | ReplyTo::Nobody => Answer::Elsewhere,
    }
}

/// A command as the router sees it.
enum Request<'c> {
    /// A push to these uids (`None`: every bound connection).
    Push(Push<'c>, Option<&'c [Cow<'c, str>]>),
    Online(&'c str),
    Count,
}

impl<'c> Request<'c> {
    /// `None` for the topic commands and kicks (`groups`).
    fn of(cmd: &'c Command<'c>) -> Option<Request<'c>> {
        Some(match cmd {
            Command::Push(uid) => Request::Push(Push::One(uid), Some(std::slice::from_ref(uid))),
            Command::PushMany(uids) => Request::Push(Push::Many, Some(uids)),
            Command::Broadcast => Request::Push(Push::Many, None),
            Command::Online(uid) => Request::Online(uid),
            Command::Count => Request::Count,
            Command::Publish(_)
            | Command::Join(..)
            | Command::Leave(..)
            | Command::Drop(_)
            | Command::Presence(_)
            | Command::Members(..)
            | Command::Kick(_) => return None,
        })
    }
}

/// Delivers to this node's connections of `uids` (`None`: every bound
/// connection); how many took it. With a `history`, each stream keeps the
/// message first; `tagged`: some connection here reads herald.v1, whose
/// messages carry their stream and position.
fn deliver_here(
    cx: &mut Context,
    mut history: Option<&mut History>,
    uids: Option<&[Cow<'_, str>]>,
    text: &str,
    tagged: bool,
) -> usize {
    let now = cx.now_ms();
    let mut head = Vec::new();
    // The message's forms, made once for every uid it goes to.
    let mut frames = None;
    let mut one = |cx: &mut Context, stream: Stream<'_>| {
        head.clear();
        match history.as_deref_mut() {
            Some(h) => {
                let (epoch, offset) = h.append(stream, text, now);
                stream::write_head(&mut head, stream, format_args!("{epoch:x}"), offset);
            }
            None if tagged => stream::write_head(&mut head, stream, "-", 0),
            None => {}
        }
        let head = (!head.is_empty()).then_some(head.as_slice());
        match stream {
            Stream::Uid(uid) => cx.send_to_uid_in(&mut frames, uid, text, head),
            Stream::All => cx.broadcast_with(text, head),
            // Topics are published by `groups`.
            Stream::Topic(_) => 0,
        }
    };
    let sent = match uids {
        Some(uids) => uids.iter().map(|u| one(cx, Stream::Uid(u))).sum(),
        None => one(cx, Stream::All),
    };
    if let Some(f) = frames {
        cx.keep_frames(f);
    }
    sent
}
