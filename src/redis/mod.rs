//! Herald's Redis client, sans-IO: the RESP codec ([`resp`]), one
//! connection's life ([`Link`]: when to connect, the login, what to write,
//! the reconnect backoff), and the two links a node keeps on it: a
//! [`Client`] whose replies come back tagged with what asked for them, and a
//! [`Subscriber`] that hears pub/sub messages. The caller moves bytes and
//! time; nothing here touches a socket or reads a clock.

mod client;
mod link;
pub mod resp;
mod subscriber;
mod url;

pub use client::{Client, SendError};
pub use link::{Link, LinkError, NotUp};
pub use subscriber::{Push, Subscriber};
pub use url::RedisUrl;
