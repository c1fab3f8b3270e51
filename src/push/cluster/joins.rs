//! Backend joins kept in Redis, for the nodes that were not there when a
//! join was made (started later, or cut off from Redis meanwhile).
//!
//! A join reaches the nodes running at the time on the control channel
//! (`topics`). It is also written down: `PREFIX:j:{UID}` (the topics a
//! backend joined the uid to) and `PREFIX:jt:{TOPIC}` (the uids joined to
//! the topic, for `drop`). A node reads a uid's set when the uid first
//! comes online on it, and every bound uid's when its Redis links come up,
//! but only once any join was ever made on this Redis (`PREFIX:jused`), so
//! that deployments without joins pay no read per connection.

use super::pending::Pending;
use super::Cluster;
use crate::push::command::Command;
use crate::push::topics::Topics;
use crate::reactor::Context;
use crate::redis::resp::Frame;

impl Cluster {
    /// Writes down a join, leave or drop a backend asked of this node.
    pub(in crate::push) fn store_joins(&mut self, cx: &mut Context, cmd: &Command<'_>) {
        let p = self.names.prefix.clone();
        let mut quiet = |args: &[&[u8]]| {
            let _ = self.cmd.send_unbounded(args, Pending::Quiet);
        };
        match cmd {
            Command::Join(topic, uids) | Command::Leave(topic, uids) => {
                let join = matches!(cmd, Command::Join(..));
                let (add, jt): (&[u8], _) = match join {
                    true => (b"SADD", format!("{p}jt:{{{topic}}}")),
                    false => (b"SREM", format!("{p}jt:{{{topic}}}")),
                };
                for uid in uids {
                    let j = format!("{p}j:{{{uid}}}");
                    quiet(&[add, j.as_bytes(), topic.as_bytes()]);
                    quiet(&[add, jt.as_bytes(), uid.as_bytes()]);
                }
                if join {
                    quiet(&[b"SET", format!("{p}jused").as_bytes(), b"1"]);
                    self.joins_used = true;
                }
            }
            Command::Drop(topic) => {
                let jt = format!("{p}jt:{{{topic}}}");
                let keys: [&[u8]; 1] = [jt.as_bytes()];
                let args: [&[u8]; 2] = [p.as_bytes(), topic.as_bytes()];
                let script = super::scripts::Script::DropJoins;
                let _ = self
                    .shas
                    .eval(&mut self.cmd, script, &keys, &args, Pending::Quiet);
            }
            _ => {}
        }
        self.flush(cx);
    }

    /// Asks whether joins were ever made here (when the links come up).
    pub(super) fn ask_joins_used(&mut self) {
        let key = format!("{}jused", self.names.prefix);
        let _ = self
            .cmd
            .send_unbounded(&[b"EXISTS", key.as_bytes()], Pending::JoinsUsed);
    }

    /// Reads the topics a backend joined `uid` to, once joins exist.
    pub(super) fn read_joins(&mut self, uid: &str) {
        if !self.joins_used {
            return;
        }
        let key = format!("{}j:{{{uid}}}", self.names.prefix);
        let tag = Pending::Joins { uid: uid.into() };
        let _ = self.cmd.send_unbounded(&[b"SMEMBERS", key.as_bytes()], tag);
    }

    /// The answer to [`Cluster::ask_joins_used`]: when joins exist, every
    /// uid bound here reads its joins.
    pub(super) fn on_joins_used(&mut self, cx: &mut Context, used: bool) {
        self.joins_used |= used;
        if self.joins_used {
            let uids: Vec<String> = cx.uids().map(String::from).collect();
            for uid in uids {
                self.read_joins(&uid);
            }
            self.flush(cx);
        }
    }

    /// The topics `uid` was joined to, as Redis has them: its connections here
    /// join them (and later ones will).
    pub(super) fn on_joins(cx: &Context, topics: &mut Topics, uid: &str, reply: Frame<'_>) {
        let Some(items) = reply.items() else {
            return;
        };
        let conns = cx.slots_of(uid, None);
        for topic in items.filter_map(|t| t.as_bytes()) {
            if let Ok(topic) = std::str::from_utf8(topic) {
                if crate::push::command::valid_topic(topic) {
                    topics.join_uid(uid, topic, &conns);
                }
            }
        }
    }
}
