//! The one-thread epoll reactor: it moves bytes, readiness and time, and
//! nothing else. Protocols are sans-IO state machines (`ws::conn`,
//! `http::conn`, `line`); the application sees them through [`App`].
//!
//! Per-connection memory is one slot plus one parser-state pointer while
//! idle: input state and the output queue exist only while bytes are
//! pending. Reads go through one shared buffer; sends queued during a loop
//! iteration leave in one `send` per connection at its end.
//!
//! Files, from the bottom up:
//! - values that cross the application boundary: `id` (ConnId, Protocol,
//!   Deferred, TimerId), `message` (Message, Request, Response,
//!   UpgradeRequest, Upgrade), `stats` (Stats, ConnInfo, Refusal);
//! - what moves bytes: `slot` (kinds, flags, the 64-byte slot), `wheel`
//!   (the timer wheel), `io` (epoll, slots, send queues, closing, the
//!   clock), `inputs` (parser states between reads);
//! - the services, one struct each: `deferred` (replies answered later),
//!   `app_timers` (application timers), `connects` (outbound connects not yet
//!   started), `per_ip` (per-address counts, with `rate` for handshakes), `pause`
//!   (backpressure: connections not read until they may go on),
//!   `report` (aggregated operator reports), and the uid hub (`crate::hub`);
//! - `context`: [`Context`], the I/O core plus the services, and what
//!   callbacks may do with them; `app`: the [`App`] trait; `deadline`: what
//!   a connection's deadline means;
//! - `proto`: each connection protocol (`ws`, `text`, `http`, `outbound`)
//!   behind one driver interface;
//! - the loop: `server` ([`Server`], dispatch, reaping, stopping), `drain`
//!   (a worker being replaced closing its connections over time), `read`
//!   (reads into a driver), `accept` (admission), `timer` (firing what is
//!   due).

mod accept;
mod app;
mod app_timers;
mod compress;
mod connects;
mod context;
mod deadline;
mod deferred;
mod drain;
mod fanout;
mod id;
mod inputs;
mod io;
mod message;
mod pause;
mod per_ip;
mod proto;
mod rate;
mod read;
mod report;
mod server;
mod slot;
mod stats;
mod timer;
mod wheel;

pub use app::App;
pub use context::Context;
pub use id::{ConnId, Deferred, Protocol, TimerId};
pub use message::{Message, Request, Response, Upgrade, UpgradeRequest};
pub use server::{Server, StopHandle};
pub use stats::{ConnInfo, Refusal, Stats};
