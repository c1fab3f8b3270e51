//! An echo server for the Autobahn TestSuite: every message comes back as sent.
//!
//! `cargo run --release --example echo -- 127.0.0.1:9001`

use herald::{App, ConnId, Context, Limits, Message, Protocol, Server};

struct Echo;

impl App for Echo {
    fn on_message(&mut self, cx: &mut Context, conn: ConnId, msg: Message<'_>) {
        match msg {
            Message::Text(t) => {
                cx.send_text(conn, t);
            }
            Message::Binary(b) => {
                cx.send_binary(conn, b);
            }
            Message::Line(_) => {}
        }
    }
}

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".to_string());
    let addr = match addr.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("echo: bad address {addr:?}: {e}");
            std::process::exit(2);
        }
    };
    let limits = Limits {
        max_message: 16 << 20,
        max_queued: 64 << 20,
        // Every message compressed on connections with permessage-deflate,
        // even the ones that would not shrink: Autobahn's cases 12 and 13
        // then exercise the compressor with every payload they send.
        deflate: Some(herald::limits::Deflate {
            level: 1,
            min_size: 0,
        }),
        ..Limits::default()
    };
    let run = || -> std::io::Result<()> {
        let mut server = Server::new(limits, Echo)?;
        let bound = server.listen(Protocol::WebSocket, addr, false)?;
        server.stop_on_signals()?;
        println!("echo listening on ws://{bound}");
        server.run()
    };
    if let Err(e) = run() {
        eprintln!("echo: {e}");
        std::process::exit(1);
    }
}
