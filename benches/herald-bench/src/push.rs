//! `push`: one text-port connection writes L pipelined seed lines to N bound
//! clients (round-robin uids); pushes delivered/s until every reply and every
//! message arrived. Also the uid check that `latency` shares.

use crate::cli::{flag, Args, Flag};
use crate::fleet::{Event, Fleet};
use crate::report::{fmt_num, median, median_of, put_median, put_run, Reporter};
use crate::wait::{Phase, Waited};
use crate::{check_fd_budget, host, label_of, params, Common};
use serde_json::{json, Map};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

pub const ABOUT: &str = "pipelined text-port pushes to N bound clients (pushes delivered/s)";

pub const FLAGS: &[Flag] = &[
    flag("--ws", None, "WebSocket address of the server (required)"),
    flag("--text", None, "text port address of the server (required)"),
    flag("--conns", Some("10000"), "bound clients u0..u(N-1)"),
    flag("--lines", Some("50000"), "push lines per run, pipelined"),
    crate::cli::RUNS,
    crate::cli::LABEL,
    crate::cli::TIMEOUT,
    crate::cli::WINDOW,
    crate::cli::SOURCES,
    crate::cli::SERVER_PID,
    crate::cli::SERVER_STATS,
];

pub fn run(a: &mut Args) -> Result<(), String> {
    let ws = a.addr("--ws")?;
    let text = a.addr("--text")?;
    let n: usize = a.num("--conns")?;
    let lines: usize = a.num("--lines")?;
    let runs: usize = a.num("--runs")?;
    let server_pid: Option<u32> = a.opt_num("--pid")?;
    let api = a.opt_addr("--stats")?;
    if n == 0 || lines == 0 || runs == 0 {
        return Err("--conns, --lines and --runs must be at least 1".into());
    }
    check_fd_budget(n + 1)?;
    let common = Common::from_args(a, n, ws)?;
    let rep = Reporter {
        mode: "push",
        label: label_of(a, None),
        command: a.command_line(),
        params: params(a, &["--conns", "--lines"]),
    };
    rep.start();
    let mut fleet = open_clients(ws, text, n, &common)?;

    // The seed's line, uids round-robin.
    let mut batch = String::with_capacity(lines * 40);
    for j in 0..lines {
        let _ = writeln!(batch, "{{\"uid\":\"u{}\",\"percent\":\"88%\"}}", j % n);
    }
    let mut values = Vec::new();
    let (mut per_cpu_values, mut per_write_values) = (Vec::new(), Vec::new());
    for run in 1..=runs {
        let mut t = Pushes {
            lines,
            replies: 0,
            ok: 0,
            delivered: 0,
            stop: None,
            last_reply: Instant::now(),
            last_msg: Instant::now(),
        };
        let cpu_before = server_pid.map(host::cpu_seconds).transpose()?;
        let writes_before = crate::cli::server_writes(api);
        let start = Instant::now();
        fleet.text_send(batch.as_bytes());
        let _ = fleet.wait(start + common.timeout, &mut t)?;
        let Pushes {
            replies,
            ok,
            delivered,
            stop,
            last_reply,
            last_msg,
            ..
        } = t;
        let fail = replies - ok;
        if let Some(why) = stop {
            return Err(format!(
                "run {run}: {replies} of {lines} replies, {delivered} deliveries, then: {why}"
            ));
        }
        if replies < lines || delivered < ok {
            return Err(format!(
                "run {run}: timed out after {} s: {replies} of {lines} replies, \
                 {delivered} of {ok} deliveries",
                common.timeout.as_secs()
            ));
        }
        let elapsed = (last_reply.max(last_msg) - start).as_secs_f64();
        let rate = delivered as f64 / elapsed;
        println!(
            "run {run}: {lines} pushes to {n} clients, {delivered} delivered, {fail} fail replies, \
             in {elapsed:.3} s = {} pushes delivered/s",
            fmt_num(rate)
        );
        let per_cpu =
            crate::cli::report_server_cpu(server_pid, cpu_before, elapsed, delivered, "pushes");
        let per_write = crate::cli::report_writes(writes_before, crate::cli::server_writes(api));
        let mut extra = Map::new();
        put_run(
            &mut extra,
            "messages_per_write",
            per_write,
            &mut per_write_values,
        );
        put_run(&mut extra, "per_cpu_second", per_cpu, &mut per_cpu_values);
        extra.insert("elapsed_s".into(), json!(elapsed));
        extra.insert("delivered".into(), json!(delivered));
        extra.insert("fail_replies".into(), json!(fail));
        rep.run(run, rate, "pushes delivered/s", extra);
        values.push(rate);
    }
    let mut extra = Map::new();
    extra.insert("runs".into(), json!(values));
    put_median(&mut extra, "per_cpu_second", &per_cpu_values);
    put_median(&mut extra, "messages_per_write", &per_write_values);
    rep.result(
        &median_of(runs),
        median(&values),
        "pushes delivered/s",
        extra,
    );
    Ok(())
}

/// Opens N clients u0..u(N-1) and the text port, then makes sure each uid
/// is bound (see [`check_bound`]).
pub fn open_clients(
    ws: std::net::SocketAddrV4,
    text: std::net::SocketAddrV4,
    n: usize,
    common: &Common,
) -> Result<Fleet, String> {
    let mut fleet = Fleet::new(ws, common.sources.clone()).map_err(|e| e.to_string())?;
    fleet.connect_text(text)?;
    let t0 = Instant::now();
    fleet.open_bound(0, n, &|i| format!("u{i}"), common.window, common.deadline())?;
    check_bound(&mut fleet, n, common)?;
    println!(
        "{n} clients open and bound in {:.2} s (one push each checked)",
        t0.elapsed().as_secs_f64()
    );
    Ok(fleet)
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
            fleet.pump(Duration::from_millis(100), &mut |_| {})?;
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

/// One measured run: replies on the text port, deliveries to the clients.
struct Pushes {
    lines: usize,
    replies: usize,
    /// Replies that are `ok`: pushes the server delivered.
    ok: usize,
    delivered: usize,
    stop: Option<String>,
    last_reply: Instant,
    last_msg: Instant,
}

impl Phase for Pushes {
    fn on(&mut self, ev: Event<'_>) {
        match ev {
            Event::Line(l) => {
                self.replies += 1;
                if l.starts_with(b"ok") {
                    self.ok += 1;
                }
                self.last_reply = Instant::now();
            }
            Event::Message(_, _) => {
                self.delivered += 1;
                self.last_msg = Instant::now();
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
        (self.replies >= self.lines && self.delivered >= self.ok) || self.stop.is_some()
    }
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
            Event::Closed(i, end) => {
                self.stop
                    .get_or_insert_with(|| format!("connection {i}: {}", end.why));
            }
            Event::TextClosed(why) => {
                self.stop.get_or_insert_with(|| why.into_owned());
            }
            _ => {}
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
