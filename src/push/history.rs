//! The bounded in-memory history of a node without Redis: per stream, its
//! epoch, its latest offset and its last messages, oldest evicted first.
//! No clock and no I/O: the time comes in with each call.
//!
//! Bounds: `size` messages per stream, `ttl_ms` of age, `memory` bytes for
//! everything (messages, their bookkeeping and the streams' records). Every
//! message kept is also queued, in push order, in one global queue, so
//! that the oldest message of all is found in O(1) when the age or the
//! memory bound evicts. A message trimmed by its stream's `size` leaves a
//! stale entry in that queue; stale entries are dropped when they reach
//! its front, and the queue is compacted once they outnumber live ones.
//!
//! A stream's record (epoch, latest offset) outlives its messages, so that
//! a client that saw everything is told `ok` after a long silence; records
//! go only when the memory bound has no message left to evict. A stream
//! made again after that gets a new epoch: offsets never mean two things.

use super::stream::{Position, Status, Stream};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// How much history is kept (`--history`, `--history-ttl`,
/// `--history-memory`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryConfig {
    /// Messages kept per stream; 0 keeps none (history off).
    pub size: usize,
    /// How long a message is kept.
    pub ttl_ms: u64,
    /// Bytes for all the history of this node (not used with Redis).
    pub memory: usize,
}

impl Default for HistoryConfig {
    fn default() -> HistoryConfig {
        HistoryConfig {
            size: 0,
            ttl_ms: 300_000,
            memory: 64 << 20,
        }
    }
}

impl HistoryConfig {
    pub fn enabled(&self) -> bool {
        self.size > 0
    }

    /// The Redis history scripts' arguments that follow from this
    /// configuration, spelled once: messages kept, their ttl and a stream
    /// record's ttl, in whole seconds (at least 1).
    pub fn redis_args(&self) -> [String; 3] {
        let ttl = self.ttl_ms.div_ceil(1000).max(1);
        [
            self.size.to_string(),
            ttl.to_string(),
            ttl.max(RECORD_TTL_S).to_string(),
        ]
    }
}

/// A stream record's time to live in Redis, at least: a client that saw
/// everything and comes back within it is told `ok`, not `lost`.
const RECORD_TTL_S: u64 = 86_400;

/// What a kept message costs besides its text: its entry in its stream
/// and in the global queue, and the allocator's share.
pub const MESSAGE_COST: usize = 64;
/// What a stream's record costs besides its name.
pub const STREAM_COST: usize = 112;

/// History figures for /stats and /metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistoryStats {
    pub streams: u64,
    pub messages: u64,
    /// Bytes held, by the accounting of [`MESSAGE_COST`] and
    /// [`STREAM_COST`].
    pub bytes: u64,
    /// Messages evicted by the age or memory bound, or trimmed by `size`.
    pub evicted: u64,
}

/// One stream: its record and its messages (offsets `top - len + 1 ..=
/// top`).
struct Log {
    /// Its key in its map, for the global queue.
    name: Owner,
    epoch: u64,
    top: u64,
    msgs: VecDeque<Box<str>>,
}

impl Log {
    fn first(&self) -> u64 {
        self.top + 1 - self.msgs.len() as u64
    }
}

/// Which stream a global-queue entry is of: a uid's or a topic's by the
/// very `Arc` its map key is, so that a stream made again is another.
#[derive(Clone)]
enum Owner {
    All,
    Uid(Arc<str>),
    Topic(Arc<str>),
}

/// What a resume found: the position the client is at from now on, and
/// the messages it missed (offsets `position.offset - missed.len() + 1 ..`).
pub struct Replay<'a> {
    pub position: Position,
    pub status: Status,
    pub missed: Vec<&'a str>,
}

pub struct History {
    cfg: HistoryConfig,
    /// High bits of every epoch: this process's.
    process: u64,
    /// Streams made so far: the low bits of the next epoch.
    made: u64,
    all: Log,
    uids: HashMap<Arc<str>, Log>,
    topics: HashMap<Arc<str>, Log>,
    /// Every message kept, in push order: its stream, offset and time.
    queue: VecDeque<(Owner, u64, u64)>,
    stale: usize,
    stats: HistoryStats,
}

impl History {
    /// An empty history; `seed` makes this process's epochs its own.
    pub fn new(cfg: HistoryConfig, seed: u64) -> History {
        let process = (seed & 0xffff_ffff) << 32;
        let mut h = History {
            cfg,
            process,
            made: 0,
            all: Log {
                name: Owner::All,
                epoch: process,
                top: 0,
                msgs: VecDeque::new(),
            },
            uids: HashMap::new(),
            topics: HashMap::new(),
            queue: VecDeque::new(),
            stale: 0,
            stats: HistoryStats::default(),
        };
        h.stats.bytes = STREAM_COST as u64;
        h.stats.streams = 1;
        h
    }

    pub fn config(&self) -> &HistoryConfig {
        &self.cfg
    }

    pub fn stats(&self) -> HistoryStats {
        self.stats
    }

    /// Keeps `text` as the next message of `stream`; its epoch and offset.
    pub fn append(&mut self, stream: Stream<'_>, text: &str, now_ms: u64) -> (u64, u64) {
        self.expire(now_ms);
        let size = self.cfg.size;
        // One lookup on the hot path: the record carries its own key.
        let found = match stream {
            Stream::All => Some(&mut self.all),
            Stream::Uid(uid) => self.uids.get_mut(uid),
            Stream::Topic(name) => self.topics.get_mut(name),
        };
        let log = match found {
            Some(log) => log,
            None => {
                let owner = self.make(stream);
                self.log_mut(&owner)
            }
        };
        let owner = log.name.clone();
        log.top += 1;
        log.msgs.push_back(text.into());
        let trimmed = if log.msgs.len() > size {
            log.msgs.pop_front().map(|k| k.len())
        } else {
            None
        };
        let at = (log.epoch, log.top);
        self.queue.push_back((owner, at.1, now_ms));
        self.stats.messages += 1;
        self.stats.bytes += (text.len() + MESSAGE_COST) as u64;
        if let Some(len) = trimmed {
            self.forget(len);
            self.stale += 1;
        }
        self.bound_memory();
        if self.stale > 1024 && self.stale > self.queue.len() / 2 {
            self.compact();
        }
        at
    }

    /// Where a client that was at `since` in `stream` is, and what it
    /// missed (see [`Status`]).
    pub fn resume(
        &mut self,
        stream: Stream<'_>,
        since: Option<&Position>,
        now_ms: u64,
    ) -> Replay<'_> {
        self.expire(now_ms);
        // Before the record is made: a bound too small for it would evict
        // it at once (it is counted, and made room for, at the next push).
        self.bound_memory();
        let owner = self.make(stream);
        let log = self.log_of(&owner).expect("made above");
        let epoch = format!("{:x}", log.epoch);
        let here = Position {
            epoch,
            offset: log.top,
        };
        let (status, from) = match since {
            None => (Status::New, log.top),
            Some(p) if p.epoch != here.epoch || p.offset > log.top => (Status::Lost, log.top),
            Some(p) if p.offset + 1 < log.first() => (Status::Lost, log.top),
            Some(p) => (Status::Ok, p.offset),
        };
        let skip = (from + 1 - log.first()) as usize;
        let missed = log.msgs.iter().skip(skip).map(|k| &**k).collect();
        let position = Position {
            offset: from,
            ..here
        };
        Replay {
            position,
            status,
            missed,
        }
    }

    /// The epoch as the wire writes it.
    pub fn epoch_name(epoch: u64) -> String {
        format!("{epoch:x}")
    }

    /// The owner of `stream`, whose record is made if it has none.
    fn make(&mut self, stream: Stream<'_>) -> Owner {
        let (key, map, owner): (_, _, fn(Arc<str>) -> Owner) = match stream {
            Stream::All => return Owner::All,
            Stream::Uid(uid) => (uid, &mut self.uids, Owner::Uid),
            Stream::Topic(name) => (name, &mut self.topics, Owner::Topic),
        };
        if let Some((name, _)) = map.get_key_value(key) {
            return owner(name.clone());
        }
        self.made += 1;
        let name: Arc<str> = key.into();
        let log = Log {
            name: owner(name.clone()),
            epoch: self.process | (self.made & 0xffff_ffff),
            top: 0,
            msgs: VecDeque::new(),
        };
        map.insert(name.clone(), log);
        self.stats.streams += 1;
        self.stats.bytes += (key.len() + STREAM_COST) as u64;
        owner(name)
    }

    fn log_mut(&mut self, owner: &Owner) -> &mut Log {
        match owner {
            Owner::All => &mut self.all,
            Owner::Uid(name) => self.uids.get_mut(name.as_ref()).expect("made above"),
            Owner::Topic(name) => self.topics.get_mut(name.as_ref()).expect("made above"),
        }
    }

    /// The stream of `owner`, unless it was evicted since (a stream made
    /// again under the same name is another owner).
    fn log_of(&self, owner: &Owner) -> Option<&Log> {
        let (map, name) = match owner {
            Owner::All => return Some(&self.all),
            Owner::Uid(name) => (&self.uids, name),
            Owner::Topic(name) => (&self.topics, name),
        };
        match map.get_key_value(name.as_ref()) {
            Some((key, log)) if Arc::ptr_eq(key, name) => Some(log),
            _ => None,
        }
    }

    /// Whether the queue entry `(owner, offset)` is its stream's oldest
    /// message (else it is stale).
    fn live(&self, owner: &Owner, offset: u64) -> bool {
        let log = self.log_of(owner);
        log.is_some_and(|l| !l.msgs.is_empty() && l.first() == offset)
    }

    /// Drops the queue's front entry, and its message if it is live.
    fn evict_front(&mut self) {
        let Some((owner, offset, _)) = self.queue.pop_front() else {
            return;
        };
        if !self.live(&owner, offset) {
            self.stale = self.stale.saturating_sub(1);
            return;
        }
        let log = self.log_mut(&owner);
        if let Some(k) = log.msgs.pop_front() {
            self.forget(k.len());
        }
    }

    /// A message left: counted out.
    fn forget(&mut self, text_len: usize) {
        self.stats.messages -= 1;
        self.stats.bytes -= (text_len + MESSAGE_COST) as u64;
        self.stats.evicted += 1;
    }

    /// Evicts what is older than the ttl. The queue's front is its oldest
    /// entry, so nothing is due before its time (stale entries go when
    /// their time comes, or at a compaction): no lookup while nothing is.
    fn expire(&mut self, now_ms: u64) {
        while let Some(&(_, _, at_ms)) = self.queue.front() {
            if at_ms.saturating_add(self.cfg.ttl_ms) > now_ms {
                break;
            }
            self.evict_front();
        }
    }

    /// Evicts the oldest messages, then empty records, until the memory
    /// bound holds.
    fn bound_memory(&mut self) {
        while self.stats.bytes > self.cfg.memory as u64 && !self.queue.is_empty() {
            self.evict_front();
        }
        if self.stats.bytes > self.cfg.memory as u64 {
            let (mut streams, mut bytes) = (0, 0);
            let mut empty = |name: &Arc<str>, log: &mut Log| {
                let keep = !log.msgs.is_empty();
                if !keep {
                    streams += 1;
                    bytes += (name.len() + STREAM_COST) as u64;
                }
                keep
            };
            self.uids.retain(&mut empty);
            self.topics.retain(&mut empty);
            self.stats.streams -= streams;
            self.stats.bytes -= bytes;
        }
    }

    /// Drops the queue's stale entries.
    fn compact(&mut self) {
        let queue = std::mem::take(&mut self.queue);
        self.queue = queue
            .into_iter()
            .filter(|(owner, offset, _)| {
                let log = self.log_of(owner);
                log.is_some_and(|l| !l.msgs.is_empty() && *offset >= l.first())
            })
            .collect();
        self.stale = 0;
    }
}

#[cfg(test)]
mod tests;
