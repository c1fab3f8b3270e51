//! The push server of the seeds, assembled from the library: the same thing
//! `herald` runs, without the CLI. The echo server (examples/echo.rs) is the
//! other user of this API.
//!
//! `cargo run --release --example push` then push with
//! `printf '{"uid":"uid1","percent":"88%%"}\n' | nc -q1 127.0.0.1 5678`

use herald::push::{PushApp, PushConfig};
use herald::{Limits, Protocol, Server};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let app = PushApp::new(PushConfig::default());
    let mut server = Server::new(Limits::default(), app)?;
    // Several listeners of different protocols in one process, one state.
    let ws = server.listen(Protocol::WebSocket, "0.0.0.0:1234".parse()?, false)?;
    let text = server.listen(Protocol::Text, "127.0.0.1:5678".parse()?, false)?;
    let http = server.listen(Protocol::Http, "127.0.0.1:5679".parse()?, false)?;
    server.stop_on_signals()?;
    println!("push: ws://{ws}, text port {text}, http://{http}");
    server.run()?;
    Ok(())
}
