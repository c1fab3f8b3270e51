//! `latency`: pushes at a fixed rate through the text port, each line
//! carrying its send time; the receiving client computes send-to-receive
//! latency. Prints p50/p99/p99.9/max in microseconds.

use crate::cli::{flag, Args, Flag};
use crate::fleet::{Event, Fleet};
use crate::push::open_clients;
use crate::report::{fmt_num, median, median_of, percentile, Reporter};
use crate::wait::Phase;
use crate::{check_fd_budget, label_of, params, Common};
use serde_json::{json, Map};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

pub const ABOUT: &str = "send-to-receive latency of paced text-port pushes (p50/p99/p99.9/max)";

pub const FLAGS: &[Flag] = &[
    flag("--ws", None, "WebSocket address of the server (required)"),
    flag("--text", None, "text port address of the server (required)"),
    flag("--conns", Some("1000"), "bound clients u0..u(N-1)"),
    flag("--rate", Some("5000"), "pushes per second"),
    flag("--seconds", Some("5"), "seconds of pushing per run"),
    flag(
        "--runs",
        Some("1"),
        "measured runs (the median of each figure is the result)",
    ),
    crate::cli::LABEL,
    crate::cli::TIMEOUT,
    crate::cli::WINDOW,
    crate::cli::SOURCES,
];

/// Time left after the last send for the last deliveries to arrive.
const DRAIN: Duration = Duration::from_secs(5);

pub fn run(a: &mut Args) -> Result<(), String> {
    let ws = a.addr("--ws")?;
    let text = a.addr("--text")?;
    let n: usize = a.num("--conns")?;
    let rate: f64 = a.num("--rate")?;
    let seconds: f64 = a.num("--seconds")?;
    let runs: usize = a.num("--runs")?;
    // Written so that NaN fails too.
    let positive = rate.is_finite() && rate >= 1.0 && seconds.is_finite() && seconds > 0.0;
    if n == 0 || runs == 0 || !positive {
        return Err("--conns, --runs, --rate and --seconds must be positive".into());
    }
    check_fd_budget(n + 1)?;
    let common = Common::from_args(a, n, ws)?;
    let rep = Reporter {
        mode: "latency",
        label: label_of(a, None),
        command: a.command_line(),
        params: params(a, &["--conns", "--rate", "--seconds"]),
    };
    rep.start();
    let mut fleet = open_clients(ws, text, n, &common)?;
    let total = (rate * seconds).round() as usize;
    // Send times are nanoseconds since this instant; the receiver reads the
    // same clock (one process), so no clock sync is involved.
    let epoch = Instant::now();
    let mut figures: Vec<[f64; 4]> = Vec::new();
    for run in 1..=runs {
        let mut t = Tally {
            epoch,
            lat_ns: Vec::with_capacity(total),
            sent: 0,
            replies: 0,
            ok: 0,
            bad: 0,
            stop: None,
        };
        let line = String::with_capacity(64 * 16);
        let start = Instant::now();
        let mut pacer = Pacer {
            t: &mut t,
            start,
            rate,
            total,
            n,
            max_lag: Duration::ZERO,
            line,
        };
        let send_deadline = start + Duration::from_secs_f64(seconds) + common.timeout;
        let _ = fleet.wait(send_deadline, &mut pacer)?;
        let max_lag = pacer.max_lag;
        let _ = fleet.wait(Instant::now() + DRAIN, &mut t)?;
        let Tally {
            mut lat_ns,
            sent,
            replies,
            ok,
            bad,
            stop,
            ..
        } = t;
        if let Some(why) = stop {
            return Err(format!("run {run}: {why}"));
        }
        let missing = ok.saturating_sub(lat_ns.len() + bad);
        lat_ns.sort_unstable();
        let us = |q: f64| percentile(&lat_ns, q) as f64 / 1000.0;
        let f = [us(0.5), us(0.99), us(0.999), us(1.0)];
        println!(
            "run {run}: {sent} pushes at {} /s to {n} clients: {} received, {} fail replies, \
             {missing} missing{}",
            fmt_num(rate),
            lat_ns.len(),
            replies.saturating_sub(ok),
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
        if sent < total {
            return Err(format!(
                "run {run}: only {sent} of {total} pushes were sent in time"
            ));
        }
        let mut extra = figure_map(&f);
        extra.insert("received".into(), json!(lat_ns.len()));
        extra.insert("missing".into(), json!(missing));
        extra.insert(
            "max_send_lag_ms".into(),
            json!(max_lag.as_secs_f64() * 1000.0),
        );
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

/// What one run has sent and seen so far; as a phase, the drain after the
/// last send: until every reply and every delivery has arrived.
struct Tally {
    /// The clock of the send times in the lines.
    epoch: Instant,
    lat_ns: Vec<u64>,
    sent: usize,
    replies: usize,
    ok: usize,
    /// Delivered messages without a readable `"t"`.
    bad: usize,
    stop: Option<String>,
}

impl Phase for Tally {
    fn on(&mut self, ev: Event<'_>) {
        match ev {
            Event::Message(_, m) => match sent_at(m) {
                Some(t) => {
                    let now = self.epoch.elapsed().as_nanos() as u64;
                    self.lat_ns.push(now.saturating_sub(t));
                }
                None => self.bad += 1,
            },
            Event::Line(l) => {
                self.replies += 1;
                if l.starts_with(b"ok") {
                    self.ok += 1;
                }
            }
            Event::Closed(i, end) => {
                self.stop
                    .get_or_insert_with(|| format!("connection {i}: {}", end.why));
            }
            Event::TextClosed(why) => {
                self.stop.get_or_insert_with(|| why.into_owned());
            }
            Event::Open(_) => {}
        }
    }

    fn done(&self) -> bool {
        (self.replies >= self.sent && self.lat_ns.len() + self.bad >= self.ok)
            || self.stop.is_some()
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
        self.t.sent >= self.total || self.t.stop.is_some()
    }

    /// Sends what fell due, then sleeps until the next line is due (at most
    /// 10 ms, rounded up, whatever the deadline).
    fn before_poll(&mut self, fleet: &mut Fleet, _left: Duration) -> Result<i32, String> {
        let sent = self.t.sent;
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
            self.t.sent = due;
        }
        let next = self.start + Duration::from_secs_f64(self.t.sent as f64 / self.rate);
        let wait = next.saturating_duration_since(Instant::now());
        Ok(wait.as_micros().div_ceil(1000).min(10) as i32)
    }
}

fn figure_map(f: &[f64; 4]) -> Map<String, serde_json::Value> {
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
