//! `broadcast`: one client sends `all:<payload>` M times back-to-back; the
//! time until each of the N bound clients has all M gives deliveries/s.

use crate::cli::{flag, Args, Flag};
use crate::fleet::{Event, Fleet};
use crate::report::{fmt_num, median, median_of, put_median, put_run, Reporter};
use crate::wait::Phase;
use crate::{check_fd_budget, label_of, params, Common};
use serde_json::{json, Map};
use std::time::{Duration, Instant};

pub const ABOUT: &str = "client-routed `all:` fan-out to N bound clients (deliveries/s)";

pub const FLAGS: &[Flag] = &[
    flag("--ws", None, "WebSocket address of the server (required)"),
    flag("--conns", Some("10000"), "bound receiving clients"),
    flag(
        "--messages",
        Some("100"),
        "broadcasts per run, sent back-to-back",
    ),
    flag("--size", Some("64"), "payload bytes each client receives"),
    crate::cli::RUNS,
    crate::cli::LABEL,
    crate::cli::TIMEOUT,
    crate::cli::WINDOW,
    crate::cli::SOURCES,
    crate::cli::SERVER_STATS,
];

pub fn run(a: &mut Args) -> Result<(), String> {
    let ws = a.addr("--ws")?;
    let n: usize = a.num("--conns")?;
    let messages: usize = a.num("--messages")?;
    let size: usize = a.num("--size")?;
    let runs: usize = a.num("--runs")?;
    let api = a.opt_addr("--stats")?;
    if n == 0 || messages == 0 || runs == 0 || size < 2 {
        return Err("--conns, --messages and --runs must be at least 1, --size at least 2".into());
    }
    check_fd_budget(n + 1)?;
    let common = Common::from_args(a, n + 1, ws)?;
    let label = label_of(a, None);
    let rep = Reporter {
        mode: "broadcast",
        label,
        command: a.command_line(),
        params: params(a, &["--conns", "--messages", "--size"]),
    };
    rep.start();

    let mut fleet = Fleet::new(ws, common.sources.clone()).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    // Slots 0..n are the receivers u0..; slot n is the sender.
    fleet.open_bound(0, n, &|i| format!("u{i}"), common.window, common.deadline())?;
    let sender = fleet.len();
    fleet.open_bound(sender, 1, &|_| "sender".to_string(), 1, common.deadline())?;
    println!(
        "{n} receivers and 1 sender open in {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    sync(&mut fleet, n, sender, &common)?;

    let mut values = Vec::new();
    let mut per_write_values = Vec::new();
    for run in 1..=runs {
        // The payload every client receives: a tag byte, the run, filler.
        let mut payload = format!("m{run}:").into_bytes();
        payload.resize(size, b'x');
        let mut frame = b"all:".to_vec();
        frame.extend_from_slice(&payload);
        let frames = vec![frame; messages];
        let mut d = Deliveries {
            n,
            payload: &payload,
            got: vec![0u32; n],
            delivered: 0,
            malformed: 0,
            closed: None,
            last: Instant::now(),
            expected: n * messages,
        };
        let writes_before = crate::cli::server_writes(api);
        let start = Instant::now();
        fleet.send_texts(sender, &frames);
        let _ = fleet.wait(start + common.timeout, &mut d)?;
        let Deliveries {
            got,
            delivered,
            malformed,
            closed,
            last,
            expected,
            ..
        } = d;
        let done = delivered >= expected;
        if let Some(why) = closed {
            return Err(format!(
                "run {run}: the server closed a client after {delivered} of {expected} deliveries: {why}"
            ));
        }
        if !done {
            let short = got.iter().filter(|&&g| (g as usize) < messages).count();
            return Err(format!(
                "run {run}: timed out after {} s with {delivered} of {expected} deliveries \
                 ({short} clients short, {malformed} malformed)",
                common.timeout.as_secs()
            ));
        }
        let elapsed = (last - start).as_secs_f64();
        let rate = expected as f64 / elapsed;
        println!(
            "run {run}: {expected} deliveries ({n} clients x {messages} messages of {size} B) \
             in {:.3} s = {} deliveries/s{}",
            elapsed,
            fmt_num(rate),
            if malformed > 0 {
                format!(" ({malformed} MALFORMED)")
            } else {
                String::new()
            }
        );
        let per_write = crate::cli::report_writes(writes_before, crate::cli::server_writes(api));
        let mut extra = Map::new();
        put_run(
            &mut extra,
            "messages_per_write",
            per_write,
            &mut per_write_values,
        );
        extra.insert("elapsed_s".into(), json!(elapsed));
        extra.insert("deliveries".into(), json!(expected));
        extra.insert("malformed".into(), json!(malformed));
        rep.run(run, rate, "deliveries/s", extra);
        values.push(rate);
        // Let the sender's own copies drain before the next run.
        fleet.pump(Duration::from_millis(200), &mut |_| {})?;
    }
    let mut extra = Map::new();
    extra.insert("runs".into(), json!(values));
    put_median(&mut extra, "messages_per_write", &per_write_values);
    rep.result(&median_of(runs), median(&values), "deliveries/s", extra);
    Ok(())
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
            Event::Message(i, m) if i < self.n && m.first() == Some(&b'm') => {
                if m == self.payload {
                    self.got[i] += 1;
                    self.delivered += 1;
                    self.last = Instant::now();
                } else {
                    self.malformed += 1;
                }
            }
            Event::Closed(i, end) => {
                self.closed
                    .get_or_insert_with(|| format!("connection {i}: {}", end.why));
            }
            _ => {}
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
            Event::Closed(i, end) => {
                self.closed
                    .get_or_insert_with(|| format!("connection {i}: {}", end.why));
            }
            _ => {}
        }
    }

    /// A round ends when all are synced or nothing new came for 300 ms.
    fn done(&self) -> bool {
        self.count >= self.n
            || self.closed.is_some()
            || self.last_new.elapsed() >= Duration::from_millis(300)
    }
}
