//! RFC 6455 WebSocket, server side, as sans-IO code: bytes in, events out.
//!
//! [`decode::next`] is the receiving half of a connection, a pull parser;
//! [`conn`] is the whole per-connection state machine (handshake, frames,
//! automatic replies, timers) that the reactor drives with bytes and time.

pub mod conn;
pub mod decode;
pub mod deflate;
mod event;
pub mod frame;
pub mod handshake;
mod rules;
pub mod utf8;

pub use decode::Partial;
pub use event::{CloseCode, Event, Failure};
