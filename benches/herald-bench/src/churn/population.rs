//! The churning clients of a run and their backend, as one phase of the
//! fleet's loop: clients bind, are dropped at random (half a clean close,
//! half a reset), reconnect after a random delay to a random node and say
//! hello again (with their positions under `herald.v1`), while the backend
//! pushes at a steady rate and broadcasts; every message is accounted.

use super::backend::Backend;
use super::proto::{self, Heard, Positions, Sent};
use super::rng::Rng;
use super::tally::Tally;
use crate::event::Event;
use crate::fleet::Fleet;
use crate::wait::Phase;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

/// How often `{"count":true}` is asked while waiting for every uid to be
/// online, and how often stuck closing handshakes are looked for.
const EVERY: Duration = Duration::from_millis(250);
/// A clean close the server has not finished by then ends as a failure.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// What a run does.
pub struct Settings {
    pub clients: usize,
    /// The WebSocket addresses of the nodes; each (re)connect picks one.
    pub nodes: Vec<SocketAddrV4>,
    /// `herald.v1` with positions (else seed clients).
    pub resume: bool,
    /// Mean time between two drops of a client.
    pub drop_mean: Duration,
    /// Reconnect delays are uniform in 0..=this.
    pub reconnect_max: Duration,
    /// Pushes per second, each to a random client.
    pub rate: f64,
    pub broadcasts_per_s: f64,
    /// First connections in flight while binding.
    pub window: usize,
}

/// What happened to the clients.
#[derive(Debug, Default)]
pub struct Counts {
    pub drops_clean: u64,
    pub drops_reset: u64,
    /// Connections the server ended (a close frame, or TCP without one).
    pub server_closes: u64,
    /// Of which close frames with status 1012 (service restart).
    pub restart_closes: u64,
    pub connect_failures: u64,
    /// Connects after a client's first.
    pub reconnects: u64,
    /// `s` lines by status: new, ok, lost, off.
    pub statuses: [u64; 4],
    /// Offsets skipped between two lines of a stream (messages missed).
    pub skipped: u64,
    /// `m` lines whose offset did not advance.
    pub repeated: u64,
    /// Messages that broke the protocol, and the first reason.
    pub bad: u64,
    pub first_bad: Option<String>,
    pub first_failure: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Drop,
    Reconnect,
}

#[derive(Default)]
struct Member {
    /// A socket exists (connecting, open or closing).
    live: bool,
    open: bool,
    bound: bool,
    /// The first connect has opened or failed.
    first_done: bool,
    /// The generation of the one timer that counts.
    generation: u32,
    positions: Positions,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Opening and binding every client; no drops, no pushes.
    Bind,
    /// The measured window: drops and pushes.
    Window { start: Instant, end: Instant },
    /// Reconnects only.
    Settle,
}

type Timer = Reverse<(Instant, usize, u32, Action)>;

/// The population of a run and its backend (see the module docs).
pub struct Churn {
    s: Settings,
    members: Vec<Member>,
    timers: BinaryHeap<Timer>,
    rng: Rng,
    stage: Stage,
    pub tally: Tally,
    pub counts: Counts,
    pub backend: Backend,
    /// Opened since the last poll, waiting for their hello.
    opened: Vec<usize>,
    /// First connects not yet open or failed, and the next to start.
    first_in_flight: usize,
    next_first: usize,
    bound: usize,
    next_check: Instant,
}

impl Churn {
    pub fn new(s: Settings, backend: Backend, seed: u64) -> Churn {
        Churn {
            members: (0..s.clients).map(|_| Member::default()).collect(),
            tally: Tally::new(s.clients),
            s,
            timers: BinaryHeap::new(),
            rng: Rng::new(seed),
            stage: Stage::Bind,
            counts: Counts::default(),
            backend,
            opened: Vec::new(),
            first_in_flight: 0,
            next_first: 0,
            bound: 0,
            next_check: Instant::now(),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.s
    }

    /// Clients open now.
    pub fn open_now(&self) -> usize {
        self.members.iter().filter(|m| m.open).count()
    }

    /// Clients bound so far (each once), for progress reports.
    pub fn bound(&self) -> usize {
        self.bound
    }

    /// Starts the measured window, `length` long, from now: every open
    /// client gets its first drop time.
    pub fn start_window(&mut self, length: Duration) {
        let start = Instant::now();
        self.stage = Stage::Window {
            start,
            end: start + length,
        };
        for i in 0..self.members.len() {
            if self.members[i].open {
                self.schedule_drop(i, start);
            }
        }
    }

    /// Ends the window: the pushes and broadcasts still due are sent, and
    /// from now on clients only reconnect.
    pub fn start_settle(&mut self) {
        if let Stage::Window { end, .. } = self.stage {
            self.pace(end);
        }
        self.stage = Stage::Settle;
    }

    fn schedule(&mut self, i: usize, at: Instant, action: Action) {
        let m = &mut self.members[i];
        m.generation = m.generation.wrapping_add(1);
        self.timers.push(Reverse((at, i, m.generation, action)));
    }

    fn schedule_drop(&mut self, i: usize, now: Instant) {
        let at = now + self.rng.exp(self.s.drop_mean);
        self.schedule(i, at, Action::Drop);
    }

    fn schedule_reconnect(&mut self, i: usize, now: Instant) {
        let at = now + self.rng.upto(self.s.reconnect_max);
        self.schedule(i, at, Action::Reconnect);
    }

    /// Connects client `i` to a random node.
    fn connect(&mut self, fleet: &mut Fleet, i: usize, now: Instant) {
        let node = self.s.nodes[self.rng.below(self.s.nodes.len())];
        match fleet.connect_to(i, node) {
            Ok(()) => self.members[i].live = true,
            Err(e) => {
                self.counts.connect_failures += 1;
                self.counts.first_failure.get_or_insert(e);
                self.schedule_reconnect(i, now);
            }
        }
    }

    /// Sends the pushes and broadcasts due by `now` (within the window),
    /// each line on its own.
    fn pace(&mut self, now: Instant) {
        let Stage::Window { start, end } = self.stage else {
            return;
        };
        let elapsed = (now.min(end) - start).as_secs_f64();
        let pushes = (elapsed * self.s.rate) as usize;
        while self.tally.pushes() < pushes {
            let to = self.rng.below(self.s.clients);
            let seq = self.tally.push(to);
            self.backend.send(proto::push_line(to, seq).as_bytes());
        }
        // Broadcasts half a period into each period: 0.5 s, 1.5 s, ...
        let broadcasts = (elapsed * self.s.broadcasts_per_s + 0.5) as usize;
        while self.tally.broadcasts() < broadcasts {
            let seq = self.tally.broadcast();
            self.backend.send(proto::broadcast_line(seq).as_bytes());
        }
    }

    /// Runs the timers due by `now`.
    fn fire(&mut self, fleet: &mut Fleet, now: Instant) {
        while let Some(&Reverse((at, i, generation, action))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            if self.members[i].generation != generation {
                continue;
            }
            match action {
                Action::Reconnect if !self.members[i].live => {
                    self.counts.reconnects += 1;
                    self.connect(fleet, i, now);
                }
                Action::Drop
                    if self.members[i].open && matches!(self.stage, Stage::Window { .. }) =>
                {
                    self.members[i].open = false;
                    if self.rng.coin() {
                        // The Closed event schedules the reconnect.
                        self.counts.drops_clean += 1;
                        fleet.send_close(i);
                    } else {
                        self.counts.drops_reset += 1;
                        fleet.reset(i);
                        self.members[i].live = false;
                        self.schedule_reconnect(i, now);
                    }
                }
                _ => {}
            }
        }
    }

    /// While binding: first connects up to the window, and once every
    /// client is bound, the question whether the server sees them all.
    fn bind_more(&mut self, fleet: &mut Fleet, now: Instant) {
        while self.first_in_flight < self.s.window && self.next_first < self.s.clients {
            let i = self.next_first;
            self.next_first += 1;
            self.first_in_flight += 1;
            self.connect(fleet, i, now);
            if !self.members[i].live {
                self.first_over(i);
            }
        }
        if self.bound == self.s.clients && now >= self.next_check {
            self.backend.send(b"{\"count\":true}\n");
            self.next_check = now + EVERY;
        }
    }

    /// Says hello on the connections that just opened.
    fn greet(&mut self, fleet: &mut Fleet, now: Instant) {
        let opened = std::mem::take(&mut self.opened);
        for &i in &opened {
            let m = &mut self.members[i];
            if !m.open {
                continue;
            }
            let hello = if self.s.resume {
                m.positions.hello(i)
            } else {
                proto::uid(i)
            };
            fleet.send_text(i, hello.as_bytes());
            if !self.s.resume && !m.bound {
                m.bound = true;
                self.bound += 1;
            }
            if matches!(self.stage, Stage::Window { .. }) {
                self.schedule_drop(i, now);
            }
        }
        self.opened = opened;
        self.opened.clear();
    }

    fn heard(&mut self, i: usize, msg: &[u8]) {
        let payload = if self.s.resume {
            let m = &mut self.members[i];
            match m.positions.hear(i, msg) {
                Heard::Status(_, status) => {
                    self.counts.statuses[status as usize] += 1;
                    if !m.bound && m.positions.both_announced() {
                        m.bound = true;
                        self.bound += 1;
                    }
                    return;
                }
                Heard::Message {
                    payload,
                    skipped,
                    repeated,
                    ..
                } => {
                    self.counts.skipped += skipped;
                    self.counts.repeated += u64::from(repeated);
                    payload
                }
                Heard::Bad(why) => {
                    self.counts.bad += 1;
                    self.counts.first_bad.get_or_insert_with(|| {
                        format!("{why}: {:?}", String::from_utf8_lossy(msg))
                    });
                    return;
                }
            }
        } else {
            msg
        };
        match proto::sent_of(payload) {
            Some(Sent::Push(seq)) => self.tally.got_push(i, seq),
            Some(Sent::Broadcast(seq)) => self.tally.got_broadcast(i, seq),
            None => self.tally.unknown += 1,
        }
    }

    /// Client `i`'s first connect opened or failed: room for another.
    fn first_over(&mut self, i: usize) {
        let m = &mut self.members[i];
        if !m.first_done {
            m.first_done = true;
            self.first_in_flight -= 1;
        }
    }

    fn closed(&mut self, i: usize, requested: bool, why: &str) {
        let m = &mut self.members[i];
        m.live = false;
        m.open = false;
        self.first_over(i);
        if !requested {
            if why.starts_with("connect") {
                self.counts.connect_failures += 1;
            } else {
                self.counts.server_closes += 1;
            }
            if why.contains("(1012") {
                self.counts.restart_closes += 1;
            }
            self.counts
                .first_failure
                .get_or_insert_with(|| why.to_string());
        }
        self.schedule_reconnect(i, Instant::now());
    }
}

impl Phase for Churn {
    fn on(&mut self, ev: Event<'_>) {
        match ev {
            Event::Open(i) => {
                self.members[i].open = true;
                self.first_over(i);
                self.opened.push(i);
            }
            Event::Message(i, msg) => self.heard(i, msg),
            Event::Closed(i, end) => self.closed(i, end.requested, &end.why),
            Event::Line(_) | Event::TextClosed(_) => {}
        }
    }

    /// Binding is done once every client is bound and the server counts
    /// them all online; the window and the settle period run to their
    /// deadline.
    fn done(&self) -> bool {
        self.stage == Stage::Bind
            && self.bound == self.s.clients
            && self
                .backend
                .replies
                .online_uids
                .is_some_and(|u| u >= self.s.clients as u64)
    }

    fn before_poll(&mut self, fleet: &mut Fleet, left: Duration) -> Result<i32, String> {
        let now = Instant::now();
        self.fire(fleet, now);
        match self.stage {
            Stage::Bind => self.bind_more(fleet, now),
            Stage::Window { .. } => self.pace(now),
            Stage::Settle => {}
        }
        self.backend.poll();
        // Pushes go out one by one as they fall due: a short poll then.
        let ms = if matches!(self.stage, Stage::Window { .. }) {
            1
        } else {
            5
        };
        Ok(left.as_millis().clamp(1, ms) as i32)
    }

    fn after_poll(&mut self, fleet: &mut Fleet) -> Result<(), String> {
        let now = Instant::now();
        self.greet(fleet, now);
        if now >= self.next_check && self.stage != Stage::Bind {
            self.next_check = now + EVERY;
            fleet.expire_closing(CLOSE_TIMEOUT, &mut |ev| self.on(ev));
        }
        Ok(())
    }
}
