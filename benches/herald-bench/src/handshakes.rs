//! `handshakes`: connection churn. Each connection connects, completes the
//! opening handshake, sends a uid, then closes: close frame, the server's
//! close frame, the server's end of stream (at most 2 s); C are in flight.

use crate::cli::{flag, Args, Flag};
use crate::fleet::{End, Event, Fleet};
use crate::report::{fmt_num, median, median_of, put_median, put_run, Reporter};
use crate::wait::{Phase, Waited};
use crate::{check_fd_budget, host, label_of, params, Common};
use serde_json::{json, Map};
use std::time::{Duration, Instant};

pub const ABOUT: &str = "connect + handshake + uid + close, C in flight (handshakes/s)";

pub const FLAGS: &[Flag] = &[
    flag("--ws", None, "WebSocket address of the server (required)"),
    flag("--total", Some("20000"), "connections per run"),
    flag("--concurrency", Some("64"), "connections in flight"),
    crate::cli::RUNS,
    crate::cli::LABEL,
    flag("--timeout", Some("120"), "seconds allowed for any one run"),
    crate::cli::SOURCES,
    crate::cli::SERVER_PID,
];

/// Time a server gets to finish the closing handshake and close TCP.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

pub fn run(a: &mut Args) -> Result<(), String> {
    let ws = a.addr("--ws")?;
    let total: usize = a.num("--total")?;
    let conc: usize = a.num("--concurrency")?;
    let runs: usize = a.num("--runs")?;
    let server_pid: Option<u32> = a.opt_num("--pid")?;
    if total == 0 || conc == 0 || runs == 0 {
        return Err("--total, --concurrency and --runs must be at least 1".into());
    }
    let conc = conc.min(total);
    check_fd_budget(conc)?;
    let common = Common::from_args(a, conc, ws)?;
    let rep = Reporter {
        mode: "handshakes",
        label: label_of(a, None),
        command: a.command_line(),
        params: params(a, &["--total", "--concurrency"]),
    };
    rep.start();
    let mut fleet = Fleet::new(ws, common.sources.clone()).map_err(|e| e.to_string())?;
    for _ in 0..conc {
        fleet.add_client();
    }
    let mut values = Vec::new();
    let mut per_cpu_values = Vec::new();
    for run in 1..=runs {
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
        let cpu_before = server_pid.map(host::cpu_seconds).transpose()?;
        let start = Instant::now();
        let deadline = start + common.timeout;
        for slot in 0..conc {
            fleet.connect(slot)?;
            churn.started += 1;
        }
        let waited = fleet.wait(deadline, &mut churn)?;
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
                common.timeout.as_secs()
            ));
        }
        let rate = completed as f64 / elapsed;
        println!(
            "run {run}: {completed} handshakes ({conc} in flight) in {elapsed:.3} s = {} handshakes/s{}",
            fmt_num(rate),
            match &first_failure {
                Some(why) => format!(" ({failed} FAILED, first: {why})"),
                None => String::new(),
            }
        );
        let per_cpu =
            crate::cli::report_server_cpu(server_pid, cpu_before, elapsed, completed, "handshakes");
        let mut extra = Map::new();
        put_run(&mut extra, "per_cpu_second", per_cpu, &mut per_cpu_values);
        extra.insert("elapsed_s".into(), json!(elapsed));
        extra.insert("completed".into(), json!(completed));
        extra.insert("failed".into(), json!(failed));
        rep.run(run, rate, "handshakes/s", extra);
        values.push(rate);
        // Let the server finish closing before the next run.
        fleet.pump(Duration::from_millis(200), &mut |_| {})?;
    }
    let mut extra = Map::new();
    extra.insert("runs".into(), json!(values));
    put_median(&mut extra, "per_cpu_second", &per_cpu_values);
    rep.result(&median_of(runs), median(&values), "handshakes/s", extra);
    Ok(())
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
