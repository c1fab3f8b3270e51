//! herald-bench: load for any server that speaks the seed protocol (uid as
//! the first WebSocket message, newline-delimited pushes on a text port,
//! `all:`/`uid:` client routing), and for herald's topics. Each mode is
//! bounded in time and prints its figures, the command line that reproduces
//! them, and one JSON line per run for scripts (`herald-bench table` turns
//! saved lines into markdown).
#![deny(clippy::undocumented_unsafe_blocks)]

mod broadcast;
mod churn;
mod cli;
mod client;
mod deflate;
mod event;
mod fleet;
mod handshakes;
mod histmem;
mod host;
mod idle;
mod latency;
mod membership;
mod net;
mod open;
mod payload;
mod push;
mod report;
mod series;
mod textport;
mod topic;
mod wait;

use cli::Mode;
use std::process::ExitCode;

const MODES: &[Mode] = &[
    idle::MODE,
    broadcast::MODE,
    push::MODE,
    latency::MODE,
    handshakes::MODE,
    churn::MODE,
    histmem::MODE,
    topic::MODE,
    membership::MODE,
];

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
