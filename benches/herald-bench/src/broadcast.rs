//! `broadcast`: one client sends `all:<payload>` M times back-to-back; the
//! time until each of the N bound clients has all M gives deliveries/s.

use crate::cli::{self, flag, Args, Common, Mode};
use crate::event::Event;
use crate::fleet::Fleet;
use crate::host::check_fd_budget;
use crate::open::{check_deflate, open_bound, uid};
use crate::payload::json_doc;
use crate::report::fmt_num;
use crate::series::{Measured, Series};
use crate::wait::Phase;
use serde_json::json;
use std::time::{Duration, Instant};

pub const MODE: Mode = Mode {
    name: "broadcast",
    about: "client-routed `all:` fan-out to N bound clients (deliveries/s)",
    flags: &[
        cli::WS,
        flag("--conns", Some("10000"), "bound receiving clients"),
        flag(
            "--messages",
            Some("100"),
            "broadcasts per run, sent back-to-back",
        ),
        flag("--size", Some("64"), "payload bytes each client receives"),
        cli::JSON,
        cli::DEFLATE,
        cli::RUNS,
        cli::LABEL,
        cli::TIMEOUT,
        cli::WINDOW,
        cli::SOURCES,
        cli::SERVER_PID,
        cli::SERVER_STATS,
    ],
    run,
};

/// What every run does: `messages` broadcasts of `size` bytes (filler, or
/// a JSON document of about `size` bytes) from client `sender` to clients
/// 0..n.
struct Fanout {
    n: usize,
    messages: usize,
    size: usize,
    json: bool,
    sender: usize,
    timeout: Duration,
}

fn run(a: &mut Args) -> Result<(), String> {
    let ws = a.addr("--ws")?;
    let [n, messages, runs] = a.positive(["--conns", "--messages", "--runs"])?;
    let json = a.opt_num::<usize>("--json")?;
    if json.is_some() {
        if a.given("--size") {
            return Err("--size and --json exclude each other".into());
        }
        a.unset("--size");
    }
    let size: usize = json.map_or_else(|| a.num("--size"), Ok)?;
    if size < 2 {
        return Err("--size must be at least 2 (a tag byte and the run)".into());
    }
    check_fd_budget(n + 1)?;
    let common = Common::from_args(a, n + 1, ws)?;
    let table_params = ["--conns", "--messages", "--size", "--json", "--deflate"];
    let mut series = Series::start(a, &table_params, "deliveries/s", "deliveries")?;

    let mut fleet = Fleet::new(ws, &common.sources)?;
    if common.deflate {
        fleet.offer_deflate();
    }
    let t0 = Instant::now();
    // Slots 0..n are the receivers u0..; slot n is the sender.
    open_bound(&mut fleet, 0, n, &uid, &common)?;
    let sender = fleet.len();
    open_bound(&mut fleet, sender, 1, &|_| "sender".to_string(), &common)?;
    println!(
        "{n} receivers and 1 sender open in {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    if let Some(k) = check_deflate(&fleet, n + 1, &common)? {
        series.note("deflate_clients", json!(k));
    }
    sync(&mut fleet, n, sender, &common)?;
    let fanout = Fanout {
        n,
        messages,
        size,
        json: json.is_some(),
        sender,
        timeout: common.timeout,
    };
    for run in 1..=runs {
        let (payload, frames) = fanout.frames(run);
        let before = series.before()?;
        let m = fanout.deliver(&mut fleet, run, &payload, &frames)?;
        series.record(run, before, m);
        // Let the sender's own copies drain before the next run.
        fleet.pump(Duration::from_millis(200), &mut |_| {})?;
    }
    series.finish();
    Ok(())
}

impl Fanout {
    /// The payload every client receives in run `run` (a tag byte, the run,
    /// filler; or the JSON document with the run as `seq`) and the frames
    /// the sender sends.
    fn frames(&self, run: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
        let payload = if self.json {
            json_doc(self.size, run).into_bytes()
        } else {
            let mut filler = format!("m{run}:").into_bytes();
            filler.resize(self.size, b'x');
            filler
        };
        let mut frame = b"all:".to_vec();
        frame.extend_from_slice(&payload);
        (payload, vec![frame; self.messages])
    }

    /// Sends `frames` and waits until every receiver has every copy of
    /// `payload`.
    fn deliver(
        &self,
        fleet: &mut Fleet,
        run: usize,
        payload: &[u8],
        frames: &[Vec<u8>],
    ) -> Result<Measured, String> {
        let (n, messages) = (self.n, self.messages);
        let mut d = Deliveries {
            n,
            payload,
            got: vec![0u32; n],
            delivered: 0,
            malformed: 0,
            closed: None,
            last: Instant::now(),
            expected: n * messages,
        };
        let wire_before = fleet.wire_bytes(0..n);
        let start = Instant::now();
        fleet.send_texts(self.sender, frames);
        let _ = fleet.wait(start + self.timeout, &mut d)?;
        let wire = fleet.wire_bytes(0..n) - wire_before;
        let Deliveries {
            got,
            delivered,
            malformed,
            closed,
            last,
            expected,
            ..
        } = d;
        if let Some(why) = closed {
            return Err(format!(
                "run {run}: the server closed a client after {delivered} of {expected} deliveries: {why}"
            ));
        }
        if delivered < expected {
            let short = got.iter().filter(|&&g| (g as usize) < messages).count();
            return Err(format!(
                "run {run}: timed out after {} s with {delivered} of {expected} deliveries \
                 ({short} clients short, {malformed} malformed)",
                self.timeout.as_secs()
            ));
        }
        let counts = [("deliveries", expected), ("malformed", malformed)];
        let m = Measured::new((last - start).as_secs_f64(), expected, &counts).with_wire(wire);
        println!(
            "run {run}: {expected} deliveries ({n} clients x {messages} messages of {} B{}) \
             in {:.3} s = {} deliveries/s{}",
            payload.len(),
            if self.json { " of JSON" } else { "" },
            m.elapsed,
            fmt_num(m.rate()),
            if malformed > 0 {
                format!(" ({malformed} MALFORMED)")
            } else {
                String::new()
            }
        );
        Ok(m)
    }
}

/// Broadcasts `s<k>` from the sender until every receiver got one: then all
/// N are bound (a server binds on the first message, which it may not have
/// read yet when the handshake completed).
fn sync(fleet: &mut Fleet, n: usize, sender: usize, common: &Common) -> Result<(), String> {
    let mut s = Sync {
        n,
        synced: vec![false; n],
        count: 0,
        last_new: Instant::now(),
        closed: None,
    };
    let deadline = common.deadline();
    for round in 0.. {
        fleet.send_text(sender, format!("all:s{round}").as_bytes());
        s.last_new = Instant::now();
        let _ = fleet.wait(deadline, &mut s)?;
        if let Some(why) = s.closed.take() {
            return Err(format!("while checking that all clients are bound: {why}"));
        }
        if s.count == n {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "only {} of {n} clients receive `all:` broadcasts after {round} rounds \
                 (herald needs --routing)",
                s.count
            ));
        }
    }
    Ok(())
}

/// One measured run: receivers 0..n count the copies of `payload`.
struct Deliveries<'p> {
    n: usize,
    payload: &'p [u8],
    /// Copies received, per receiver.
    got: Vec<u32>,
    delivered: usize,
    /// Messages of this run that are not `payload`.
    malformed: usize,
    closed: Option<String>,
    /// When the latest copy arrived.
    last: Instant,
    expected: usize,
}

impl Phase for Deliveries<'_> {
    fn on(&mut self, ev: Event<'_>) {
        match ev {
            // Anything but a late `s<k>` is a copy of this run's payload.
            Event::Message(i, m) if i < self.n && m.first() != Some(&b's') => {
                if m == self.payload {
                    self.got[i] += 1;
                    self.delivered += 1;
                    self.last = Instant::now();
                } else {
                    self.malformed += 1;
                }
            }
            ev => ev.note_end(&mut self.closed),
        }
    }

    fn done(&self) -> bool {
        self.delivered >= self.expected || self.closed.is_some()
    }
}

/// [`sync`]: which receivers got an `s<k>` broadcast so far.
struct Sync {
    n: usize,
    synced: Vec<bool>,
    count: usize,
    /// When a receiver was last seen for the first time (or the round began).
    last_new: Instant,
    closed: Option<String>,
}

impl Phase for Sync {
    fn on(&mut self, ev: Event<'_>) {
        match ev {
            Event::Message(i, m) if i < self.n && m.first() == Some(&b's') && !self.synced[i] => {
                self.synced[i] = true;
                self.count += 1;
                self.last_new = Instant::now();
            }
            ev => ev.note_end(&mut self.closed),
        }
    }

    /// A round ends when all are synced or nothing new came for 300 ms.
    fn done(&self) -> bool {
        self.count >= self.n
            || self.closed.is_some()
            || self.last_new.elapsed() >= Duration::from_millis(300)
    }
}
