//! One connection to Redis, sans-IO: when to (re)connect, the login (AUTH,
//! SELECT) that must succeed before the link is up, the bytes to write, and
//! the whole replies of each read, decoded in place. [`super::Client`] and
//! [`super::Subscriber`] say what the replies mean.
//!
//! The caller's side, in quinn-proto's shape: [`Link::poll_timeout`] says
//! when a connection is due and [`Link::poll_connect`] when to open one;
//! [`Link::on_connected`] when it opened; [`Link::poll_transmit`] and
//! [`Link::advance_transmit`] move what is to be written; the owner's
//! `handle_data` and `on_down` take what was read and the end of the
//! connection. Time is milliseconds on the caller's monotonic clock.

use super::resp::{self, Frame, RespError};
use super::url::RedisUrl;
use crate::backoff::Backoff;
use std::fmt;
use std::net::SocketAddr;

/// Reconnect delays: 100 ms doubling to 5 s, ±25 %, so that nodes that lost
/// Redis together do not come back in step.
const BACKOFF_MIN_MS: u64 = 100;
const BACKOFF_MAX_MS: u64 = 5_000;
const BACKOFF_JITTER_PERCENT: u64 = 25;
/// A reply held from earlier reads is completed from the next one in
/// chunks that start at this size and double: what is copied stays within
/// twice what the reply still needed, and the decoder restarts few times.
const FIRST_CHUNK: usize = 256;
/// Buffers a burst grew past this are given back once empty.
const KEEP_CAPACITY: usize = 64 << 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// No connection; the next one is due at `at`.
    Waiting {
        at: u64,
    },
    /// The caller is opening the socket.
    Connecting,
    /// Connected; `left` login replies still to come.
    LoggingIn {
        left: u8,
    },
    Up,
    /// What was read made the connection unusable: the caller closes it
    /// and calls `on_down`. `was_up` for the reconnect count.
    Broken {
        was_up: bool,
    },
}

/// Why a link gave up its connection on its own. The caller closes the
/// socket and calls the owner's `on_down`, as for a socket error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkError {
    /// AUTH or SELECT was refused (`WRONGPASS`, `NOAUTH`, a DB out of
    /// range), in Redis's words. Once per connection: nothing after the
    /// first refusal is read.
    LoginRefused(String),
    /// Bytes that are no RESP2 reply.
    Unreadable(RespError),
    /// A reply still incomplete at this many bytes, past what a link holds
    /// for one (`max_bulk + max_line` of [`resp::Limits`]).
    TooLarge(usize),
    /// A reply with no command waiting for it: replies and tags would be
    /// out of step from here on.
    Unexpected,
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::LoginRefused(why) => write!(f, "login refused: {why}"),
            LinkError::Unreadable(e) => write!(f, "unreadable reply ({e})"),
            LinkError::TooLarge(n) => write!(f, "a reply past {n} bytes"),
            LinkError::Unexpected => f.write_str("a reply nothing asked for"),
        }
    }
}

impl std::error::Error for LinkError {}

/// Asked of a link that is not up: waiting to reconnect, connecting, or
/// logging in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotUp;

/// One connection to Redis and its reconnects.
pub struct Link {
    addr: SocketAddr,
    /// Whether the login selects the URL's DB (not on a pub/sub link).
    select_db: bool,
    /// AUTH and SELECT, written first on every connection; encoded once.
    login: Vec<u8>,
    login_replies: u8,
    state: State,
    /// Bytes to write: the login, then commands, until the caller takes them.
    output: Vec<u8>,
    /// The start of a reply whose end has not arrived; empty between replies.
    input: Vec<u8>,
    limits: resp::Limits,
    backoff: Backoff,
    failures: u32,
    reconnects: u64,
}

/// The commands that log in to `url` (AUTH, and SELECT when `select_db`),
/// and how many replies they get.
fn login_of(url: &RedisUrl, select_db: bool) -> (Vec<u8>, u8) {
    let mut login = Vec::new();
    let mut replies = 0;
    if let Some(password) = &url.password {
        resp::encode(&mut login, &[b"AUTH", password.as_bytes()]);
        replies += 1;
    }
    if select_db && url.db != 0 {
        resp::encode(&mut login, &[b"SELECT", url.db.to_string().as_bytes()]);
        replies += 1;
    }
    (login, replies)
}

impl fmt::Debug for Link {
    // Never the login: it holds the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("addr", &self.addr)
            .field("state", &self.state)
            .field("output", &self.output.len())
            .field("input", &self.input.len())
            .field("failures", &self.failures)
            .field("reconnects", &self.reconnects)
            .finish_non_exhaustive()
    }
}

impl Link {
    /// A link to `url`, due to connect at once. `select_db`: whether it
    /// selects the URL's DB (pub/sub ignores DBs). `seed` varies the
    /// backoff's jitter (from the process, the time, the node name).
    pub(super) fn new(url: &RedisUrl, select_db: bool, seed: u64) -> Link {
        let (login, login_replies) = login_of(url, select_db);
        Link {
            addr: url.addr,
            select_db,
            login,
            login_replies,
            state: State::Waiting { at: 0 },
            output: Vec::new(),
            input: Vec::new(),
            limits: resp::Limits::default(),
            backoff: Backoff::new(BACKOFF_MIN_MS, BACKOFF_MAX_MS, BACKOFF_JITTER_PERCENT, seed),
            failures: 0,
            reconnects: 0,
        }
    }

    /// Logs in with `url`'s password (and DB) from the next connection on:
    /// a password rotated on reload. The connection up now stays.
    pub fn set_login(&mut self, url: &RedisUrl) {
        (self.login, self.login_replies) = login_of(url, self.select_db);
    }

    /// Connected and logged in: commands can be sent.
    pub fn is_up(&self) -> bool {
        self.state == State::Up
    }

    /// When the next connection is due, while there is none.
    pub fn poll_timeout(&self) -> Option<u64> {
        match self.state {
            State::Waiting { at } => Some(at),
            _ => None,
        }
    }

    /// The address to open a socket to, once a connection is due at `now`;
    /// the link is then connecting until `on_connected` or `on_down`.
    pub fn poll_connect(&mut self, now: u64) -> Option<SocketAddr> {
        match self.state {
            State::Waiting { at } if at <= now => {
                self.state = State::Connecting;
                Some(self.addr)
            }
            _ => None,
        }
    }

    /// The socket opened: the login is queued to be written. True when
    /// there is nothing to log in with, so the link is up at once;
    /// otherwise the owner's `handle_data` says when the login succeeded.
    pub fn on_connected(&mut self) -> bool {
        if self.state != State::Connecting {
            return false;
        }
        self.output.clear();
        self.output.extend_from_slice(&self.login);
        self.state = match self.login_replies {
            0 => State::Up,
            left => State::LoggingIn { left },
        };
        if self.is_up() {
            self.came_up();
        }
        self.is_up()
    }

    /// Bytes to write, if any.
    pub fn poll_transmit(&self) -> Option<&[u8]> {
        (!self.output.is_empty()).then_some(self.output.as_slice())
    }

    /// `n` bytes of [`Link::poll_transmit`] were written.
    pub fn advance_transmit(&mut self, n: usize) {
        if n < self.output.len() {
            self.output.drain(..n);
        } else {
            release(&mut self.output);
        }
    }

    /// Connections in a row that went down before or since coming up
    /// (0 while up), for a log that stays quiet while Redis stays away.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Times the link went down after it had been up.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    /// Where commands are written while the link is up.
    pub(super) fn output(&mut self) -> Result<&mut Vec<u8>, NotUp> {
        match self.state {
            State::Up => Ok(&mut self.output),
            _ => Err(NotUp),
        }
    }

    /// Decodes the whole replies of a read: login replies while logging
    /// in, then each to `on`. Replies whole in `data` are read in place;
    /// only a trailing partial one is kept. True when the login completed
    /// in this read. On an error the link is broken: it reads nothing more
    /// until `down`.
    pub(super) fn read(
        &mut self,
        data: &[u8],
        mut on: impl FnMut(Frame<'_>) -> Result<(), LinkError>,
    ) -> Result<bool, LinkError> {
        let was_up = match self.state {
            State::Up => true,
            State::LoggingIn { .. } => false,
            // Bytes of a connection already given up on.
            _ => return Ok(false),
        };
        if let Err(e) = self.read_replies(data, &mut on) {
            self.state = State::Broken { was_up };
            release(&mut self.input);
            return Err(e);
        }
        let came_up = !was_up && self.is_up();
        if came_up {
            self.came_up();
        }
        Ok(came_up)
    }

    fn read_replies(
        &mut self,
        data: &[u8],
        on: &mut impl FnMut(Frame<'_>) -> Result<(), LinkError>,
    ) -> Result<(), LinkError> {
        let Some(mut rest) = self.complete_held(data, on)? else {
            return Ok(());
        };
        while !rest.is_empty() {
            match Frame::decode(rest, &self.limits).map_err(LinkError::Unreadable)? {
                Some((frame, used)) => {
                    take_reply(&mut self.state, frame, on)?;
                    rest = &rest[used..];
                }
                None => {
                    self.input.extend_from_slice(rest);
                    return self.check_held();
                }
            }
        }
        Ok(())
    }

    /// Completes the reply held from earlier reads with the start of
    /// `data`. The rest of `data`, or `None` when all of it went to a reply
    /// still partial.
    fn complete_held<'d>(
        &mut self,
        data: &'d [u8],
        on: &mut impl FnMut(Frame<'_>) -> Result<(), LinkError>,
    ) -> Result<Option<&'d [u8]>, LinkError> {
        let mut rest = data;
        while !self.input.is_empty() {
            if rest.is_empty() {
                return Ok(None);
            }
            let held = self.input.len();
            let chunk = rest.len().min(held.max(FIRST_CHUNK));
            self.input.extend_from_slice(&rest[..chunk]);
            match Frame::decode(&self.input, &self.limits).map_err(LinkError::Unreadable)? {
                Some((frame, used)) => {
                    take_reply(&mut self.state, frame, on)?;
                    // The held bytes alone were partial, so the reply ends
                    // inside this chunk; what follows it goes back.
                    rest = &rest[used - held..];
                    release(&mut self.input);
                }
                None => {
                    rest = &rest[chunk..];
                    self.check_held()?;
                }
            }
        }
        Ok(Some(rest))
    }

    fn check_held(&self) -> Result<(), LinkError> {
        let cap = self.limits.max_bulk.saturating_add(self.limits.max_line);
        match self.input.len() {
            n if n > cap => Err(LinkError::TooLarge(n)),
            _ => Ok(()),
        }
    }

    fn came_up(&mut self) {
        self.backoff.reset();
        self.failures = 0;
    }

    /// The connection is gone (a socket error or close, a failed connect,
    /// or after a [`LinkError`]): what was to be written and read is
    /// dropped, and the next connection is due after the backoff. Nothing
    /// happens on a link already waiting.
    pub(super) fn down(&mut self, now: u64) {
        let was_up = match self.state {
            State::Waiting { .. } => return,
            State::Up => true,
            State::Broken { was_up } => was_up,
            State::Connecting | State::LoggingIn { .. } => false,
        };
        if was_up {
            self.reconnects += 1;
        }
        self.failures = self.failures.saturating_add(1);
        self.state = State::Waiting {
            at: now.saturating_add(self.backoff.next_delay()),
        };
        release(&mut self.output);
        release(&mut self.input);
    }
}

/// A whole reply: a login step while logging in, the owner's after.
fn take_reply(
    state: &mut State,
    frame: Frame<'_>,
    on: &mut impl FnMut(Frame<'_>) -> Result<(), LinkError>,
) -> Result<(), LinkError> {
    let State::LoggingIn { left } = *state else {
        return on(frame);
    };
    if let Frame::Error(why) = frame {
        return Err(LinkError::LoginRefused(
            String::from_utf8_lossy(why).into_owned(),
        ));
    }
    *state = match left {
        ..=1 => State::Up,
        n => State::LoggingIn { left: n - 1 },
    };
    Ok(())
}

/// Empties a buffer, giving back what a burst grew it to.
fn release(buf: &mut Vec<u8>) {
    if buf.capacity() > KEEP_CAPACITY {
        *buf = Vec::new();
    } else {
        buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(password: Option<&str>) -> Link {
        let url = RedisUrl {
            addr: "127.0.0.1:6379".parse().unwrap(),
            password: password.map(str::to_string),
            db: 1,
        };
        Link::new(&url, true, 5)
    }

    /// Every whole reply of the reads, as trees, once the link is up.
    fn replies(l: &mut Link, reads: &[&[u8]]) -> Vec<String> {
        let mut out = Vec::new();
        for data in reads {
            l.read(data, |f| {
                out.push(format!("{:?}", f.to_reply()));
                Ok(())
            })
            .unwrap();
        }
        out
    }

    #[test]
    fn the_password_stays_out_of_debug() {
        let mut l = link(Some("s3cret"));
        l.poll_connect(0);
        l.on_connected();
        assert!(!format!("{l:?}").contains("s3cret"));
        assert!(format!("{l:?}").contains("LoggingIn { left: 2 }"));
    }

    #[test]
    fn a_held_reply_takes_only_what_it_needs_from_the_next_read() {
        let mut l = link(None);
        l.poll_connect(0);
        l.on_connected();
        assert!(l.read(b"+OK\r\n", |_| unreachable!()).unwrap(), "SELECT");
        // A big bulk cut after its header, then its rest and many small
        // replies in one read: the held part grows by doubling chunks, not
        // by the whole read.
        let big = vec![b'y'; 1000];
        let mut second = big.clone();
        second.extend_from_slice(b"\r\n");
        second.extend_from_slice(&b":7\r\n".repeat(10_000));
        let heard = replies(&mut l, &[b"$1000\r\n", &second]);
        assert_eq!(heard.len(), 10_001);
        assert!(l.input.capacity() < 4 * 1024, "{}", l.input.capacity());
        assert!(l.input.is_empty());
        assert_eq!(heard[1], "Integer(7)");
    }

    #[test]
    fn connecting_waits_for_its_time_and_its_socket() {
        let mut l = link(None);
        assert_eq!(l.poll_timeout(), Some(0));
        assert!(!l.on_connected(), "no socket was asked for");
        assert_eq!(l.poll_connect(0), Some("127.0.0.1:6379".parse().unwrap()));
        assert_eq!(l.poll_connect(0), None, "once");
        l.down(10);
        l.down(10);
        assert_eq!(l.failures(), 1, "a second down of the same connection");
        let at = l.poll_timeout().unwrap();
        assert!((85..=135).contains(&at), "{at}");
        assert_eq!(l.read(b"+OK\r\n", |_| unreachable!()), Ok(false));
    }
}
