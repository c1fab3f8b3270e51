//! The loop's part of time: firing the connection deadlines due on the
//! wheel (what each means is `deadline::decide`) and the application
//! timers due by now.

use super::app::App;
use super::deadline::{decide, Action};
use super::id::ConnId;
use super::proto::outbound;
use super::server::Server;
use super::slot::Flags;
use super::stats::Refusal;
use crate::ws::conn as ws_conn;
use std::io;

impl<A: App> Server<A> {
    pub(super) fn run_timers(&mut self) {
        while let Some((tick, due)) = self.cx.io.wheel.next_due(self.cx.io.now) {
            for &token in &due {
                let id = ConnId(token);
                let ok = self
                    .cx
                    .io
                    .slots
                    .get(id.idx() as usize)
                    .is_some_and(|s| s.gen == id.gen() && s.live() && s.due == tick);
                if ok {
                    self.conn_timer(id.idx());
                }
            }
            self.cx.io.wheel.recycle(tick, due);
        }
        self.run_app_timers();
    }

    fn conn_timer(&mut self, idx: u32) {
        let cx = &mut self.cx;
        let s = &cx.io.slots[idx as usize];
        match decide(s.kind, s.flags, s.t, cx.io.now, &cx.limits) {
            Action::Wait(None) => {}
            Action::Wait(Some(at)) => cx.io.schedule(idx, at),
            Action::Ping(at) => {
                cx.io.slots[idx as usize].flags.set(Flags::PINGED);
                ws_conn::ping(&mut cx.output(idx));
                cx.io.schedule(idx, at);
            }
            Action::HandshakeTimeout => {
                cx.stats.timeouts += 1;
                cx.stats.handshake_failures += 1;
                let id = cx.io.id(idx);
                cx.note_refusal(id, Refusal::Http(408), "handshake took too long");
                ws_conn::refuse(408, "handshake took too long", &mut cx.output(idx));
                self.inputs.clear_at(idx, &mut cx.input_bytes);
                cx.io.begin_close(idx);
            }
            Action::ConnectTimeout => {
                cx.stats.timeouts += 1;
                let err = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
                outbound::failed(cx, &mut self.app, idx, err);
            }
            Action::Abort => {
                cx.stats.timeouts += 1;
                cx.io.kill(idx, true);
            }
        }
    }

    /// Fires the application timers due by now. Timers set while firing wait
    /// for the next iteration, so a zero-delay re-arm cannot spin the loop.
    fn run_app_timers(&mut self) {
        for id in self.cx.timers.take_due(self.cx.io.now_ms) {
            if let Some((timer, token)) = self.cx.timers.fire(id) {
                self.app.on_timer(&mut self.cx, timer, token);
            }
        }
    }
}
