//! History in Redis (`--history` with `--redis`): pushes kept and published
//! by one script (`scripts::ADD`), and the resumes of herald.v1 clients.
//!
//! A resume must give what the client missed, then the live messages, with
//! no gap and no duplicate, while pushes go on. Its connection is bound at
//! once (so this node listens to its uid) but held out of live sends; a
//! PING on the subscribed link after the SUBSCRIBE is the barrier: once its
//! answer comes, every message published from then on reaches this node.
//! Only then is the history read (`scripts::RANGE`, one per stream). Live
//! messages for the held connection are kept meanwhile. The reads' replies
//! come on the command link, which may overtake messages published before
//! them that are still on their way on the subscribed link: a second
//! barrier, sent once both reads are answered, waits for those. Then the
//! client gets each stream's `s` line and replay, then the kept live
//! messages past what the replay gave, and is released.

use super::pending::Pending;
use super::resumes::{finish, finish_topic, Resuming, TopicResuming, ALL, BARRIER, OWN};
use super::scripts::Script;
use super::Cluster;
use crate::app::ConnId;
use crate::push::stream::{Hello, Position, Stream};
use crate::push::topics::Topics;
use crate::reactor::Context;
use crate::xorshift;

impl Cluster {
    /// The command link is up: pushes can be kept.
    pub(in crate::push) fn command_up(&self) -> bool {
        self.cmd.link().is_up()
    }

    /// History is kept in Redis.
    pub(in crate::push) fn keeps_history(&self) -> bool {
        self.history.enabled()
    }

    /// Sends the script that keeps `text` in the history of the stream of
    /// `uid` (`None`: all) and publishes it; false when the link took none.
    pub(super) fn add(&mut self, uid: Option<&str>, text: &str, tag: Pending) -> bool {
        self.add_to(uid.map_or(Stream::All, Stream::Uid), text, tag)
    }

    /// [`Cluster::add`] for any stream, published on `self.channel`.
    pub(super) fn add_to(&mut self, stream: Stream<'_>, text: &str, tag: Pending) -> bool {
        let (key, record) = self.names.history_keys(stream);
        let epoch = self.new_epoch();
        let [size, ttl, record_ttl] = &self.history_args;
        let args: [&[u8]; 7] = [
            &self.channel,
            self.names.node.as_bytes(),
            text.as_bytes(),
            size.as_bytes(),
            ttl.as_bytes(),
            record_ttl.as_bytes(),
            epoch.as_bytes(),
        ];
        self.shas
            .eval(&mut self.cmd, Script::Add, &[&key, &record], &args, tag)
            .is_ok()
    }

    /// An epoch for a stream Redis has no record of.
    fn new_epoch(&mut self) -> String {
        format!("{:x}", xorshift::next(&mut self.rng) >> 16)
    }

    /// `conn` (bound to `uid` and held) resumes from where `hello` says.
    pub(in crate::push) fn resume(&mut self, conn: ConnId, uid: &str, hello: &Hello) {
        let since = [Stream::Uid(uid), Stream::All].map(|s| hello.position(s).cloned());
        self.resumes.list.push(Resuming {
            conn,
            uid: uid.to_string(),
            since,
            barrier: 0,
            reading: false,
            read: [None, None],
            live: Vec::new(),
        });
        // The barrier goes after the SUBSCRIBE that the binding causes:
        // from `on_uid_bound`'s flush, right after this callback.
    }

    /// Sends a barrier for the resumes waiting for one (after the binding
    /// events' SUBSCRIBEs, or when the subscribed link came back).
    pub(super) fn barrier(&mut self) {
        // Not before the command link can read the history: a barrier
        // passed for nothing would be sent again at once.
        let waiting = self.resumes.list.iter().any(|r| r.barrier == 0)
            || self.resumes.topics.iter().any(|r| r.barrier == 0);
        if !self.cmd.link().is_up() || !waiting {
            return;
        }
        if self.sub.ping(BARRIER).is_ok() {
            self.resumes.sent += 1;
            let id = self.resumes.sent;
            for r in self.resumes.list.iter_mut().filter(|r| r.barrier == 0) {
                r.barrier = id;
            }
            for r in self.resumes.topics.iter_mut().filter(|r| r.barrier == 0) {
                r.barrier = id;
            }
        }
    }

    /// The subscribed link went down: barriers in flight are void.
    pub(super) fn barriers_lost(&mut self) {
        self.resumes.passed = self.resumes.sent;
        for r in self.resumes.topics.iter_mut() {
            if !r.reading || r.read.is_some() {
                r.barrier = 0;
            }
        }
        for r in self.resumes.list.iter_mut() {
            if !r.reading || r.read_all() {
                r.barrier = 0;
            }
        }
    }

    /// A barrier's answer: the resumes that waited for it read the
    /// history, or finish.
    pub(super) fn on_pong(&mut self, cx: &mut Context, topics: &mut Topics) {
        self.resumes.passed += 1;
        let passed = self.resumes.passed;
        self.topic_resumes_passed(cx, topics, passed);
        let mut i = 0;
        while i < self.resumes.list.len() {
            let r = &self.resumes.list[i];
            if r.barrier == 0 || r.barrier > passed || r.reading && !r.read_all() {
                i += 1;
                continue;
            }
            if r.read_all() {
                let r = self.resumes.list.swap_remove(i);
                finish(cx, &mut self.resumes.stats, r);
                continue;
            }
            let (conn, uid) = (r.conn, r.uid.clone());
            self.resumes.list[i].reading = true;
            for (which, stream) in [(OWN, Stream::Uid(&uid)), (ALL, Stream::All)] {
                self.read_history(conn, which, stream, i);
            }
            i += 1;
        }
    }

    fn read_history(&mut self, conn: ConnId, which: usize, stream: Stream<'_>, i: usize) {
        let since = self.resumes.list[i].since[which].clone();
        // Not up: tried again from a new barrier once it is.
        if let Err(Pending::Range { conn, .. }) =
            self.range(stream, since, Pending::Range { conn, which })
        {
            self.resumes.retry(conn);
        }
    }

    /// Sends the RANGE script that reads `stream` from `since`, answered
    /// with `tag`; the tag back when the link is not up.
    fn range(
        &mut self,
        stream: Stream<'_>,
        since: Option<Position>,
        tag: Pending,
    ) -> Result<(), Pending> {
        let (key, record) = self.names.history_keys(stream);
        let epoch = self.new_epoch();
        let (since_epoch, since_offset) = since.map_or((String::new(), 0), |p| (p.epoch, p.offset));
        let offset = since_offset.to_string();
        let args: [&[u8]; 4] = [
            since_epoch.as_bytes(),
            offset.as_bytes(),
            epoch.as_bytes(),
            self.history_args[2].as_bytes(),
        ];
        self.shas
            .eval(&mut self.cmd, Script::Range, &[&key, &record], &args, tag)
            .map_err(|e| e.into_tag())
    }

    /// A herald.v1 connection closed: its resumes, if any, are dropped
    /// (and a topic channel listened to for nobody but it is left).
    pub(in crate::push) fn on_v1_closed(&mut self, conn: ConnId, topics: &Topics) {
        self.resumes.list.retain(|r| r.conn != conn);
        let mut gone = Vec::new();
        self.resumes.topics.retain(|r| {
            let keep = r.conn != conn;
            if !keep {
                gone.push(r.topic.clone());
            }
            keep
        });
        for name in gone {
            let still = self.resumes.topics.iter().any(|r| r.topic == name);
            if topics.members(&name).is_empty() && !still {
                let ch = self.names.topic_channel(&name);
                if self.topic_subs.remove(&ch) {
                    let _ = self.sub.unsubscribe(&[&ch]);
                    self.leaving.insert(ch);
                }
            }
        }
    }

    /// `conn` unsubscribed from topic `name` before its replay came.
    pub(in crate::push) fn drop_topic_resume(&mut self, conn: ConnId, name: &str) {
        self.resumes
            .topics
            .retain(|r| r.conn != conn || *r.topic != *name);
    }

    /// `conn` subscribes to topic `name` from where it was (`since`): this
    /// node listens to the topic's channel, then (past a barrier) reads
    /// its history, then (past a second) sends the replay and the live
    /// messages kept meanwhile, and puts it in the topic.
    pub(in crate::push) fn resume_topic(
        &mut self,
        conn: ConnId,
        name: &str,
        since: Option<Position>,
    ) {
        let ch = self.names.topic_channel(name);
        if !self.topic_subs.contains(&ch) {
            self.leaving.remove(&ch);
            let _ = self.sub.subscribe(&[&ch]);
            self.topic_subs.insert(ch);
        }
        self.resumes.topics.push(TopicResuming {
            conn,
            topic: name.into(),
            since,
            barrier: 0,
            reading: false,
            read: None,
            live: Vec::new(),
        });
    }

    /// The topic resumes a barrier answered: they read the history, or
    /// finish.
    fn topic_resumes_passed(&mut self, cx: &mut Context, topics: &mut Topics, passed: u64) {
        let mut i = 0;
        while i < self.resumes.topics.len() {
            let r = &self.resumes.topics[i];
            if r.barrier == 0 || r.barrier > passed || r.reading && r.read.is_none() {
                i += 1;
                continue;
            }
            if r.read.is_some() {
                let r = self.resumes.topics.swap_remove(i);
                finish_topic(cx, &mut self.resumes.stats, &r);
                topics.subscribe(r.conn.idx(), &r.topic);
                continue;
            }
            let (conn, topic) = (r.conn, r.topic.clone());
            let since = r.since.clone();
            self.resumes.topics[i].reading = true;
            let tag = Pending::TopicRange {
                conn,
                topic: topic.clone(),
            };
            if self.range(Stream::Topic(&topic), since, tag).is_err() {
                self.resumes.retry_topic(conn, &topic);
            }
            i += 1;
        }
    }
}
