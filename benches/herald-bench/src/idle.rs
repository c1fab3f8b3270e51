//! `idle`: memory per idle bound connection, from the server's VmRSS.
//!
//! Opens connections in steps (each binds a uid `u<N>`), lets the server
//! settle, and divides the RSS growth since the baseline by N.

use crate::cli::{self, flag, label_of, Args, Common, Mode};
use crate::event::Event;
use crate::fleet::Fleet;
use crate::host;
use crate::open::{open_bound, uid};
use crate::report::{mib, Reporter};
use crate::wait::Phase;
use serde_json::{json, Map};
use std::time::{Duration, Instant};

pub const MODE: Mode = Mode {
    name: "idle",
    about: "server memory per idle bound connection (VmRSS growth / N)",
    flags: &[
        cli::WS,
        flag(
            "--pid",
            None,
            "pid of the server process, for /proc/PID/status (required)",
        ),
        flag(
            "--counts",
            Some("5000,10000,19000"),
            "connection counts to measure at, ascending",
        ),
        flag(
            "--text",
            None,
            "text port: settle probe by push (else by `probe:` routing)",
        ),
        flag(
            "--settle-ms",
            Some("500"),
            "quiet time before reading VmRSS at each step",
        ),
        flag(
            "--hold",
            Some("0"),
            "seconds to keep the connections open at the end",
        ),
        flag(
            "--label",
            None,
            "server name in the output [from /proc/PID/comm]",
        ),
        cli::TIMEOUT,
        cli::WINDOW,
        cli::SOURCES,
    ],
    run,
};

/// Descriptors this process keeps for itself (stdio, epoll, text port, probe).
const OWN_RESERVE: u64 = 32;
/// Descriptors a server keeps besides connections (listeners, epoll, spares).
const SERVER_RESERVE: u64 = 64;
const PROBE_UID: &str = "probe";

/// The server measured and how: what every step needs.
struct Idle {
    rep: Reporter,
    common: Common,
    pid: u32,
    /// The settle probe goes through the text port (else by routing).
    by_text: bool,
    settle: Duration,
    /// VmRSS before any WebSocket connection.
    base: u64,
}

fn run(a: &mut Args) -> Result<(), String> {
    let ws = a.addr("--ws")?;
    let pid: u32 = a.num("--pid")?;
    let text = a.opt_addr("--text")?;
    let settle = Duration::from_millis(a.num("--settle-ms")?);
    let hold: u64 = a.num("--hold")?;
    host::vm_rss_bytes(pid)?;
    let counts = counts_that_fit(a, pid)?;
    let largest = *counts.last().unwrap_or(&0);
    let label = label_of(a, Some(pid));
    a.set("--label", label);
    let common = Common::from_args(a, largest + 1, ws)?;
    let rep = Reporter::start(a, &["--counts"]);
    if !common.sources.is_empty() {
        println!(
            "connecting from {} source addresses (127.0.0.1..127.0.0.{})",
            common.sources.len(),
            common.sources.len()
        );
    }

    let mut fleet = Fleet::new(ws, &common.sources)?;
    if let Some(t) = text {
        fleet.connect_text(t)?;
    }
    std::thread::sleep(Duration::from_millis(200));
    let base = host::vm_rss_bytes(pid)?;
    println!(
        "baseline: VmRSS {} before any WebSocket connection",
        mib(base)
    );
    let idle = Idle {
        rep,
        common,
        pid,
        by_text: text.is_some(),
        settle,
        base,
    };
    let mut closed: Option<String> = None;
    let mut prev = (0usize, base);
    let mut last_per_conn = f64::NAN;
    for (step, &n) in counts.iter().enumerate() {
        let (per_conn, rss) = idle.step(&mut fleet, step, n, prev, &mut closed)?;
        prev = (n, rss);
        last_per_conn = per_conn;
    }
    let mut extra = Map::new();
    extra.insert("conns".into(), json!(largest));
    extra.insert("rss_bytes".into(), json!(prev.1));
    extra.insert("baseline_rss_bytes".into(), json!(base));
    idle.rep.result(
        &format!("at N={largest}"),
        last_per_conn,
        "bytes/connection",
        extra,
    );
    if hold > 0 {
        hold_open(&mut fleet, largest, hold, closed)?;
    }
    Ok(())
}

/// `--counts`, ascending, each capped at what both ends may open (each
/// connection costs a descriptor at both ends); a cap is said, and written
/// back so that the command line printed says what was really run.
fn counts_that_fit(a: &mut Args, pid: u32) -> Result<Vec<usize>, String> {
    let mut counts = a.list("--counts")?;
    counts.sort_unstable();
    counts.dedup();
    counts.retain(|&n| n > 0);
    if counts.is_empty() {
        return Err("--counts needs at least one count above 0".into());
    }
    let own_soft = host::raise_nofile();
    let own_cap = own_soft.saturating_sub(OWN_RESERVE) as usize;
    let server_soft = host::nofile_soft_of(pid);
    let server_cap = server_soft.map(|s| s.saturating_sub(SERVER_RESERVE) as usize);
    let cap = server_cap.map_or(own_cap, |s| s.min(own_cap));
    if counts.iter().any(|&n| n > cap) {
        let why = match server_cap {
            Some(s) if s < own_cap => format!(
                "the server (pid {pid}) may open {} files (soft limit), \
                 less {SERVER_RESERVE} for its own use",
                server_soft.unwrap_or(0)
            ),
            _ => format!(
                "this process may open {own_soft} files (the hard open-file limit), \
                 less {OWN_RESERVE} for its own use"
            ),
        };
        println!("NOTE: capping N at {cap}: {why}");
        for n in &mut counts {
            *n = (*n).min(cap);
        }
        counts.dedup();
        let list: Vec<String> = counts.iter().map(usize::to_string).collect();
        a.set("--counts", list.join(","));
    }
    Ok(counts)
}

/// Slot 0 is the probe; slots 1..=N are u0..u(N-1).
fn probe_or_uid(slot: usize) -> String {
    match slot {
        0 => PROBE_UID.to_string(),
        i => uid(i - 1),
    }
}

impl Idle {
    /// Opens clients up to `n` (`prev`: the count and VmRSS of the step
    /// before), lets the server settle and reports the step; returns bytes
    /// per connection and the VmRSS read.
    fn step(
        &self,
        fleet: &mut Fleet,
        step: usize,
        n: usize,
        prev: (usize, u64),
        closed: &mut Option<String>,
    ) -> Result<(f64, u64), String> {
        let have = fleet.len().saturating_sub(1);
        let first = if step == 0 { 0 } else { have + 1 };
        let count = if step == 0 { n + 1 } else { n - have };
        let t0 = Instant::now();
        open_bound(fleet, first, count, &probe_or_uid, &self.common)?;
        let opened_in = t0.elapsed();
        let probed = self.probe(fleet, step, closed)?;
        let rss = self.settle_rss(fleet, closed)?;
        if let Some(why) = &closed {
            return Err(format!("the server closed an idle connection: {why}"));
        }
        if fleet.open_count() != n + 1 {
            return Err(format!(
                "{} connections open, {} expected",
                fleet.open_count(),
                n + 1
            ));
        }
        let growth = rss.saturating_sub(self.base);
        let per_conn = growth as f64 / n as f64;
        let marginal = rss.saturating_sub(prev.1) as f64 / (n - prev.0) as f64;
        println!(
            "N={n:<6} VmRSS {:>10}  growth {:>10}  {:>7.0} bytes/conn  \
             ({:.0} bytes/conn since the previous step; opened in {:.2} s; {probed})",
            mib(rss),
            mib(growth),
            per_conn,
            marginal,
            opened_in.as_secs_f64(),
        );
        let mut extra = Map::new();
        extra.insert("conns".into(), json!(n));
        extra.insert("rss_bytes".into(), json!(rss));
        extra.insert("baseline_rss_bytes".into(), json!(self.base));
        extra.insert("marginal_bytes_per_conn".into(), json!(marginal.round()));
        self.rep.run(step + 1, per_conn, "bytes/connection", extra);
        Ok((per_conn, rss))
    }

    /// Makes sure the server has read what the clients sent: a message routed
    /// to the probe client (bound first, asked last) comes back after the
    /// server went through the readiness of every connection before it.
    fn probe(
        &self,
        fleet: &mut Fleet,
        step: usize,
        closed: &mut Option<String>,
    ) -> Result<&'static str, String> {
        let token = format!("k{step}");
        if self.by_text {
            fleet.text_send(format!("{{\"uid\":\"{PROBE_UID}\",\"k\":\"{token}\"}}\n").as_bytes());
        } else {
            fleet.send_text(0, format!("{PROBE_UID}:{token}").as_bytes());
        }
        let mut p = Probe {
            token: token.as_bytes(),
            answered: false,
            closed,
        };
        let _ = fleet.wait(
            Instant::now() + Duration::from_secs(5).min(self.common.timeout),
            &mut p,
        )?;
        Ok(if p.answered {
            "probe answered"
        } else if self.by_text {
            "probe UNANSWERED: the push to uid `probe` did not arrive within 5 s"
        } else {
            "probe UNANSWERED: the server does not route `uid:message` (herald needs --routing; or give --text)"
        })
    }

    /// Waits `--settle-ms` (answering pings meanwhile), then reads VmRSS
    /// until two readings 100 ms apart agree (at most 2 s more).
    fn settle_rss(&self, fleet: &mut Fleet, closed: &mut Option<String>) -> Result<u64, String> {
        let mut on = |ev: Event<'_>| {
            if let Event::Closed(..) = ev {
                ev.note_end(closed);
            }
        };
        fleet.pump(self.settle, &mut on)?;
        let mut last = host::vm_rss_bytes(self.pid)?;
        for _ in 0..20 {
            fleet.pump(Duration::from_millis(100), &mut on)?;
            let now = host::vm_rss_bytes(self.pid)?;
            if now == last {
                break;
            }
            last = now;
        }
        Ok(last)
    }
}

/// [`Idle::probe`]: waits for the message carrying `token` on the probe
/// client.
struct Probe<'a> {
    token: &'a [u8],
    answered: bool,
    closed: &'a mut Option<String>,
}

impl Phase for Probe<'_> {
    fn on(&mut self, ev: Event<'_>) {
        match ev {
            Event::Message(0, m) if memchr::memmem::find(m, self.token).is_some() => {
                self.answered = true
            }
            ev => ev.note_end(self.closed),
        }
    }

    fn done(&self) -> bool {
        self.answered
    }
}

/// `--hold`: keeps the `largest` connections open (answering pings) for
/// `hold` seconds and fails if the server closes any.
fn hold_open(
    fleet: &mut Fleet,
    largest: usize,
    hold: u64,
    mut closed: Option<String>,
) -> Result<(), String> {
    println!("holding {largest} connections for {hold} s");
    let mut lost = 0usize;
    fleet.pump(Duration::from_secs(hold), &mut |ev| {
        if let Event::Closed(..) = ev {
            lost += 1;
            ev.note_end(&mut closed);
        }
    })?;
    if let Some(why) = closed {
        return Err(format!(
            "the server closed {lost} idle connections during the hold; first: {why}"
        ));
    }
    println!("all {} connections still open", fleet.open_count());
    Ok(())
}
