//! The resumes in progress with the Redis history (see `history`): what
//! each waits for, the live messages kept for it, and how it finishes.

use crate::app::ConnId;
use crate::push::replay::{replay, ResumeStats};
use crate::push::stream::{self, Position, Status, Stream};
use crate::reactor::Context;
use crate::redis::resp::Frame;

/// The PING argument of a barrier.
pub(super) const BARRIER: &[u8] = b"herald-resume";

/// The two streams of a connection, in this order.
pub(super) const OWN: usize = 0;
pub(super) const ALL: usize = 1;

/// What the history said of one stream.
pub(super) struct Read {
    at: Position,
    status: Status,
    missed: Vec<Box<str>>,
}

/// A live message kept for a held connection.
pub(super) struct Kept {
    stream: usize,
    epoch: Box<str>,
    offset: u64,
    text: Box<str>,
}

/// One connection resuming.
pub(super) struct Resuming {
    pub(super) conn: ConnId,
    pub(super) uid: String,
    pub(super) since: [Option<Position>; 2],
    /// The barrier it waits for (0: none sent yet): the first (then it
    /// reads), or once `read` is complete the second (then it finishes).
    pub(super) barrier: u64,
    pub(super) reading: bool,
    pub(super) read: [Option<Read>; 2],
    pub(super) live: Vec<Kept>,
}

/// One connection subscribing to a topic from a position: not in the
/// topic until it has its replay; its live messages are kept meanwhile.
pub(super) struct TopicResuming {
    pub(super) conn: ConnId,
    pub(super) topic: Box<str>,
    pub(super) since: Option<Position>,
    /// As for [`Resuming::barrier`].
    pub(super) barrier: u64,
    pub(super) reading: bool,
    pub(super) read: Option<Read>,
    pub(super) live: Vec<Kept>,
}

/// The resumes in progress (usually none).
#[derive(Default)]
pub(super) struct Resumes {
    pub(super) list: Vec<Resuming>,
    pub(super) topics: Vec<TopicResuming>,
    /// Barriers sent and answered on the subscribed link.
    pub(super) sent: u64,
    pub(super) passed: u64,
    pub(super) stats: ResumeStats,
}

impl Resuming {
    pub(super) fn read_all(&self) -> bool {
        self.read.iter().all(Option::is_some)
    }
}

impl Resumes {
    /// A history read that will not be answered: the resume starts over.
    pub(super) fn retry(&mut self, conn: ConnId) {
        if let Some(r) = self.list.iter_mut().find(|r| r.conn == conn) {
            r.barrier = 0;
            r.reading = false;
            r.read = [None, None];
        }
    }

    /// A message heard live for `stream`: kept for the held connections
    /// that follow it.
    pub(super) fn keep_live(&mut self, stream: Stream<'_>, epoch: &str, offset: u64, text: &str) {
        for r in &mut self.list {
            let which = match stream {
                Stream::All => ALL,
                Stream::Uid(uid) if uid == r.uid => OWN,
                Stream::Uid(_) | Stream::Topic(_) => continue,
            };
            r.live.push(Kept {
                stream: which,
                epoch: epoch.into(),
                offset,
                text: text.into(),
            });
        }
    }

    /// Whether any resume is in progress (the hot path checks this first).
    pub(super) fn resuming(&self) -> bool {
        !self.list.is_empty()
    }

    /// A message heard live for topic `name`: kept for the connections
    /// subscribing to it from a position.
    pub(super) fn keep_topic(&mut self, name: &str, epoch: &str, offset: u64, text: &str) {
        for r in self.topics.iter_mut().filter(|r| *r.topic == *name) {
            r.live.push(Kept {
                stream: 0,
                epoch: epoch.into(),
                offset,
                text: text.into(),
            });
        }
    }

    /// A topic history read that will not be answered: it starts over.
    pub(super) fn retry_topic(&mut self, conn: ConnId, topic: &str) {
        let r = self
            .topics
            .iter_mut()
            .find(|r| r.conn == conn && *r.topic == *topic);
        if let Some(r) = r {
            r.barrier = 0;
            r.reading = false;
            r.read = None;
        }
    }

    /// A topic history read answered (`None`: it never will be).
    pub(super) fn on_topic_range(&mut self, conn: ConnId, topic: &str, reply: Option<Frame<'_>>) {
        let Some(read) = reply.and_then(parse_range) else {
            return self.retry_topic(conn, topic);
        };
        let r = self
            .topics
            .iter_mut()
            .find(|r| r.conn == conn && *r.topic == *topic);
        if let Some(r) = r {
            r.read = Some(read);
            // The second barrier (sent by the next flush).
            r.barrier = 0;
        }
    }

    /// A history read answered (`None`: it never will be).
    pub(super) fn on_range(&mut self, conn: ConnId, which: usize, reply: Option<Frame<'_>>) {
        let Some(read) = reply.and_then(parse_range) else {
            return self.retry(conn);
        };
        let Some(i) = self.list.iter().position(|r| r.conn == conn) else {
            return;
        };
        let r = &mut self.list[i];
        r.read[which] = Some(read);
        if r.read_all() {
            // The second barrier (sent by the next flush).
            r.barrier = 0;
        }
    }
}

/// Whether a PONG answers a barrier.
pub(super) fn is_barrier(tag: &[u8]) -> bool {
    tag == BARRIER
}

/// Gives a resumed connection its streams' lines, replays and kept live
/// messages, and releases it.
pub(super) fn finish(cx: &mut Context, stats: &mut ResumeStats, r: Resuming) {
    let streams = [Stream::Uid(&r.uid), Stream::All];
    let mut last = [0u64; 2];
    for (which, read) in r.read.iter().enumerate() {
        let Some(read) = read else { continue };
        let missed = read.missed.iter().map(|t| &**t);
        replay(
            cx,
            stats,
            r.conn,
            streams[which],
            &read.at,
            read.status,
            missed,
        );
        last[which] = read.at.offset + read.missed.len() as u64;
    }
    let mut head = Vec::new();
    for k in &r.live {
        let Some(read) = &r.read[k.stream] else {
            continue;
        };
        // Past the replay, in the epoch it was read in: what the replay
        // did not give. (Live messages come in offset order.)
        if *k.epoch != *read.at.epoch || k.offset <= last[k.stream] {
            continue;
        }
        last[k.stream] = k.offset;
        head.clear();
        stream::write_head(&mut head, streams[k.stream], &k.epoch, k.offset);
        head.extend_from_slice(k.text.as_bytes());
        cx.send_text(r.conn, std::str::from_utf8(&head).unwrap_or_default());
    }
    cx.hold(r.conn, false);
}

/// Gives a connection that subscribed to a topic from a position its
/// `s` line, replay and kept live messages; the caller then puts it in the
/// topic.
pub(super) fn finish_topic(cx: &mut Context, stats: &mut ResumeStats, r: &TopicResuming) {
    let Some(read) = &r.read else {
        return;
    };
    let stream = Stream::Topic(&r.topic);
    let missed = read.missed.iter().map(|t| &**t);
    replay(cx, stats, r.conn, stream, &read.at, read.status, missed);
    let mut last = read.at.offset + read.missed.len() as u64;
    let mut head = Vec::new();
    for k in &r.live {
        if *k.epoch != *read.at.epoch || k.offset <= last {
            continue;
        }
        last = k.offset;
        head.clear();
        stream::write_head(&mut head, stream, &k.epoch, k.offset);
        head.extend_from_slice(k.text.as_bytes());
        cx.send_text(r.conn, std::str::from_utf8(&head).unwrap_or_default());
    }
}

/// The RANGE script's reply.
fn parse_range(reply: Frame<'_>) -> Option<Read> {
    let mut items = reply.items()?;
    let epoch = std::str::from_utf8(items.next()?.as_bytes()?).ok()?;
    let top = u64::try_from(items.next()?.as_int()?).ok()?;
    let status = match items.next()?.as_bytes()? {
        b"new" => Status::New,
        b"ok" => Status::Ok,
        b"lost" => Status::Lost,
        _ => return None,
    };
    let mut missed = Vec::new();
    for item in items {
        missed.push(String::from_utf8_lossy(item.as_bytes()?).into());
    }
    let offset = top.checked_sub(missed.len() as u64)?;
    Some(Read {
        at: Position {
            epoch: epoch.to_string(),
            offset,
        },
        status,
        missed,
    })
}
