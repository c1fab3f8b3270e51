//! What a resuming client is sent: each stream's `s` line and the messages
//! it missed, counted for /stats.

use super::stream::{self, Position, Status, Stream};
use crate::app::ConnId;
use crate::reactor::Context;

/// Resumes and replays, for /stats and /metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct ResumeStats {
    /// Stream positions recovered / not recoverable.
    pub ok: u64,
    pub lost: u64,
    /// Messages replayed.
    pub replayed: u64,
}

/// Sends `conn` the `s` line of `stream` (at `at`, with `status`) and the
/// messages after it, `missed`, counted in `stats`.
pub(super) fn replay<'m>(
    cx: &mut Context,
    stats: &mut ResumeStats,
    conn: ConnId,
    stream: Stream<'_>,
    at: &Position,
    status: Status,
    missed: impl Iterator<Item = &'m str>,
) {
    let mut line = Vec::new();
    stream::write_status(&mut line, stream, &at.epoch, at.offset, status);
    cx.send_text(conn, std::str::from_utf8(&line).unwrap_or_default());
    match status {
        Status::Ok => stats.ok += 1,
        Status::Lost => stats.lost += 1,
        Status::New | Status::Off => {}
    }
    for (i, text) in missed.enumerate() {
        line.clear();
        stream::write_head(&mut line, stream, &at.epoch, at.offset + 1 + i as u64);
        line.extend_from_slice(text.as_bytes());
        cx.send_text(conn, std::str::from_utf8(&line).unwrap_or_default());
        stats.replayed += 1;
    }
}
