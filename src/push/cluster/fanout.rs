//! Pushes between nodes: publishing a push delivered here to the nodes
//! that hold its uids (and answering it once Redis has counted them), and
//! delivering what other nodes publish.

use super::names::Names;
use super::pending::{Agg, ClusterStats, Pending};
use super::resumes::Resumes;
use super::Cluster;
use crate::push::outcome::{Failure, Outcome, Push, ReplyTo};
use crate::push::stream::{self, Stream};
use crate::reactor::Context;
use crate::redis::resp;
use std::borrow::Cow;

/// What a query (`online`, `count`) adds to the bytes awaiting replies, at
/// most: a script call with a key or two.
const QUERY_BYTES: usize = 512;

impl Cluster {
    /// True when a request must wait for Redis to answer earlier ones:
    /// its commands would take the bytes awaiting replies past
    /// `--redis-max-pending`. `push`: a push's targets and text (`None`: a
    /// query). Never while the link is down (answered from this node at
    /// once) or nothing is pending (nothing would free room: a push larger
    /// than the bound alone is refused by `publish`).
    pub(in crate::push) fn backlogged(
        &mut self,
        push: Option<(Option<&[Cow<'_, str>]>, &str)>,
    ) -> bool {
        let pending = self.cmd.pending_bytes();
        if !self.cmd.link().is_up() || pending == 0 {
            return false;
        }
        match push {
            Some((targets, text)) => !self.stage(targets, text),
            None => pending.saturating_add(QUERY_BYTES) > self.cfg.max_pending,
        }
    }

    /// Publishes a push that reached `local` connections here to the other
    /// nodes; the answer goes to `to` once Redis has counted its receivers
    /// (at once when the answer is already known). `targets` are the uids,
    /// or `None` for everyone.
    pub(in crate::push) fn publish(
        &mut self,
        cx: &mut Context,
        targets: Option<&[Cow<'_, str>]>,
        push: Push<'_>,
        text: &str,
        local: usize,
        to: ReplyTo,
    ) {
        let (one, uid) = match (push, to) {
            (Push::One(uid), ReplyTo::Route(_)) => (true, uid.to_string()),
            (Push::One(_), _) => (true, String::new()),
            (Push::Many, _) => (false, String::new()),
        };
        let mut agg = Agg {
            to,
            one,
            local,
            remote: 0,
            waiting: 0,
            uid,
        };
        if !self.cmd.link().is_up() {
            // Local delivery only: the answer says what happened here.
            return agg.finish(cx, &mut self.stats, false);
        }
        // Known already: this node reached someone, and one uid was asked.
        if one && local > 0 {
            agg.finish(cx, &mut self.stats, true);
            agg.to = ReplyTo::Nobody;
        }
        if !self.stage(targets, text) {
            self.stats.backlog_refused += 1;
            let why = format!(
                "redis backlog full (--redis-max-pending): delivered to {local} connection(s) on this node only"
            );
            return Outcome::Failed(Failure::Unavailable, why.into()).answer(cx, agg.to);
        }
        let id = self.waiting.next_id();
        for i in 0..targets.map_or(1, <[_]>::len) {
            let uid = targets.map(|t| t[i].as_ref());
            self.names.channel_into(&mut self.channel, uid);
            // This node listens to the channels of the uids bound here
            // (the hub says which), and perhaps still to those it leaves.
            let ours = match uid {
                Some(uid) => cx.is_online(uid),
                None => cx.bound_connections() > 0,
            } || self.leaving.contains(self.channel.as_slice());
            // With history this node delivers what Redis hands back: its
            // own receivers count like the others.
            let ours = ours && !self.keeps_history();
            let tag = Pending::Publish { agg: id, ours };
            let sent = if self.keeps_history() {
                self.add(uid, text, tag)
            } else {
                let publish: [&[u8]; 3] = [b"PUBLISH", &self.channel, &self.payload];
                self.cmd.send(&publish, tag).is_ok()
            };
            if sent {
                agg.waiting += 1;
                self.stats.published += 1;
            }
        }
        if agg.waiting == 0 {
            agg.finish(cx, &mut self.stats, true);
        } else {
            self.waiting.insert(id, agg);
        }
        // After the aggregate is in place: a write that fails takes the
        // link down, which answers it.
        self.flush(cx);
    }

    /// Writes the payload of a push of `text` (its origin line, then the
    /// text) into `self.payload`; false when its PUBLISH commands, one per
    /// channel of `targets` (`None`: everyone), would take the bytes
    /// awaiting replies past the bound: a push goes to all its channels or
    /// to none.
    fn stage(&mut self, targets: Option<&[Cow<'_, str>]>, text: &str) -> bool {
        self.payload.clear();
        self.payload.extend_from_slice(self.names.node.as_bytes());
        self.payload.push(b'\n');
        self.payload.extend_from_slice(text.as_bytes());
        let size: usize = (0..targets.map_or(1, <[_]>::len))
            .map(|i| {
                let uid = targets.map(|t| t[i].as_ref());
                self.names.channel_into(&mut self.channel, uid);
                // With history, the script's call: its SHA, the stream's
                // keys and bounds, about this much more.
                let script = if self.keeps_history() { 160 } else { 0 };
                resp::encoded_len(&[b"PUBLISH", &self.channel, &self.payload]) + script
            })
            .sum();
        self.cmd.pending_bytes().saturating_add(size) <= self.cfg.max_pending
    }

    /// A message heard on `channel`, which another node (or this one)
    /// published: delivered here unless this node sent it (without history:
    /// with it, every node delivers what Redis hands back with its offset,
    /// `NODE\nEPOCH OFFSET\nTEXT`). The hot path of the subscribed link:
    /// the channel is matched against the names spelled once, and nothing
    /// is allocated but a herald.v1 head.
    pub(super) fn deliver(
        cx: &mut Context,
        names: &Names,
        stats: &mut ClusterStats,
        resumes: &mut Resumes,
        head: &mut Vec<u8>,
        kept: bool,
        (channel, payload): (&[u8], &[u8]),
    ) {
        let Some((origin, rest)) = split_line(payload) else {
            return;
        };
        let (position, text) = if kept {
            let Some((position, text)) = split_line(rest) else {
                return;
            };
            let position = std::str::from_utf8(position).ok();
            let Some((epoch, offset)) = position.and_then(|p| p.split_once(' ')) else {
                return;
            };
            let Ok(offset) = offset.parse::<u64>() else {
                return;
            };
            ((epoch, offset), text)
        } else if origin == names.node.as_bytes() {
            // Delivered here directly when it was pushed.
            return;
        } else {
            (("-", 0), rest)
        };
        let Ok(text) = std::str::from_utf8(text) else {
            return;
        };
        let stream = if channel == names.all_channel.as_slice() {
            Stream::All
        } else if let Some(uid) = channel.strip_prefix(names.uid_channels.as_slice()) {
            match std::str::from_utf8(uid) {
                Ok(uid) => Stream::Uid(uid),
                Err(_) => return,
            }
        } else {
            return;
        };
        stats.received += 1;
        let (epoch, offset) = position;
        head.clear();
        if resumes.resuming() {
            resumes.keep_live(stream, epoch, offset, text);
        }
        stream::write_head(head, stream, epoch, offset);
        match stream {
            Stream::All => cx.broadcast_with(text, Some(head)),
            Stream::Uid(uid) => cx.send_to_uid_with(uid, text, Some(head)),
            // Topic channels are heard by `topics`, never here.
            Stream::Topic(_) => 0,
        };
    }
}

/// The line before the first newline, and what follows it.
fn split_line(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let nl = memchr::memchr(b'\n', bytes)?;
    Some((&bytes[..nl], &bytes[nl + 1..]))
}
