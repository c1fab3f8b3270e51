//! herald-bench: load for any server that speaks the seed protocol (uid as
//! the first WebSocket message, newline-delimited pushes on a text port,
//! `all:`/`uid:` client routing). Each mode is bounded in time and prints
//! its figures, the command line that reproduces them, and one JSON line per
//! run for scripts (`herald-bench table` turns saved lines into markdown).
#![deny(clippy::undocumented_unsafe_blocks)]

mod broadcast;
mod cli;
mod client;
mod fleet;
mod handshakes;
mod host;
mod idle;
mod latency;
mod net;
mod push;
mod report;
mod wait;

use cli::{Args, Flag};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::ExitCode;
use std::time::{Duration, Instant};

struct Mode {
    name: &'static str,
    about: &'static str,
    flags: &'static [Flag],
    run: fn(&mut Args) -> Result<(), String>,
}

const MODES: &[Mode] = &[
    Mode {
        name: "idle",
        about: idle::ABOUT,
        flags: idle::FLAGS,
        run: idle::run,
    },
    Mode {
        name: "broadcast",
        about: broadcast::ABOUT,
        flags: broadcast::FLAGS,
        run: broadcast::run,
    },
    Mode {
        name: "push",
        about: push::ABOUT,
        flags: push::FLAGS,
        run: push::run,
    },
    Mode {
        name: "latency",
        about: latency::ABOUT,
        flags: latency::FLAGS,
        run: latency::run,
    },
    Mode {
        name: "handshakes",
        about: handshakes::ABOUT,
        flags: handshakes::FLAGS,
        run: handshakes::run,
    },
];

/// Settings every mode shares.
pub struct Common {
    /// Longest any one phase (opening, checking, one run) may take.
    pub timeout: Duration,
    /// Handshakes in flight while opening connections.
    pub window: usize,
    /// Source addresses to connect from (empty: the kernel's choice).
    pub sources: Vec<Ipv4Addr>,
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

/// "conns=10000 messages=100" from the named flags, for tables.
pub fn params(a: &Args, names: &[&str]) -> String {
    names
        .iter()
        .filter_map(|n| {
            a.get(n)
                .map(|v| format!("{}={v}", n.trim_start_matches("--")))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Raises the open-file limit and refuses counts this process cannot hold.
pub fn check_fd_budget(conns: usize) -> Result<(), String> {
    let soft = host::raise_nofile();
    let cap = soft.saturating_sub(32) as usize;
    if conns > cap {
        return Err(format!(
            "{conns} connections need more descriptors than this process may open \
             ({soft}, the hard open-file limit, less 32 for its own use): at most {cap}"
        ));
    }
    Ok(())
}

fn help() -> String {
    let mut s = String::from(
        "herald-bench: load for any server speaking the seed protocol\n\n\
         USAGE:\n    herald-bench MODE [FLAGS]      (herald-bench MODE --help for its flags)\n    \
         herald-bench table FILE...     markdown table of medians from saved JSON lines\n\nMODES:\n",
    );
    for m in MODES {
        s.push_str(&format!("    {:<12} {}\n", m.name, m.about));
    }
    s.push_str(
        "\nEvery run prints `reproduce: <command line>` and JSON lines \
         ({\"mode\":..,\"server\":..,\"kind\":\"run\"|\"result\",\"value\":..}).\n",
    );
    s
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(first) = args.first() else {
        eprint!("{}", help());
        return ExitCode::from(2);
    };
    if first == "-h" || first == "--help" || first == "help" {
        print!("{}", help());
        return ExitCode::SUCCESS;
    }
    if first == "table" {
        return match report::table(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("herald-bench table: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let Some(mode) = MODES.iter().find(|m| m.name == first) else {
        eprintln!("herald-bench: unknown mode {first:?}\n\n{}", help());
        return ExitCode::from(2);
    };
    if args[1..].iter().any(|a| a == "-h" || a == "--help") {
        print!("{}", cli::usage(mode.name, mode.about, mode.flags));
        return ExitCode::SUCCESS;
    }
    herald::sys::ignore_sigpipe();
    let mut parsed = match cli::parse(mode.name, mode.flags, &args[1..]) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("herald-bench {}: {e}", mode.name);
            return ExitCode::from(2);
        }
    };
    match (mode.run)(&mut parsed) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald-bench {}: {e}", mode.name);
            ExitCode::FAILURE
        }
    }
}
