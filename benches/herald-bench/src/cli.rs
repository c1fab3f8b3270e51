//! Command-line flags of each mode: declared once, parsed, and printed back
//! with every value explicit so that a run can be reproduced exactly.

use std::net::{SocketAddr, SocketAddrV4};
use std::str::FromStr;

/// One `--name VALUE` flag of a mode.
pub struct Flag {
    pub name: &'static str,
    /// `None`: no default (required, or optional when the mode says so).
    pub default: Option<&'static str>,
    pub help: &'static str,
}

// Flags most modes share.
pub const RUNS: Flag = flag(
    "--runs",
    Some("3"),
    "measured runs (the median is the result)",
);
pub const LABEL: Flag = flag("--label", Some("server"), "server name in the output");
pub const TIMEOUT: Flag = flag(
    "--timeout",
    Some("120"),
    "seconds allowed for any one phase",
);
pub const WINDOW: Flag = flag(
    "--window",
    Some("256"),
    "handshakes in flight while opening",
);
pub const SOURCES: Flag = flag(
    "--sources",
    None,
    "connect from 127.0.0.1..127.0.0.K [as the port range needs]",
);

pub const SERVER_PID: Flag = flag(
    "--pid",
    None,
    "server pid: also report the server's CPU use and its rate per CPU-second",
);

pub const SERVER_STATS: Flag = flag(
    "--stats",
    None,
    "herald's HTTP API (IP:PORT): also report its socket writes and messages per write",
);

/// herald's `(writes, messages_out)` from its /stats, when `--stats` is given.
pub fn server_writes(api: Option<SocketAddrV4>) -> Option<(u64, u64)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(api?).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    s.write_all(b"GET /stats HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let body = resp.split_once("\r\n\r\n")?.1;
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    Some((v["writes"].as_u64()?, v["messages_out"].as_u64()?))
}

/// Prints the server's writes over a run and the messages each carried.
pub fn report_writes(before: Option<(u64, u64)>, after: Option<(u64, u64)>) -> Option<f64> {
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
pub fn report_server_cpu(
    pid: Option<u32>,
    before: Option<f64>,
    elapsed: f64,
    done: usize,
    what: &str,
) -> Option<f64> {
    let (Some(pid), Some(before)) = (pid, before) else {
        return None;
    };
    let after = crate::host::cpu_seconds(pid).ok()?;
    let cpu = after - before;
    let share = cpu / elapsed * 100.0;
    if cpu > 0.0 {
        let per = done as f64 / cpu;
        println!(
            "  server CPU {cpu:.2} s = {share:.0}% of one core; {} {what} per server CPU-second",
            crate::report::fmt_num(per)
        );
        Some(per)
    } else {
        println!("  server CPU below the 10 ms the kernel counts");
        None
    }
}

pub const fn flag(name: &'static str, default: Option<&'static str>, help: &'static str) -> Flag {
    Flag {
        name,
        default,
        help,
    }
}

/// The parsed flags of one mode, in declaration order.
pub struct Args {
    pub mode: &'static str,
    values: Vec<(&'static str, Option<String>)>,
}

pub fn parse(mode: &'static str, flags: &[Flag], args: &[String]) -> Result<Args, String> {
    let mut values: Vec<(&'static str, Option<String>)> = flags
        .iter()
        .map(|f| (f.name, f.default.map(String::from)))
        .collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let Some(slot) = values.iter_mut().find(|(n, _)| *n == name) else {
            return Err(format!(
                "unknown argument {a:?} (see herald-bench {mode} --help)"
            ));
        };
        let v = match inline {
            Some(v) => v,
            None => it
                .next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))?,
        };
        slot.1 = Some(v);
    }
    Ok(Args { mode, values })
}

pub fn usage(mode: &str, about: &str, flags: &[Flag]) -> String {
    let mut s = format!("herald-bench {mode}: {about}\n\nFLAGS:\n");
    for f in flags {
        let default = f.default.map(|d| format!(" [{d}]")).unwrap_or_default();
        s.push_str(&format!("    {:<16} {}{default}\n", f.name, f.help));
    }
    s
}

impl Args {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    pub fn required(&self, name: &str) -> Result<&str, String> {
        self.get(name).ok_or_else(|| format!("{name} is required"))
    }

    pub fn num<T: FromStr>(&self, name: &str) -> Result<T, String> {
        let v = self.required(name)?;
        v.parse()
            .map_err(|_| format!("{name}: expected a number, got {v:?}"))
    }

    pub fn opt_num<T: FromStr>(&self, name: &str) -> Result<Option<T>, String> {
        self.get(name).map(|_| self.num(name)).transpose()
    }

    pub fn addr(&self, name: &str) -> Result<SocketAddrV4, String> {
        parse_v4(name, self.required(name)?)
    }

    pub fn opt_addr(&self, name: &str) -> Result<Option<SocketAddrV4>, String> {
        self.get(name).map(|v| parse_v4(name, v)).transpose()
    }

    pub fn list(&self, name: &str) -> Result<Vec<usize>, String> {
        self.required(name)?
            .split(',')
            .map(|v| {
                v.trim()
                    .parse()
                    .map_err(|_| format!("{name}: expected numbers separated by commas"))
            })
            .collect()
    }

    /// Replaces a value (e.g. when a count is capped), so that the printed
    /// command line says what was really run.
    pub fn set(&mut self, name: &str, value: String) {
        if let Some(slot) = self.values.iter_mut().find(|(n, _)| *n == name) {
            slot.1 = Some(value);
        }
    }

    /// The command line that reproduces this run, every value explicit.
    pub fn command_line(&self) -> String {
        let mut s = format!("herald-bench {}", self.mode);
        for (name, v) in &self.values {
            if let Some(v) = v {
                s.push_str(&format!(" {name} {}", shell_word(v)));
            }
        }
        s
    }
}

fn parse_v4(name: &str, v: &str) -> Result<SocketAddrV4, String> {
    match v.parse::<SocketAddr>() {
        Ok(SocketAddr::V4(a)) => Ok(a),
        Ok(SocketAddr::V6(_)) => Err(format!(
            "{name}: IPv6 targets are not supported; use an IPv4 address"
        )),
        Err(_) => Err(format!(
            "{name}: cannot parse {v:?} (expected IP:PORT, e.g. 127.0.0.1:1234)"
        )),
    }
}

fn shell_word(v: &str) -> String {
    if !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.,:/=+@".contains(&b))
    {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', r"'\''"))
    }
}
