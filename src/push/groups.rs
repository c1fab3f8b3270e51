//! Topic commands and kicks served on this node (the router's local arm;
//! a cluster also runs them here for what other nodes ask): publish,
//! join, leave, drop, presence, members, kick. The membership itself is
//! [`Topics`].

use super::command::Command;
use super::history::History;
use super::outcome::{Outcome, Push};
use super::stream::{self, Stream};
use super::topics::Topics;
use crate::reactor::Context;
use crate::ws::CloseCode;

/// The close code and reason of a kick: "do not reconnect" (clients
/// reconnect after 4000-4499 and stop at 4500-4999: docs/topics.md).
pub const KICKED: CloseCode = CloseCode(4500);
pub const KICKED_REASON: &str = "kicked";

/// Serves `cmd` here when it is a topic command or a kick (`text`: the
/// line, what a publish sends; `tagged`: some connection here reads
/// herald.v1); `None` for the others.
pub(super) fn run_here<'c>(
    cx: &mut Context,
    topics: &mut Topics,
    history: Option<&mut History>,
    cmd: &'c Command<'c>,
    text: &str,
    tagged: bool,
) -> Option<Outcome<'c>> {
    let done = |n: usize| Some(Outcome::Done(n as u64));
    match cmd {
        Command::Publish(name) => {
            let n = publish_here(cx, topics, history, name, text, tagged);
            Some(Outcome::Pushed(Push::Many, n as u64))
        }
        Command::Join(name, uids) => {
            let n = uids.iter().map(|u| {
                let conns = cx.slots_of(u, None);
                topics.join_uid(u, name, &conns)
            });
            done(n.sum())
        }
        Command::Leave(name, uids) => {
            let n = uids.iter().map(|u| {
                let conns = cx.slots_of(u, None);
                topics.leave_uid(u, name, &conns)
            });
            done(n.sum())
        }
        Command::Drop(name) => done(topics.drop_topic(name)),
        Command::Kick(uid) => done(kick_here(cx, uid)),
        Command::Presence(name) => {
            let (connections, uids) = presence_here(cx, topics, name);
            Some(Outcome::Json(presence_json(name, connections, uids.len())))
        }
        Command::Members(name, after, limit) => {
            let (_, uids) = presence_here(cx, topics, name);
            let from = after
                .as_deref()
                .map_or(0, |a| uids.partition_point(|u| *u <= a));
            let page = uids[from..].iter().take(limit + 1).copied().collect();
            Some(Outcome::Json(members_json(name, page, *limit)))
        }
        Command::Push(_)
        | Command::PushMany(_)
        | Command::Broadcast
        | Command::Online(_)
        | Command::Count => None,
    }
}

/// [`run_here`], unless `skip`.
pub(super) fn run_here_unless<'c>(
    skip: bool,
    cx: &mut Context,
    topics: &mut Topics,
    cmd: &'c Command<'c>,
    text: &str,
    tagged: bool,
) -> Option<Outcome<'c>> {
    (!skip)
        .then(|| run_here(cx, topics, None, cmd, text, tagged))
        .flatten()
}

/// Sends `text` to the connections in topic `name` here; how many took it.
/// With a `history`, the topic's stream keeps it first (even with nobody
/// here, as a uid's does), and herald.v1 clients get its position; else
/// `tagged` (some connection here reads herald.v1) gives them `- 0`.
pub(super) fn publish_here(
    cx: &mut Context,
    topics: &Topics,
    history: Option<&mut History>,
    name: &str,
    text: &str,
    tagged: bool,
) -> usize {
    let mut head = Vec::new();
    let stream = Stream::Topic(name);
    match history {
        Some(h) => {
            let (epoch, offset) = h.append(stream, text, cx.now_ms());
            stream::write_head(&mut head, stream, format_args!("{epoch:x}"), offset);
        }
        None if tagged => stream::write_head(&mut head, stream, "-", 0),
        None => {}
    }
    let members = topics.members(name);
    if members.is_empty() {
        return 0;
    }
    let head = (!head.is_empty()).then_some(head.as_slice());
    cx.send_to_slots(members, text, head)
}

/// Topic `name`'s connections here and their distinct uids, sorted.
pub(super) fn presence_here<'a>(
    cx: &'a Context,
    topics: &Topics,
    name: &str,
) -> (usize, Vec<&'a str>) {
    let members = topics.members(name);
    let mut uids: Vec<&str> = members.iter().filter_map(|&c| cx.uid_at(c)).collect();
    uids.sort_unstable();
    uids.dedup();
    (members.len(), uids)
}

/// The answer to `presence`.
pub(super) fn presence_json(name: &str, connections: usize, uids: usize) -> String {
    format!(
        "{{\"topic\":{},\"connections\":{connections},\"uids\":{uids}}}",
        serde_json::Value::from(name)
    )
}

/// The answer to `members`: `page` holds up to `limit + 1` uids, the one
/// past the limit saying that there are more.
pub(super) fn members_json(name: &str, mut page: Vec<&str>, limit: usize) -> String {
    let next = if page.len() > limit {
        page.truncate(limit);
        page.last().copied()
    } else {
        None
    };
    format!(
        "{{\"topic\":{},\"uids\":{},\"next\":{}}}",
        serde_json::Value::from(name),
        serde_json::Value::from(page),
        next.map_or(serde_json::Value::Null, serde_json::Value::from)
    )
}

/// Closes every connection of `uid` here with [`KICKED`]; how many.
pub(super) fn kick_here(cx: &mut Context, uid: &str) -> usize {
    let conns = cx.conns_of(uid);
    for &c in &conns {
        cx.close(c, KICKED, KICKED_REASON);
    }
    conns.len()
}
