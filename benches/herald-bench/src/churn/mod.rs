//! `churn`: delivery under connection churn, after AnyCable's
//! nodejs-websocket-bench. N clients bind, then for a window each is
//! dropped on average every `--drop-every` seconds (half a clean close,
//! half a reset) and reconnects after 0..`--reconnect-max-ms` to a random
//! node, while a backend pushes at a steady rate to random uids and
//! broadcasts; after a settle period (reconnects only), every (message,
//! client) pair is accounted: expected, delivered, duplicated. With
//! `--resume yes` clients speak `herald.v1` (docs/resume.md) and resume
//! from their positions.

mod backend;
mod population;
mod proto;
mod report;
mod rng;
mod tally;

use crate::cli::{self, flag, Args, Common, Mode};
use crate::fleet::Fleet;
use crate::host::{check_fd_budget, tree_cpu_seconds};
use crate::report::Reporter;
use crate::series::stats_json;
use crate::wait::Waited;
use backend::Backend;
use population::{Churn, Settings};
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

pub const MODE: Mode = Mode {
    name: "churn",
    about: "delivery while clients drop and reconnect (expected, delivered, duplicated)",
    flags: &[
        flag(
            "--ws",
            None,
            "WebSocket address(es) of the node(s), comma-separated (required)",
        ),
        flag(
            "--text",
            None,
            "text port address(es), comma-separated: one backend connection each (required)",
        ),
        flag(
            "--clients",
            Some("10000"),
            "clients c0..c(N-1), each bound to its uid",
        ),
        flag("--seconds", Some("60"), "length of the measured window"),
        flag(
            "--rate",
            Some("2000"),
            "pushes per second to random uids, one line per write",
        ),
        flag("--broadcasts", Some("1"), "broadcasts per second"),
        flag(
            "--drop-every",
            Some("15"),
            "mean seconds between two drops of a client (exponential)",
        ),
        flag(
            "--reconnect-max-ms",
            Some("2000"),
            "reconnect after a uniform 0..this delay",
        ),
        flag(
            "--resume",
            Some("no"),
            "yes: herald.v1 clients that resume from their positions",
        ),
        flag(
            "--settle",
            Some("5"),
            "seconds after the window: reconnects only, then the count",
        ),
        flag(
            "--seed",
            Some("1"),
            "random seed (targets, drop times, delays)",
        ),
        flag(
            "--pid",
            None,
            "server pid(s), comma-separated: CPU of each and its descendants",
        ),
        cli::SERVER_STATS,
        cli::LABEL,
        cli::TIMEOUT,
        cli::WINDOW,
        cli::SOURCES,
    ],
    run,
};

fn addrs(a: &Args, name: &str) -> Result<Vec<SocketAddrV4>, String> {
    a.required(name)?
        .split(',')
        .map(|v| {
            v.trim().parse::<SocketAddrV4>().map_err(|_| {
                format!("{name}: cannot parse {v:?} (expected IPv4 IP:PORT[,IP:PORT...])")
            })
        })
        .collect()
}

fn settings(a: &Args) -> Result<Settings, String> {
    let [clients, window] = a.positive(["--clients", "--window"])?;
    let secs = |name: &str| -> Result<Duration, String> {
        let v: f64 = a.num(name)?;
        Duration::try_from_secs_f64(v).map_err(|_| format!("{name}: expected seconds, got {v}"))
    };
    let resume = match a.required("--resume")? {
        "yes" => true,
        "no" => false,
        v => return Err(format!("--resume: yes or no, not {v:?}")),
    };
    let (rate, broadcasts_per_s): (f64, f64) = (a.num("--rate")?, a.num("--broadcasts")?);
    if !(rate.is_finite() && rate >= 0.0 && broadcasts_per_s.is_finite() && broadcasts_per_s >= 0.0)
    {
        return Err("--rate and --broadcasts must be numbers, 0 or more".into());
    }
    Ok(Settings {
        clients,
        nodes: addrs(a, "--ws")?,
        resume,
        drop_mean: secs("--drop-every")?,
        reconnect_max: Duration::from_millis(a.num("--reconnect-max-ms")?),
        rate,
        broadcasts_per_s,
        window,
    })
}

/// The CPU seconds of the server processes so far.
fn server_cpu(pids: &[u32]) -> Result<f64, String> {
    pids.iter().map(|&p| tree_cpu_seconds(p)).sum()
}

fn run(a: &mut Args) -> Result<(), String> {
    let s = settings(a)?;
    let texts = addrs(a, "--text")?;
    let window: f64 = a.num("--seconds")?;
    let settle: f64 = a.num("--settle")?;
    let (Ok(window), Ok(settle)) = (
        Duration::try_from_secs_f64(window),
        Duration::try_from_secs_f64(settle),
    ) else {
        return Err("--seconds and --settle must be seconds, 0 or more".into());
    };
    let pids: Vec<u32> = match a.get("--pid") {
        Some(v) => v
            .split(',')
            .map(|p| {
                p.trim()
                    .parse()
                    .map_err(|_| format!("--pid: not a pid list: {v:?}"))
            })
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    let api = a.opt_addr("--stats")?;
    check_fd_budget(s.clients + texts.len() + 8)?;
    let common = Common::from_args(a, s.clients, s.nodes[0])?;
    let rep = Reporter::start(a, &["--clients", "--seconds", "--rate", "--resume"]);
    let mut fleet = Fleet::new(s.nodes[0], &common.sources)?;
    for _ in 0..s.clients {
        fleet.add_client();
    }
    if s.resume {
        fleet.set_subprotocol(proto::SUBPROTOCOL);
    }
    let seed = a.num("--seed")?;
    let mut churn = Churn::new(s, Backend::connect(&texts)?, seed);
    bind(&mut fleet, &mut churn, &common)?;

    let cpu0 = server_cpu(&pids)?;
    let t0 = Instant::now();
    churn.start_window(window);
    let _ = fleet.wait(t0 + window, &mut churn)?;
    churn.start_settle();
    let _ = fleet.wait(Instant::now() + settle, &mut churn)?;
    let cpu = match pids.is_empty() {
        true => None,
        false => Some(report::Cpu {
            seconds: server_cpu(&pids)? - cpu0,
            wall: t0.elapsed().as_secs_f64(),
        }),
    };
    println!(
        "after {:.1} s of settling: {} of {} clients open, {} backend lines unanswered yet",
        settle.as_secs_f64(),
        churn.open_now(),
        churn.settings().clients,
        churn.backend.in_flight()
    );
    let stats = api.and_then(stats_json);
    let outcome = report::Outcome {
        churn: &churn,
        secs: window.as_secs_f64(),
        cpu,
        history: stats
            .as_ref()
            .map(report::history_figures)
            .unwrap_or_default(),
    };
    report::print(&rep, outcome);
    Ok(())
}

/// Opens and binds every client, waits until the server counts them all
/// online, then one more second (subscriptions through Redis).
fn bind(fleet: &mut Fleet, churn: &mut Churn, common: &Common) -> Result<(), String> {
    let t0 = Instant::now();
    if fleet.wait(common.deadline(), churn)? == Waited::Deadline {
        return Err(format!(
            "timed out binding the clients: {} of {} bound, the server counts {:?} uids online; \
             first failure: {}",
            churn.bound(),
            churn.settings().clients,
            churn.backend.replies.online_uids,
            churn.counts.first_failure.as_deref().unwrap_or("none")
        ));
    }
    churn.start_settle();
    let _ = fleet.wait(Instant::now() + Duration::from_secs(1), churn)?;
    println!(
        "{} clients bound in {:.2} s ({} connect failures, {} closes meanwhile)",
        churn.settings().clients,
        t0.elapsed().as_secs_f64(),
        churn.counts.connect_failures,
        churn.counts.server_closes
    );
    Ok(())
}
