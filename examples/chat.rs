//! A chat room on herald's library API: the first message is a nickname,
//! later messages go to everyone; a text port lets a backend make
//! announcements. Shows on_open / on_message / on_close on one shared state.
//!
//! `cargo run --release --example chat -- 127.0.0.1:8000 127.0.0.1:8001`

use herald::{App, ConnId, Context, Limits, Message, Protocol, Server};

#[derive(Default)]
struct Chat {
    joined: u64,
}

impl App for Chat {
    fn on_open(&mut self, cx: &mut Context, conn: ConnId) {
        if cx.protocol(conn) == Some(Protocol::WebSocket) {
            cx.send_text(conn, "welcome: send your nickname");
        }
    }

    fn on_message(&mut self, cx: &mut Context, conn: ConnId, msg: Message<'_>) {
        match msg {
            Message::Text(nick) if cx.uid(conn).is_none() => {
                if nick.is_empty() || nick.len() > 32 || nick.contains(':') {
                    cx.close(
                        conn,
                        herald::ws::CloseCode::POLICY,
                        "nickname: 1-32 bytes, no colon",
                    );
                    return;
                }
                cx.bind_uid(conn, nick);
                self.joined += 1;
                cx.broadcast(&format!("* {nick} joined ({} so far)", self.joined));
            }
            Message::Text(text) => {
                let line = format!("{}: {text}", cx.uid(conn).unwrap_or("?"));
                cx.broadcast(&line);
            }
            Message::Line(line) => {
                let text = String::from_utf8_lossy(line);
                let n = cx.broadcast(&format!("* announcement: {text}"));
                cx.send_line(conn, format!("sent to {n}").as_bytes());
            }
            Message::Binary(_) => cx.close(conn, herald::ws::CloseCode::UNSUPPORTED, "text only"),
        }
    }

    fn on_close(&mut self, cx: &mut Context, conn: ConnId) {
        if let Some(nick) = cx.uid(conn).map(str::to_owned) {
            cx.broadcast(&format!("* {nick} left"));
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let ws = args.next().unwrap_or_else(|| "127.0.0.1:8000".into());
    let text = args.next().unwrap_or_else(|| "127.0.0.1:8001".into());
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        let mut server = Server::new(Limits::default(), Chat::default())?;
        let ws = server.listen(Protocol::WebSocket, ws.parse()?, false)?;
        let text = server.listen(Protocol::Text, text.parse()?, false)?;
        server.stop_on_signals()?;
        println!("chat: ws://{ws}, announcements on {text}");
        server.run()?;
        Ok(())
    };
    if let Err(e) = run() {
        eprintln!("chat: {e}");
        std::process::exit(1);
    }
}
