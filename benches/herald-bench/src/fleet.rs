//! Many WebSocket clients and one text-port connection over one epoll: the
//! load side of every mode.
//!
//! The server's bytes are parsed with herald's own frame and line code (the
//! WebSocket side in `client.rs`); the modes only see events and decide what
//! to send next. They wait for them with `Fleet::wait` (`wait.rs`).

use crate::client::{self, Client, State, MAX_FRAME};
use crate::deflate::{self, Inflater};
use crate::event::{End, Event};
use crate::net;
use herald::line::{self, Line, LineState};
use herald::sys::{self, Epoll, Ready, EV_CLOSED, EV_IN, EV_OUT};
use herald::ws::frame::OpCode;
use std::borrow::Cow;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::ops::Range;
use std::os::fd::{IntoRawFd, RawFd};
use std::time::{Duration, Instant};

const TEXT_TOKEN: u64 = u64::MAX;
/// One read takes at most this much; level-triggered epoll brings the rest.
const READ_BUF: usize = 128 * 1024;
/// Reads per readiness report before moving on to the next connection.
const READS_PER_EVENT: usize = 4;
const MAX_REPLY_LINE: usize = 1 << 20;

struct TextPort {
    fd: RawFd,
    out: Vec<u8>,
    /// How much of `out` the kernel already took.
    sent: usize,
    partial: Option<Box<LineState>>,
    polled_out: bool,
}

/// A set of WebSocket clients towards one server, plus an optional text-port
/// connection to the same server, all driven by [`Fleet::poll`].
pub struct Fleet {
    ep: Epoll,
    ready: Vec<Ready>,
    clients: Vec<Client>,
    dst: SocketAddrV4,
    sources: Vec<Ipv4Addr>,
    next_source: usize,
    request_head: String,
    text: Option<TextPort>,
    buf: Vec<u8>,
    /// Clients in state Open.
    open: usize,
    /// Set once permessage-deflate is offered: one inflater for every
    /// client, since no server context outlives a message.
    inflater: Option<Inflater>,
    /// Handshakes that accepted permessage-deflate.
    deflated: usize,
}

impl Fleet {
    /// `sources` empty: the kernel picks the source address of each connect.
    pub fn new(dst: SocketAddrV4, sources: &[Ipv4Addr]) -> Result<Fleet, String> {
        Ok(Fleet {
            ep: Epoll::new().map_err(|e| format!("epoll: {e}"))?,
            ready: Vec::with_capacity(256),
            clients: Vec::new(),
            dst,
            sources: sources.to_vec(),
            next_source: 0,
            request_head: format!(
                "GET / HTTP/1.1\r\nHost: {dst}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
            ),
            text: None,
            buf: vec![0; READ_BUF],
            open: 0,
            inflater: None,
            deflated: 0,
        })
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn open_count(&self) -> usize {
        self.open
    }

    /// Adds an unconnected slot and returns its index.
    pub fn add_client(&mut self) -> usize {
        self.clients.push(Client::new(self.clients.len()));
        self.clients.len() - 1
    }

    /// Asks for a WebSocket subprotocol (`Sec-WebSocket-Protocol`) in every
    /// handshake from now on.
    pub fn set_subprotocol(&mut self, protocol: &str) {
        let key = "Sec-WebSocket-Key: ";
        let at = self.request_head.len() - key.len();
        self.request_head
            .insert_str(at, &format!("Sec-WebSocket-Protocol: {protocol}\r\n"));
    }

    /// Offers permessage-deflate (`Sec-WebSocket-Extensions`) in every
    /// handshake from now on; compressed messages are inflated before the
    /// modes see them.
    pub fn offer_deflate(&mut self) {
        let key = "Sec-WebSocket-Key: ";
        let at = self.request_head.len() - key.len();
        let offer = format!("Sec-WebSocket-Extensions: {}\r\n", deflate::OFFER);
        self.request_head.insert_str(at, &offer);
        self.inflater = Some(Inflater::new(MAX_FRAME as usize));
    }

    /// Handshakes so far whose 101 accepted permessage-deflate.
    pub fn deflate_count(&self) -> usize {
        self.deflated
    }

    /// Bytes the clients in `slots` read after their handshakes (frame
    /// headers included, compressed or not): what the messages cost on
    /// the wire.
    pub fn wire_bytes(&self, slots: Range<usize>) -> u64 {
        self.clients[slots].iter().map(|c| c.wire).sum()
    }

    /// Starts connecting slot `idx` (which must be Idle).
    pub fn connect(&mut self, idx: usize) -> Result<(), String> {
        self.connect_to(idx, self.dst)
    }

    /// Starts connecting slot `idx` (which must be Idle) to `dst`, one of
    /// the server's nodes (the fleet's own address is the first of them).
    pub fn connect_to(&mut self, idx: usize, dst: SocketAddrV4) -> Result<(), String> {
        debug_assert_eq!(self.clients[idx].state, State::Idle);
        let src = if self.sources.is_empty() {
            None
        } else {
            self.next_source = (self.next_source + 1) % self.sources.len();
            Some(self.sources[self.next_source])
        };
        let fd = net::connect_start(dst, src).map_err(|e| {
            let from = src.map_or("the default source".to_string(), |s| s.to_string());
            if net::is_port_exhaustion(&e) {
                format!(
                    "connect to {dst} from {from}: no ephemeral port left ({e}); \
                     spread over more source addresses with --sources K"
                )
            } else if sys::is_fd_exhaustion(&e) {
                format!("connect: out of file descriptors ({e}); lower the connection count")
            } else {
                format!("connect to {dst} from {from}: {e}")
            }
        })?;
        if let Err(e) = self.ep.add(fd, idx as u64, true, true) {
            net::close(fd);
            return Err(format!("epoll add: {e}"));
        }
        let c = &mut self.clients[idx];
        c.fd = fd;
        c.state = State::Connecting;
        c.polled_out = true;
        c.out.clear();
        c.inbuf.clear();
        c.frag = None;
        c.deflate = false;
        Ok(())
    }

    /// Sends a text message from client `idx` (queued if the socket is full).
    pub fn send_text(&mut self, idx: usize, payload: &[u8]) {
        self.send_texts(idx, &[payload]);
    }

    /// Sends `payloads` as text messages from client `idx` in as few writes
    /// as the kernel allows (back-to-back, as a fast sender would).
    pub fn send_texts(&mut self, idx: usize, payloads: &[impl AsRef<[u8]>]) {
        let c = &mut self.clients[idx];
        if c.state != State::Open {
            return;
        }
        for p in payloads {
            c.push_frame(OpCode::Text, p.as_ref());
        }
        self.flush_client(idx);
    }

    /// Starts the closing handshake of client `idx` (status 1000).
    pub fn send_close(&mut self, idx: usize) {
        let c = &mut self.clients[idx];
        if c.state != State::Open {
            return;
        }
        c.push_frame(OpCode::Close, &1000u16.to_be_bytes());
        c.state = State::Closing;
        c.closing_since = Some(Instant::now());
        c.close_seen = false;
        self.open -= 1;
        self.flush_client(idx);
    }

    /// Closes the socket of client `idx` at once, without an event.
    pub fn abort(&mut self, idx: usize) {
        let c = &mut self.clients[idx];
        if c.state == State::Idle {
            return;
        }
        if c.state == State::Open {
            self.open -= 1;
        }
        net::close(c.fd);
        c.fd = -1;
        c.state = State::Idle;
        c.out = Vec::new();
        c.inbuf = Vec::new();
        c.frag = None;
    }

    /// Resets client `idx` (SO_LINGER 0, then close: the server sees RST, as
    /// from a client that lost its network), without an event.
    pub fn reset(&mut self, idx: usize) {
        let c = &self.clients[idx];
        if c.state != State::Idle {
            net::set_linger_zero(c.fd);
        }
        self.abort(idx);
    }

    /// Ends clients whose closing handshake has taken longer than `max`
    /// (no close frame, or no end of stream after it) as failures.
    pub fn expire_closing(&mut self, max: Duration, on: &mut dyn FnMut(Event<'_>)) {
        for idx in 0..self.clients.len() {
            let c = &self.clients[idx];
            let late =
                c.state == State::Closing && c.closing_since.is_some_and(|t| t.elapsed() > max);
            if late {
                let why = if c.close_seen {
                    "the server did not close the TCP connection after the close handshake"
                } else {
                    "the server did not answer the close frame"
                };
                self.finish(
                    idx,
                    End {
                        requested: false,
                        why: format!("{why} within {} ms", max.as_millis()).into(),
                    },
                    on,
                );
            }
        }
    }

    /// Opens the text-port connection (blocking connect, then non-blocking).
    pub fn connect_text(&mut self, addr: SocketAddrV4) -> Result<(), String> {
        let s = TcpStream::connect_timeout(&addr.into(), Duration::from_secs(5))
            .map_err(|e| format!("cannot connect to the text port {addr}: {e}"))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        let fd = s.into_raw_fd();
        if let Err(e) = self.ep.add(fd, TEXT_TOKEN, true, false) {
            net::close(fd);
            return Err(format!("epoll add: {e}"));
        }
        self.text = Some(TextPort {
            fd,
            out: Vec::new(),
            sent: 0,
            partial: None,
            polled_out: false,
        });
        Ok(())
    }

    /// Queues bytes (whole lines) for the text port and writes what the
    /// kernel takes now.
    pub fn text_send(&mut self, bytes: &[u8]) {
        let Some(t) = self.text.as_mut() else { return };
        if t.sent > 0 && t.sent >= t.out.len() / 2 {
            t.out.drain(..t.sent);
            t.sent = 0;
        }
        t.out.extend_from_slice(bytes);
        self.flush_text();
    }

    /// Waits up to `timeout_ms` for readiness, handles one batch of it and
    /// reports what arrived to `on`.
    pub fn poll(&mut self, timeout_ms: i32, on: &mut dyn FnMut(Event<'_>)) -> Result<(), String> {
        let mut ready = std::mem::take(&mut self.ready);
        self.ep
            .wait(&mut ready, timeout_ms)
            .map_err(|e| format!("epoll_wait: {e}"))?;
        for r in &ready {
            if r.token == TEXT_TOKEN {
                self.text_ready(r.events, on);
            } else {
                self.client_ready(r.token as usize, r.events, on);
            }
        }
        self.ready = ready;
        Ok(())
    }

    fn set_interest(&mut self, idx: usize) {
        let c = &mut self.clients[idx];
        let want = !c.out.is_empty() || c.state == State::Connecting;
        if want != c.polled_out && self.ep.modify(c.fd, idx as u64, true, want).is_ok() {
            c.polled_out = want;
        }
    }

    /// Writes what the kernel takes; a write error ends the client at the
    /// next readiness report (EPOLLERR/EPOLLHUP), so it is not reported here.
    fn flush_client(&mut self, idx: usize) {
        let c = &mut self.clients[idx];
        if c.state == State::Connecting || c.state == State::Idle {
            return;
        }
        let mut written = 0;
        while written < c.out.len() {
            match net::write(c.fd, &c.out[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if written == c.out.len() {
            c.out.clear();
        } else {
            c.out.drain(..written);
        }
        self.set_interest(idx);
    }

    fn finish(&mut self, idx: usize, end: End, on: &mut dyn FnMut(Event<'_>)) {
        self.abort(idx);
        on(Event::Closed(idx, end));
    }

    fn fail(&mut self, idx: usize, why: String, on: &mut dyn FnMut(Event<'_>)) {
        let requested = self.clients[idx].state == State::Closing;
        self.finish(
            idx,
            End {
                requested,
                why: why.into(),
            },
            on,
        );
    }

    fn client_ready(&mut self, idx: usize, events: u32, on: &mut dyn FnMut(Event<'_>)) {
        let Some(c) = self.clients.get_mut(idx) else {
            return;
        };
        match c.state {
            State::Idle => return,
            State::Connecting => {
                if events & (EV_OUT | EV_CLOSED) == 0 {
                    return;
                }
                if let Err(e) = net::take_error(c.fd) {
                    return self.fail(idx, format!("connect: {e}"), on);
                }
                c.start_handshake(&self.request_head);
                self.flush_client(idx);
            }
            _ => {
                if events & EV_OUT != 0 {
                    self.flush_client(idx);
                }
            }
        }
        if events & (EV_IN | EV_CLOSED) != 0 {
            self.read_client(idx, on);
        }
    }

    fn read_client(&mut self, idx: usize, on: &mut dyn FnMut(Event<'_>)) {
        for _ in 0..READS_PER_EVENT {
            let fd = self.clients[idx].fd;
            let n = match net::read(fd, &mut self.buf) {
                Ok(0) => {
                    let c = &self.clients[idx];
                    let end = if c.state == State::Closing {
                        End {
                            requested: true,
                            why: "closed".into(),
                        }
                    } else {
                        End {
                            requested: false,
                            why: format!(
                                "the server closed the connection (state {:?}, no close frame)",
                                c.state
                            )
                            .into(),
                        }
                    };
                    return self.finish(idx, end, on);
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.fail(idx, format!("read: {e}"), on),
            };
            let was_open = self.clients[idx].state == State::Open;
            let c = &mut self.clients[idx];
            if c.state != State::Handshake {
                // (The bytes after a 101 head are counted as it is parsed.)
                c.wire += n as u64;
            }
            let inflater = self.inflater.as_mut();
            let outcome = if c.inbuf.is_empty() {
                let (used, end) = client::process(c, idx, &self.buf[..n], inflater, on);
                if end.is_none() {
                    c.inbuf.extend_from_slice(&self.buf[used..n]);
                }
                end
            } else {
                c.inbuf.extend_from_slice(&self.buf[..n]);
                let data = std::mem::take(&mut c.inbuf);
                let (used, end) = client::process(c, idx, &data, inflater, on);
                c.inbuf = data;
                c.inbuf.drain(..used);
                end
            };
            let now_open = self.clients[idx].state == State::Open;
            match (was_open, now_open) {
                (false, true) => {
                    self.open += 1;
                    self.deflated += usize::from(self.clients[idx].deflate);
                }
                (true, false) => self.open -= 1,
                _ => {}
            }
            if !self.clients[idx].out.is_empty() {
                self.flush_client(idx);
            }
            if let Some(end) = outcome {
                return self.finish(idx, end, on);
            }
            if n < self.buf.len() {
                return;
            }
        }
    }

    fn flush_text(&mut self) {
        let Some(t) = self.text.as_mut() else { return };
        while t.sent < t.out.len() {
            match net::write(t.fd, &t.out[t.sent..]) {
                Ok(n) => t.sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if t.sent == t.out.len() {
            t.out.clear();
            t.sent = 0;
        }
        let want = t.sent < t.out.len();
        if want != t.polled_out && self.ep.modify(t.fd, TEXT_TOKEN, true, want).is_ok() {
            t.polled_out = want;
        }
    }

    fn text_ready(&mut self, events: u32, on: &mut dyn FnMut(Event<'_>)) {
        if events & EV_OUT != 0 {
            self.flush_text();
        }
        if events & (EV_IN | EV_CLOSED) == 0 {
            return;
        }
        for _ in 0..READS_PER_EVENT {
            let Some(t) = self.text.as_mut() else { return };
            let ended = match net::read(t.fd, &mut self.buf) {
                Ok(0) => Some(Cow::Borrowed("the server closed the text port")),
                Ok(n) => {
                    let mut pos = 0;
                    while let (used, Some(l)) =
                        line::next(&mut t.partial, &self.buf[pos..n], MAX_REPLY_LINE)
                    {
                        pos += used;
                        if let Line::Complete(b) = l {
                            on(Event::Line(b));
                        }
                    }
                    if n < self.buf.len() {
                        return;
                    }
                    None
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => None,
                Err(e) => Some(Cow::Owned(format!("text port read: {e}"))),
            };
            if let Some(why) = ended {
                net::close(t.fd);
                self.text = None;
                on(Event::TextClosed(why));
                return;
            }
        }
    }
}

impl Drop for Fleet {
    /// Resets the connections left at the end of a mode: a reset leaves no
    /// TIME_WAIT behind, so the next run (often seconds later, towards
    /// another server) finds the ephemeral ports free.
    fn drop(&mut self) {
        for c in &self.clients {
            if c.state != State::Idle {
                net::set_linger_zero(c.fd);
                net::close(c.fd);
            }
        }
        if let Some(t) = &self.text {
            net::close(t.fd);
        }
    }
}
