//! The presence protocol: the channels this node listens to and the
//! counts it announces (both follow the reactor's binding events and read
//! the hub, so no uid map is kept here), the heartbeat that tells live
//! nodes from dead ones, and the cluster-wide queries: `online`, `count`,
//! /stats with every node's figures.

use super::pending::Pending;
use super::scripts::{self, Script};
use super::{Cluster, HEARTBEAT_MS};
use crate::app::Deferred;
use crate::push::outcome::ReplyTo;
use crate::reactor::Context;
use crate::redis::{Client, SendError};

/// A node is dead once its heartbeat key is 3 periods old.
const ALIVE_MS: u64 = 3 * HEARTBEAT_MS;

/// Subscriptions sent in one SUBSCRIBE when the link comes back.
const SUBSCRIBE_BATCH: usize = 256;

impl Cluster {
    /// A connection here was bound to `uid`; `first`: the uid came online
    /// on this node, whose channel it now listens to.
    pub(in crate::push) fn on_uid_bound(&mut self, cx: &mut Context, uid: &str, first: bool) {
        if first {
            let ch = self.names.uid_channel(uid);
            self.leaving.remove(&ch);
            // Not up: the link subscribes to every bound uid when it is.
            let _ = self.sub.subscribe(&[&ch]);
            self.read_joins(uid);
        }
        self.follow_broadcasts(cx);
        self.announce(cx, uid);
        self.flush(cx);
    }

    /// A connection here bound to `uid` closed (or was unbound); `last`: the
    /// uid went offline on this node, which stops listening to its channel.
    pub(in crate::push) fn on_uid_unbound(&mut self, cx: &mut Context, uid: &str, last: bool) {
        if last {
            let ch = self.names.uid_channel(uid);
            let _ = self.sub.unsubscribe(&[&ch]);
            self.leaving.insert(ch);
        }
        self.follow_broadcasts(cx);
        self.announce(cx, uid);
        self.flush(cx);
    }

    /// Listens to the broadcast channel while this node holds any bound
    /// connection.
    fn follow_broadcasts(&mut self, cx: &Context) {
        let want = cx.bound_connections() > 0;
        if want == self.all_subscribed {
            return;
        }
        self.all_subscribed = want;
        let ch = &self.names.all_channel;
        if want {
            self.leaving.remove(ch);
            let _ = self.sub.subscribe(&[ch]);
        } else {
            let _ = self.sub.unsubscribe(&[ch]);
            self.leaving.insert(ch.clone());
        }
    }

    /// The subscribed link came up: listen to every channel this node
    /// needs.
    pub(super) fn resubscribe(&mut self, cx: &Context) {
        let mut channels: Vec<Vec<u8>> = cx.uids().map(|u| self.names.uid_channel(u)).collect();
        self.all_subscribed = cx.bound_connections() > 0;
        if self.all_subscribed {
            channels.push(self.names.all_channel.clone());
        }
        // Topic commands reach every node, and topics those with members.
        channels.push(self.names.ctl_channel.clone());
        channels.extend(self.topic_subs.iter().cloned());
        for batch in channels.chunks(SUBSCRIBE_BATCH) {
            let batch: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
            let _ = self.sub.subscribe(&batch);
        }
    }

    /// The command link came up: load the scripts and say this node is
    /// alive.
    pub(super) fn reload(&mut self) {
        for script in scripts::ALL {
            quiet(&mut self.cmd, &[b"SCRIPT", b"LOAD", script.as_bytes()]);
        }
        self.heartbeat();
    }

    /// Both links are up: tell Redis again what this node holds. Not
    /// before the subscribed link is up, or `online` would count uids here
    /// that a push cannot reach yet.
    pub(super) fn announce_all(&mut self, cx: &Context) {
        let mut none = true;
        for uid in cx.uids() {
            self.announce(cx, uid);
            none = false;
        }
        if none {
            let (conns, node) = (&self.names.conns, &self.names.node);
            quiet(
                &mut self.cmd,
                &[b"HSET", conns.as_bytes(), node.as_bytes(), b"0"],
            );
        }
    }

    /// Says this node is alive (with its /stats), and sweeps away what
    /// dead nodes left.
    pub(super) fn heartbeat(&mut self) {
        let n = &self.names;
        let ttl = ALIVE_MS.to_string();
        let ttl = ttl.as_bytes();
        quiet(
            &mut self.cmd,
            &[b"SET", n.own_alive.as_bytes(), b"1", b"PX", ttl],
        );
        quiet(
            &mut self.cmd,
            &[b"SADD", n.nodes.as_bytes(), n.node.as_bytes()],
        );
        let (keys, args) = ([n.nodes.as_bytes()], [n.prefix.as_bytes()]);
        let _ = self
            .shas
            .eval(&mut self.cmd, Script::Reap, &keys, &args, Pending::Quiet);
        if !self.own_stats.is_empty() {
            let doc = self.own_stats.as_bytes();
            quiet(
                &mut self.cmd,
                &[b"SET", n.own_stats.as_bytes(), doc, b"PX", ttl],
            );
        }
    }

    /// Tells Redis how many connections of `uid` this node holds, and how
    /// many bound connections in all (absolute values: sending them again
    /// is harmless).
    fn announce(&mut self, cx: &Context, uid: &str) {
        let n = &self.names;
        let online = n.online_key(uid);
        let here = cx.connections_of(uid).to_string();
        let total = cx.bound_connections().to_string();
        let keys = [
            online.as_bytes(),
            n.uids.as_bytes(),
            n.own_held.as_bytes(),
            n.conns.as_bytes(),
        ];
        let args = [
            n.node.as_bytes(),
            here.as_bytes(),
            uid.as_bytes(),
            total.as_bytes(),
        ];
        let _ = self.shas.eval(
            &mut self.cmd,
            Script::SetCount,
            &keys,
            &args,
            Pending::Quiet,
        );
    }

    /// `online` for the whole cluster, answered at `to`.
    pub(in crate::push) fn online(&mut self, cx: &mut Context, uid: &str, to: ReplyTo) {
        let key = self.names.online_key(uid);
        let uid = uid.to_string();
        let sent = self.shas.eval(
            &mut self.cmd,
            Script::Online,
            &[key.as_bytes()],
            &[self.names.alive.as_bytes()],
            Pending::Online { to, uid },
        );
        self.asked(cx, sent);
    }

    /// `count` for the whole cluster, answered at `to`.
    pub(in crate::push) fn count(&mut self, cx: &mut Context, to: ReplyTo) {
        let n = &self.names;
        let sent = self.shas.eval(
            &mut self.cmd,
            Script::Count,
            &[n.conns.as_bytes(), n.uids.as_bytes()],
            &[n.alive.as_bytes()],
            Pending::Count { to },
        );
        self.asked(cx, sent);
    }

    /// /stats with every live node's figures (`nodes`), or this node's alone
    /// while Redis is away.
    pub(in crate::push) fn stats(&mut self, cx: &mut Context, to: Deferred, own: String) {
        let n = &self.names;
        let sent = self.shas.eval(
            &mut self.cmd,
            Script::NodeStats,
            &[n.nodes.as_bytes()],
            &[n.prefix.as_bytes()],
            Pending::Stats { to, own },
        );
        self.asked(cx, sent);
    }

    /// A query was sent, or it is answered now as if its reply were lost.
    pub(super) fn asked(&mut self, cx: &mut Context, sent: Result<(), SendError<Pending>>) {
        match sent {
            Ok(()) => self.flush(cx),
            Err(e) => self.waiting.settle(cx, &mut self.stats, e.into_tag(), None),
        }
    }
}

/// Sends a command nobody waits for. While the link is not up it is
/// dropped: coming up restores all of this node's state.
fn quiet(cmd: &mut Client<Pending>, args: &[&[u8]]) {
    let _ = cmd.send_unbounded(args, Pending::Quiet);
}
