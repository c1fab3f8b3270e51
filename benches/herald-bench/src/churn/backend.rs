//! The backend of a churn run: one text-port connection per address given,
//! each line written on its own (as a backend pushing events one by one
//! does, not in batches), the replies read and counted. A connection the
//! server closes (a worker restarting) is opened again, and the lines it
//! had not answered are sent again, as a careful backend does (herald
//! answers every line it handled before it closes a text connection, so an
//! unanswered line was not handled; if it was, the copy shows as a
//! duplicate).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddrV4, TcpStream};
use std::time::{Duration, Instant};

/// How often a closed text connection is tried again.
const RETRY: Duration = Duration::from_millis(100);
const READ_BUF: usize = 64 * 1024;

/// The replies of the server, counted by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replies {
    /// `ok` or `ok N`.
    pub ok: u64,
    pub fail: u64,
    /// `error ...` and anything else.
    pub error: u64,
    /// Lines written on a connection that ended before answering them, and
    /// sent again.
    pub resent: u64,
    /// The latest answer to `{"count":true}`: uids online.
    pub online_uids: Option<u64>,
    /// The first `error` line, to show.
    pub first_error: Option<String>,
}

impl Replies {
    /// Counts one reply line (without its newline).
    pub fn count(&mut self, line: &[u8]) {
        if line == b"ok" || line.starts_with(b"ok ") {
            self.ok += 1;
        } else if line == b"fail" {
            self.fail += 1;
        } else if line.starts_with(b"{") {
            let v: Option<serde_json::Value> = serde_json::from_slice(line).ok();
            self.online_uids = v.and_then(|v| v["uids"].as_u64()).or(self.online_uids);
        } else {
            self.error += 1;
            if self.first_error.is_none() {
                self.first_error = Some(String::from_utf8_lossy(line).into_owned());
            }
        }
    }
}

struct Conn {
    addr: SocketAddrV4,
    stream: Option<TcpStream>,
    /// Bytes the kernel has not taken yet.
    out: Vec<u8>,
    /// An incomplete reply line.
    partial: Vec<u8>,
    /// Lines written (or queued) and not answered yet, oldest first.
    in_flight: VecDeque<Box<[u8]>>,
    retry_at: Instant,
}

/// The text-port connections of the backend.
pub struct Backend {
    conns: Vec<Conn>,
    next: usize,
    pub replies: Replies,
    /// Text connections the server closed (and that were opened again).
    pub reconnects: u64,
    buf: Vec<u8>,
}

fn open(addr: SocketAddrV4) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr.into(), Duration::from_secs(2))?;
    s.set_nodelay(true)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

impl Backend {
    pub fn connect(addrs: &[SocketAddrV4]) -> Result<Backend, String> {
        let mut conns = Vec::new();
        for &addr in addrs {
            let s =
                open(addr).map_err(|e| format!("cannot connect to the text port {addr}: {e}"))?;
            conns.push(Conn {
                addr,
                stream: Some(s),
                out: Vec::new(),
                partial: Vec::new(),
                in_flight: VecDeque::new(),
                retry_at: Instant::now(),
            });
        }
        Ok(Backend {
            conns,
            next: 0,
            replies: Replies::default(),
            reconnects: 0,
            buf: vec![0; READ_BUF],
        })
    }

    /// Writes one line on the next connection, round-robin (queued while
    /// that connection is being opened again).
    pub fn send(&mut self, line: &[u8]) {
        let k = self.next;
        self.next = (self.next + 1) % self.conns.len();
        let c = &mut self.conns[k];
        c.out.extend_from_slice(line);
        c.in_flight.push_back(line.into());
        flush(c);
    }

    /// Lines written and not answered yet, on every connection.
    pub fn in_flight(&self) -> u64 {
        self.conns.iter().map(|c| c.in_flight.len() as u64).sum()
    }

    /// Reads and counts the replies that arrived, writes what was queued,
    /// opens closed connections again and sends again what they had not
    /// answered.
    pub fn poll(&mut self) {
        let mut again = Vec::new();
        for k in 0..self.conns.len() {
            let c = &mut self.conns[k];
            if c.stream.is_none() {
                if Instant::now() < c.retry_at {
                    continue;
                }
                match open(c.addr) {
                    Ok(s) => c.stream = Some(s),
                    Err(_) => {
                        c.retry_at = Instant::now() + RETRY;
                        continue;
                    }
                }
            }
            flush(c);
            if !read(c, &mut self.buf, &mut self.replies) {
                again.extend(c.in_flight.drain(..));
                c.out.clear();
                c.partial.clear();
                c.stream = None;
                c.retry_at = Instant::now() + RETRY;
                self.reconnects += 1;
            }
        }
        self.replies.resent += again.len() as u64;
        for line in again {
            self.send(&line);
        }
    }
}

/// Writes what the kernel takes of `c.out`.
fn flush(c: &mut Conn) {
    let Some(s) = c.stream.as_mut() else { return };
    let mut written = 0;
    while written < c.out.len() {
        match s.write(&c.out[written..]) {
            Ok(0) => break,
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // WouldBlock: later; an error: the read sees the end.
            Err(_) => break,
        }
    }
    c.out.drain(..written);
}

/// Reads the replies waiting on `c`; false when the connection ended.
fn read(c: &mut Conn, buf: &mut [u8], replies: &mut Replies) -> bool {
    let Some(s) = c.stream.as_mut() else {
        return true;
    };
    loop {
        let n = match s.read(buf) {
            Ok(0) => return false,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        };
        let mut data = &buf[..n];
        while let Some(nl) = memchr::memchr(b'\n', data) {
            c.partial.extend_from_slice(&data[..nl]);
            let line = std::mem::take(&mut c.partial);
            let line = line.strip_suffix(b"\r").unwrap_or(&line);
            replies.count(line);
            c.in_flight.pop_front();
            data = &data[nl + 1..];
        }
        c.partial.extend_from_slice(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_a_closed_connection_did_not_answer_are_sent_again() {
        use std::io::BufRead;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let std::net::SocketAddr::V4(addr) = listener.local_addr().unwrap() else {
            unreachable!()
        };
        let mut b = Backend::connect(&[addr]).unwrap();
        let (first, _) = listener.accept().unwrap();
        first
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        b.send(b"one\n");
        b.send(b"two\n");
        // The server answers the first line only, then closes.
        let mut lines = std::io::BufReader::new(first.try_clone().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "one");
        (&first).write_all(b"ok\n").unwrap();
        drop((lines, first));
        let deadline = Instant::now() + Duration::from_secs(5);
        while b.reconnects == 0 && Instant::now() < deadline {
            b.poll();
        }
        assert_eq!((b.replies.ok, b.replies.resent, b.reconnects), (1, 1, 1));
        // The backend connects again on a later poll, then writes the line.
        listener.set_nonblocking(true).unwrap();
        let second = loop {
            assert!(Instant::now() < deadline, "no second connection");
            b.poll();
            if let Ok((s, _)) = listener.accept() {
                break s;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        second.set_nonblocking(false).unwrap();
        second
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        b.poll();
        let mut again = String::new();
        std::io::BufReader::new(second)
            .read_line(&mut again)
            .unwrap();
        assert_eq!(again, "two\n");
    }

    #[test]
    fn replies_are_counted_by_kind() {
        let mut r = Replies::default();
        for l in [
            "ok",
            "ok 3",
            "fail",
            "error empty uid",
            "okay",
            "{\"uids\":7,\"connections\":9}",
        ] {
            r.count(l.as_bytes());
        }
        assert_eq!((r.ok, r.fail, r.error), (2, 1, 2));
        assert_eq!(r.online_uids, Some(7));
        assert_eq!(r.first_error.as_deref(), Some("error empty uid"));
    }
}
