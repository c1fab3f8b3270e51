//! Command-line flags of each mode: declared once, parsed, and printed back
//! with every value explicit so that a run can be reproduced exactly; the
//! settings every mode reads from them.

use crate::host;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// One mode of the tool: `herald-bench NAME [FLAGS]`.
pub struct Mode {
    pub name: &'static str,
    pub about: &'static str,
    pub flags: &'static [Flag],
    pub run: fn(&mut Args) -> Result<(), String>,
}

/// One `--name VALUE` flag of a mode, or a `--name` switch.
pub struct Flag {
    pub name: &'static str,
    /// `None`: no default (required, or optional when the mode says so).
    pub default: Option<&'static str>,
    pub help: &'static str,
    /// A switch takes no value: given or not (off by default).
    pub switch: bool,
}

// Flags most modes share.
pub const WS: Flag = flag("--ws", None, "WebSocket address of the server (required)");
pub const TEXT: Flag = flag("--text", None, "text port address of the server (required)");
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

pub const DEFLATE: Flag = switch(
    "--deflate",
    "offer permessage-deflate (RFC 7692), inflate what comes compressed",
);

pub const JSON: Flag = flag(
    "--json",
    None,
    "payload: a JSON catalog of about SIZE bytes (compresses like real pushes)",
);

pub const fn flag(name: &'static str, default: Option<&'static str>, help: &'static str) -> Flag {
    Flag {
        name,
        default,
        help,
        switch: false,
    }
}

/// A `--name` flag without a value, off unless given.
pub const fn switch(name: &'static str, help: &'static str) -> Flag {
    Flag {
        name,
        default: None,
        help,
        switch: true,
    }
}

/// One flag's value as parsed (a switch that is on holds "on").
struct Slot {
    name: &'static str,
    switch: bool,
    /// Given on the command line (not only a default).
    given: bool,
    value: Option<String>,
}

/// The parsed flags of one mode, in declaration order.
pub struct Args {
    pub mode: &'static str,
    values: Vec<Slot>,
}

pub fn parse(mode: &'static str, flags: &[Flag], args: &[String]) -> Result<Args, String> {
    let mut values: Vec<Slot> = flags
        .iter()
        .map(|f| Slot {
            name: f.name,
            switch: f.switch,
            given: false,
            value: f.default.map(String::from),
        })
        .collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let Some(slot) = values.iter_mut().find(|s| s.name == name) else {
            return Err(format!(
                "unknown argument {a:?} (see herald-bench {mode} --help)"
            ));
        };
        let v = match inline {
            Some(_) if slot.switch => return Err(format!("{name} takes no value")),
            None if slot.switch => "on".to_string(),
            Some(v) => v,
            None => it
                .next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))?,
        };
        slot.value = Some(v);
        slot.given = true;
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
    fn slot(&self, name: &str) -> Option<&Slot> {
        self.values.iter().find(|s| s.name == name)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.slot(name).and_then(|s| s.value.as_deref())
    }

    /// A switch (or any flag) is on: given, or with a default.
    pub fn on(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The flag was given on the command line (not only defaulted).
    pub fn given(&self, name: &str) -> bool {
        self.slot(name).is_some_and(|s| s.given)
    }

    /// Drops a flag's value (e.g. a default another flag replaces), so
    /// that the printed command line does not show it.
    pub fn unset(&mut self, name: &str) {
        if let Some(slot) = self.values.iter_mut().find(|s| s.name == name) {
            slot.value = None;
        }
    }

    pub fn required(&self, name: &str) -> Result<&str, String> {
        self.get(name).ok_or_else(|| format!("{name} is required"))
    }

    pub fn num<T: FromStr>(&self, name: &str) -> Result<T, String> {
        let v = self.required(name)?;
        v.parse()
            .map_err(|_| format!("{name}: expected a number, got {v:?}"))
    }

    /// The values of `names`, each a whole number of at least 1.
    pub fn positive<const N: usize>(&self, names: [&str; N]) -> Result<[usize; N], String> {
        let mut values = [0; N];
        for (v, name) in values.iter_mut().zip(names) {
            *v = self.num(name)?;
        }
        if values.contains(&0) {
            let (last, rest) = names.split_last().unwrap_or((&"", &[]));
            let list = match rest {
                [] => last.to_string(),
                _ => format!("{} and {last}", rest.join(", ")),
            };
            return Err(format!("{list} must be at least 1"));
        }
        Ok(values)
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
        if let Some(slot) = self.values.iter_mut().find(|s| s.name == name) {
            slot.value = Some(value);
        }
    }

    /// The command line that reproduces this run, every value explicit.
    pub fn command_line(&self) -> String {
        let mut s = format!("herald-bench {}", self.mode);
        for slot in &self.values {
            match &slot.value {
                Some(_) if slot.switch => s.push_str(&format!(" {}", slot.name)),
                Some(v) => s.push_str(&format!(" {} {}", slot.name, shell_word(v))),
                None => {}
            }
        }
        s
    }
}

/// Settings every mode shares.
pub struct Common {
    /// Longest any one phase (opening, checking, one run) may take.
    pub timeout: Duration,
    /// Handshakes in flight while opening connections.
    pub window: usize,
    /// Source addresses to connect from (empty: the kernel's choice).
    pub sources: Vec<Ipv4Addr>,
    /// `--deflate`: the clients offer permessage-deflate.
    pub deflate: bool,
}

impl Common {
    /// `conns`: simultaneous connections to `dst`, to plan source addresses.
    pub fn from_args(a: &Args, conns: usize, dst: SocketAddrV4) -> Result<Common, String> {
        let timeout = Duration::from_secs(a.num("--timeout")?);
        let window = a.opt_num("--window")?.unwrap_or(256);
        let sources = host::plan_sources(conns, dst, a.opt_num("--sources")?)?;
        Ok(Common {
            timeout,
            window,
            sources,
            deflate: a.on("--deflate"),
        })
    }

    pub fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }
}

/// `--label`, else the server's command name, else "server".
pub fn label_of(a: &Args, pid: Option<u32>) -> String {
    a.get("--label")
        .map(String::from)
        .or_else(|| pid.and_then(host::comm))
        .unwrap_or_else(|| "server".into())
}

/// "conns=10000 messages=100" from the named flags, for tables; a switch
/// that is on shows as its name alone ("deflate").
pub fn params(a: &Args, names: &[&str]) -> String {
    names
        .iter()
        .filter_map(|n| {
            let slot = a.slot(n)?;
            let name = n.trim_start_matches("--");
            match &slot.value {
                Some(_) if slot.switch => Some(name.to_string()),
                Some(v) => Some(format!("{name}={v}")),
                None => None,
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_take_no_value_and_print_as_given() {
        let flags = [flag("--conns", Some("10"), ""), JSON, DEFLATE];
        let words = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let a = parse("push", &flags, &words(&["--deflate", "--json", "1024"])).unwrap();
        assert!(a.on("--deflate") && a.given("--json") && !a.given("--conns"));
        assert_eq!(
            a.command_line(),
            "herald-bench push --conns 10 --json 1024 --deflate"
        );
        assert_eq!(
            params(&a, &["--conns", "--json", "--deflate"]),
            "conns=10 json=1024 deflate"
        );
        let mut a = parse("push", &flags, &[]).unwrap();
        assert!(!a.on("--deflate"));
        assert_eq!(params(&a, &["--conns", "--deflate"]), "conns=10");
        a.unset("--conns");
        assert_eq!(a.command_line(), "herald-bench push");
        assert!(parse("push", &flags, &words(&["--deflate=yes"])).is_err());
    }
}
