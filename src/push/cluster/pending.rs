//! What the command link's replies answer: the tag each command is sent
//! with, the pushes waiting for their PUBLISH receiver counts, and the
//! answer each reply (or its loss with the connection) settles, counted in
//! the cluster's figures.

use crate::app::{ConnId, Deferred};
use crate::push::outcome::{Failure, Outcome, Push, ReplyTo};
use crate::reactor::Context;
use crate::redis::resp::Frame;
use std::collections::HashMap;

/// Redis figures for /stats and /metrics.
#[derive(Clone, Debug, Default)]
pub struct ClusterStats {
    pub published: u64,
    pub received: u64,
    pub backlog_refused: u64,
    /// Pushes answered with delivery / with none, cluster-wide.
    pub pushes_ok: u64,
    pub pushes_fail: u64,
}

/// What a reply on the command link answers: the tag of its command.
pub(super) enum Pending {
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
    /// A topic's presence on the live nodes.
    Presence {
        to: ReplyTo,
        topic: String,
    },
    /// A page of a topic's uids on the live nodes.
    Members {
        to: ReplyTo,
        topic: String,
        limit: usize,
    },
    /// One uid's cluster-wide connection count in the answer to a topic
    /// command or a kick (`ok N`): tally `agg`.
    Tally {
        agg: u64,
    },
    /// Whether joins were ever made on this Redis.
    JoinsUsed,
    /// The topics a backend joined `uid` to.
    Joins {
        uid: Box<str>,
    },
    /// A topic's history read for a connection subscribing from a
    /// position.
    TopicRange {
        conn: ConnId,
        topic: Box<str>,
    },
    /// A resuming connection's history read, of its own stream (0) or of
    /// `all` (1).
    Range {
        conn: ConnId,
        which: usize,
    },
}

/// A push waiting for its PUBLISH replies.
pub(super) struct Agg {
    pub to: ReplyTo,
    /// A push to one uid (`ok`/`fail`), else several or everyone (`ok N`).
    pub one: bool,
    /// Connections reached on this node.
    pub local: usize,
    /// Other nodes that took it.
    pub remote: u64,
    /// PUBLISH replies still to come.
    pub waiting: usize,
    /// For `fail UID` after a routed message (empty for other pushes).
    pub uid: String,
}

impl Agg {
    /// What the answer is about.
    fn push(&self) -> Push<'_> {
        if self.one {
            Push::One(&self.uid)
        } else {
            Push::Many
        }
    }

    /// Answers the push and counts it (once: an aggregate answered early
    /// goes on with nobody to tell). `cluster`: the other nodes were asked.
    pub(super) fn finish(&self, cx: &mut Context, stats: &mut ClusterStats, cluster: bool) {
        if !matches!(self.to, ReplyTo::Nobody) {
            if self.local > 0 || cluster && self.remote > 0 {
                stats.pushes_ok += 1;
            } else {
                stats.pushes_fail += 1;
            }
        }
        // Without the other nodes, reaching nobody here proves nothing.
        let outcome = if !cluster && self.local == 0 {
            Outcome::Unconfirmed(self.push())
        } else {
            Outcome::Pushed(self.push(), self.local as u64 + self.remote)
        };
        outcome.answer(cx, self.to);
    }
}

/// A topic command or kick waiting for its uids' counts.
pub(super) struct Tally {
    pub to: ReplyTo,
    /// Connections counted so far.
    pub sum: u64,
    /// Counts still to come.
    pub waiting: usize,
    /// What this node did, the answer if Redis cannot count.
    pub local: u64,
}

/// The pushes waiting for PUBLISH replies, by aggregate id, and the
/// tallies waiting for counts.
#[derive(Default)]
pub(super) struct Waiting {
    aggs: HashMap<u64, Agg>,
    tallies: HashMap<u64, Tally>,
    next: u64,
}

impl Waiting {
    /// An id for the next aggregate.
    pub(super) fn next_id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    pub(super) fn insert(&mut self, id: u64, agg: Agg) {
        self.aggs.insert(id, agg);
    }

    pub(super) fn insert_tally(&mut self, id: u64, tally: Tally) {
        self.tallies.insert(id, tally);
    }

    /// Settles what `tag` waited for with its reply, or with `None` when
    /// the reply will never come (the command link went down, or the
    /// command could not be sent).
    pub(super) fn settle(
        &mut self,
        cx: &mut Context,
        stats: &mut ClusterStats,
        tag: Pending,
        reply: Option<Frame<'_>>,
    ) {
        match (tag, reply) {
            (Pending::Quiet, Some(Frame::Error(e))) => {
                crate::log_warn!("redis: {}", String::from_utf8_lossy(e));
            }
            (Pending::Quiet, _) => {}
            (Pending::Publish { agg, ours }, Some(reply)) => {
                let receivers = reply.as_int().unwrap_or(0).max(0) as u64;
                self.published(cx, stats, agg, receivers.saturating_sub(u64::from(ours)));
            }
            (Pending::Publish { agg, .. }, None) => {
                if let Some(a) = self.aggs.remove(&agg) {
                    a.finish(cx, stats, false);
                }
            }
            (Pending::Tally { agg }, reply) => {
                let Some(t) = self.tallies.get_mut(&agg) else {
                    return;
                };
                match reply.and_then(|r| r.as_int()) {
                    Some(n) => {
                        t.sum += n.max(0) as u64;
                        t.waiting -= 1;
                        if t.waiting == 0 {
                            if let Some(t) = self.tallies.remove(&agg) {
                                Outcome::Done(t.sum).answer(cx, t.to);
                            }
                        }
                    }
                    // Not counted: what this node did is the answer.
                    None => {
                        if let Some(t) = self.tallies.remove(&agg) {
                            Outcome::Done(t.local).answer(cx, t.to);
                        }
                    }
                }
            }
            (query, reply) => answer_query(cx, query, reply),
        }
    }

    /// One PUBLISH of aggregate `agg` reached `remote` other nodes.
    fn published(&mut self, cx: &mut Context, stats: &mut ClusterStats, agg: u64, remote: u64) {
        let Some(a) = self.aggs.get_mut(&agg) else {
            return;
        };
        a.remote += remote;
        a.waiting -= 1;
        if a.waiting == 0 {
            if let Some(a) = self.aggs.remove(&agg) {
                a.finish(cx, stats, true);
            }
        }
    }
}

/// Answers a query from its reply; `None`: Redis could not be asked, or
/// the command link went down before the reply came.
fn answer_query(cx: &mut Context, query: Pending, reply: Option<Frame<'_>>) {
    let Some(reply) = reply else {
        return match query {
            Pending::Online { to, .. }
            | Pending::Count { to }
            | Pending::Presence { to, .. }
            | Pending::Members { to, .. } => unavailable().answer(cx, to),
            Pending::Stats { to, own } => Outcome::Stats(own).answer(cx, ReplyTo::Http(to)),
            Pending::Quiet
            | Pending::Publish { .. }
            | Pending::Range { .. }
            | Pending::TopicRange { .. }
            | Pending::JoinsUsed
            | Pending::Joins { .. }
            | Pending::Tally { .. } => {}
        };
    };
    if let Frame::Error(e) = reply {
        crate::log_warn!("redis: {}", String::from_utf8_lossy(e));
    }
    let refused = || Outcome::Failed(Failure::Unavailable, "redis refused the query".into());
    match query {
        Pending::Online { to, uid } => match reply.as_int() {
            Some(n) => Outcome::Online(&uid, n.max(0) as u64).answer(cx, to),
            None => refused().answer(cx, to),
        },
        Pending::Count { to } => match counts(reply) {
            Some((uids, connections)) => Outcome::Count {
                uids: uids.max(0) as u64,
                connections: connections.max(0) as u64,
            }
            .answer(cx, to),
            None => refused().answer(cx, to),
        },
        Pending::Stats { to, own } => {
            Outcome::Stats(with_nodes(own, reply)).answer(cx, ReplyTo::Http(to))
        }
        Pending::Presence { to, topic } => match counts(reply) {
            Some((connections, uids)) => Outcome::Json(crate::push::groups::presence_json(
                &topic,
                connections.max(0) as usize,
                uids.max(0) as usize,
            ))
            .answer(cx, to),
            None => refused().answer(cx, to),
        },
        Pending::Members { to, topic, limit } => match strings(reply) {
            Some(uids) => {
                let page: Vec<&str> = uids.iter().map(String::as_str).collect();
                Outcome::Json(crate::push::groups::members_json(&topic, page, limit)).answer(cx, to)
            }
            None => refused().answer(cx, to),
        },
        Pending::Quiet
        | Pending::Publish { .. }
        | Pending::Range { .. }
        | Pending::TopicRange { .. }
        | Pending::JoinsUsed
        | Pending::Joins { .. }
        | Pending::Tally { .. } => {}
    }
}

/// The answer to a query Redis cannot take.
fn unavailable() -> Outcome<'static> {
    Outcome::Failed(Failure::Unavailable, "redis unavailable".into())
}

/// The COUNT script's reply: uids online, connections.
fn counts(reply: Frame<'_>) -> Option<(i64, i64)> {
    let mut items = reply.items().filter(|i| i.len() == 2)?;
    items.next()?.as_int().zip(items.next()?.as_int())
}

/// A reply's items as strings (a script's list of uids).
fn strings(reply: Frame<'_>) -> Option<Vec<String>> {
    let items = reply.items()?;
    Some(
        items
            .filter_map(|r| r.as_bytes())
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect(),
    )
}

/// This node's /stats document with every live node's (`"nodes":[...]`).
fn with_nodes(own: String, reply: Frame<'_>) -> String {
    let mut body = own;
    body.pop(); // the closing brace
    body.push_str(",\"nodes\":[");
    let nodes = reply.items().into_iter().flatten();
    for (i, n) in nodes.filter_map(|r| r.as_bytes()).enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&String::from_utf8_lossy(n));
    }
    body.push_str("]}");
    body
}
