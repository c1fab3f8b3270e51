//! The README's library example, kept compiling.

use herald::{App, ConnId, Context, Limits, Message, Protocol, Server};

struct Chat;
impl App for Chat {
    fn on_open(&mut self, _cx: &mut Context, _conn: ConnId) {}
    fn on_message(&mut self, cx: &mut Context, conn: ConnId, msg: Message<'_>) {
        match msg {
            Message::Text(t) if cx.uid(conn).is_none() => {
                cx.bind_uid(conn, t);
            }
            Message::Text(t) => {
                cx.broadcast(t);
            } // or cx.send_to_uid(uid, t)
            Message::Line(_) => {
                cx.send_line(conn, b"ok");
            } // a text-port line
            Message::Binary(_) => {}
        }
    }
    fn on_close(&mut self, _cx: &mut Context, _conn: ConnId) {}
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut server = Server::new(Limits::default(), Chat)?;
    server.listen(Protocol::WebSocket, "0.0.0.0:1234".parse()?, false)?;
    server.listen(Protocol::Text, "127.0.0.1:5678".parse()?, false)?;
    server.stop_on_signals()?; // or server.stop_handle() to stop from another thread
    server.run()?;
    Ok(())
}
