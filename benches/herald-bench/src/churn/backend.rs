//! The backend of a churn run: one text-port connection per address given,
//! each line written on its own (as a backend pushing events one by one
//! does, not in batches), the replies read and counted. A connection the
//! server closes (a worker restarting) is opened again; lines it had not
//! answered are counted as unanswered.

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
    /// Lines written on a connection that ended before answering them.
    pub unanswered: u64,
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
    /// Lines written (or queued) and not answered yet.
    in_flight: u64,
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
                in_flight: 0,
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
        c.in_flight += 1;
        flush(c);
    }

    /// Lines written and not answered yet, on every connection.
    pub fn in_flight(&self) -> u64 {
        self.conns.iter().map(|c| c.in_flight).sum()
    }

    /// Reads and counts the replies that arrived, writes what was queued,
    /// and opens closed connections again.
    pub fn poll(&mut self) {
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
                self.replies.unanswered += c.in_flight;
                c.in_flight = 0;
                c.out.clear();
                c.partial.clear();
                c.stream = None;
                c.retry_at = Instant::now() + RETRY;
                self.reconnects += 1;
            }
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
            c.in_flight = c.in_flight.saturating_sub(1);
            data = &data[nl + 1..];
        }
        c.partial.extend_from_slice(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
