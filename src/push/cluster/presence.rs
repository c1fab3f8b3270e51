//! The presence protocol: the channels this node listens to and the
//! counts it announces (both follow the reactor's binding events and read
//! the hub, so no uid map is kept here), the heartbeat that tells live
//! nodes from dead ones, and the cluster-wide queries: `online`, `count`,
//! /stats with every node's figures.

use super::pending::Pending;
use super::scripts::Script;
use super::{Cluster, HEARTBEAT_MS};
use crate::app::Deferred;
use crate::push::outcome::{Failure, Outcome, ReplyTo};
use crate::reactor::Context;
use crate::redis::resp::Reply;

/// A node is dead once its heartbeat key is 3 periods old.
const ALIVE_MS: u64 = 3 * HEARTBEAT_MS;

impl Cluster {
    /// A connection here was bound to `uid`; `first`: the uid came online
    /// on this node, whose channel it now listens to.
    pub(in crate::push) fn on_uid_bound(&mut self, cx: &mut Context, uid: &str, first: bool) {
        if first {
            let ch = self.uid_channel(uid);
            self.leaving.remove(&ch);
            self.send_sub(cx, &[b"SUBSCRIBE", &ch]);
        }
        self.follow_broadcasts(cx);
        self.announce(cx, uid);
    }

    /// A connection here bound to `uid` closed (or was unbound); `last`: the
    /// uid went offline on this node, which stops listening to its channel.
    pub(in crate::push) fn on_uid_unbound(&mut self, cx: &mut Context, uid: &str, last: bool) {
        if last {
            let ch = self.uid_channel(uid);
            self.send_sub(cx, &[b"UNSUBSCRIBE", &ch]);
            self.leaving.insert(ch);
        }
        self.follow_broadcasts(cx);
        self.announce(cx, uid);
    }

    /// Listens to the broadcast channel while this node holds any bound
    /// connection.
    fn follow_broadcasts(&mut self, cx: &mut Context) {
        let want = cx.bound_connections() > 0;
        if want == self.all_subscribed {
            return;
        }
        self.all_subscribed = want;
        let ch = self.all_channel();
        if want {
            self.leaving.remove(&ch);
            self.send_sub(cx, &[b"SUBSCRIBE", &ch]);
        } else {
            self.send_sub(cx, &[b"UNSUBSCRIBE", &ch]);
            self.leaving.insert(ch);
        }
    }

    /// A new subscribed link: listen to every channel this node needs.
    pub(super) fn resubscribe(&mut self, cx: &mut Context) {
        let mut channels: Vec<Vec<u8>> = cx.uids().map(|u| self.uid_channel(u)).collect();
        self.all_subscribed = cx.bound_connections() > 0;
        if self.all_subscribed {
            channels.push(self.all_channel());
        }
        for chunk in channels.chunks(256) {
            let mut args: Vec<&[u8]> = vec![b"SUBSCRIBE"];
            args.extend(chunk.iter().map(Vec::as_slice));
            self.send_sub(cx, &args);
        }
    }

    /// A new command link: tell Redis again what this node holds.
    pub(super) fn announce_all(&mut self, cx: &mut Context) {
        let uids: Vec<String> = cx.uids().map(str::to_string).collect();
        for uid in &uids {
            self.announce(cx, uid);
        }
        if uids.is_empty() {
            let (conns, node) = (self.key("conns"), self.cfg.node.clone());
            self.send_cmd(
                cx,
                &[b"HSET", conns.as_bytes(), node.as_bytes(), b"0"],
                Pending::Quiet,
            );
        }
    }

    /// Says this node is alive (with its /stats), and sweeps away what
    /// dead nodes left.
    pub(super) fn heartbeat(&mut self, cx: &mut Context) {
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
        self.eval(
            cx,
            Script::Reap,
            &[nodes.as_bytes()],
            &[prefix.as_bytes()],
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

    /// Tells Redis how many connections of `uid` this node holds, and how
    /// many bound connections in all (absolute values: sending them again
    /// is harmless).
    fn announce(&mut self, cx: &mut Context, uid: &str) {
        let (o, uids, held, conns) = (
            self.key(&format!("o:{uid}")),
            self.key("uids"),
            self.key(&format!("held:{}", self.cfg.node)),
            self.key("conns"),
        );
        let (node, n, total) = (
            self.cfg.node.clone(),
            cx.connections_of(uid).to_string(),
            cx.bound_connections().to_string(),
        );
        self.eval(
            cx,
            Script::SetCount,
            &[
                o.as_bytes(),
                uids.as_bytes(),
                held.as_bytes(),
                conns.as_bytes(),
            ],
            &[
                node.as_bytes(),
                n.as_bytes(),
                uid.as_bytes(),
                total.as_bytes(),
            ],
            Pending::Quiet,
        );
    }

    /// `online` for the whole cluster, answered at `to`.
    pub(in crate::push) fn online(&mut self, cx: &mut Context, uid: &str, to: ReplyTo) {
        let (key, alive) = (self.key(&format!("o:{uid}")), self.key("alive:"));
        let (keys, args): ([&[u8]; 1], [&[u8]; 1]) = ([key.as_bytes()], [alive.as_bytes()]);
        let uid = uid.to_string();
        if !self.eval(
            cx,
            Script::Online,
            &keys,
            &args,
            Pending::Online { to, uid },
        ) {
            unavailable().answer(cx, to);
        }
    }

    /// `count` for the whole cluster, answered at `to`.
    pub(in crate::push) fn count(&mut self, cx: &mut Context, to: ReplyTo) {
        let (conns, uids, alive) = (self.key("conns"), self.key("uids"), self.key("alive:"));
        let keys: [&[u8]; 2] = [conns.as_bytes(), uids.as_bytes()];
        if !self.eval(
            cx,
            Script::Count,
            &keys,
            &[alive.as_bytes()],
            Pending::Count { to },
        ) {
            unavailable().answer(cx, to);
        }
    }

    /// /stats with every live node's figures (`nodes`), or this node's alone
    /// while Redis is away.
    pub(in crate::push) fn stats(&mut self, cx: &mut Context, to: Deferred, own: String) {
        let (nodes, prefix) = (self.key("nodes"), format!("{}:", self.cfg.prefix));
        let (keys, args): ([&[u8]; 1], [&[u8]; 1]) = ([nodes.as_bytes()], [prefix.as_bytes()]);
        let p = Pending::Stats {
            to,
            own: own.clone(),
        };
        if !self.eval(cx, Script::NodeStats, &keys, &args, p) {
            Outcome::Stats(own).answer(cx, ReplyTo::Http(to));
        }
    }

    /// EVALSHA of a loaded script; false when the command link cannot take
    /// it.
    fn eval(
        &mut self,
        cx: &mut Context,
        script: Script,
        keys: &[&[u8]],
        args: &[&[u8]],
        why: Pending,
    ) -> bool {
        // A copy: sending borrows the whole cluster.
        let sha = self.shas.of(script).to_string();
        let key_count = keys.len().to_string();
        let mut cmd: Vec<&[u8]> = vec![b"EVALSHA", sha.as_bytes(), key_count.as_bytes()];
        cmd.extend_from_slice(keys);
        cmd.extend_from_slice(args);
        self.send_cmd(cx, &cmd, why)
    }

    /// Answers a query from its reply; `None`: the command link went down
    /// before the reply came.
    pub(super) fn answer_query(
        &mut self,
        cx: &mut Context,
        query: Pending,
        reply: Option<&Reply<'_>>,
    ) {
        let Some(reply) = reply else {
            return match query {
                Pending::Online { to, .. } | Pending::Count { to } => unavailable().answer(cx, to),
                Pending::Stats { to, own } => Outcome::Stats(own).answer(cx, ReplyTo::Http(to)),
                Pending::Quiet | Pending::Publish { .. } => {}
            };
        };
        let refused = || Outcome::Failed(Failure::Unavailable, "redis refused the query".into());
        match query {
            Pending::Online { to, uid } => match reply.as_int() {
                Some(n) => Outcome::Online(&uid, n.max(0) as u64).answer(cx, to),
                None => refused().answer(cx, to),
            },
            Pending::Count { to } => {
                let counts = match reply {
                    Reply::Array(Some(v)) if v.len() == 2 => v[0].as_int().zip(v[1].as_int()),
                    _ => None,
                };
                match counts {
                    Some((uids, connections)) => Outcome::Count {
                        uids: uids.max(0) as u64,
                        connections: connections.max(0) as u64,
                    }
                    .answer(cx, to),
                    None => refused().answer(cx, to),
                }
            }
            Pending::Stats { to, own } => {
                Outcome::Stats(with_nodes(own, reply)).answer(cx, ReplyTo::Http(to))
            }
            Pending::Quiet | Pending::Publish { .. } => {}
        }
    }
}

/// The answer to a query Redis cannot take.
fn unavailable() -> Outcome<'static> {
    Outcome::Failed(Failure::Unavailable, "redis unavailable".into())
}

/// This node's /stats document with every live node's (`"nodes":[...]`).
fn with_nodes(own: String, reply: &Reply<'_>) -> String {
    let nodes: Vec<&[u8]> = match reply {
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
    body
}
