//! Opening many bound clients at once, as `idle`, `broadcast`, `push` and
//! `latency` do: connects kept to a window of handshakes in flight, each
//! client's uid sent as soon as it is open; what the server said to the
//! permessage-deflate offer.

use crate::cli::Common;
use crate::event::Event;
use crate::fleet::Fleet;
use crate::wait::{Phase, Waited};
use std::time::Duration;

/// The uid bound by the `i`-th client a mode opens: u0, u1, ...
pub fn uid(i: usize) -> String {
    format!("u{i}")
}

/// Opens clients `first..first + count` with at most `--window` handshakes
/// in flight, and sends each its uid (`uid(slot)`) as soon as it is open.
/// Returns when all are open and their uids written, or on the first
/// failure; `--timeout` bounds it.
pub fn open_bound(
    fleet: &mut Fleet,
    first: usize,
    count: usize,
    uid: &dyn Fn(usize) -> String,
    common: &Common,
) -> Result<(), String> {
    while fleet.len() < first + count {
        fleet.add_client();
    }
    let mut opening = Opening {
        end: first + count,
        count,
        uid,
        window: common.window.max(1),
        next: first,
        in_flight: 0,
        done: 0,
        opened: Vec::new(),
        failure: None,
    };
    opening.connect_more(fleet)?;
    match fleet.wait(common.deadline(), &mut opening)? {
        Waited::Done => Ok(()),
        Waited::Deadline => Err(format!(
            "timed out opening connections: {} of {count} open, {} in progress",
            opening.done, opening.in_flight
        )),
    }
}

/// With `--deflate`: says how many of the `total` handshakes accepted
/// permessage-deflate and returns that count; an error when none did (the
/// run would measure no compression). `None` without `--deflate`.
pub fn check_deflate(
    fleet: &Fleet,
    total: usize,
    common: &Common,
) -> Result<Option<usize>, String> {
    if !common.deflate {
        return Ok(None);
    }
    let k = fleet.deflate_count();
    if k == 0 {
        return Err(format!(
            "--deflate: the server declined permessage-deflate for all {total} clients \
             (no Sec-WebSocket-Extensions in its 101 responses)"
        ));
    }
    let note = if k < total {
        " (NOT ALL: the rest are uncompressed)"
    } else {
        ""
    };
    println!("permessage-deflate negotiated by {k} of {total} clients{note}");
    Ok(Some(k))
}

/// [`open_bound`] under way: slots `next..end` still to connect.
struct Opening<'u> {
    end: usize,
    count: usize,
    uid: &'u dyn Fn(usize) -> String,
    window: usize,
    next: usize,
    in_flight: usize,
    done: usize,
    /// Opened since the last poll, waiting for their uid.
    opened: Vec<usize>,
    failure: Option<String>,
}

impl Opening<'_> {
    /// Starts connects until `window` handshakes are in flight.
    fn connect_more(&mut self, fleet: &mut Fleet) -> Result<(), String> {
        while self.in_flight < self.window && self.next < self.end {
            fleet.connect(self.next)?;
            self.next += 1;
            self.in_flight += 1;
        }
        Ok(())
    }
}

impl Phase for Opening<'_> {
    fn on(&mut self, ev: Event<'_>) {
        match ev {
            Event::Open(i) => self.opened.push(i),
            Event::Closed(i, end) if self.failure.is_none() => {
                self.failure = Some(format!(
                    "connection {i} ended while opening {} connections \
                     ({} open so far): {}",
                    self.count, self.done, end.why
                ))
            }
            _ => {}
        }
    }

    fn done(&self) -> bool {
        self.done >= self.count
    }

    /// Handshakes are answered as soon as they are ready; the 5 ms only bound
    /// how often the deadline is looked at.
    fn before_poll(&mut self, _fleet: &mut Fleet, _left: Duration) -> Result<i32, String> {
        Ok(5)
    }

    fn after_poll(&mut self, fleet: &mut Fleet) -> Result<(), String> {
        if let Some(f) = self.failure.take() {
            return Err(f);
        }
        for i in self.opened.drain(..) {
            fleet.send_text(i, (self.uid)(i).as_bytes());
            self.in_flight -= 1;
            self.done += 1;
        }
        self.connect_more(fleet)
    }
}
