//! herald: a real-time push server in one thread.
//!
//! One hand-rolled epoll reactor serves WebSocket, text-port and HTTP
//! listeners that share one state: browsers bind a uid with their first
//! WebSocket message, backends push to uids through the text port or HTTP.
//!
//! ```no_run
//! use herald::{App, Context, ConnId, Limits, Message, Protocol, Server};
//!
//! struct Echo;
//! impl App for Echo {
//!     fn on_message(&mut self, cx: &mut Context, conn: ConnId, msg: Message<'_>) {
//!         if let Message::Text(t) = msg {
//!             cx.send_text(conn, t);
//!         }
//!     }
//! }
//!
//! let mut server = Server::new(Limits::default(), Echo).unwrap();
//! server.listen(Protocol::WebSocket, "127.0.0.1:9001".parse().unwrap(), false).unwrap();
//! server.stop_on_signals().unwrap();
//! server.run().unwrap();
//! ```
//!
//! # Untrusted input
//! Every limit that bounds what a peer can make herald spend lives in
//! [`Limits`]: message and frame size (a compressed message's inflated size
//! included: [`ws::deflate::Inflater`] stops at it), request head size and handshake
//! deadline, line length, HTTP body size, queued output per connection,
//! connection counts (total and per IP), heartbeat and close timeouts. The
//! parsers ([`ws::decode::next`], [`ws::handshake::parse`], [`http::parse_head`],
//! [`http::conn::next`], [`line::next`], [`push::command::parse`],
//! [`auth::Verifier::verify`], [`redis::resp::decode`], the Redis client's reads
//! [`redis::Client::handle_data`] and [`redis::Subscriber::handle_data`]) never panic on any input and
//! never allocate on a length they have not received; each has a fuzz target.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod app;
pub mod auth;
mod backoff;
pub mod http;
pub mod hub;
pub mod limits;
pub mod line;
// The logging macros by name (`log_info!`) in the modules below, without a
// path through the crate root.
#[macro_use]
pub mod log;
pub mod push;
pub mod reactor;
pub mod redis;
pub mod sansio;
pub mod supervisor;
pub mod sys;
pub mod ws;
mod xorshift;

pub use app::{
    App, ConnId, Deferred, Message, Protocol, Request, Response, TimerId, Upgrade, UpgradeRequest,
};
pub use limits::Limits;
pub use reactor::{ConnInfo, Context, Refusal, Server, Stats, StopHandle};
