//! The command link: commands pipelined on one connection, each reply
//! handed back with the tag of the command that asked for it (redis-rs's
//! pipeline sink, sans-IO), and the tags of those still waiting handed back
//! when the connection goes.

use super::link::{Link, LinkError};
use super::resp::{self, Frame};
use super::url::RedisUrl;
use std::collections::VecDeque;

/// A command that was not sent, with its tag, so the caller can answer
/// whoever asked.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError<T> {
    /// The link is not up (waiting to reconnect, connecting, logging in).
    NotUp(T),
    /// It would take the bytes of commands awaiting replies past the
    /// client's bound (`--redis-max-pending`).
    Backlog(T),
}

impl<T> SendError<T> {
    /// The tag of the command that was not sent.
    pub fn into_tag(self) -> T {
        match self {
            SendError::NotUp(tag) | SendError::Backlog(tag) => tag,
        }
    }
}

/// Commands to Redis and their replies, tagged with `T` (what to do with
/// each reply).
///
/// ```
/// use herald::redis::{Client, RedisUrl, resp::Frame};
///
/// let url = RedisUrl::parse("redis://127.0.0.1:6379").unwrap();
/// let mut redis: Client<&str> = Client::new(&url, 1 << 20, 1);
/// let addr = redis.link_mut().poll_connect(0); // open a socket to it
/// assert_eq!(addr, Some(url.addr));
/// assert!(redis.link_mut().on_connected()); // no password: up at once
/// redis.send(&[b"PUBLISH", b"news", b"hi"], "first push").unwrap();
/// let wire = redis.link().poll_transmit().unwrap().len(); // write these
/// redis.link_mut().advance_transmit(wire);
/// redis
///     .handle_data(b":2\r\n", |tag, reply| {
///         assert_eq!((tag, reply), ("first push", Frame::Integer(2)));
///     })
///     .unwrap();
/// ```
#[derive(Debug)]
pub struct Client<T> {
    link: Link,
    /// One entry per command written and not yet answered, in order: its
    /// tag and its size.
    pending: VecDeque<(T, usize)>,
    pending_bytes: usize,
    max_pending: usize,
}

impl<T> Client<T> {
    /// A command link to `url` (which it logs in to and selects the DB
    /// of), bounded to `max_pending` bytes of commands awaiting replies for
    /// [`Client::send`]. `seed` varies the reconnect jitter.
    pub fn new(url: &RedisUrl, max_pending: usize, seed: u64) -> Client<T> {
        Client {
            link: Link::new(url, true, seed),
            pending: VecDeque::new(),
            pending_bytes: 0,
            max_pending,
        }
    }

    /// The connection: whether it is up, when it connects, what to write.
    pub fn link(&self) -> &Link {
        &self.link
    }

    /// The connection, to connect it and take what it writes.
    pub fn link_mut(&mut self) -> &mut Link {
        &mut self.link
    }

    /// Writes a command whose reply comes back with `tag`; refused when
    /// the link is not up, or when the bytes awaiting replies would pass
    /// the bound (for what a caller can refuse its own client: a push).
    pub fn send(&mut self, args: &[&[u8]], tag: T) -> Result<(), SendError<T>> {
        let size = resp::encoded_len(args);
        if self.link.is_up() && self.pending_bytes.saturating_add(size) > self.max_pending {
            return Err(SendError::Backlog(tag));
        }
        self.write(args, size, tag)
    }

    /// [`Client::send`] past the bound: for what keeps Redis's picture of
    /// this node right (its presence, heartbeats, scripts), which must not
    /// be dropped because pushes are backed up. Refused only when not up.
    pub fn send_unbounded(&mut self, args: &[&[u8]], tag: T) -> Result<(), SendError<T>> {
        self.write(args, resp::encoded_len(args), tag)
    }

    fn write(&mut self, args: &[&[u8]], size: usize, tag: T) -> Result<(), SendError<T>> {
        let Ok(out) = self.link.output() else {
            return Err(SendError::NotUp(tag));
        };
        resp::encode(out, args);
        self.pending.push_back((tag, size));
        self.pending_bytes += size;
        Ok(())
    }

    /// Bytes of commands written and not yet answered.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Bytes read from the connection: `on` gets each whole reply with its
    /// command's tag, in order (an error reply too: `Frame::Error`).
    /// `Ok(true)` when this read completed the login: the link just came up
    /// (the time to restore what Redis should know). On an `Err` the
    /// connection is unusable: close it and call [`Client::on_down`].
    pub fn handle_data(
        &mut self,
        data: &[u8],
        mut on: impl FnMut(T, Frame<'_>),
    ) -> Result<bool, LinkError> {
        let (pending, bytes) = (&mut self.pending, &mut self.pending_bytes);
        self.link.read(data, |frame| {
            let (tag, size) = pending.pop_front().ok_or(LinkError::Unexpected)?;
            *bytes -= size;
            on(tag, frame);
            Ok(())
        })
    }

    /// The connection is gone (closed, failed to open, or given up after a
    /// [`LinkError`]): returns the tags of every command still waiting, to
    /// be answered as failed, and schedules the reconnect
    /// ([`Link::poll_timeout`]).
    pub fn on_down(&mut self, now: u64) -> impl Iterator<Item = T> + '_ {
        self.link.down(now);
        self.pending_bytes = 0;
        self.pending.drain(..).map(|(tag, _)| tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::NotUp;

    fn url(password: Option<&str>, db: u32) -> RedisUrl {
        RedisUrl {
            addr: "127.0.0.1:6379".parse().unwrap(),
            password: password.map(str::to_string),
            db,
        }
    }

    fn command(args: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        resp::encode(&mut out, args);
        out
    }

    /// What the link wrote since the last call.
    fn written<T>(c: &mut Client<T>) -> Vec<u8> {
        let out = c.link().poll_transmit().unwrap_or_default().to_vec();
        c.link_mut().advance_transmit(out.len());
        out
    }

    /// Replies as (tag, reply as text), or the error.
    type Heard = Result<(bool, Vec<(u32, String)>), LinkError>;

    fn feed(c: &mut Client<u32>, reads: &[&[u8]]) -> Heard {
        let mut heard = Vec::new();
        let mut up = false;
        for data in reads {
            up |= c.handle_data(data, |tag, reply| {
                heard.push((tag, format!("{:?}", reply.to_reply())));
            })?;
        }
        Ok((up, heard))
    }

    /// Connected and logged in with `password` and DB 2.
    fn logged_in(now: u64) -> Client<u32> {
        let mut c = Client::new(&url(Some("pw"), 2), 1 << 20, 7);
        assert_eq!(c.link().poll_timeout(), Some(0));
        assert!(c.link_mut().poll_connect(now).is_some());
        assert!(!c.link_mut().on_connected());
        let mut login = command(&[b"AUTH", b"pw"]);
        login.extend(command(&[b"SELECT", b"2"]));
        assert_eq!(written(&mut c), login);
        assert_eq!(c.send(&[b"PING"], 0), Err(SendError::NotUp(0)));
        assert_eq!(feed(&mut c, &[b"+OK\r\n"]), Ok((false, vec![])));
        assert!(!c.link().is_up(), "up only once SELECT is OK too");
        assert_eq!(feed(&mut c, &[b"+OK\r\n"]), Ok((true, vec![])));
        assert!(c.link().is_up());
        c
    }

    const REPLIES: &[u8] =
        b":1\r\n*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$4\r\nb\r\nc\r\n-ERR no\r\n$-1\r\n";

    fn expected() -> Vec<(u32, String)> {
        let mut pos = 0;
        let mut out = Vec::new();
        while let Ok(Some((r, n))) = resp::decode(&REPLIES[pos..], &resp::Limits::default()) {
            out.push((10 + out.len() as u32, format!("{r:?}")));
            pos += n;
        }
        out
    }

    #[test]
    fn pipelined_replies_come_back_tagged_however_the_reads_are_cut() {
        for cut in 0..=REPLIES.len() {
            for second in cut..=REPLIES.len() {
                let mut c = logged_in(0);
                for tag in 10..14 {
                    c.send(&[b"PING"], tag).unwrap();
                }
                assert_eq!(written(&mut c), command(&[b"PING"]).repeat(4));
                let reads = [&REPLIES[..cut], &REPLIES[cut..second], &REPLIES[second..]];
                assert_eq!(feed(&mut c, &reads), Ok((false, expected())));
                assert_eq!(c.pending_bytes(), 0);
            }
        }
        // One byte per read.
        let mut c = logged_in(0);
        for tag in 10..14 {
            c.send(&[b"PING"], tag).unwrap();
        }
        let bytes: Vec<&[u8]> = REPLIES.chunks(1).collect();
        assert_eq!(feed(&mut c, &bytes), Ok((false, expected())));
    }

    #[test]
    fn down_fails_the_waiting_tags_and_backs_off_to_the_cap() {
        let mut c = logged_in(0);
        for tag in 1..=3 {
            c.send(&[b"GET", b"k"], tag).unwrap();
        }
        assert_eq!(feed(&mut c, &[b"$1\r\nv\r\n$2"]).unwrap().1.len(), 1);
        assert_eq!(c.on_down(1_000).collect::<Vec<_>>(), [2, 3]);
        assert_eq!((c.pending_bytes(), c.link().reconnects()), (0, 1));
        assert_eq!(c.link().poll_transmit(), None);
        assert_eq!(c.send(&[b"PING"], 9), Err(SendError::NotUp(9)));
        // The connection keeps failing: the delays grow to the cap.
        let mut now = 1_000;
        let mut delays = Vec::new();
        for _ in 0..9 {
            let at = c.link().poll_timeout().unwrap();
            assert_eq!(c.link_mut().poll_connect(at - 1), None, "not before");
            delays.push(at - now);
            now = at;
            assert!(c.link_mut().poll_connect(now).is_some());
            assert_eq!(c.link().poll_timeout(), None, "connecting");
            assert_eq!(c.on_down(now).count(), 0);
        }
        let bases = [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000];
        for (d, base) in delays.iter().zip(bases) {
            assert!(*d >= base - base / 4 && *d <= base + base / 4, "{delays:?}");
            assert!(*d <= 5_000, "{delays:?}");
        }
        assert_eq!((c.link().failures(), c.link().reconnects()), (10, 1));
        // Back: the stale bytes of the old connection are gone, the login
        // is sent again, and the delays start over.
        assert!(c.link_mut().poll_connect(now + 5_000).is_some());
        assert!(!c.link_mut().on_connected());
        assert!(written(&mut c).starts_with(b"*2\r\n$4\r\nAUTH"));
        assert_eq!(feed(&mut c, &[b"+OK\r\n+OK\r\n"]), Ok((true, vec![])));
        assert_eq!(c.link().failures(), 0);
        c.send(&[b"PING"], 4).unwrap();
        assert_eq!(
            feed(&mut c, &[b"+PONG\r\n"]),
            Ok((false, vec![(4, "Simple([80, 79, 78, 71])".into())]))
        );
        assert_eq!(c.on_down(now + 6_000).count(), 0);
        let again = c.link().poll_timeout().unwrap() - (now + 6_000);
        assert!((75..=125).contains(&again), "{again}");
    }

    #[test]
    fn a_refused_login_is_reported_once_and_retried_later_each_time() {
        let mut c: Client<u32> = Client::new(&url(Some("wrong"), 3), 1 << 20, 3);
        let mut now = 0;
        let mut delays = Vec::new();
        for _ in 0..6 {
            assert!(c.link_mut().poll_connect(now).is_some());
            assert!(!c.link_mut().on_connected());
            written(&mut c);
            let refusal = b"-WRONGPASS invalid username-password pair\r\n-NOAUTH Authentication required.\r\n";
            let got = feed(&mut c, &[refusal]);
            let why = "WRONGPASS invalid username-password pair".to_string();
            assert_eq!(got, Err(LinkError::LoginRefused(why)));
            // Broken: SELECT's NOAUTH is not read, nor anything after.
            assert_eq!(feed(&mut c, &[b"-NOAUTH x\r\n"]), Ok((false, vec![])));
            assert_eq!(c.send(&[b"PING"], 1), Err(SendError::NotUp(1)));
            assert_eq!(c.on_down(now).count(), 0);
            let at = c.link().poll_timeout().unwrap();
            delays.push(at - now);
            now = at;
        }
        assert!(delays.windows(2).all(|w| w[1] > w[0]), "{delays:?}");
        assert_eq!((c.link().failures(), c.link().reconnects()), (6, 0));
    }

    #[test]
    fn no_password_and_db_0_is_up_on_connect() {
        let mut c: Client<u32> = Client::new(&url(None, 0), 100, 1);
        assert!(c.link_mut().poll_connect(0).is_some());
        assert!(c.link_mut().on_connected());
        assert_eq!(c.link().poll_transmit(), None, "nothing to log in with");
        c.send(&[b"PING"], 1).unwrap();
        assert_eq!(written(&mut c), command(&[b"PING"]));
    }

    #[test]
    fn the_pending_bound_refuses_sends_not_state() {
        let mut c: Client<u32> = Client::new(&url(None, 0), 40, 1);
        c.link_mut().poll_connect(0);
        c.link_mut().on_connected();
        let publish: &[&[u8]] = &[b"PUBLISH", b"ch", b"x"];
        let size = resp::encoded_len(publish);
        assert_eq!(size, 32);
        c.send(publish, 1).unwrap();
        assert_eq!(c.send(publish, 2), Err(SendError::Backlog(2)));
        assert_eq!(SendError::Backlog(2).into_tag(), 2);
        c.send_unbounded(publish, 3).unwrap();
        assert_eq!(c.pending_bytes(), 2 * size);
        assert_eq!(written(&mut c), command(publish).repeat(2));
        // A reply frees its command's bytes.
        let (_, heard) = feed(&mut c, &[b":0\r\n:1\r\n"]).unwrap();
        assert_eq!(heard.iter().map(|h| h.0).collect::<Vec<_>>(), [1, 3]);
        c.send(publish, 4).unwrap();
    }

    #[test]
    fn output_is_taken_in_parts() {
        let mut c: Client<u32> = Client::new(&url(None, 0), 1 << 20, 1);
        c.link_mut().poll_connect(0);
        c.link_mut().on_connected();
        c.send(&[b"PING"], 1).unwrap();
        c.link_mut().advance_transmit(3);
        c.send(&[b"ECHO", b"x"], 2).unwrap();
        let mut want = command(&[b"PING"])[3..].to_vec();
        want.extend(command(&[b"ECHO", b"x"]));
        assert_eq!(written(&mut c), want);
        assert_eq!(c.link().poll_transmit(), None);
    }

    #[test]
    fn bad_bytes_break_the_link_until_down() {
        let mut c: Client<u32> = Client::new(&url(None, 0), 1 << 20, 1);
        c.link_mut().poll_connect(0);
        c.link_mut().on_connected();
        assert_eq!(
            feed(&mut c, &[b":1\r\n"]),
            Err(LinkError::Unexpected),
            "a reply nothing asked for"
        );
        assert_eq!(c.link().poll_timeout(), None, "broken, not yet down");
        assert_eq!(c.on_down(5).count(), 0);
        assert_eq!(c.link().reconnects(), 1, "it had been up");

        let at = c.link().poll_timeout().unwrap();
        c.link_mut().poll_connect(at);
        c.link_mut().on_connected();
        c.send(&[b"PING"], 1).unwrap();
        let err = feed(&mut c, &[b"?"]).unwrap_err();
        assert_eq!(err, LinkError::Unreadable(resp::RespError::BadType(b'?')));
        assert_eq!(
            err.to_string(),
            "unreadable reply (unknown RESP type byte 0x3f)"
        );
        assert_eq!(c.on_down(at).collect::<Vec<_>>(), [1]);

        // A reply that never ends is not held forever.
        let at = c.link().poll_timeout().unwrap();
        c.link_mut().poll_connect(at);
        c.link_mut().on_connected();
        c.send(&[b"GET", b"big"], 2).unwrap();
        // Two bulks of the largest size: the first whole, the second not.
        let limits = resp::Limits::default();
        let bulk = format!("${}\r\n", limits.max_bulk);
        let mut reply = format!("*2\r\n{bulk}").into_bytes();
        reply.resize(reply.len() + limits.max_bulk, b'x');
        reply.extend_from_slice(b"\r\n");
        reply.extend_from_slice(bulk.as_bytes());
        reply.resize(reply.len() + limits.max_line + 1, b'x');
        let mut reads = reply.chunks(1 << 20);
        let mut got = Ok((false, vec![]));
        while got == Ok((false, vec![])) {
            got = feed(&mut c, &[reads.next().unwrap()]);
        }
        assert!(
            matches!(got, Err(LinkError::TooLarge(n)) if n > limits.max_bulk + limits.max_line)
        );
        assert_eq!(c.on_down(at).collect::<Vec<_>>(), [2]);
        assert_eq!(c.link().reconnects(), 3);
        assert_eq!(c.link_mut().output().err(), Some(NotUp));
    }
}
