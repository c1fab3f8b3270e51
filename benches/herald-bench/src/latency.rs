//! `latency`: pushes at a fixed rate through the text port, each line
//! carrying its send time; the receiving client computes send-to-receive
//! latency. Prints p50/p99/p99.9/max in microseconds.

use crate::cli::{self, flag, Args, Common, Mode};
use crate::event::Event;
use crate::fleet::Fleet;
use crate::host::check_fd_budget;
use crate::report::{fmt_num, median, median_of, percentile, Reporter};
use crate::textport::{open_clients, PushTally};
use crate::wait::Phase;
use serde_json::{json, Map, Value};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

pub const MODE: Mode = Mode {
    name: "latency",
    about: "send-to-receive latency of paced text-port pushes (p50/p99/p99.9/max)",
    flags: &[
        cli::WS,
        cli::TEXT,
        flag("--conns", Some("1000"), "bound clients u0..u(N-1)"),
        flag("--rate", Some("5000"), "pushes per second"),
        flag("--seconds", Some("5"), "seconds of pushing per run"),
        flag(
            "--runs",
            Some("1"),
            "measured runs (the median of each figure is the result)",
        ),
        cli::LABEL,
        cli::TIMEOUT,
        cli::WINDOW,
        cli::SOURCES,
    ],
    run,
};

/// Time left after the last send for the last deliveries to arrive.
const DRAIN: Duration = Duration::from_secs(5);

/// The figures of a run, in microseconds: p50, p99, p99.9, max.
type Figures = [f64; 4];

/// What every run does: `rate` pushes a second for `seconds` to clients
/// u0..u(n-1), round-robin.
struct Paced {
    n: usize,
    rate: f64,
    seconds: f64,
    timeout: Duration,
    /// Send times are nanoseconds since this instant; the receiver reads the
    /// same clock (one process), so no clock sync is involved.
    epoch: Instant,
}

fn run(a: &mut Args) -> Result<(), String> {
    let ws = a.addr("--ws")?;
    let text = a.addr("--text")?;
    let [n, runs] = a.positive(["--conns", "--runs"])?;
    let rate: f64 = a.num("--rate")?;
    let seconds: f64 = a.num("--seconds")?;
    // Written so that NaN fails too.
    if !(rate.is_finite() && rate >= 1.0 && seconds.is_finite() && seconds > 0.0) {
        return Err("--rate must be at least 1 and --seconds above 0".into());
    }
    check_fd_budget(n + 1)?;
    let common = Common::from_args(a, n, ws)?;
    let rep = Reporter::start(a, &["--conns", "--rate", "--seconds"]);
    let mut fleet = open_clients(ws, text, n, &common)?;
    let paced = Paced {
        n,
        rate,
        seconds,
        timeout: common.timeout,
        epoch: Instant::now(),
    };
    let mut figures: Vec<Figures> = Vec::new();
    for run in 1..=runs {
        let (f, extra) = paced.one_run(&mut fleet, run)?;
        rep.run(run, f[1], "p99 latency µs", extra);
        figures.push(f);
        fleet.pump(Duration::from_millis(200), &mut |_| {})?;
    }
    let med: Vec<f64> = (0..4)
        .map(|k| median(&figures.iter().map(|f| f[k]).collect::<Vec<_>>()))
        .collect();
    let f = [med[0], med[1], med[2], med[3]];
    println!(
        "median of {runs}: p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us",
        f[0], f[1], f[2], f[3]
    );
    rep.result(&median_of(runs), f[1], "p99 latency µs", figure_map(&f));
    Ok(())
}

impl Paced {
    /// Sends run `run`'s pushes on schedule, waits for the last ones, and
    /// returns the run's figures and the extra fields of its JSON line.
    fn one_run(
        &self,
        fleet: &mut Fleet,
        run: usize,
    ) -> Result<(Figures, Map<String, Value>), String> {
        let total = (self.rate * self.seconds).round() as usize;
        let mut t = Tally {
            pushes: PushTally::new(0),
            epoch: self.epoch,
            lat_ns: Vec::with_capacity(total),
        };
        let start = Instant::now();
        let mut pacer = Pacer {
            t: &mut t,
            start,
            rate: self.rate,
            total,
            n: self.n,
            max_lag: Duration::ZERO,
            line: String::with_capacity(64 * 16),
        };
        let send_deadline = start + Duration::from_secs_f64(self.seconds) + self.timeout;
        let _ = fleet.wait(send_deadline, &mut pacer)?;
        let max_lag = pacer.max_lag;
        let _ = fleet.wait(Instant::now() + DRAIN, &mut t)?;
        let Tally {
            pushes, mut lat_ns, ..
        } = t;
        if let Some(why) = pushes.stop {
            return Err(format!("run {run}: {why}"));
        }
        let missing = pushes.ok.saturating_sub(pushes.delivered);
        lat_ns.sort_unstable();
        let us = |q: f64| percentile(&lat_ns, q) as f64 / 1000.0;
        let f = [us(0.5), us(0.99), us(0.999), us(1.0)];
        self.print_run(run, &pushes, lat_ns.len(), &f, max_lag);
        if pushes.sent < total {
            return Err(format!(
                "run {run}: only {} of {total} pushes were sent in time",
                pushes.sent
            ));
        }
        let mut extra = figure_map(&f);
        extra.insert("received".into(), json!(lat_ns.len()));
        extra.insert("missing".into(), json!(missing));
        extra.insert(
            "max_send_lag_ms".into(),
            json!(max_lag.as_secs_f64() * 1000.0),
        );
        Ok((f, extra))
    }

    fn print_run(
        &self,
        run: usize,
        pushes: &PushTally,
        received: usize,
        f: &Figures,
        max_lag: Duration,
    ) {
        // Delivered messages without a readable `"t"`.
        let bad = pushes.delivered - received;
        println!(
            "run {run}: {} pushes at {} /s to {} clients: {received} received, {} fail replies, \
             {} missing{}",
            pushes.sent,
            fmt_num(self.rate),
            self.n,
            pushes.replies.saturating_sub(pushes.ok),
            pushes.ok.saturating_sub(pushes.delivered),
            if bad > 0 {
                format!(", {bad} unreadable")
            } else {
                String::new()
            }
        );
        println!(
            "run {run}: latency p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us \
             (sender lag behind schedule at most {:.1} ms)",
            f[0],
            f[1],
            f[2],
            f[3],
            max_lag.as_secs_f64() * 1000.0
        );
    }
}

/// What one run has sent and seen so far; as a phase, the drain after the
/// last send: until every reply and every delivery has arrived.
struct Tally {
    pushes: PushTally,
    /// The clock of the send times in the lines.
    epoch: Instant,
    /// Latencies of the deliveries with a readable `"t"`.
    lat_ns: Vec<u64>,
}

impl Phase for Tally {
    fn on(&mut self, ev: Event<'_>) {
        if let Some(t) = self.pushes.count(ev).and_then(sent_at) {
            let now = (self.pushes.last_delivery - self.epoch).as_nanos() as u64;
            self.lat_ns.push(now.saturating_sub(t));
        }
    }

    fn done(&self) -> bool {
        self.pushes.done()
    }
}

/// The sending part of a run. Open loop: lines go out when due, whatever the
/// server answers, in batches of what fell due since the last wake-up (about
/// 1 ms).
struct Pacer<'t> {
    t: &'t mut Tally,
    start: Instant,
    rate: f64,
    total: usize,
    /// Uids u0..u(n-1), round-robin.
    n: usize,
    /// How far the sender fell behind its schedule, at most.
    max_lag: Duration,
    line: String,
}

impl Phase for Pacer<'_> {
    fn on(&mut self, ev: Event<'_>) {
        self.t.on(ev)
    }

    fn done(&self) -> bool {
        self.t.pushes.sent >= self.total || self.t.pushes.stop.is_some()
    }

    /// Sends what fell due, then sleeps until the next line is due (at most
    /// 10 ms, rounded up, whatever the deadline).
    fn before_poll(&mut self, fleet: &mut Fleet, _left: Duration) -> Result<i32, String> {
        let sent = self.t.pushes.sent;
        let elapsed = self.start.elapsed();
        let due = ((elapsed.as_secs_f64() * self.rate) as usize + 1).min(self.total);
        if due > sent {
            let intended = Duration::from_secs_f64(sent as f64 / self.rate);
            self.max_lag = self.max_lag.max(elapsed.saturating_sub(intended));
            self.line.clear();
            for k in sent..due {
                let ns = self.t.epoch.elapsed().as_nanos() as u64;
                let _ = writeln!(self.line, "{{\"uid\":\"u{}\",\"t\":{ns}}}", k % self.n);
            }
            fleet.text_send(self.line.as_bytes());
            self.t.pushes.sent = due;
        }
        let next = self.start + Duration::from_secs_f64(self.t.pushes.sent as f64 / self.rate);
        let wait = next.saturating_duration_since(Instant::now());
        Ok(wait.as_micros().div_ceil(1000).min(10) as i32)
    }
}

fn figure_map(f: &Figures) -> Map<String, Value> {
    let mut m = Map::new();
    for (k, name) in ["p50_us", "p99_us", "p999_us", "max_us"].iter().enumerate() {
        m.insert((*name).into(), json!((f[k] * 10.0).round() / 10.0));
    }
    m
}

/// The `"t":<ns>` field of a delivered line.
fn sent_at(msg: &[u8]) -> Option<u64> {
    let at = memchr::memmem::find(msg, b"\"t\":")? + 4;
    let digits = msg[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&msg[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_send_time() {
        assert_eq!(super::sent_at(br#"{"uid":"u7","t":123456}"#), Some(123456));
        assert_eq!(super::sent_at(br#"{"uid":"u7"}"#), None);
    }
}
