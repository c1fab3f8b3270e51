//! What a churn client says and hears, without I/O: the backend's lines and
//! the sequence number each carries, the hello (seed: the uid; `herald.v1`:
//! a JSON object with `uid` and `since`), and the server's `s` and `m` lines
//! checked against the positions the client holds (docs/resume.md).

/// The subprotocol of docs/resume.md.
pub const SUBPROTOCOL: &str = "herald.v1";

/// The uid of client `i`.
pub fn uid(i: usize) -> String {
    format!("c{i}")
}

/// The backend's push `seq` to client `i`, one text-port line.
pub fn push_line(i: usize, seq: u32) -> String {
    format!("{{\"uid\":\"c{i}\",\"p\":{seq}}}\n")
}

/// The backend's broadcast `seq`, one text-port line.
pub fn broadcast_line(seq: u32) -> String {
    format!("{{\"all\":true,\"b\":{seq}}}\n")
}

/// Which of the backend's messages a payload is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    Push(u32),
    Broadcast(u32),
}

/// The bench message a payload carries (the line as the backend wrote it,
/// without its newline), if it is one.
pub fn sent_of(payload: &[u8]) -> Option<Sent> {
    let num = |key: &[u8]| -> Option<u32> {
        let at = memchr::memmem::find(payload, key)? + key.len();
        let digits = payload[at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        std::str::from_utf8(&payload[at..at + digits])
            .ok()?
            .parse()
            .ok()
    };
    num(b"\"p\":")
        .map(Sent::Push)
        .or_else(|| num(b"\"b\":").map(Sent::Broadcast))
}

/// One stream of a client: its own (`u:<uid>`) or the broadcasts (`all`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Own = 0,
    All = 1,
}

/// Where a client is in a stream: the epoch and offset of the last `s` or
/// `m` line it handled.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Position {
    pub epoch: String,
    pub offset: u64,
}

/// The `<status>` of an `s` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    New,
    Ok,
    Lost,
    Off,
}

/// What one message from the server was, once checked.
#[derive(Debug, PartialEq, Eq)]
pub enum Heard<'a> {
    /// An `s` line.
    Status(Stream, Status),
    /// An `m` line: its payload, the offsets skipped since the position
    /// held (0 when in order), and whether its offset did not advance (a
    /// replay of a message already seen).
    Message {
        stream: Stream,
        payload: &'a [u8],
        skipped: u64,
        repeated: bool,
    },
    /// A message this client should not get, or cannot read: why.
    Bad(&'static str),
}

/// The positions one `herald.v1` client holds.
#[derive(Clone, Debug, Default)]
pub struct Positions {
    streams: [Option<Position>; 2],
}

impl Positions {
    /// The hello of client `i`: `{"uid":..}` with `since` for each stream
    /// that has a position worth resuming (not an `off` stream's `-`).
    pub fn hello(&self, i: usize) -> String {
        let mut since = Vec::new();
        for (s, name) in self.streams.iter().zip([format!("u:c{i}"), "all".into()]) {
            if let Some(p) = s.as_ref().filter(|p| p.epoch != "-") {
                since.push(format!("\"{name}\":\"{}:{}\"", p.epoch, p.offset));
            }
        }
        if since.is_empty() {
            format!("{{\"uid\":\"c{i}\"}}")
        } else {
            format!("{{\"uid\":\"c{i}\",\"since\":{{{}}}}}", since.join(","))
        }
    }

    /// True once the server announced both streams (after a hello).
    pub fn both_announced(&self) -> bool {
        self.streams.iter().all(Option::is_some)
    }

    /// Checks a `herald.v1` message to client `i` against the positions
    /// held and moves them on.
    pub fn hear<'a>(&mut self, i: usize, msg: &'a [u8]) -> Heard<'a> {
        let (head, payload) = match memchr::memchr(b'\n', msg) {
            Some(nl) => (&msg[..nl], Some(&msg[nl + 1..])),
            None => (msg, None),
        };
        let Ok(head) = std::str::from_utf8(head) else {
            return Heard::Bad("not UTF-8");
        };
        let mut w = head.split(' ');
        let (kind, stream, epoch, offset, rest) =
            (w.next(), w.next(), w.next(), w.next(), w.next());
        let stream = match stream {
            Some("all") => Stream::All,
            Some(s) if s.strip_prefix("u:c").and_then(|n| n.parse::<usize>().ok()) == Some(i) => {
                Stream::Own
            }
            _ => return Heard::Bad("a stream that is not the client's"),
        };
        let (Some(epoch), Some(Ok(offset))) = (epoch, offset.map(str::parse::<u64>)) else {
            return Heard::Bad("no epoch and offset");
        };
        let at = Position {
            epoch: epoch.to_string(),
            offset,
        };
        match (kind, payload, rest) {
            (Some("s"), None, Some(status)) => {
                let status = match status {
                    "new" => Status::New,
                    "ok" => Status::Ok,
                    "lost" => Status::Lost,
                    "off" => Status::Off,
                    _ => return Heard::Bad("unknown status"),
                };
                self.streams[stream as usize] = Some(at);
                Heard::Status(stream, status)
            }
            (Some("m"), Some(payload), None) => {
                let held = self.streams[stream as usize].replace(at);
                let (skipped, repeated) = match held {
                    _ if epoch == "-" => (0, false),
                    Some(p) if p.epoch == epoch => {
                        (offset.saturating_sub(p.offset + 1), offset <= p.offset)
                    }
                    // No `s` line announced the stream, or another epoch
                    // came without one: the contract was broken.
                    _ => return Heard::Bad("a message outside the announced epoch"),
                };
                Heard::Message {
                    stream,
                    payload,
                    skipped,
                    repeated,
                }
            }
            _ => Heard::Bad("neither an s nor an m line"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_their_sequence_numbers() {
        let p = push_line(42, 123);
        assert_eq!(p, "{\"uid\":\"c42\",\"p\":123}\n");
        assert_eq!(sent_of(p.trim_end().as_bytes()), Some(Sent::Push(123)));
        let b = broadcast_line(7);
        assert_eq!(sent_of(b.trim_end().as_bytes()), Some(Sent::Broadcast(7)));
        assert_eq!(sent_of(b"{\"uid\":\"c1\"}"), None);
        assert_eq!(sent_of(b"\"p\":"), None);
    }

    #[test]
    fn the_hello_gives_what_was_seen() {
        let mut p = Positions::default();
        assert_eq!(p.hello(3), "{\"uid\":\"c3\"}");
        assert_eq!(
            p.hear(3, b"s u:c3 k3j9a0 41 new"),
            Heard::Status(Stream::Own, Status::New)
        );
        assert!(!p.both_announced());
        assert_eq!(
            p.hello(3),
            "{\"uid\":\"c3\",\"since\":{\"u:c3\":\"k3j9a0:41\"}}"
        );
        p.hear(3, b"s all zz 7 ok");
        assert!(p.both_announced());
        p.hear(3, b"m all zz 8\n{\"all\":true,\"b\":0}");
        assert_eq!(
            p.hello(3),
            "{\"uid\":\"c3\",\"since\":{\"u:c3\":\"k3j9a0:41\",\"all\":\"zz:8\"}}"
        );
        // Without history nothing can be resumed.
        let mut off = Positions::default();
        off.hear(3, b"s u:c3 - 0 off");
        off.hear(3, b"s all - 0 off");
        assert_eq!(off.hello(3), "{\"uid\":\"c3\"}");
        let m = off.hear(3, b"m all - 0\n{\"b\":1}");
        assert!(matches!(
            m,
            Heard::Message {
                skipped: 0,
                repeated: false,
                ..
            }
        ));
    }

    #[test]
    fn gaps_repeats_and_strangers_are_seen() {
        let mut p = Positions::default();
        p.hear(5, b"s u:c5 e 10 ok");
        let heard = p.hear(5, b"m u:c5 e 11\n{\"uid\":\"c5\",\"p\":9}");
        assert_eq!(
            heard,
            Heard::Message {
                stream: Stream::Own,
                payload: b"{\"uid\":\"c5\",\"p\":9}",
                skipped: 0,
                repeated: false
            }
        );
        assert!(matches!(
            p.hear(5, b"m u:c5 e 14\nx"),
            Heard::Message { skipped: 2, .. }
        ));
        assert!(matches!(
            p.hear(5, b"m u:c5 e 14\nx"),
            Heard::Message { repeated: true, .. }
        ));
        assert!(matches!(p.hear(5, b"m u:c6 e 15\nx"), Heard::Bad(_)));
        assert!(matches!(p.hear(5, b"m u:c5 other 15\nx"), Heard::Bad(_)));
        assert!(matches!(p.hear(5, b"m all e 1\nx"), Heard::Bad(_)));
        assert!(matches!(p.hear(5, b"s all e 1 maybe"), Heard::Bad(_)));
        assert!(matches!(p.hear(5, b"hello"), Heard::Bad(_)));
        // A lost status moves the position on: what follows is in order.
        assert_eq!(
            p.hear(5, b"s u:c5 f 3 lost"),
            Heard::Status(Stream::Own, Status::Lost)
        );
        assert!(matches!(
            p.hear(5, b"m u:c5 f 4\nx"),
            Heard::Message { skipped: 0, .. }
        ));
    }
}
