//! Raw WebSocket bytes: hand-built frames and a client that reads the
//! server's frames as they are on the wire.

use super::*;

/// A WebSocket client that writes whatever bytes a test wants.
pub struct RawWs {
    pub stream: TcpStream,
}

pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A valid upgrade request with the RFC sample key.
pub fn upgrade_request(addr: SocketAddr) -> String {
    format!(
        "GET /push HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// A masked client frame: `b0` is FIN/RSV/opcode, the length is minimal.
pub fn masked_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![b0];
    match payload.len() {
        n @ 0..=125 => f.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&MASK);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    f
}

impl RawWs {
    pub fn connect(addr: SocketAddr) -> RawWs {
        RawWs::over(tcp(addr), addr)
    }

    /// Performs the handshake on `stream`, reading exactly the response head.
    pub fn over(mut stream: TcpStream, addr: SocketAddr) -> RawWs {
        stream
            .write_all(upgrade_request(addr).as_bytes())
            .expect("write upgrade");
        let head = read_head(&mut stream);
        assert!(head.starts_with("HTTP/1.1 101 "), "upgrade refused: {head}");
        assert!(head.contains(SAMPLE_ACCEPT), "wrong accept key: {head}");
        RawWs { stream }
    }

    /// A raw client whose first message (the uid) is already sent.
    pub fn bound(h: &Herald, uid: &str) -> RawWs {
        let mut t = h.text_client();
        let before = t.online(uid);
        let mut raw = RawWs::connect(h.ws_addr());
        raw.send_text(uid);
        t.wait_online(uid, before + 1);
        raw
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to herald");
    }

    pub fn send_text(&mut self, text: &str) {
        self.send(&masked_frame(0x81, text.as_bytes()));
    }

    /// One server frame: (first byte, payload). Server frames are unmasked.
    pub fn read_frame(&mut self) -> io::Result<(u8, Vec<u8>)> {
        let mut h = [0u8; 2];
        self.stream.read_exact(&mut h)?;
        assert_eq!(h[1] & 0x80, 0, "server frames must not be masked");
        let len = match h[1] & 0x7f {
            126 => {
                let mut b = [0u8; 2];
                self.stream.read_exact(&mut b)?;
                u16::from_be_bytes(b) as usize
            }
            127 => {
                let mut b = [0u8; 8];
                self.stream.read_exact(&mut b)?;
                u64::from_be_bytes(b) as usize
            }
            n => n as usize,
        };
        let mut payload = vec![0u8; len];
        self.stream.read_exact(&mut payload)?;
        Ok((h[0], payload))
    }

    /// Reads frames until the close frame; returns its code and reason.
    pub fn expect_close(&mut self) -> (u16, String) {
        loop {
            let (b0, payload) = self
                .read_frame()
                .unwrap_or_else(|e| panic!("expected a close frame, got {e}"));
            if b0 & 0x0f == 0x8 {
                assert!(payload.len() >= 2, "close frame without a code");
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                let reason = String::from_utf8_lossy(&payload[2..]).into_owned();
                return (code, reason);
            }
        }
    }

    /// After the close frame the server ends the TCP stream.
    pub fn expect_eof(&mut self) {
        let (rest, closed) = read_to_close(&mut self.stream, TIMEOUT);
        assert!(closed, "herald kept the connection open after closing");
        assert!(rest.is_empty(), "bytes after the close frame: {rest:?}");
    }
}

/// Reads an HTTP response head byte by byte (so nothing after it is consumed).
pub fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            Ok(_) => panic!(
                "connection closed inside the response head: {:?}",
                String::from_utf8_lossy(&head)
            ),
            Err(e) => panic!(
                "reading the response head: {e}; got {:?}",
                String::from_utf8_lossy(&head)
            ),
        }
        assert!(head.len() < 16 * 1024, "response head too long");
    }
    String::from_utf8_lossy(&head).into_owned()
}
