//! The one loop every mode waits with: poll the fleet and hand each event to
//! the phase under way, until the phase has what it waits for or its deadline
//! has passed.

use crate::event::Event;
use crate::fleet::Fleet;
use crate::host;
use std::time::{Duration, Instant};

/// The longest one poll blocks by default: `done` and the deadline are
/// looked at again at least this often.
const SLICE_MS: u128 = 10;

/// What one phase of a mode (opening, checking, a measured run, a drain)
/// waits for, and what it does meanwhile.
pub trait Phase {
    /// Sees each event the fleet reports.
    fn on(&mut self, ev: Event<'_>);

    /// True once the phase has what it waits for. Asked before every poll,
    /// so a phase that is done at the start does not poll at all.
    fn done(&self) -> bool;

    /// Runs before each poll, once the deadline is known not to have passed
    /// (`left` is the time to it): the place to send what fell due. Returns
    /// how long the poll may block, in ms; by default at most 10 ms and not
    /// past the deadline.
    fn before_poll(&mut self, _fleet: &mut Fleet, left: Duration) -> Result<i32, String> {
        Ok(slice_ms(left))
    }

    /// Runs after each poll: the place to act on what the events asked for
    /// (send, connect, expire).
    fn after_poll(&mut self, _fleet: &mut Fleet) -> Result<(), String> {
        Ok(())
    }
}

/// Why [`Fleet::wait`] returned.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// The phase had what it waited for.
    Done,
    /// The deadline passed first.
    Deadline,
}

/// At most [`SLICE_MS`], at least 1 ms (0 would spin), and within `left`
/// rounded down.
pub fn slice_ms(left: Duration) -> i32 {
    left.as_millis().clamp(1, SLICE_MS) as i32
}

impl Fleet {
    /// Polls until `phase` is done or `deadline` has passed, whichever comes
    /// first; an error only when epoll itself or one of the phase's own
    /// actions fails.
    pub fn wait(&mut self, deadline: Instant, phase: &mut impl Phase) -> Result<Waited, String> {
        loop {
            if phase.done() {
                return Ok(Waited::Done);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Waited::Deadline);
            }
            let ms = phase.before_poll(self, deadline - now)?;
            self.poll(ms, &mut |ev| phase.on(ev))?;
            phase.after_poll(self)?;
        }
    }

    /// Keeps the connections served (pongs, replies) for `d`, reporting
    /// events to `on`.
    pub fn pump(&mut self, d: Duration, on: &mut dyn FnMut(Event<'_>)) -> Result<(), String> {
        let _until_deadline = self.wait(Instant::now() + d, &mut Serve(on))?;
        Ok(())
    }

    /// The VmRSS of server `pid` once it has settled: after `settle`, read
    /// until two readings 100 ms apart agree (at most 2 s more), serving
    /// the clients meanwhile. An error if a client or the text port ends.
    pub fn settled_rss(&mut self, pid: u32, settle: Duration) -> Result<u64, String> {
        let mut closed = None;
        let mut on = |ev: Event<'_>| ev.note_end(&mut closed);
        self.pump(settle, &mut on)?;
        let mut last = host::vm_rss_bytes(pid)?;
        for _ in 0..20 {
            self.pump(Duration::from_millis(100), &mut on)?;
            let now = host::vm_rss_bytes(pid)?;
            if now == last {
                break;
            }
            last = now;
        }
        match closed {
            Some(why) => Err(why),
            None => Ok(last),
        }
    }
}

/// A phase that is never done: it only serves, until the deadline.
struct Serve<'a>(&'a mut dyn FnMut(Event<'_>));

impl Phase for Serve<'_> {
    fn on(&mut self, ev: Event<'_>) {
        (self.0)(ev)
    }

    fn done(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slice_is_1_to_10_ms_and_not_past_the_deadline() {
        assert_eq!(slice_ms(Duration::from_micros(300)), 1);
        assert_eq!(slice_ms(Duration::from_micros(5_700)), 5);
        assert_eq!(slice_ms(Duration::from_secs(3)), 10);
    }
}
