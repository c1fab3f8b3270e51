//! `redis::Client` and `redis::Subscriber` fed arbitrary server bytes once
//! logged in, sans-IO: what they hear (each reply with its tag, each
//! pub/sub push, how the link broke) is the same in one read, in
//! fuzz-chosen reads and one byte per read; tags come back in the order
//! sent, each once, as a reply or from `on_down`; the client's replies are
//! the ones `resp::decode` reads one after another from the same bytes, and
//! nothing is heard after an error.
//!
//! Input: a config byte (bit 0: the subscriber instead of the command
//! client; bit 1: a password, so an AUTH to answer; bit 2: DB 1, so a
//! SELECT; bits 3-7: commands the client sends once up, 0-31), 4 read
//! sizes (0 = the rest), then the server's bytes after the login.
#![no_main]

use herald::redis::resp::{self, Limits};
use herald::redis::{Client, Link, LinkError, RedisUrl, Subscriber};
use herald_fuzz::chunks;
use libfuzzer_sys::fuzz_target;

/// What a link heard over all the reads, and how it broke.
#[derive(Debug, PartialEq, Eq)]
struct Heard {
    said: Vec<String>,
    error: Option<LinkError>,
}

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, rest)) = data.split_first() else {
        return;
    };
    let (sizes, bytes) = rest.split_at(rest.len().min(4));
    let url = RedisUrl {
        addr: "127.0.0.1:6379".parse().unwrap(),
        password: (cfg & 2 != 0).then(|| "pw".to_string()),
        db: u32::from((cfg >> 2) & 1),
    };
    let commands = usize::from(cfg >> 3);
    let subscriber = cfg & 1 != 0;
    let run = |reads: &[&[u8]]| {
        if subscriber {
            subscribed(&url, reads)
        } else {
            client(&url, commands, reads)
        }
    };
    let whole = run(&[bytes]);
    assert_eq!(run(&chunks(bytes, sizes)), whole, "in fuzz-chosen reads");
    let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(run(&bytewise), whole, "one byte per read");
    if !subscriber {
        assert_eq!(whole, decoded(bytes, commands));
    }
});

/// Opens the link's connection: how many login commands it wrote (each
/// to be answered `+OK`).
fn connect(link: &mut Link, url: &RedisUrl) -> usize {
    assert_eq!(link.poll_connect(0), Some(url.addr));
    let up = link.on_connected();
    let login = link
        .poll_transmit()
        .map_or(0, |b| b.iter().filter(|&&c| c == b'*').count());
    link.advance_transmit(usize::MAX);
    assert_eq!(up, login == 0, "up at once without a login");
    login
}

fn client(url: &RedisUrl, commands: usize, reads: &[&[u8]]) -> Heard {
    let mut c: Client<usize> = Client::new(url, usize::MAX, 1);
    let login = connect(c.link_mut(), url);
    for i in 0..login {
        let up = c.handle_data(b"+OK\r\n", |_, _| unreachable!("the login's"));
        assert_eq!(up, Ok(i + 1 == login));
    }
    for tag in 0..commands {
        c.send(&[b"PING"], tag).unwrap();
    }
    let mut heard = Heard {
        said: Vec::new(),
        error: None,
    };
    let mut next = 0;
    for read in reads {
        let got = c.handle_data(read, |tag, reply| {
            assert_eq!(tag, next, "in order");
            next += 1;
            heard.said.push(format!("{tag} {:?}", reply.to_reply()));
        });
        match got {
            Ok(up) => assert!(!up, "up once"),
            Err(e) => {
                assert_eq!(heard.error, None, "nothing read after an error");
                heard.error = Some(e);
            }
        }
    }
    let failed: Vec<usize> = c.on_down(1).collect();
    assert_eq!(
        failed,
        (next..commands).collect::<Vec<_>>(),
        "each tag once"
    );
    assert_eq!(c.pending_bytes(), 0);
    heard
}

fn subscribed(url: &RedisUrl, reads: &[&[u8]]) -> Heard {
    let mut s = Subscriber::new(url, 1);
    let login = connect(s.link_mut(), url);
    for i in 0..login {
        let up = s.handle_data(b"+OK\r\n", |_| unreachable!("the login's"));
        assert_eq!(up, Ok(i + 1 == login));
    }
    let mut heard = Heard {
        said: Vec::new(),
        error: None,
    };
    for read in reads {
        if let Err(e) = s.handle_data(read, |push| heard.said.push(format!("{push:?}"))) {
            assert_eq!(heard.error, None, "nothing read after an error");
            heard.error = Some(e);
        }
    }
    s.on_down(1);
    heard
}

/// The client's answer from `resp::decode`: the replies one after another,
/// each to the next command, until one is unreadable or has no command.
fn decoded(bytes: &[u8], commands: usize) -> Heard {
    let mut said = Vec::new();
    let mut rest = bytes;
    let error = loop {
        match resp::decode(rest, &Limits::default()) {
            Ok(Some(_)) if said.len() == commands => break Some(LinkError::Unexpected),
            Ok(Some((reply, used))) => {
                said.push(format!("{} {reply:?}", said.len()));
                rest = &rest[used..];
            }
            Ok(None) => break None,
            Err(e) => break Some(LinkError::Unreadable(e)),
        }
    };
    Heard { said, error }
}
