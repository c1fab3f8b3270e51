//! herald.v1 clients' own side of topics and liveness (docs/topics.md):
//! the topics a hello names, `{"sub":T}` and `{"unsub":T}` later, what a
//! token's `topics` claim allows, and the `h` heartbeat for clients that
//! asked for it (browsers do not show WebSocket pings to scripts).

use super::command::valid_topic;
use super::replay::replay;
use super::stream::{self, Hello, Position, Stream, MAX_TOPICS};
use super::{PushApp, T_HEARTBEAT};
use crate::app::ConnId;
use crate::auth::Claims;
use crate::reactor::Context;

/// Heartbeat period when `--ping-interval` is 0 (no pings).
const DEFAULT_HEARTBEAT_S: u32 = 25;

impl PushApp {
    /// After a hello was taken: its topics, then the heartbeat it asked for.
    pub(super) fn after_hello(&mut self, cx: &mut Context, conn: ConnId, hello: &Hello) {
        for name in &hello.topics {
            let since = valid_topic(name)
                .then(|| hello.position(Stream::Topic(name)))
                .flatten();
            self.subscribe(cx, conn, name, since);
        }
        if hello.heartbeat {
            let secs = self.heartbeat_s(cx);
            cx.send_text(conn, &format!("h {secs}"));
            self.heartbeats.insert(conn);
            if !self.heartbeat_armed {
                self.heartbeat_armed = true;
                cx.set_timer(u64::from(secs) * 1000, T_HEARTBEAT);
            }
        }
    }

    /// A message of a bound herald.v1 client: `h` (nothing to do: it came,
    /// which is all it says), `{"sub":T}` or `{"unsub":T}`.
    pub(super) fn v1_message(&mut self, cx: &mut Context, conn: ConnId, text: &str) {
        if text == "h" {
            return;
        }
        let v = serde_json::from_slice::<serde_json::Value>(text.as_bytes()).ok();
        let field = |k: &str| {
            v.as_ref()
                .and_then(|v| v.get(k)?.as_str().map(String::from))
        };
        if let Some(name) = field("sub") {
            let since = match field("since").map(|s| Position::parse(&s)) {
                None => None,
                Some(Some(p)) => Some(p),
                Some(None) => {
                    cx.send_text(conn, "error \"since\" must be \"EPOCH:OFFSET\"");
                    return;
                }
            };
            self.subscribe(cx, conn, &name, since.as_ref());
        } else if let Some(name) = field("unsub") {
            let uid = cx.uid(conn).map(String::from);
            let siblings = uid.as_deref().map(|u| cx.slots_of(u, Some(conn)));
            let siblings = siblings.unwrap_or_default();
            self.topics
                .unsubscribe(conn.idx(), &name, uid.as_deref(), &siblings);
            self.router.drop_topic_resume(conn, &name);
            cx.send_text(conn, &format!("u {}{name}", stream::TOPIC));
        } else {
            cx.send_text(conn, "error expected {\"sub\":TOPIC} or {\"unsub\":TOPIC}");
        }
    }

    /// `conn` asks for topic `name` (where it was: `since`): in, told
    /// where it is and sent what it missed (with history here), or told it
    /// is denied.
    fn subscribe(&mut self, cx: &mut Context, conn: ConnId, name: &str, since: Option<&Position>) {
        let mut allowed = valid_topic(name) && self.may_subscribe(conn, name);
        // Bounded per connection, so that no client can grow herald's
        // memory by naming topics.
        let already = self.topics.contains(conn.idx(), name);
        if allowed && !already && self.topics.count_of(conn.idx()) >= MAX_TOPICS {
            cx.send_text(
                conn,
                &format!("error too many topics for one connection (max {MAX_TOPICS})"),
            );
            allowed = false;
        }
        if allowed {
            // With the Redis history: in the topic once it has its replay.
            if self.router.resume_topic(conn, name, since) {
                return;
            }
            self.topics.subscribe(conn.idx(), name);
            if let Some(h) = self.router.history_mut() {
                let stream = Stream::Topic(name);
                let r = h.resume(stream, since, cx.now_ms());
                let missed = r.missed.iter().copied();
                let stats = &mut self.stats.resume;
                return replay(cx, stats, conn, stream, &r.position, r.status, missed);
            }
        }
        // A name that is no topic name is reported as it came, escaped
        // so that the line stays one token.
        let shown = if valid_topic(name) {
            name.to_string()
        } else {
            name.escape_default().to_string().replace(' ', "\\x20")
        };
        cx.send_text(conn, &stream::topic_status(&shown, allowed));
    }

    /// Demo mode allows any topic; with proven uids, the token's `topics`
    /// claim says which.
    fn may_subscribe(&self, conn: ConnId, name: &str) -> bool {
        if self.config.tokens.is_none() {
            return true;
        }
        self.allowed
            .get(&conn)
            .is_some_and(|p| Claims::allows(p, name))
    }

    fn heartbeat_s(&self, cx: &Context) -> u32 {
        match cx.limits().ping_interval_s {
            0 => DEFAULT_HEARTBEAT_S,
            s => s,
        }
    }

    /// Every heartbeat period: `h` to each client that asked for it.
    pub(super) fn heartbeat(&mut self, cx: &mut Context) {
        for &conn in &self.heartbeats {
            cx.send_text(conn, "h");
        }
        self.heartbeat_armed = !self.heartbeats.is_empty();
        if self.heartbeat_armed {
            let secs = self.heartbeat_s(cx);
            cx.set_timer(u64::from(secs) * 1000, T_HEARTBEAT);
        }
    }
}
