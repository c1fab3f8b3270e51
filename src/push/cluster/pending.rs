//! What the cluster waits for: the meaning of each command reply still to
//! come, and the pushes waiting for their PUBLISH receiver counts.

use crate::app::Deferred;
use crate::push::outcome::{Push, ReplyTo};

/// What a reply on the command connection answers.
pub(super) enum Pending {
    /// Nobody waits (bookkeeping, heartbeat, scripts).
    Quiet,
    /// One PUBLISH of the aggregate; `ours` when this node is (or may still
    /// be) subscribed to the channel, so its receiver count includes us.
    Publish {
        agg: u64,
        ours: bool,
    },
    Online {
        to: ReplyTo,
        uid: String,
    },
    Count {
        to: ReplyTo,
    },
    Stats {
        to: Deferred,
        own: String,
    },
}

/// A push waiting for its PUBLISH replies.
pub(super) struct Agg {
    pub to: ReplyTo,
    /// A push to one uid (`ok`/`fail`), else several or everyone (`ok N`).
    pub one: bool,
    /// Connections reached on this node.
    pub local: usize,
    /// Other nodes that took it.
    pub remote: u64,
    /// PUBLISH replies still to come.
    pub waiting: usize,
    /// For `fail UID` after a routed message (empty for other pushes).
    pub uid: String,
}

impl Agg {
    /// What the answer is about.
    pub(super) fn push(&self) -> Push<'_> {
        if self.one {
            Push::One(&self.uid)
        } else {
            Push::Many
        }
    }
}
