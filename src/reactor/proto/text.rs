//! Text-port connections: newline-delimited lines from backends, each one
//! a message for the application. Backends pipeline, so a text connection
//! is read for longer per event than the others (see `Server::readable`).

use super::{each_unit, Accepted, Conn, Driver};
use crate::line::{self, Line};
use crate::reactor::app::App;
use crate::reactor::context::Context;
use crate::reactor::message::Message;
use crate::reactor::slot::{Flags, Kind};

pub(crate) struct Text;

impl Driver for Text {
    /// Backends pipeline: up to 16 MiB per event with the default read
    /// buffer, within the loop's read budget (`read.rs`).
    const READS_PER_EVENT: usize = 256;
    const PIPELINED: bool = true;

    fn input<A: App>(conn: Conn<'_, A>, data: &mut [u8]) -> usize {
        let Conn { cx, app, held, idx } = conn;
        let id = cx.io.id(idx);
        let max = cx.limits.max_line;
        each_unit(cx, idx, |cx, pos| {
            let (used, found) = line::next(held, &data[pos..], max);
            match found {
                None => return (used, false),
                Some(Line::Complete(bytes)) => {
                    cx.stats.messages_in += 1;
                    app.on_message(cx, id, Message::Line(bytes));
                    if cx.io.slots[idx as usize].flags.has(Flags::PAUSED) {
                        // The application could not take it now.
                        cx.stats.messages_in -= 1;
                        let line = bytes.to_vec();
                        line::put_back(held, line);
                        return (used, false);
                    }
                }
                Some(Line::TooLong) => {
                    let msg = format!("error line too long (max {max} bytes)");
                    cx.send_line(id, msg.as_bytes());
                }
            }
            cx.pause_if_backed_up(idx);
            (used, true)
        })
    }

    /// The stream ended: a last line without its newline is still a line.
    /// Put back (the connection paused), it is handed on again on resume,
    /// when the end of the stream is read once more.
    fn eof<A: App>(conn: Conn<'_, A>) {
        let Conn { cx, app, held, idx } = conn;
        if !cx.io.slots[idx as usize].can_send() {
            return;
        }
        if let Some(Line::Complete(bytes)) = line::finish(held) {
            cx.stats.messages_in += 1;
            let id = cx.io.id(idx);
            app.on_message(cx, id, Message::Line(bytes));
            if cx.io.slots[idx as usize].flags.has(Flags::PAUSED) {
                cx.stats.messages_in -= 1;
                let line = bytes.to_vec();
                line::put_back(held, line);
            }
        }
    }
}

impl Accepted for Text {
    const KIND: Kind = Kind::Text;

    fn accepted<A: App>(cx: &mut Context, app: &mut A, idx: u32) {
        cx.io.slots[idx as usize].flags.set(Flags::OPENED);
        let id = cx.io.id(idx);
        app.on_open(cx, id);
    }

    fn write_full(out: &mut Vec<u8>) {
        out.extend_from_slice(b"error server full\n");
    }
}
