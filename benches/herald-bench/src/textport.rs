//! What `push` and `latency` share: N clients u0..u(N-1) opened and checked
//! through the text port, and the tally of a run of pushes (replies,
//! deliveries, the first reason to stop).

use crate::cli::Common;
use crate::event::Event;
use crate::fleet::Fleet;
use crate::open::{check_deflate, open_bound, uid};
use crate::wait::{Phase, Waited};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

/// Opens N clients u0..u(N-1) (offering permessage-deflate with
/// `--deflate`) and the text port, then makes sure each uid is bound (see
/// [`check_bound`]).
pub fn open_clients(
    ws: SocketAddrV4,
    text: SocketAddrV4,
    n: usize,
    common: &Common,
) -> Result<Fleet, String> {
    let mut fleet = Fleet::new(ws, &common.sources)?;
    if common.deflate {
        fleet.offer_deflate();
    }
    fleet.connect_text(text)?;
    let t0 = Instant::now();
    open_bound(&mut fleet, 0, n, &uid, common)?;
    check_deflate(&fleet, n, common)?;
    check_bound(&mut fleet, n, common)?;
    println!(
        "{n} clients open and bound in {:.2} s (one push each checked)",
        t0.elapsed().as_secs_f64()
    );
    Ok(fleet)
}

/// Pushes through the text port as a run sees them: what was sent, what the
/// server answered, what the clients received.
pub struct PushTally {
    /// Lines sent so far.
    pub sent: usize,
    pub replies: usize,
    /// Replies that are `ok`: pushes the server delivered.
    pub ok: usize,
    /// Replies that are `fail`: pushes that reached nobody. Replies that
    /// are neither (`error ...`) are `replies - ok - fail`.
    pub fail: usize,
    pub delivered: usize,
    /// When the latest reply arrived.
    pub last_reply: Instant,
    /// When the latest delivery arrived.
    pub last_delivery: Instant,
    /// Why the run cannot go on: a client or the text port ended.
    pub stop: Option<String>,
}

impl PushTally {
    pub fn new(sent: usize) -> PushTally {
        PushTally {
            sent,
            replies: 0,
            ok: 0,
            fail: 0,
            delivered: 0,
            last_reply: Instant::now(),
            last_delivery: Instant::now(),
            stop: None,
        }
    }

    /// Counts what `ev` says; a delivery is handed back for the caller to
    /// read (it arrived at `last_delivery`).
    pub fn count<'a>(&mut self, ev: Event<'a>) -> Option<&'a [u8]> {
        self.count_to(ev).map(|(_, m)| m)
    }

    /// [`count`](Self::count), with the client a delivery is for.
    pub fn count_to<'a>(&mut self, ev: Event<'a>) -> Option<(usize, &'a [u8])> {
        match ev {
            Event::Line(l) => {
                self.replies += 1;
                if l.starts_with(b"ok") {
                    self.ok += 1;
                } else if l.starts_with(b"fail") {
                    self.fail += 1;
                }
                self.last_reply = Instant::now();
            }
            Event::Message(i, m) => {
                self.delivered += 1;
                self.last_delivery = Instant::now();
                return Some((i, m));
            }
            ev => ev.note_end(&mut self.stop),
        }
        None
    }
}

impl Phase for PushTally {
    fn on(&mut self, ev: Event<'_>) {
        self.count(ev);
    }

    /// Every line sent is answered and every `ok` delivered, or the run
    /// cannot go on.
    fn done(&self) -> bool {
        (self.replies >= self.sent && self.delivered >= self.ok) || self.stop.is_some()
    }
}

/// Pushes one line to each uid u0..u(N-1) and waits for each to arrive;
/// uids answered `fail` (not bound yet) are pushed again. Doubles as warm-up.
fn check_bound(fleet: &mut Fleet, n: usize, common: &Common) -> Result<(), String> {
    let deadline = common.deadline();
    let mut c = Check {
        order: VecDeque::new(),
        pending: (0..n).collect(),
        arrivals: Arrivals {
            arrived: vec![false; n],
            count: 0,
        },
        stop: None,
    };
    while !c.pending.is_empty() {
        let mut lines = String::new();
        for i in &c.pending {
            let _ = writeln!(lines, "{{\"uid\":\"u{i}\",\"check\":1}}");
        }
        c.order = c.pending.drain(..).collect();
        fleet.text_send(lines.as_bytes());
        if fleet.wait(deadline, &mut c)? == Waited::Deadline {
            return Err(format!(
                "timed out checking that the uids are bound: {} replies missing",
                c.order.len()
            ));
        }
        if let Some(why) = c.stop {
            return Err(format!("while checking that the uids are bound: {why}"));
        }
        if !c.pending.is_empty() {
            // Check pushes answered `ok` may still arrive meanwhile (through
            // another node, after the reply): they count.
            let arrivals = &mut c.arrivals;
            fleet.pump(Duration::from_millis(100), &mut |ev| arrivals.on(ev))?;
        }
    }
    let mut a = c.arrivals;
    if fleet.wait(deadline, &mut a)? == Waited::Deadline {
        return Err(format!(
            "every push was answered ok, but only {} of {n} clients received theirs",
            a.count
        ));
    }
    Ok(())
}

/// [`check_bound`]: one batch of check pushes, answered in order.
struct Check {
    /// Uids whose reply is still due, in the order they were pushed.
    order: VecDeque<usize>,
    /// Uids answered `fail`, to push again.
    pending: Vec<usize>,
    arrivals: Arrivals,
    stop: Option<String>,
}

impl Phase for Check {
    fn on(&mut self, ev: Event<'_>) {
        match ev {
            Event::Line(l) => {
                if let Some(i) = self.order.pop_front() {
                    if !l.starts_with(b"ok") {
                        self.pending.push(i);
                    }
                }
            }
            Event::Message(..) => self.arrivals.on(ev),
            ev => ev.note_end(&mut self.stop),
        }
    }

    fn done(&self) -> bool {
        self.order.is_empty() || self.stop.is_some()
    }
}

/// Which of the clients received their check push.
struct Arrivals {
    arrived: Vec<bool>,
    count: usize,
}

impl Phase for Arrivals {
    fn on(&mut self, ev: Event<'_>) {
        if let Event::Message(i, _) = ev {
            if i < self.arrived.len() && !self.arrived[i] {
                self.arrived[i] = true;
                self.count += 1;
            }
        }
    }

    fn done(&self) -> bool {
        self.count >= self.arrived.len()
    }
}
