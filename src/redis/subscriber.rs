//! The subscribed link: SUBSCRIBE and UNSUBSCRIBE out, pub/sub messages and
//! subscription confirmations in, read in place (a message costs no heap).

use super::link::{Link, LinkError, NotUp};
use super::resp::{self, Frame};
use super::url::RedisUrl;

/// What the subscribed connection heard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Push<'a> {
    /// A message published on a channel this link is subscribed to.
    Message {
        channel: &'a [u8],
        payload: &'a [u8],
    },
    /// A SUBSCRIBE took effect for `channel`; `count` channels now.
    Subscribed { channel: &'a [u8], count: i64 },
    /// An UNSUBSCRIBE took effect: until this arrives, publishers may still
    /// count this link among a channel's receivers.
    Unsubscribed { channel: &'a [u8], count: i64 },
    /// The answer to [`Subscriber::ping`]: every SUBSCRIBE sent before it
    /// is in effect.
    Pong(&'a [u8]),
    /// Redis refused a command sent on the subscribed connection.
    Error(&'a [u8]),
}

/// A connection subscribed to channels. It does not remember them: the
/// caller subscribes again when [`Subscriber::handle_data`] or
/// [`Link::on_connected`] says the link came up.
#[derive(Debug)]
pub struct Subscriber {
    link: Link,
}

impl Subscriber {
    /// A pub/sub link to `url` (it logs in; pub/sub has no DB to select).
    /// `seed` varies the reconnect jitter.
    pub fn new(url: &RedisUrl, seed: u64) -> Subscriber {
        Subscriber {
            link: Link::new(url, false, seed),
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

    /// Subscribes to `channels` in one command; nothing for none.
    pub fn subscribe(&mut self, channels: &[&[u8]]) -> Result<(), NotUp> {
        self.write(b"SUBSCRIBE", channels)
    }

    /// Unsubscribes from `channels` in one command; nothing for none (a
    /// bare UNSUBSCRIBE would leave every channel).
    pub fn unsubscribe(&mut self, channels: &[&[u8]]) -> Result<(), NotUp> {
        self.write(b"UNSUBSCRIBE", channels)
    }

    /// Sends a PING carrying `tag`, answered by [`Push::Pong`] once every
    /// command sent before it took effect: a barrier.
    pub fn ping(&mut self, tag: &[u8]) -> Result<(), NotUp> {
        self.write(b"PING", &[tag])
    }

    fn write(&mut self, command: &[u8], channels: &[&[u8]]) -> Result<(), NotUp> {
        let out = self.link.output()?;
        if !channels.is_empty() {
            resp::encode_command(out, command, channels);
        }
        Ok(())
    }

    /// Bytes read from the connection: `on` gets what each whole reply
    /// says (other replies are skipped). `Ok(true)` when
    /// this read completed the login: the link just came up (subscribe
    /// again now). On an `Err` the connection is unusable: close it and
    /// call [`Subscriber::on_down`].
    pub fn handle_data(
        &mut self,
        data: &[u8],
        mut on: impl FnMut(Push<'_>),
    ) -> Result<bool, LinkError> {
        self.link.read(data, |frame| {
            if let Some(push) = push(frame) {
                on(push);
            }
            Ok(())
        })
    }

    /// The connection is gone: the reconnect is scheduled
    /// ([`Link::poll_timeout`]); the new connection starts with no
    /// subscription.
    pub fn on_down(&mut self, now: u64) {
        self.link.down(now);
    }
}

/// What a reply on the subscribed connection says, if it is one of ours.
fn push(frame: Frame<'_>) -> Option<Push<'_>> {
    let mut parts = match frame {
        Frame::Error(why) => return Some(Push::Error(why)),
        Frame::Array(Some(mut parts)) if parts.len() == 2 => {
            // A PING's answer while subscribed: ["pong", tag].
            return match (parts.next()?.as_bytes()?, parts.next()?.as_bytes()?) {
                (b"pong", tag) => Some(Push::Pong(tag)),
                _ => None,
            };
        }
        Frame::Array(Some(parts)) if parts.len() == 3 => parts,
        _ => return None,
    };
    let (kind, channel, last) = (parts.next()?, parts.next()?.as_bytes()?, parts.next()?);
    Some(match kind.as_bytes()? {
        b"message" => Push::Message {
            channel,
            payload: last.as_bytes()?,
        },
        b"subscribe" => Push::Subscribed {
            channel,
            count: last.as_int()?,
        },
        b"unsubscribe" => Push::Unsubscribed {
            channel,
            count: last.as_int()?,
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscriber(password: Option<&str>) -> Subscriber {
        let url = RedisUrl {
            addr: "127.0.0.1:6379".parse().unwrap(),
            password: password.map(str::to_string),
            db: 5,
        };
        Subscriber::new(&url, 11)
    }

    fn written(s: &mut Subscriber) -> Vec<u8> {
        let out = s.link().poll_transmit().unwrap_or_default().to_vec();
        s.link_mut().advance_transmit(out.len());
        out
    }

    /// What each read says, as text.
    fn heard(s: &mut Subscriber, reads: &[&[u8]]) -> Vec<String> {
        let mut out = Vec::new();
        for data in reads {
            s.handle_data(data, |p| out.push(format!("{p:?}"))).unwrap();
        }
        out
    }

    const TRAFFIC: &[u8] = b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n\
*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$12\r\nhello\r\nworld\r\n\
*2\r\n$4\r\npong\r\n$0\r\n\r\n\
*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$0\r\n\r\n\
-ERR only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed\r\n\
*3\r\n$11\r\nunsubscribe\r\n$4\r\nnews\r\n:0\r\n";

    fn said() -> Vec<String> {
        [
            Push::Subscribed {
                channel: b"news",
                count: 1,
            },
            Push::Message {
                channel: b"news",
                payload: b"hello\r\nworld",
            },
            Push::Pong(b""),
            Push::Message {
                channel: b"news",
                payload: b"",
            },
            Push::Error(
                b"ERR only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed",
            ),
            Push::Unsubscribed {
                channel: b"news",
                count: 0,
            },
        ]
        .iter()
        .map(|p| format!("{p:?}"))
        .collect()
    }

    #[test]
    fn messages_split_across_reads_come_whole() {
        for cut in 0..=TRAFFIC.len() {
            for second in (cut..=TRAFFIC.len()).step_by(7) {
                let mut s = subscriber(None);
                s.link_mut().poll_connect(0);
                assert!(s.link_mut().on_connected(), "no AUTH, no SELECT");
                let reads = [&TRAFFIC[..cut], &TRAFFIC[cut..second], &TRAFFIC[second..]];
                assert_eq!(heard(&mut s, &reads), said(), "cut at {cut}, {second}");
            }
        }
    }

    #[test]
    fn subscribes_after_the_login_only() {
        let mut s = subscriber(Some("pw"));
        assert_eq!(s.subscribe(&[b"a"]), Err(NotUp));
        s.link_mut().poll_connect(0);
        assert!(!s.link_mut().on_connected());
        assert_eq!(
            written(&mut s),
            b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n",
            "no SELECT"
        );
        assert_eq!(s.unsubscribe(&[b"a"]), Err(NotUp));
        assert!(s
            .handle_data(b"+OK\r\n", |_| panic!("the login's"))
            .unwrap());
        s.subscribe(&[b"a", b"b"]).unwrap();
        s.subscribe(&[]).unwrap();
        s.unsubscribe(&[]).unwrap();
        s.unsubscribe(&[b"b"]).unwrap();
        assert_eq!(
            written(&mut s),
            b"*3\r\n$9\r\nSUBSCRIBE\r\n$1\r\na\r\n$1\r\nb\r\n*2\r\n$11\r\nUNSUBSCRIBE\r\n$1\r\nb\r\n"
        );
        s.on_down(50);
        assert_eq!(s.subscribe(&[b"a"]), Err(NotUp));
        assert_eq!(s.link().reconnects(), 1);
        assert!(s.link().poll_timeout().is_some_and(|at| at > 50));
    }

    #[test]
    fn a_refused_login_breaks_the_link() {
        let mut s = subscriber(Some("bad"));
        s.link_mut().poll_connect(0);
        s.link_mut().on_connected();
        let got = s.handle_data(b"-WRONGPASS no\r\n", |_| panic!("nothing heard"));
        assert_eq!(got, Err(LinkError::LoginRefused("WRONGPASS no".into())));
        s.on_down(0);
        assert_eq!(s.link().reconnects(), 0);
    }
}
