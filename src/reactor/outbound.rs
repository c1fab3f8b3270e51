//! Outbound connections (`Context::connect`): started by the loop after the
//! callback that asked for them, completed or failed on readiness, bounded
//! by the handshake timeout. Reconnecting is the application's decision.

use super::app::App;
use super::output::ms_to_ticks;
use super::slot::Flags;
use super::Server;
use crate::sys;
use std::io;

impl<A: App> Server<A> {
    /// Starts the connects requested since the last call.
    pub(super) fn start_connects(&mut self) {
        while !self.cx.connects.is_empty() {
            for (idx, addr) in std::mem::take(&mut self.cx.connects) {
                let s = &self.cx.slots[idx as usize];
                if !s.live() || !s.flags.has(Flags::CONNECTING) {
                    continue; // closed again before it started
                }
                let fd = match sys::connect_tcp(&addr) {
                    Ok(fd) => fd,
                    Err(e) => {
                        self.connect_failed(idx, e);
                        continue;
                    }
                };
                let cx = &mut self.cx;
                cx.slots[idx as usize].fd = fd;
                cx.slots[idx as usize].t = cx.now;
                if let Err(e) = cx.epoll.add(fd, cx.id(idx).as_u64(), false, true) {
                    self.connect_failed(idx, e);
                    continue;
                }
                let due = cx.now + ms_to_ticks(cx.limits.handshake_timeout_ms);
                cx.schedule(idx, due);
            }
        }
    }

    /// The socket of a connect in progress became writable (or failed).
    pub(super) fn connect_ready(&mut self, idx: u32) {
        let fd = self.cx.slots[idx as usize].fd;
        if let Err(e) = sys::take_socket_error(fd) {
            self.connect_failed(idx, e);
            return;
        }
        let cx = &mut self.cx;
        let token = cx.id(idx).as_u64();
        let s = &mut cx.slots[idx as usize];
        s.flags.clear(Flags::CONNECTING);
        s.flags.set(Flags::OPENED);
        s.t = cx.now;
        let _ = cx.epoll.modify(fd, token, true, false);
        if !cx.slots[idx as usize].out_empty() {
            // Bytes queued while connecting leave now.
            cx.out_buf(idx);
        }
        let id = cx.id(idx);
        self.app.on_open(&mut self.cx, id);
    }

    /// Reports a failed connect and frees its slot (no `on_close` follows:
    /// it never opened).
    pub(super) fn connect_failed(&mut self, idx: u32, error: io::Error) {
        let id = self.cx.id(idx);
        self.cx.slots[idx as usize].flags.clear(Flags::CONNECTING);
        self.cx.kill(idx, false);
        self.app.on_connect_failed(&mut self.cx, id, error);
    }
}
