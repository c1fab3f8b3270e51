//! permessage-deflate (RFC 7692), the cheap way: every message is
//! compressed on its own (no context takeover in either direction), so a
//! connection keeps no compression state and one message can be compressed
//! once for all its recipients. [`offer`] decides the negotiation;
//! [`Inflater`] and [`Deflater`] are one per server.
//!
//! Built with the `deflate` cargo feature (on by default). Without it,
//! herald declines every offer and the two codecs do nothing.

#[cfg(feature = "deflate")]
mod codec;
mod error;
#[cfg(feature = "deflate")]
mod fast;
#[cfg(not(feature = "deflate"))]
mod off;
pub mod offer;

#[cfg(feature = "deflate")]
pub use codec::{Deflater, Inflater};
#[cfg(not(feature = "deflate"))]
pub use off::{Deflater, Inflater};

/// Whether this build speaks permessage-deflate at all.
pub const BUILT_IN: bool = cfg!(feature = "deflate");

pub use error::InflateError;
