//! The herald.v1 wire format (docs/resume.md): stream names, positions,
//! the client's hello, and the `s` and `m` lines a resuming client reads.
//! Pure functions over bytes, shared by the in-memory history and the
//! Redis one.

use std::fmt::Write as _;

/// The subprotocol a resuming client asks for.
pub const SUBPROTOCOL: &str = "herald.v1";

/// The broadcast stream's name.
pub const ALL: &str = "all";

/// A stream a push goes to: a uid's own, or the broadcast one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream<'a> {
    Uid(&'a str),
    All,
    /// A topic (its name is valid: see [`crate::push::command::valid_topic`]).
    Topic(&'a str),
}

impl Stream<'_> {
    /// The stream's name on the wire: `u:UID` (space, `%` and control bytes
    /// percent-encoded, so that a name is one space-free token) or `all`.
    pub fn write_name(&self, out: &mut Vec<u8>) {
        match self {
            Stream::All => out.extend_from_slice(ALL.as_bytes()),
            Stream::Topic(name) => {
                out.extend_from_slice(TOPIC.as_bytes());
                out.extend_from_slice(name.as_bytes());
            }
            Stream::Uid(uid) => {
                out.extend_from_slice(b"u:");
                for &b in uid.as_bytes() {
                    if b == b' ' || b == b'%' || b < 0x20 || b == 0x7f {
                        let _ = write!(ByteWriter(out), "%{b:02X}");
                    } else {
                        out.push(b);
                    }
                }
            }
        }
    }

    pub fn name(&self) -> String {
        let mut v = Vec::new();
        self.write_name(&mut v);
        String::from_utf8(v).unwrap_or_default()
    }
}

/// `fmt::Write` into a byte vector.
struct ByteWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for ByteWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Where a client is in a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub epoch: String,
    pub offset: u64,
}

impl Position {
    /// `EPOCH:OFFSET` as a hello gives it.
    pub fn parse(s: &str) -> Option<Position> {
        let (epoch, offset) = s.rsplit_once(':')?;
        let ok = !epoch.is_empty() && epoch.len() <= 64 && epoch.bytes().all(is_epoch_byte);
        ok.then_some(())?;
        Some(Position {
            epoch: epoch.to_string(),
            offset: offset.parse().ok()?,
        })
    }
}

fn is_epoch_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'
}

/// What a resume found for one stream (the `s` line's last word).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// No position was given.
    New,
    /// The position was recovered; the messages after it follow.
    Ok,
    /// The messages after the position cannot be replayed.
    Lost,
    /// No history is kept here.
    Off,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Ok => "ok",
            Status::Lost => "lost",
            Status::Off => "off",
        }
    }
}

/// A resuming client's hello: who it is and where it was.
#[derive(Debug, PartialEq, Eq)]
pub struct Hello {
    /// `"uid"` (demo mode).
    pub uid: Option<String>,
    /// `"token"` (proven uids).
    pub token: Option<String>,
    /// The positions given, by stream name (at most [`MAX_SINCE`]).
    pub since: Vec<(String, Position)>,
    /// Topics to subscribe to at once (at most [`MAX_TOPICS`]).
    pub topics: Vec<String>,
    /// `"heartbeat": true`: the client wants `h` lines.
    pub heartbeat: bool,
}

/// Topics a hello may name.
pub const MAX_TOPICS: usize = 64;

/// Positions a hello may give.
pub const MAX_SINCE: usize = 80;

/// Why a hello was refused (the close reason).
pub type HelloError = &'static str;

impl Hello {
    /// Reads a hello. Positions of streams the client does not follow are
    /// ignored (a client may carry those of another uid).
    pub fn parse(text: &str) -> Result<Hello, HelloError> {
        let v: serde_json::Value =
            // from_slice: the reader the text port's auth line uses too,
            // so the small build carries one JSON reader, not two.
            serde_json::from_slice(text.as_bytes()).map_err(|_| "hello: expected a JSON object")?;
        let obj = v.as_object().ok_or("hello: expected a JSON object")?;
        let string = |key: &str| -> Result<Option<String>, HelloError> {
            match obj.get(key) {
                None => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err("hello: \"uid\" and \"token\" must be strings"),
            }
        };
        let mut hello = Hello {
            uid: string("uid")?,
            token: string("token")?,
            since: Vec::new(),
            topics: Vec::new(),
            heartbeat: match obj.get("heartbeat") {
                None | Some(serde_json::Value::Bool(false)) => false,
                Some(serde_json::Value::Bool(true)) => true,
                Some(_) => return Err("hello: \"heartbeat\" must be true or false"),
            },
        };
        match obj.get("topics") {
            None => {}
            Some(serde_json::Value::Array(list)) if list.len() <= MAX_TOPICS => {
                for t in list {
                    let t = t
                        .as_str()
                        .ok_or("hello: \"topics\" must be a list of names")?;
                    hello.topics.push(t.to_string());
                }
            }
            Some(serde_json::Value::Array(_)) => return Err("hello: too many \"topics\""),
            Some(_) => return Err("hello: \"topics\" must be a list of names"),
        }
        match obj.get("since") {
            None => {}
            Some(serde_json::Value::Object(since)) => {
                if since.len() > MAX_SINCE {
                    return Err("hello: too many positions in \"since\"");
                }
                for (name, pos) in since {
                    let pos = pos.as_str().and_then(Position::parse);
                    let pos = pos.ok_or("hello: a position must be \"EPOCH:OFFSET\"")?;
                    hello.since.push((name.clone(), pos));
                }
            }
            Some(_) => return Err("hello: \"since\" must be an object"),
        }
        Ok(hello)
    }
}

impl Hello {
    /// The position given for `stream`.
    pub fn position(&self, stream: Stream<'_>) -> Option<&Position> {
        let name = stream.name();
        self.since.iter().find(|(n, _)| *n == name).map(|(_, p)| p)
    }
}

/// Appends the `s` line of `stream`.
pub fn write_status(out: &mut Vec<u8>, stream: Stream<'_>, epoch: &str, offset: u64, s: Status) {
    out.extend_from_slice(b"s ");
    stream.write_name(out);
    let _ = write!(ByteWriter(out), " {epoch} {offset} {}", s.word());
}

/// The `s` line of topic `name`, which keeps no history here: `s t:NAME -
/// 0 off`, or `denied` when the connection may not subscribe to it.
pub fn topic_status(name: &str, allowed: bool) -> String {
    let word = if allowed {
        Status::Off.word()
    } else {
        "denied"
    };
    format!("s {TOPIC}{name} - 0 {word}")
}

/// The head of an `m` message of topic `name`, kept nowhere: `m t:NAME - 0`.
pub fn write_topic_head(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b"m ");
    out.extend_from_slice(TOPIC.as_bytes());
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b" - 0\n");
}

/// The start of a topic's stream name (topic names need no escaping: see
/// [`crate::push::command::valid_topic`]).
pub const TOPIC: &str = "t:";

/// Appends the head of an `m` message (up to and with its newline); the
/// payload follows it.
pub fn write_head(
    out: &mut Vec<u8>,
    stream: Stream<'_>,
    epoch: impl std::fmt::Display,
    offset: u64,
) {
    out.extend_from_slice(b"m ");
    stream.write_name(out);
    let _ = writeln!(ByteWriter(out), " {epoch} {offset}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_token() {
        assert_eq!(Stream::Uid("uid1").name(), "u:uid1");
        assert_eq!(Stream::Uid("a b%\n").name(), "u:a%20b%25%0A");
        assert_eq!(Stream::All.name(), "all");
        assert_eq!(Stream::Topic("room.7").name(), "t:room.7");
        let mut line = Vec::new();
        write_head(&mut line, Stream::Uid("u"), "ab", 7);
        assert_eq!(line, b"m u:u ab 7\n");
        line.clear();
        write_status(&mut line, Stream::All, "ab", 0, Status::Lost);
        assert_eq!(line, b"s all ab 0 lost");
    }

    #[test]
    fn hellos() {
        let h = Hello::parse(r#"{"uid":"u1","since":{"u:u1":"e1:41","all":"e1:7"}}"#).unwrap();
        assert_eq!(h.uid.as_deref(), Some("u1"));
        assert_eq!(h.position(Stream::Uid("u1")).unwrap().offset, 41);
        assert_eq!(h.position(Stream::All).unwrap().epoch, "e1");
        assert!(h.position(Stream::Uid("u2")).is_none());
        let t = Hello::parse(r#"{"token":"t"}"#).unwrap();
        assert_eq!((t.uid, t.token.as_deref()), (None, Some("t")));
        assert!(t.topics.is_empty() && !t.heartbeat);
        let h = Hello::parse(
            r#"{"uid":"u","topics":["news","x y"],"heartbeat":true,"since":{"t:news":"e:3"}}"#,
        )
        .unwrap();
        assert_eq!(
            h.topics,
            ["news", "x y"],
            "names are checked per topic later"
        );
        assert!(h.heartbeat);
        assert_eq!(h.position(Stream::Topic("news")).unwrap().offset, 3);
        let many = format!(r#"{{"uid":"u","topics":{:?}}}"#, vec!["t"; MAX_TOPICS + 1]);
        assert!(Hello::parse(&many).is_err());
        for bad in [
            "u1",
            "[1]",
            r#"{"uid":1}"#,
            r#"{"uid":"u","since":[]}"#,
            r#"{"uid":"u","since":{"all":"e1"}}"#,
            r#"{"uid":"u","since":{"all":"e 1:2"}}"#,
            r#"{"uid":"u","since":{"all":":2"}}"#,
            r#"{"uid":"u","topics":"news"}"#,
            r#"{"uid":"u","topics":[1]}"#,
            r#"{"uid":"u","heartbeat":"yes"}"#,
        ] {
            assert!(Hello::parse(bad).is_err(), "{bad}");
        }
    }
}
