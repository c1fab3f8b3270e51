//! `push`: one text-port connection writes L pipelined seed lines to N bound
//! clients (round-robin uids); pushes delivered/s until every reply and every
//! message arrived.

use crate::cli::{self, flag, Args, Common, Mode};
use crate::fleet::Fleet;
use crate::host::check_fd_budget;
use crate::report::fmt_num;
use crate::series::{Measured, Series};
use crate::textport::{open_clients, PushTally};
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
    let mut series = Series::start(a, &["--conns", "--lines"], "pushes delivered/s", "pushes")?;
    let mut fleet = open_clients(ws, text, n, &common)?;

    // The seed's line, uids round-robin.
    let mut batch = String::with_capacity(lines * 40);
    for j in 0..lines {
        let _ = writeln!(batch, "{{\"uid\":\"u{}\",\"percent\":\"88%\"}}", j % n);
    }
    for run in 1..=runs {
        let before = series.before()?;
        let m = one_run(&mut fleet, run, &batch, lines, n, common.timeout)?;
        series.record(run, before, m);
    }
    series.finish();
    Ok(())
}

/// Writes `batch` (`lines` pushes to `n` clients) and waits until every
/// reply and every delivery arrived.
fn one_run(
    fleet: &mut Fleet,
    run: usize,
    batch: &str,
    lines: usize,
    n: usize,
    timeout: Duration,
) -> Result<Measured, String> {
    let mut t = PushTally::new(lines);
    let start = Instant::now();
    fleet.text_send(batch.as_bytes());
    let _ = fleet.wait(start + timeout, &mut t)?;
    let PushTally {
        replies,
        ok,
        fail,
        delivered,
        last_reply,
        last_delivery,
        stop,
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
    ];
    let m = Measured::new(elapsed, delivered, &counts);
    println!(
        "run {run}: {lines} pushes to {n} clients, {delivered} delivered, replies {ok} ok, \
         {fail} fail, {other} other, in {:.3} s = {} pushes delivered/s",
        m.elapsed,
        fmt_num(m.rate())
    );
    Ok(m)
}
