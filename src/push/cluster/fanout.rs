//! Pushes between nodes: publishing a push delivered here to the nodes
//! that hold its uids (and answering it once Redis has counted them), and
//! delivering what other nodes publish.

use super::pending::{Agg, Pending};
use super::Cluster;
use crate::push::outcome::{Failure, Outcome, Push, ReplyTo};
use crate::reactor::Context;
use std::borrow::Cow;

impl Cluster {
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
        let channels = self.channels(cx, targets);
        let size: usize = channels
            .iter()
            .map(|(c, _)| c.len() + text.len() + 64)
            .sum();
        let agg_id = self.next_agg;
        self.next_agg += 1;
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
        if !self.cmd.up {
            // Local delivery only: the answer says what happened here.
            self.finish(cx, &agg, false);
            return;
        }
        // Known already: this node reached someone, and one uid was asked.
        if one && local > 0 {
            self.finish(cx, &agg, true);
            agg.to = ReplyTo::Nobody;
        }
        if self.stats.pending_bytes as usize + size > self.cfg.max_pending {
            self.stats.backlog_refused += 1;
            let why = format!(
                "redis backlog full (--redis-max-pending): delivered to {local} connection(s) on this node only"
            );
            Outcome::Failed(Failure::Unavailable, why.into()).answer(cx, agg.to);
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

    /// The channels of `targets` (`None`: the broadcast channel), each with
    /// whether this node is among its receivers: it listens to the channels
    /// of the uids bound here (the hub says which), and perhaps still to
    /// those it is leaving.
    fn channels(&self, cx: &Context, targets: Option<&[Cow<'_, str>]>) -> Vec<(Vec<u8>, bool)> {
        match targets {
            None => {
                let ch = self.all_channel();
                let ours = cx.bound_connections() > 0 || self.leaving.contains(&ch);
                vec![(ch, ours)]
            }
            Some(uids) => uids
                .iter()
                .map(|u| {
                    let ch = self.uid_channel(u);
                    let ours = cx.is_online(u) || self.leaving.contains(&ch);
                    (ch, ours)
                })
                .collect(),
        }
    }

    /// Answers a push and counts it (once: an aggregate answered early goes
    /// on with nobody to tell). `cluster`: the other nodes were asked.
    pub(super) fn finish(&mut self, cx: &mut Context, a: &Agg, cluster: bool) {
        if !matches!(a.to, ReplyTo::Nobody) {
            if a.local > 0 || cluster && a.remote > 0 {
                self.stats.pushes_ok += 1;
            } else {
                self.stats.pushes_fail += 1;
            }
        }
        // Without the other nodes, reaching nobody here proves nothing.
        let outcome = if !cluster && a.local == 0 {
            Outcome::Unconfirmed(a.push())
        } else {
            Outcome::Pushed(a.push(), a.local as u64 + a.remote)
        };
        outcome.answer(cx, a.to);
    }

    /// One PUBLISH of aggregate `agg` reached `remote` other nodes.
    pub(super) fn on_published(&mut self, cx: &mut Context, agg: u64, remote: u64) {
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

    /// A message another node (or this one) published.
    pub(super) fn on_message(&mut self, cx: &mut Context, channel: &[u8], payload: &[u8]) {
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
