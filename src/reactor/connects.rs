//! Outbound connects asked for by callbacks (`Context::connect`), waiting
//! for the loop to start them once the callback has returned.

use std::net::SocketAddr;

/// (slot, address) of each connect not yet started.
#[derive(Default)]
pub(super) struct Connects(Vec<(u32, SocketAddr)>);

impl Connects {
    pub(super) fn push(&mut self, idx: u32, addr: SocketAddr) {
        self.0.push((idx, addr));
    }

    /// Takes the connects asked for since the last call (none: empty).
    pub(super) fn take(&mut self) -> Vec<(u32, SocketAddr)> {
        std::mem::take(&mut self.0)
    }
}
