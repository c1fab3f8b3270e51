//! `push`: one text-port connection writes L pipelined seed lines to N bound
//! clients (round-robin uids); pushes delivered/s until every reply and every
//! message arrived, each message checked against its line. By default the
//! lines go in one write (the server reads them in large batches); with
//! `--in-flight W` each line is its own write, at most W unanswered, as a
//! backend that sends one push per call does.

use crate::cli::{self, flag, Args, Common, Mode};
use crate::event::Event;
use crate::fleet::Fleet;
use crate::host::check_fd_budget;
use crate::payload::json_doc;
use crate::report::fmt_num;
use crate::series::{Measured, Series};
use crate::textport::{open_clients, PushTally};
use crate::wait::{slice_ms, Phase};
use serde_json::json;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

pub const MODE: Mode = Mode {
    name: "push",
    about: "pipelined text-port pushes to N bound clients (pushes delivered/s)",
    flags: &[
        cli::WS,
        cli::TEXT,
        flag("--conns", Some("10000"), "bound clients u0..u(N-1)"),
        flag("--lines", Some("50000"), "push lines per run, pipelined"),
        flag(
            "--in-flight",
            None,
            "one write per line, at most W lines unanswered (default: all lines in one write)",
        ),
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

fn run(a: &mut Args) -> Result<(), String> {
    let ws = a.addr("--ws")?;
    let text = a.addr("--text")?;
    let [n, lines, runs] = a.positive(["--conns", "--lines", "--runs"])?;
    check_fd_budget(n + 1)?;
    let common = Common::from_args(a, n, ws)?;
    let table_params = ["--conns", "--lines", "--in-flight", "--json", "--deflate"];
    let mut series = Series::start(a, &table_params, "pushes delivered/s", "pushes")?;
    let mut fleet = open_clients(ws, text, n, &common)?;
    if common.deflate {
        series.note("deflate_clients", json!(fleet.deflate_count()));
    }

    // The seed's line, or the JSON document's fields after the uid; uids
    // round-robin. A client receives its line whole.
    let fields = match a.opt_num::<usize>("--json")? {
        Some(size) => json_doc(size, 1)[1..].to_string(),
        None => "\"percent\":\"88%\"}".to_string(),
    };
    let mut batch = String::with_capacity(lines * (fields.len() + 16));
    for j in 0..lines {
        let _ = writeln!(batch, "{{\"uid\":\"u{}\",{fields}", j % n);
    }
    let expect = Lines {
        fields: fields.as_bytes(),
        n,
        lines,
        in_flight: a.opt_num::<usize>("--in-flight")?.filter(|&w| w > 0),
    };
    if let Some(w) = expect.in_flight {
        series.note("in_flight", json!(w));
    }
    for run in 1..=runs {
        let before = series.before()?;
        let m = expect.one_run(&mut fleet, run, &batch, common.timeout)?;
        series.record(run, before, m);
    }
    series.finish();
    Ok(())
}

/// What every run sends: `lines` lines `{"uid":"u<j mod n>",<fields>`.
struct Lines<'f> {
    fields: &'f [u8],
    n: usize,
    lines: usize,
    /// One write per line, at most this many unanswered.
    in_flight: Option<usize>,
}

impl Lines<'_> {
    /// Whether `m`, received by client `i`, is its line.
    fn is_line_of(&self, i: usize, m: &[u8]) -> bool {
        let Some(rest) = m.strip_prefix(b"{\"uid\":\"u") else {
            return false;
        };
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let uid = std::str::from_utf8(&rest[..digits]).ok();
        uid.and_then(|u| u.parse::<usize>().ok()) == Some(i)
            && rest[digits..].strip_prefix(b"\",") == Some(self.fields)
    }

    /// Writes `batch` (the run's lines) and waits until every reply and
    /// every delivery arrived.
    fn one_run(
        &self,
        fleet: &mut Fleet,
        run: usize,
        batch: &str,
        timeout: Duration,
    ) -> Result<Measured, String> {
        let (lines, n) = (self.lines, self.n);
        let mut t = Checked {
            tally: PushTally::new(lines),
            expect: self,
            malformed: 0,
            unsent: batch,
            written: 0,
        };
        let wire_before = fleet.wire_bytes(0..n);
        let start = Instant::now();
        if self.in_flight.is_none() {
            fleet.text_send(batch.as_bytes());
            t.unsent = "";
        }
        let _ = fleet.wait(start + timeout, &mut t)?;
        let wire = fleet.wire_bytes(0..n) - wire_before;
        let Checked {
            tally:
                PushTally {
                    replies,
                    ok,
                    fail,
                    delivered,
                    last_reply,
                    last_delivery,
                    stop,
                    ..
                },
            malformed,
            ..
        } = t;
        // Neither ok nor fail: `error ...` (a refusal, not an answer).
        let other = replies - ok - fail;
        if let Some(why) = stop {
            return Err(format!(
                "run {run}: {replies} of {lines} replies, {delivered} deliveries, then: {why}"
            ));
        }
        if replies < lines || delivered < ok {
            return Err(format!(
                "run {run}: timed out after {} s: {replies} of {lines} replies, \
                 {delivered} of {ok} deliveries",
                timeout.as_secs()
            ));
        }
        let elapsed = (last_reply.max(last_delivery) - start).as_secs_f64();
        let counts = [
            ("delivered", delivered),
            ("ok_replies", ok),
            ("fail_replies", fail),
            ("other_replies", other),
            ("malformed", malformed),
        ];
        let m = Measured::new(elapsed, delivered, &counts).with_wire(wire);
        println!(
            "run {run}: {lines} pushes to {n} clients, {delivered} delivered, replies {ok} ok, \
             {fail} fail, {other} other, in {:.3} s = {} pushes delivered/s{}",
            m.elapsed,
            fmt_num(m.rate()),
            if malformed > 0 {
                format!(" ({malformed} MALFORMED: not the line pushed to that client)")
            } else {
                String::new()
            }
        );
        Ok(m)
    }
}

/// A run's [`PushTally`], each delivery checked against its line.
struct Checked<'e> {
    tally: PushTally,
    expect: &'e Lines<'e>,
    malformed: usize,
    /// The lines not written yet, and how many were (`--in-flight`).
    unsent: &'e str,
    written: usize,
}

impl Phase for Checked<'_> {
    fn before_poll(&mut self, fleet: &mut Fleet, left: Duration) -> Result<i32, String> {
        if let Some(w) = self.expect.in_flight {
            while self.written - self.tally.replies.min(self.written) < w && !self.unsent.is_empty()
            {
                let end = self.unsent.find('\n').map_or(self.unsent.len(), |i| i + 1);
                fleet.text_send(&self.unsent.as_bytes()[..end]);
                self.unsent = &self.unsent[end..];
                self.written += 1;
            }
        }
        Ok(slice_ms(left))
    }

    fn on(&mut self, ev: Event<'_>) {
        if let Some((i, m)) = self.tally.count_to(ev) {
            if !self.expect.is_line_of(i, m) {
                self.malformed += 1;
            }
        }
    }

    fn done(&self) -> bool {
        self.tally.done()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_is_checked_against_the_line_of_its_client() {
        let fields = br#""percent":"88%"}"#;
        let l = Lines {
            fields,
            n: 20,
            lines: 40,
            in_flight: None,
        };
        assert!(l.is_line_of(12, br#"{"uid":"u12","percent":"88%"}"#));
        assert!(!l.is_line_of(1, br#"{"uid":"u12","percent":"88%"}"#));
        assert!(!l.is_line_of(12, br#"{"uid":"u12","percent":"89%"}"#));
        assert!(!l.is_line_of(12, br#"{"uid":"u12","percent":"88%"}x"#));
        assert!(!l.is_line_of(12, b"u12"));
    }
}
