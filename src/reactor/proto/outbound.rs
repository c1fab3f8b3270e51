//! Outbound connections (`Context::connect`): started by the loop after the
//! callback that asked for them, completed or failed on readiness, bounded
//! by the handshake timeout; then raw bytes for the application.
//! Reconnecting is the application's decision.

use super::{Conn, Driver};
use crate::reactor::app::App;
use crate::reactor::context::Context;
use crate::reactor::slot::Flags;
use crate::reactor::wheel::ms_to_ticks;
use crate::sys;
use std::io;

pub(crate) struct Outbound;

impl Driver for Outbound {
    const CLIENT: bool = false;

    fn input<A: App>(conn: Conn<'_, A>, data: &mut [u8]) -> usize {
        let Conn { cx, app, idx, .. } = conn;
        let id = cx.io.id(idx);
        app.on_data(cx, id, data);
        data.len()
    }
}

/// Starts the connects requested since the last call (and those the
/// failure callbacks request meanwhile).
pub(crate) fn start<A: App>(cx: &mut Context, app: &mut A) {
    loop {
        let asked = cx.connects.take();
        if asked.is_empty() {
            return;
        }
        for (idx, addr) in asked {
            let s = &cx.io.slots[idx as usize];
            if !s.live() || !s.connecting() {
                continue; // closed again before it started
            }
            let fd = match sys::connect_tcp(&addr) {
                Ok(fd) => fd,
                Err(e) => {
                    failed(cx, app, idx, e);
                    continue;
                }
            };
            let io = &mut cx.io;
            io.slots[idx as usize].fd = fd;
            io.slots[idx as usize].t = io.now;
            if let Err(e) = io.epoll.add(fd, io.id(idx).as_u64(), false, true) {
                failed(cx, app, idx, e);
                continue;
            }
            let due = io.now + ms_to_ticks(cx.limits.handshake_timeout_ms);
            io.schedule(idx, due);
        }
    }
}

/// The socket of a connect in progress became writable (or failed).
pub(crate) fn ready<A: App>(cx: &mut Context, app: &mut A, idx: u32) {
    let fd = cx.io.slots[idx as usize].fd;
    if let Err(e) = sys::take_socket_error(fd) {
        failed(cx, app, idx, e);
        return;
    }
    let io = &mut cx.io;
    let token = io.id(idx).as_u64();
    let s = &mut io.slots[idx as usize];
    s.flags.clear(Flags::OPENING);
    s.flags.set(Flags::OPENED);
    s.t = io.now;
    let _ = io.epoll.modify(fd, token, true, false);
    if !io.slots[idx as usize].out_empty() {
        // Bytes queued while connecting leave now.
        io.out_buf(idx);
    }
    let id = io.id(idx);
    app.on_open(cx, id);
}

/// Reports a failed connect and frees its slot (no `on_close` follows: it
/// never opened).
pub(crate) fn failed<A: App>(cx: &mut Context, app: &mut A, idx: u32, error: io::Error) {
    let id = cx.io.id(idx);
    cx.io.slots[idx as usize].flags.clear(Flags::OPENING);
    cx.io.kill(idx, false);
    app.on_connect_failed(cx, id, error);
}
