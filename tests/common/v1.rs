//! A herald.v1 client for the tests (docs/resume.md): it remembers its
//! positions and checks that offsets follow with no gap and no duplicate.

use super::{recv_text, send_text, set_linger_zero, tcp, Ws};
use std::collections::HashMap;
use std::net::SocketAddr;
use tungstenite::client::IntoClientRequest;
use tungstenite::Message;

/// One message of a stream as a herald.v1 client reads it.
#[derive(Debug, PartialEq, Eq)]
pub struct Msg {
    pub stream: String,
    pub epoch: String,
    pub offset: u64,
    pub text: String,
}

/// A herald.v1 client that remembers its positions, as docs/resume.md
/// says a client does, and checks that offsets follow with no gap.
pub struct Client {
    pub uid: String,
    pub ws: Option<Ws>,
    /// stream -> (epoch, offset) of the last `s` or `m` line.
    pub at: HashMap<String, (String, u64)>,
    /// The `s` lines of the last hello: stream -> status.
    pub statuses: HashMap<String, String>,
    /// Said in the hello instead of the uid (servers with uid tokens).
    pub token: Option<String>,
    /// The request target (`/?token=...` proves the uid in the URL).
    pub path: String,
}

impl Client {
    pub fn new(uid: &str) -> Client {
        Client {
            uid: uid.into(),
            ws: None,
            at: HashMap::new(),
            statuses: HashMap::new(),
            token: None,
            path: "/".into(),
        }
    }

    /// Connects to `addr` with the subprotocol, says hello with the
    /// positions held, and reads the two `s` lines (replays may follow).
    pub fn connect(&mut self, addr: SocketAddr) {
        let url = format!("ws://{addr}{}", self.path);
        let mut req = url.into_client_request().unwrap();
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", "herald.v1".parse().unwrap());
        let (mut ws, resp) = tungstenite::client(req, tcp(addr)).expect("v1 handshake");
        assert_eq!(resp.headers()["sec-websocket-protocol"], "herald.v1");
        let since: serde_json::Map<String, serde_json::Value> = self
            .at
            .iter()
            .map(|(s, (e, o))| (s.clone(), format!("{e}:{o}").into()))
            .collect();
        let hello = match &self.token {
            Some(t) => serde_json::json!({"token": t, "since": since}),
            None if self.path.contains("token=") => serde_json::json!({ "since": since }),
            None => serde_json::json!({"uid": self.uid, "since": since}),
        };
        send_text(&mut ws, &hello.to_string());
        self.ws = Some(ws);
        self.statuses.clear();
    }

    /// The next line: an `s` line is taken in (and `None` returned), an
    /// `m` line checked against the position and returned.
    pub fn read(&mut self) -> Option<Msg> {
        let text = recv_text(self.ws.as_mut().expect("connected"));
        self.take(text)
    }

    /// [`Client::read`], where a close or a broken connection is `Err`
    /// (the connection is dropped: connect again to resume).
    pub fn try_read(&mut self) -> Result<Option<Msg>, String> {
        let ws = self.ws.as_mut().ok_or("not connected")?;
        let text = loop {
            match ws.read() {
                Ok(Message::Text(t)) => break t,
                Ok(Message::Close(f)) => {
                    self.ws = None;
                    return Err(format!("closed: {f:?}"));
                }
                Ok(_) => {}
                Err(e) => {
                    self.ws = None;
                    return Err(format!("{e}"));
                }
            }
        };
        Ok(self.take(text))
    }

    /// Takes in one line (see [`Client::read`]).
    fn take(&mut self, text: String) -> Option<Msg> {
        if let Some(s) = text.strip_prefix("s ") {
            let f: Vec<&str> = s.split(' ').collect();
            assert_eq!(f.len(), 4, "{text:?}");
            self.at
                .insert(f[0].into(), (f[1].into(), f[2].parse().unwrap()));
            self.statuses.insert(f[0].into(), f[3].into());
            return None;
        }
        let (head, body) = text.split_once('\n').unwrap_or_else(|| panic!("{text:?}"));
        let f: Vec<&str> = head
            .strip_prefix("m ")
            .expect("an m line")
            .split(' ')
            .collect();
        let m = Msg {
            stream: f[0].into(),
            epoch: f[1].into(),
            offset: f[2].parse().unwrap(),
            text: body.into(),
        };
        let (epoch, last) = self.at.get(&m.stream).cloned().expect("s line first");
        assert_eq!(
            (&m.epoch, m.offset),
            (&epoch, last + 1),
            "gap or duplicate: {m:?}"
        );
        self.at
            .insert(m.stream.clone(), (m.epoch.clone(), m.offset));
        Some(m)
    }

    /// The next `m` line's text (taking `s` lines in on the way).
    pub fn next_text(&mut self) -> String {
        loop {
            if let Some(m) = self.read() {
                return m.text;
            }
        }
    }

    /// Reads until both `s` lines are in.
    pub fn statuses(&mut self) -> (String, String) {
        let own = format!("u:{}", self.uid);
        while !(self.statuses.contains_key(&own) && self.statuses.contains_key("all")) {
            assert!(self.read().is_none(), "a message before the s lines");
        }
        (self.statuses[&own].clone(), self.statuses["all"].clone())
    }

    /// Drops the connection abruptly (a reset).
    pub fn reset(&mut self) {
        if let Some(ws) = self.ws.take() {
            set_linger_zero(ws.get_ref());
        }
    }
}
