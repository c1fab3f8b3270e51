//! `history-memory`: what a kept message costs the server. N bound clients,
//! then K pushes to them through the text port (in batches, each answered
//! and delivered before the next), and the server's VmRSS before and after;
//! run it against a server with `--history` and one without, the same way:
//! the difference is the history's cost. With `--stats`, herald's own
//! figures for what it holds (`history_messages`, `history_bytes`).

use crate::cli::{self, flag, Args, Common, Mode};
use crate::host::check_fd_budget;
use crate::report::{fmt_num, mib, Reporter};
use crate::series::stats_json;
use crate::textport::{open_clients, PushTally};
use crate::wait::Waited;
use serde_json::{json, Map, Value};
use std::fmt::Write as _;
use std::time::Duration;

pub const MODE: Mode = Mode {
    name: "history-memory",
    about: "server memory per pushed (and kept) message: VmRSS before and after K pushes",
    flags: &[
        cli::WS,
        cli::TEXT,
        flag("--pid", None, "server pid, for its VmRSS (required)"),
        flag(
            "--conns",
            Some("100"),
            "bound clients u0..u(N-1), the pushes' targets",
        ),
        flag(
            "--messages",
            Some("100000"),
            "pushes, round-robin over the clients",
        ),
        flag("--size", Some("100"), "bytes per pushed line"),
        flag(
            "--batch",
            Some("1000"),
            "pushes written at once, answered before the next",
        ),
        cli::SERVER_STATS,
        cli::LABEL,
        cli::TIMEOUT,
        cli::WINDOW,
        cli::SOURCES,
    ],
    run,
};

/// A line of `size` bytes (newline included) to uid `u<j mod n>`.
fn line(j: usize, n: usize, size: usize) -> String {
    let mut l = format!("{{\"uid\":\"u{}\",\"k\":{j},\"pad\":\"", j % n);
    let pad = size.saturating_sub(l.len() + 3);
    l.extend(std::iter::repeat_n('x', pad));
    l.push_str("\"}\n");
    l
}

/// The history figures of /stats: (messages, bytes) held.
fn held(api: Option<std::net::SocketAddrV4>) -> Option<(u64, u64)> {
    let v = stats_json(api?)?;
    Some((
        v["history_messages"].as_u64()?,
        v["history_bytes"].as_u64()?,
    ))
}

fn run(a: &mut Args) -> Result<(), String> {
    let ws = a.addr("--ws")?;
    let text = a.addr("--text")?;
    let pid: u32 = a.num("--pid")?;
    let [n, k, size, batch] = a.positive(["--conns", "--messages", "--size", "--batch"])?;
    let api = a.opt_addr("--stats")?;
    check_fd_budget(n + 1)?;
    let common = Common::from_args(a, n, ws)?;
    let rep = Reporter::start(a, &["--conns", "--messages", "--size"]);
    let mut fleet = open_clients(ws, text, n, &common)?;
    let settle = Duration::from_millis(500);
    let (rss0, held0) = (fleet.settled_rss(pid, settle)?, held(api));
    let mut j = 0;
    while j < k {
        let count = batch.min(k - j);
        let mut lines = String::with_capacity(count * (size + 8));
        for jj in j..j + count {
            lines.push_str(&line(jj, n, size));
        }
        let mut t = PushTally::new(count);
        fleet.text_send(lines.as_bytes());
        if fleet.wait(common.deadline(), &mut t)? == Waited::Deadline || t.stop.is_some() {
            let why = t.stop.unwrap_or_else(|| "timed out".into());
            return Err(format!("pushes {j}..{}: {why}", j + count));
        }
        if t.ok < count {
            return Err(format!("{} of {count} pushes answered fail", count - t.ok));
        }
        j += count;
    }
    let (rss1, held1) = (fleet.settled_rss(pid, settle)?, held(api));
    let grown = rss1.saturating_sub(rss0);
    let per_push = grown as f64 / k as f64;
    let mut extra = Map::new();
    let mut msg = String::new();
    let _ = write!(
        msg,
        "VmRSS {} -> {} (+{grown} B) for {k} pushes of {size} B to {n} clients: {} B per push",
        mib(rss0),
        mib(rss1),
        fmt_num(per_push)
    );
    extra.insert("rss_grown".into(), json!(grown));
    if let (Some((m0, b0)), Some((m1, b1))) = (held0, held1) {
        let (m, b) = (m1.saturating_sub(m0), b1.saturating_sub(b0));
        let _ = write!(msg, "; herald holds {m} more messages, {b} B by its count");
        if m > 0 {
            let per_kept = grown as f64 / m as f64;
            let _ = write!(msg, ": {} B of RSS per kept message", fmt_num(per_kept));
            extra.insert("per_kept_message".into(), json!(per_kept));
            extra.insert(
                "history_bytes_per_message".into(),
                json!(b as f64 / m as f64),
            );
        }
        extra.insert("kept".into(), Value::from(m));
    }
    println!("{msg}");
    rep.result("1 run", per_push, "RSS bytes per push", extra);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn lines_have_the_asked_size() {
        for size in [10, 64, 100, 1000] {
            let l = super::line(12345, 100, size);
            if size >= 64 {
                assert_eq!(l.len(), size);
            }
            assert!(l.starts_with("{\"uid\":\"u45\",\"k\":12345,"));
            assert!(serde_json::from_str::<serde_json::Value>(l.trim_end()).is_ok());
        }
    }
}
