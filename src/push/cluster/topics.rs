//! Topics and kicks across nodes.
//!
//! A node listens to `PREFIX:t:NAME` while it holds a member of topic NAME
//! (as it listens to a uid's channel while it holds the uid). A publish is
//! delivered here and published once; PUBLISH's receiver count says how
//! many other nodes took it, so `ok N` counts this node's connections and
//! one per other node that reached some, as a broadcast does.
//!
//! `join`, `leave`, `drop` and `kick` travel as their own command line on
//! `PREFIX:ctl`, which every node listens to, and every node runs them on
//! its own connections. A backend's join is thus kept on every node, and
//! the uid's reconnect rejoins wherever it lands. Joins, leaves and kicks
//! are answered with the uids' connection counts across the cluster (the
//! presence counts), taken when the command was sent: the connections it
//! reached.

use super::names::Names;
use super::pending::{Agg, ClusterStats, Pending, Tally};
use super::resumes::Resumes;
use super::Cluster;
use crate::push::command::{self, Command};
use crate::push::groups;
use crate::push::outcome::{Failure, Outcome, ReplyTo};
use crate::push::stream::{self, Stream};
use crate::push::topics::Topics;
use crate::reactor::Context;
use crate::redis::resp;
use std::borrow::Cow;

impl Cluster {
    /// Topics that gained their first member here (`true`) or lost their
    /// last: this node listens to their channels, or stops.
    pub(in crate::push) fn on_topics(&mut self, cx: &mut Context, changes: Vec<(Box<str>, bool)>) {
        for (name, on) in changes {
            let ch = self.names.topic_channel(&name);
            if on {
                self.leaving.remove(&ch);
                let _ = self.sub.subscribe(&[&ch]);
                self.topic_subs.insert(ch);
            } else {
                let _ = self.sub.unsubscribe(&[&ch]);
                self.topic_subs.remove(&ch);
                self.leaving.insert(ch);
            }
        }
        self.flush(cx);
    }

    /// True when a command of about `bytes` must wait for Redis to answer
    /// earlier ones (see [`Cluster::backlogged`]).
    pub(in crate::push) fn backlogged_by(&self, bytes: usize) -> bool {
        let pending = self.cmd.pending_bytes();
        self.cmd.link().is_up()
            && pending > 0
            && pending.saturating_add(bytes) > self.cfg.max_pending
    }

    /// Publishes `text` to topic `name` on the other nodes, after it
    /// reached `local` connections here; answered at `to` once Redis has
    /// counted the receivers.
    pub(in crate::push) fn publish_topic(
        &mut self,
        cx: &mut Context,
        name: &str,
        text: &str,
        local: usize,
        to: ReplyTo,
    ) {
        let mut agg = Agg {
            to,
            one: false,
            local,
            remote: 0,
            waiting: 0,
            uid: String::new(),
        };
        if !self.cmd.link().is_up() {
            return agg.finish(cx, &mut self.stats, false);
        }
        let ch = self.names.topic_channel(name);
        self.payload.clear();
        self.payload.extend_from_slice(self.names.node.as_bytes());
        self.payload.push(b'\n');
        self.payload.extend_from_slice(text.as_bytes());
        // With history, the script's call: its SHA, the keys and bounds.
        let script = if self.keeps_history() { 160 } else { 0 };
        let size = resp::encoded_len(&[b"PUBLISH", &ch, &self.payload]) + script;
        if self.cmd.pending_bytes().saturating_add(size) > self.cfg.max_pending {
            self.stats.backlog_refused += 1;
            let why = format!(
                "redis backlog full (--redis-max-pending): delivered to {local} connection(s) on this node only"
            );
            return Outcome::Failed(Failure::Unavailable, why.into()).answer(cx, to);
        }
        // This node's own receiver is in the count while it listens
        // (with history it delivers what Redis hands back: it counts).
        let keeps = self.keeps_history();
        let ours = !keeps && (self.topic_subs.contains(&ch) || self.leaving.contains(&ch));
        let id = self.waiting.next_id();
        let tag = Pending::Publish { agg: id, ours };
        let sent = if keeps {
            self.channel = ch;
            self.add_to(Stream::Topic(name), text, tag)
        } else {
            let publish: [&[u8]; 3] = [b"PUBLISH", &ch, &self.payload];
            self.cmd.send(&publish, tag).is_ok()
        };
        if sent {
            agg.waiting = 1;
            self.stats.published += 1;
            self.waiting.insert(id, agg);
        } else {
            agg.finish(cx, &mut self.stats, true);
        }
        self.flush(cx);
    }

    /// Sends a topic command or kick (its line) to the other nodes.
    pub(in crate::push) fn control(&mut self, cx: &mut Context, line: &str) {
        let mut payload = Vec::with_capacity(self.names.node.len() + 1 + line.len());
        payload.extend_from_slice(self.names.node.as_bytes());
        payload.push(b'\n');
        payload.extend_from_slice(line.as_bytes());
        let publish: [&[u8]; 3] = [b"PUBLISH", &self.names.ctl_channel, &payload];
        let _ = self.cmd.send_unbounded(&publish, Pending::Quiet);
        self.flush(cx);
    }

    /// Answers at `to` with the connections of `uids` across the cluster
    /// (`local`: this node's, the answer when Redis cannot count).
    pub(in crate::push) fn tally(
        &mut self,
        cx: &mut Context,
        uids: &[Cow<'_, str>],
        local: u64,
        to: ReplyTo,
    ) {
        let id = self.waiting.next_id();
        let mut tally = Tally {
            to,
            sum: 0,
            waiting: 0,
            local,
        };
        for uid in uids {
            let key = self.names.online_key(uid);
            let sent = self.shas.eval(
                &mut self.cmd,
                super::scripts::Script::Online,
                &[key.as_bytes()],
                &[self.names.alive.as_bytes()],
                Pending::Tally { agg: id },
            );
            if sent.is_err() {
                return Outcome::Done(local).answer(cx, to);
            }
            tally.waiting += 1;
        }
        if tally.waiting == 0 {
            return Outcome::Done(local).answer(cx, to);
        }
        self.waiting.insert_tally(id, tally);
        self.flush(cx);
    }
}

/// Uids per SADD when a topic's presence is reported.
const SADD_BATCH: usize = 512;

impl Cluster {
    /// Reports, for presence, the topics whose members here changed: this
    /// node's connections in each (`PREFIX:tp:{NAME}`, node -> count) and
    /// their uids (`PREFIX:tu:{NAME}:NODE`), and which topics it reported
    /// (`PREFIX:tn:NODE`, swept with the node when it dies). Called on
    /// every timer (the heartbeat's 2 s) and before a presence query, so
    /// other nodes' figures are at most a heartbeat old.
    pub(in crate::push) fn report_topics(&mut self, cx: &Context, topics: &mut Topics) {
        if !self.cmd.link().is_up() {
            return;
        }
        if std::mem::take(&mut self.report_all) {
            topics.mark_all_dirty();
        }
        let (p, node) = (&self.names.prefix, &self.names.node);
        let tn = format!("{p}tn:{node}");
        let quiet = |cmd: &mut crate::redis::Client<Pending>, args: &[&[u8]]| {
            let _ = cmd.send_unbounded(args, Pending::Quiet);
        };
        for name in topics.take_dirty() {
            let (conns, uids) = groups::presence_here(cx, topics, &name);
            let tp = format!("{p}tp:{{{name}}}");
            let tu = format!("{p}tu:{{{name}}}:{node}");
            quiet(&mut self.cmd, &[b"DEL", tu.as_bytes()]);
            if conns == 0 {
                quiet(&mut self.cmd, &[b"HDEL", tp.as_bytes(), node.as_bytes()]);
                quiet(&mut self.cmd, &[b"SREM", tn.as_bytes(), name.as_bytes()]);
                continue;
            }
            for batch in uids.chunks(SADD_BATCH) {
                let mut args: Vec<&[u8]> = vec![b"SADD", tu.as_bytes()];
                args.extend(batch.iter().map(|u| u.as_bytes()));
                quiet(&mut self.cmd, &args);
            }
            let n = conns.to_string();
            quiet(
                &mut self.cmd,
                &[b"HSET", tp.as_bytes(), node.as_bytes(), n.as_bytes()],
            );
            quiet(&mut self.cmd, &[b"SADD", tn.as_bytes(), name.as_bytes()]);
        }
    }

    /// Hands what the links have to write to their sockets (after a
    /// report made outside a request).
    pub(in crate::push) fn flush_now(&mut self, cx: &mut Context) {
        self.flush(cx);
    }

    /// `presence` (`page`: `None`) or `members` (`page`: after, limit) of
    /// topic `name` on the live nodes, answered at `to`.
    pub(in crate::push) fn presence(
        &mut self,
        cx: &mut Context,
        topics: &mut Topics,
        name: &str,
        page: Option<(Option<&str>, usize)>,
        to: ReplyTo,
    ) {
        self.report_topics(cx, topics);
        let p = &self.names.prefix;
        let tp = format!("{p}tp:{{{name}}}");
        let tu = format!("{p}tu:{{{name}}}:");
        let topic = name.to_string();
        let script = super::scripts::Script::Presence;
        let sent = match page {
            None => {
                let tag = Pending::Presence { to, topic };
                let args: [&[u8]; 2] = [p.as_bytes(), tu.as_bytes()];
                self.shas
                    .eval(&mut self.cmd, script, &[tp.as_bytes()], &args, tag)
            }
            Some((after, limit)) => {
                let n = limit.to_string();
                let after = after.unwrap_or("");
                let args: [&[u8]; 4] =
                    [p.as_bytes(), tu.as_bytes(), n.as_bytes(), after.as_bytes()];
                let tag = Pending::Members { to, topic, limit };
                self.shas
                    .eval(&mut self.cmd, script, &[tp.as_bytes()], &args, tag)
            }
        };
        self.asked(cx, sent);
    }

    /// A message heard on a topic channel or the control channel: delivered
    /// or run here. False for other channels. With history (`kept`), a
    /// topic's messages carry their position (`NODE\nEPOCH OFFSET\nTEXT`)
    /// and every node delivers what Redis hands back, its own too.
    pub(super) fn heard_topic(
        cx: &mut Context,
        cl: (&Names, &mut ClusterStats, &mut Resumes, bool),
        topics: &mut Topics,
        channel: &[u8],
        payload: &[u8],
    ) -> bool {
        let (names, stats, resumes, kept) = cl;
        let ctl = channel == names.ctl_channel.as_slice();
        let topic = channel.strip_prefix(names.topic_channels.as_slice());
        if !ctl && topic.is_none() {
            return false;
        }
        let Some((origin, rest)) = split_line(payload) else {
            return true;
        };
        let topic = topic.and_then(|t| std::str::from_utf8(t).ok());
        if let (Some(name), true) = (topic, kept) {
            let Some((position, text)) = split_line(rest) else {
                return true;
            };
            let position = std::str::from_utf8(position).ok();
            let Some((epoch, offset)) = position.and_then(|p| p.split_once(' ')) else {
                return true;
            };
            let (Ok(offset), Ok(text)) = (offset.parse::<u64>(), std::str::from_utf8(text)) else {
                return true;
            };
            stats.received += 1;
            if !resumes.topics.is_empty() {
                resumes.keep_topic(name, epoch, offset, text);
            }
            let mut head = Vec::new();
            stream::write_head(&mut head, Stream::Topic(name), epoch, offset);
            cx.send_to_slots(topics.members(name), text, Some(&head));
            return true;
        }
        if origin == names.node.as_bytes() {
            // Run or delivered here when it was asked.
            return true;
        }
        let Ok(text) = std::str::from_utf8(rest) else {
            return true;
        };
        stats.received += 1;
        match topic {
            Some(name) => {
                groups::publish_here(cx, topics, None, name, text, true);
            }
            None => {
                // Only what `control` sends is run: never a publish.
                if let Ok(
                    cmd @ (Command::Join(..)
                    | Command::Leave(..)
                    | Command::Drop(_)
                    | Command::Kick(_)),
                ) = command::parse(text.as_bytes())
                {
                    groups::run_here(cx, topics, None, &cmd, text, false);
                }
            }
        }
        true
    }
}

/// The line before the first newline, and what follows it.
fn split_line(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let nl = memchr::memchr(b'\n', bytes)?;
    Some((&bytes[..nl], &bytes[nl + 1..]))
}
