//! `handshakes`: connection churn. Each connection connects, completes the
//! opening handshake, sends a uid, then closes: close frame, the server's
//! close frame, the server's end of stream (at most 2 s); C are in flight.

use crate::cli::{self, flag, Args, Common, Mode};
use crate::event::{End, Event};
use crate::fleet::Fleet;
use crate::host::check_fd_budget;
use crate::report::fmt_num;
use crate::series::{Measured, Series};
use crate::wait::{Phase, Waited};
use std::time::{Duration, Instant};

pub const MODE: Mode = Mode {
    name: "handshakes",
    about: "connect + handshake + uid + close, C in flight (handshakes/s)",
    flags: &[
        cli::WS,
        flag("--total", Some("20000"), "connections per run"),
        flag("--concurrency", Some("64"), "connections in flight"),
        cli::RUNS,
        cli::LABEL,
        flag("--timeout", Some("120"), "seconds allowed for any one run"),
        cli::SOURCES,
        cli::SERVER_PID,
    ],
    run,
};

/// Time a server gets to finish the closing handshake and close TCP.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

fn run(a: &mut Args) -> Result<(), String> {
    let ws = a.addr("--ws")?;
    let [total, conc, runs] = a.positive(["--total", "--concurrency", "--runs"])?;
    let conc = conc.min(total);
    check_fd_budget(conc)?;
    let common = Common::from_args(a, conc, ws)?;
    let table_params = ["--total", "--concurrency"];
    let mut series = Series::start(a, &table_params, "handshakes/s", "handshakes")?;
    let mut fleet = Fleet::new(ws, &common.sources)?;
    for _ in 0..conc {
        fleet.add_client();
    }
    for run in 1..=runs {
        let before = series.before()?;
        let m = churn(&mut fleet, run, total, conc, common.timeout)?;
        series.record(run, before, m);
        // Let the server finish closing before the next run.
        fleet.pump(Duration::from_millis(200), &mut |_| {})?;
    }
    series.finish();
    Ok(())
}

/// Run `run`: `total` connections through the fleet's `conc` slots.
fn churn(
    fleet: &mut Fleet,
    run: usize,
    total: usize,
    conc: usize,
    timeout: Duration,
) -> Result<Measured, String> {
    let mut churn = Churn {
        run,
        total,
        started: 0,
        completed: 0,
        failed: 0,
        first_failure: None,
        opened: Vec::new(),
        freed: Vec::new(),
    };
    let start = Instant::now();
    for slot in 0..conc {
        fleet.connect(slot)?;
        churn.started += 1;
    }
    let waited = fleet.wait(start + timeout, &mut churn)?;
    let elapsed = start.elapsed().as_secs_f64();
    let Churn {
        completed,
        failed,
        first_failure,
        ..
    } = churn;
    if waited == Waited::Deadline {
        for slot in 0..conc {
            fleet.abort(slot);
        }
        return Err(format!(
            "run {run}: timed out after {} s: {completed} completed, {failed} failed of {total}",
            timeout.as_secs()
        ));
    }
    let counts = [("completed", completed), ("failed", failed)];
    let m = Measured::new(elapsed, completed, &counts);
    println!(
        "run {run}: {completed} handshakes ({conc} in flight) in {elapsed:.3} s = {} handshakes/s{}",
        fmt_num(m.rate()),
        match &first_failure {
            Some(why) => format!(" ({failed} FAILED, first: {why})"),
            None => String::new(),
        }
    );
    Ok(m)
}

/// One run: `total` connections through `conc` slots, each slot reused as
/// soon as its connection is gone.
struct Churn {
    run: usize,
    total: usize,
    started: usize,
    /// Ended by a completed closing handshake.
    completed: usize,
    failed: usize,
    first_failure: Option<String>,
    /// Open since the last poll: to send a uid and close.
    opened: Vec<usize>,
    /// Gone since the last poll: free for the next connection.
    freed: Vec<usize>,
}

impl Churn {
    fn ended(&mut self, i: usize, end: End) {
        if end.requested {
            self.completed += 1;
        } else {
            self.failed += 1;
            self.first_failure
                .get_or_insert_with(|| end.why.into_owned());
        }
        self.freed.push(i);
    }
}

impl Phase for Churn {
    fn on(&mut self, ev: Event<'_>) {
        match ev {
            Event::Open(i) => self.opened.push(i),
            Event::Closed(i, end) => self.ended(i, end),
            _ => {}
        }
    }

    fn done(&self) -> bool {
        self.completed + self.failed >= self.total
    }

    fn after_poll(&mut self, fleet: &mut Fleet) -> Result<(), String> {
        // Expired closes are failures (`requested` is false).
        fleet.expire_closing(CLOSE_WAIT, &mut |ev| {
            if let Event::Closed(i, end) = ev {
                self.ended(i, end);
            }
        });
        for i in self.opened.drain(..) {
            fleet.send_text(i, format!("h{}-{i}", self.run).as_bytes());
            fleet.send_close(i);
        }
        for i in self.freed.drain(..) {
            if self.started < self.total {
                fleet.connect(i)?;
                self.started += 1;
            }
        }
        Ok(())
    }
}
