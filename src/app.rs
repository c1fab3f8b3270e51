//! The application interface in one place: the [`App`] trait (what the
//! reactor tells an application) and the values that cross that boundary.
//! What an application can do in return lives on [`crate::Context`].
//!
//! Everything here is defined in the reactor, beside the code that calls
//! it; this module gathers the names an application imports.

pub use crate::reactor::{
    App, ConnId, Deferred, Message, Protocol, Request, Response, TimerId, Upgrade, UpgradeRequest,
};
