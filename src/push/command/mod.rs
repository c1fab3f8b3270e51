//! The text-port command decoder: one JSON object per line, scanned once.
//!
//! The whole line is validated as JSON (RFC 8259), but only the routing
//! fields are extracted, as slices of the line: no tree is built and a
//! push allocates nothing unless its uid uses JSON escapes.
//!
//! Routing fields (exactly one per line):
//! - `"uid": U` push the line to uid U (the seed's format);
//! - `"uids": [U, ...]` push the line to each uid;
//! - `"all": true` broadcast the line to every bound connection;
//! - `"online": U` ask how many connections uid U has;
//! - `"count": true` ask how many uids and connections are online;
//! - `"topic": T` publish the line to the connections in topic T;
//! - `"join": T` / `"leave": T`, with `"uid"` or `"uids"`: put those uids
//!   in topic T or take them out;
//! - `"drop": T` empty topic T; `"presence": T` its counts; `"members": T`
//!   a page of its uids (`"after": U`, `"limit": N`);
//! - `"kick": U` close every connection of uid U, not to reconnect.
//!
//! A uid U is a JSON string or number (a number is used as written: `42`).

mod error;
mod scan;

pub use error::{CommandError, MAX_DEPTH};

use scan::{text_of, uid_of, Kind, Res, Scanner, Span};
use std::borrow::Cow;

/// A decoded line.
#[derive(Debug, PartialEq, Eq)]
pub enum Command<'a> {
    Push(Cow<'a, str>),
    PushMany(Vec<Cow<'a, str>>),
    Broadcast,
    Online(Cow<'a, str>),
    Count,
    /// `"topic": T`: publish the line to the connections in topic T.
    Publish(Cow<'a, str>),
    /// `"join": T` with `"uid"` or `"uids"`: put those uids in topic T.
    Join(Cow<'a, str>, Vec<Cow<'a, str>>),
    /// `"leave": T` with `"uid"` or `"uids"`: take them out of topic T.
    Leave(Cow<'a, str>, Vec<Cow<'a, str>>),
    /// `"drop": T`: empty topic T and forget it.
    Drop(Cow<'a, str>),
    /// `"presence": T`: topic T's connection and uid counts.
    Presence(Cow<'a, str>),
    /// `"members": T` (with `"after"` and `"limit"`): a page of its uids.
    Members(Cow<'a, str>, Option<Cow<'a, str>>, usize),
    /// `"kick": U`: close every connection of uid U, not to reconnect.
    Kick(Cow<'a, str>),
}

/// The fields of a line that say what it asks, as spans of the line.
#[derive(Default)]
struct Fields {
    uid: Option<Span>,
    uids: Option<Span>,
    verb: Option<(&'static str, Span)>,
    after: Option<Span>,
    limit: Option<Span>,
    repeated: bool,
    auth: bool,
}

impl Fields {
    fn set(&mut self, key: &str, v: Span) {
        let slot = match key {
            "uid" => &mut self.uid,
            "uids" => &mut self.uids,
            "after" => &mut self.after,
            "limit" => &mut self.limit,
            "auth" => {
                self.auth = true;
                return;
            }
            _ => {
                let Some(verb) = VERBS.iter().find(|&&k| k == key) else {
                    return;
                };
                self.repeated |= self.verb.is_some();
                self.verb = Some((verb, v));
                return;
            }
        };
        self.repeated |= slot.is_some();
        *slot = Some(v);
    }
}

/// The fields that name what a line does (besides `uid` and `uids`).
const VERBS: [&str; 10] = [
    "all", "online", "count", "topic", "join", "leave", "drop", "presence", "members", "kick",
];

/// Decodes one text-port line (without its newline).
pub fn parse(raw: &[u8]) -> Result<Command<'_>, CommandError> {
    let line = std::str::from_utf8(raw).map_err(|_| CommandError::NotUtf8)?;
    let mut sc = Scanner { b: raw, i: 0 };
    sc.ws();
    if sc.peek() != Some(b'{') {
        return Err(CommandError::NotObject);
    }
    let mut f = Fields::default();
    sc.object(1, &mut |_, k, v| {
        f.set(&text_of(line, k)?, v);
        Ok(())
    })?;
    sc.ws();
    if sc.i != raw.len() {
        return sc.err("trailing characters");
    }
    let targets = usize::from(f.uid.is_some()) + usize::from(f.uids.is_some());
    let (verb, v) = match f.verb {
        // join and leave name their uids with "uid" or "uids".
        Some((verb @ ("join" | "leave"), v)) if targets == 1 && !f.repeated => {
            let topic = topic_of(line, v, verb)?.into_owned();
            let uids = match (f.uid, f.uids) {
                (Some(u), None) => vec![uid_of(line, u, "uid")?],
                (None, Some(list)) => uids_of(line, raw, list)?,
                _ => return Err(CommandError::Ambiguous),
            };
            return Ok(if verb == "join" {
                Command::Join(topic.into(), uids)
            } else {
                Command::Leave(topic.into(), uids)
            });
        }
        Some(("join" | "leave", _)) if targets == 0 => return Err(CommandError::NoUidToJoin),
        Some(_) if targets > 0 || f.repeated => return Err(CommandError::Ambiguous),
        None if targets > 1 || f.repeated => return Err(CommandError::Ambiguous),
        None => match (f.uid, f.uids) {
            (Some(u), None) => return uid_of(line, u, "uid").map(Command::Push),
            (None, Some(list)) => return uids_of(line, raw, list).map(Command::PushMany),
            // The text port asks for `{"auth":..}` only with a token set,
            // and then it never reaches the parser.
            _ if f.auth => return Err(CommandError::AuthNotNeeded),
            _ => return Err(CommandError::NoTarget),
        },
        Some(verb) => verb,
    };
    match verb {
        "online" => uid_of(line, v, "online").map(Command::Online),
        "kick" => uid_of(line, v, "kick").map(Command::Kick),
        "all" | "count" => match v.kind {
            Kind::True if verb == "all" => Ok(Command::Broadcast),
            Kind::True => Ok(Command::Count),
            Kind::Str { .. } | Kind::Num | Kind::Other | Kind::Array => {
                Err(CommandError::NotTrue(verb))
            }
        },
        "topic" => topic_of(line, v, verb).map(Command::Publish),
        "drop" => topic_of(line, v, verb).map(Command::Drop),
        "presence" => topic_of(line, v, verb).map(Command::Presence),
        _ => {
            let topic = topic_of(line, v, verb)?;
            let after = match f.after {
                Some(a) => Some(uid_of(line, a, "after")?),
                None => None,
            };
            let limit = match f.limit {
                None => DEFAULT_MEMBERS,
                Some(n) => match (n.kind, line[n.start..n.end].parse::<usize>()) {
                    (Kind::Num, Ok(n)) if n > 0 => n.min(MAX_MEMBERS),
                    _ => return Err(CommandError::BadLimit),
                },
            };
            Ok(Command::Members(topic, after, limit))
        }
    }
}

/// Uids a `members` page lists when the line does not say, and at most.
pub const DEFAULT_MEMBERS: usize = 100;
pub const MAX_MEMBERS: usize = 1000;

/// The topic named by field `field` (`v`): see [`valid_topic`].
fn topic_of<'a>(line: &'a str, v: Span, field: &'static str) -> Res<Cow<'a, str>> {
    match v.kind {
        Kind::Str { .. } => {
            let t = text_of(line, v)?;
            if valid_topic(&t) {
                Ok(t)
            } else {
                Err(CommandError::BadTopic(field))
            }
        }
        _ => Err(CommandError::BadTopic(field)),
    }
}

/// A topic name: 1 to 64 bytes of printable ASCII but space and `%`, so
/// that its stream name `t:NAME` is one token on the wire as it is.
pub fn valid_topic(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b > b' ' && b < 0x7f && b != b'%')
}

/// The `"uids"` list `v` of `line` (`raw` is its bytes).
fn uids_of<'a>(line: &'a str, raw: &'a [u8], v: Span) -> Result<Vec<Cow<'a, str>>, CommandError> {
    let Kind::Array = v.kind else {
        return Err(CommandError::UidsNotList);
    };
    let mut uids = Vec::new();
    let mut inner = Scanner { b: raw, i: v.start };
    let mut bad = None;
    inner.array(1, &mut |_, item| {
        match uid_of(line, item, "uids") {
            Ok(u) => uids.push(u),
            Err(e) => {
                if bad.is_none() {
                    bad = Some(e);
                }
            }
        }
        Ok(())
    })?;
    match bad {
        Some(e) => Err(e),
        None if uids.is_empty() => Err(CommandError::NoUids),
        None => Ok(uids),
    }
}

#[cfg(test)]
mod tests;
