//! The measured runs of a throughput mode (`broadcast`, `push`,
//! `handshakes`): what the server spent on each run (CPU time from /proc
//! with `--pid`, socket writes from herald's /stats with `--stats`), what
//! the messages cost on the wire, one JSON line per run, and the medians as
//! the result.

use crate::cli::Args;
use crate::host;
use crate::report::{fmt_num, median, median_of, Reporter};
use serde_json::{json, Map, Value};
use std::net::SocketAddrV4;

/// A mode's runs so far, reported as they end.
pub struct Series {
    rep: Reporter,
    /// The unit of a run's rate, e.g. "deliveries/s".
    unit: &'static str,
    /// What a run counts, for "N <what> per server CPU-second".
    what: &'static str,
    /// `--pid`: the server's CPU time is read around each run.
    pid: Option<u32>,
    /// `--stats`: herald's HTTP API, for its write counters.
    api: Option<SocketAddrV4>,
    rates: Vec<f64>,
    per_cpu: Vec<f64>,
    per_write: Vec<f64>,
    wire_per_message: Vec<f64>,
    /// Fields of every JSON line from now on (see [`Series::note`]).
    notes: Map<String, Value>,
}

/// The server's counters as a run begins.
pub struct Before {
    cpu: Option<f64>,
    writes: Option<(u64, u64)>,
}

/// What one run measured.
pub struct Measured {
    /// Seconds from the first byte sent to the last event counted.
    pub elapsed: f64,
    /// Deliveries, pushes or handshakes completed in that time.
    pub done: usize,
    /// The mode's own figures for the run's JSON line.
    pub extra: Map<String, Value>,
    /// Bytes the receiving clients read over the run, when the mode counts
    /// them (see [`Fleet::wire_bytes`](crate::fleet::Fleet::wire_bytes)).
    pub wire: Option<u64>,
}

impl Measured {
    /// `counts`: the mode's own tallies of the run, for its JSON line.
    pub fn new(elapsed: f64, done: usize, counts: &[(&str, usize)]) -> Measured {
        let extra = counts.iter().map(|&(k, v)| (k.into(), json!(v))).collect();
        Measured {
            elapsed,
            done,
            extra,
            wire: None,
        }
    }

    /// The bytes the receivers read for the `done` messages of the run.
    pub fn with_wire(mut self, bytes: u64) -> Measured {
        self.wire = Some(bytes);
        self
    }

    /// The run's figure: what was done per second.
    pub fn rate(&self) -> f64 {
        self.done as f64 / self.elapsed
    }
}

impl Series {
    /// Starts the report of the mode `a` runs (see [`Reporter::start`]);
    /// `--pid` and `--stats` are read if the mode has them.
    pub fn start(
        a: &Args,
        table_params: &[&str],
        unit: &'static str,
        what: &'static str,
    ) -> Result<Series, String> {
        Ok(Series {
            pid: a.opt_num("--pid")?,
            api: a.opt_addr("--stats")?,
            rep: Reporter::start(a, table_params),
            unit,
            what,
            rates: Vec::new(),
            per_cpu: Vec::new(),
            per_write: Vec::new(),
            wire_per_message: Vec::new(),
            notes: Map::new(),
        })
    }

    /// Adds `key` to every JSON line from now on, runs and result (a fact
    /// of the whole invocation, such as how many clients negotiated
    /// compression).
    pub fn note(&mut self, key: &str, value: Value) {
        self.notes.insert(key.into(), value);
    }

    /// Reads the server's counters: call it just before a run begins.
    pub fn before(&self) -> Result<Before, String> {
        Ok(Before {
            cpu: self.pid.map(host::cpu_seconds).transpose()?,
            writes: server_writes(self.api),
        })
    }

    /// Reports run `run` (begun after `before`), once the mode has printed
    /// its own line: the server's CPU use and writes, then the JSON line.
    pub fn record(&mut self, run: usize, before: Before, m: Measured) {
        let rate = m.rate();
        let per_cpu = report_server_cpu(self.pid, before.cpu, m.elapsed, m.done, self.what);
        let per_write = report_writes(before.writes, server_writes(self.api));
        let mut extra = m.extra;
        if let Some(wire) = m.wire {
            let per = wire as f64 / m.done.max(1) as f64;
            println!(
                "  wire: the clients read {wire} B after their handshakes = {per:.1} B per delivered message"
            );
            extra.insert("wire_bytes".into(), json!(wire));
            keep(
                &mut extra,
                "wire_bytes_per_message",
                Some(round1(per)),
                &mut self.wire_per_message,
            );
        }
        extra.extend(self.notes.clone());
        keep(
            &mut extra,
            "messages_per_write",
            per_write,
            &mut self.per_write,
        );
        keep(&mut extra, "per_cpu_second", per_cpu, &mut self.per_cpu);
        extra.insert("elapsed_s".into(), json!(m.elapsed));
        self.rep.run(run, rate, self.unit, extra);
        self.rates.push(rate);
    }

    /// Reports the result: the median of the runs' rates and of their
    /// server figures.
    pub fn finish(self) {
        let mut extra = Map::new();
        extra.insert("runs".into(), json!(self.rates));
        put_median(&mut extra, "per_cpu_second", &self.per_cpu);
        put_median(&mut extra, "messages_per_write", &self.per_write);
        put_median(&mut extra, "wire_bytes_per_message", &self.wire_per_message);
        if !self.wire_per_message.is_empty() {
            println!(
                "wire bytes per delivered message: {:.1} (median)",
                median(&self.wire_per_message)
            );
        }
        extra.extend(self.notes);
        let how = median_of(self.rates.len());
        self.rep.result(&how, median(&self.rates), self.unit, extra);
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Keeps one run's optional figure: in that run's `extra` under `key`, and
/// in `all` for the median (see [`put_median`]).
fn keep(extra: &mut Map<String, Value>, key: &str, v: Option<f64>, all: &mut Vec<f64>) {
    if let Some(v) = v {
        extra.insert(key.into(), json!(v));
        all.push(v);
    }
}

/// The median of the figures [`keep`] kept, under `key`, if any were.
fn put_median(extra: &mut Map<String, Value>, key: &str, all: &[f64]) {
    if !all.is_empty() {
        extra.insert(key.into(), json!(median(all)));
    }
}

/// herald's `(writes, messages_out)` from its /stats, when `--stats` is given.
fn server_writes(api: Option<SocketAddrV4>) -> Option<(u64, u64)> {
    let v = stats_json(api?)?;
    Some((v["writes"].as_u64()?, v["messages_out"].as_u64()?))
}

/// herald's /stats (`GET /stats` on its HTTP API), if it answers.
pub fn stats_json(api: SocketAddrV4) -> Option<Value> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(api).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    s.write_all(b"GET /stats HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let body = resp.split_once("\r\n\r\n")?.1;
    serde_json::from_str(body).ok()
}

/// Prints the server's writes over a run and the messages each carried.
fn report_writes(before: Option<(u64, u64)>, after: Option<(u64, u64)>) -> Option<f64> {
    let ((w0, m0), (w1, m1)) = (before?, after?);
    let (writes, messages) = (w1.saturating_sub(w0), m1.saturating_sub(m0));
    let per = messages as f64 / writes.max(1) as f64;
    println!(
        "  server writes {writes} for {messages} messages (deliveries and replies) = {per:.2} messages per write \
         (/stats also counts its own reply and this query)"
    );
    Some(per)
}

/// Prints the server's CPU use over a run and the rate per server CPU-second
/// (near 100% of a core the rate is the server's; well below, it is the
/// load tool's), and returns that rate (`None` without `--pid`, or below
/// the kernel's 10 ms).
fn report_server_cpu(
    pid: Option<u32>,
    before: Option<f64>,
    elapsed: f64,
    done: usize,
    what: &str,
) -> Option<f64> {
    let (Some(pid), Some(before)) = (pid, before) else {
        return None;
    };
    let after = host::cpu_seconds(pid).ok()?;
    let cpu = after - before;
    let share = cpu / elapsed * 100.0;
    if cpu > 0.0 {
        let per = done as f64 / cpu;
        println!(
            "  server CPU {cpu:.2} s = {share:.0}% of one core; {} {what} per server CPU-second",
            fmt_num(per)
        );
        Some(per)
    } else {
        println!("  server CPU below the 10 ms the kernel counts");
        None
    }
}
