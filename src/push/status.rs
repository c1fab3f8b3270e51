//! `herald status` and `herald connections` for people: the API's JSON
//! (/stats, /connections) laid out as a summary and a table.

use serde_json::Value;
use std::fmt::Write as _;

fn num(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// `1234567` -> `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes as B, KiB, MiB or GiB with one decimal.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// `3725` -> `1h 02m 05s`.
fn duration(s: u64) -> String {
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {:02}m {:02}s", s / 3600, s % 3600 / 60, s % 60),
        _ => format!(
            "{}d {:02}h {:02}m",
            s / 86_400,
            s % 86_400 / 3600,
            s % 3600 / 60
        ),
    }
}

/// The summary `herald status` prints from /stats.
pub fn status_text(v: &Value) -> String {
    let n = |k: &str| grouped(num(v, k));
    let mut out = String::new();
    let _ = writeln!(out, "herald, up {}", duration(num(v, "uptime_seconds")));
    let _ = writeln!(
        out,
        "  connections  {} open, {} bound to {} uids; {} accepted, {} refused by limits",
        n("connections"),
        n("bound_connections"),
        n("uids"),
        n("accepted"),
        n("refused")
    );
    let _ = writeln!(
        out,
        "  memory       RSS {}, {} per connection; open-file limit {} (hard {})",
        bytes(num(v, "rss_bytes")),
        bytes(num(v, "rss_per_connection")),
        n("nofile_soft"),
        n("nofile_hard")
    );
    let _ = writeln!(
        out,
        "  pushes       {} ok, {} fail, {} bad requests",
        n("pushes_ok"),
        n("pushes_fail"),
        n("bad_requests")
    );
    let _ = writeln!(
        out,
        "  delivery     {} messages in, {} out ({} in, {} out); {} dropped, {} slow consumers closed",
        n("messages_in"),
        n("messages_out"),
        bytes(num(v, "bytes_in")),
        bytes(num(v, "bytes_out")),
        n("dropped"),
        n("slow_consumers_closed")
    );
    let _ = writeln!(
        out,
        "  refusals     {} handshakes, {} protocol errors, {} timeouts, {} uid tokens, {} origins, {} without API token",
        n("handshake_failures"),
        n("protocol_errors"),
        n("timeouts"),
        n("auth_refused"),
        n("origin_refused"),
        n("unauthorized")
    );
    if let Some(node) = v.get("node").and_then(Value::as_str) {
        let _ = writeln!(
            out,
            "  redis        {}; {} published, {} received, {} reconnects, {} pending",
            if num(v, "redis_up") == 1 {
                "up"
            } else {
                "DOWN"
            },
            n("redis_published"),
            n("redis_received"),
            n("redis_reconnects"),
            bytes(num(v, "redis_pending_bytes"))
        );
        let _ = writeln!(out, "  this node    {node} (worker {})", num(v, "worker"));
    }
    let nodes = v.get("nodes").and_then(Value::as_array);
    if let Some(nodes) = nodes.filter(|n| !n.is_empty()) {
        out.push('\n');
        let mut row = |cols: [&str; 6]| {
            let _ = writeln!(
                out,
                "  {:<36} {:>6} {:>12} {:>12} {:>12} {:>10}",
                cols[0], cols[1], cols[2], cols[3], cols[4], cols[5]
            );
        };
        row([
            "NODE",
            "WORKER",
            "CONNECTIONS",
            "PUSHES OK",
            "PUSHES FAIL",
            "RSS",
        ]);
        let mut total = [0u64; 4];
        for node in nodes {
            let f = [
                num(node, "connections"),
                num(node, "pushes_ok"),
                num(node, "pushes_fail"),
                num(node, "rss_bytes"),
            ];
            for (t, x) in total.iter_mut().zip(f) {
                *t += x;
            }
            let name = node.get("node").and_then(Value::as_str).unwrap_or("?");
            let worker = num(node, "worker").to_string();
            let (c, ok, fail, rss) = (grouped(f[0]), grouped(f[1]), grouped(f[2]), bytes(f[3]));
            row([name, &worker, &c, &ok, &fail, &rss]);
        }
        let label = format!("total ({} nodes, as of their last heartbeat)", nodes.len());
        let (c, ok, fail, rss) = (
            grouped(total[0]),
            grouped(total[1]),
            grouped(total[2]),
            bytes(total[3]),
        );
        row([&label, "", &c, &ok, &fail, &rss]);
    }
    out
}

/// The table `herald connections` prints from /connections.
pub fn connections_text(v: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12} {:<6} {:<40} {:<24} {:>10} {:>10}",
        "ID", "PROTO", "PEER", "UID", "AGE", "QUEUED"
    );
    let list = v.get("connections").and_then(Value::as_array);
    for c in list.into_iter().flatten() {
        let text = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("-").to_string();
        let mut uid = text("uid");
        if uid.chars().count() > 24 {
            uid = uid.chars().take(23).collect::<String>() + "~";
        }
        let _ = writeln!(
            out,
            "{:<12} {:<6} {:<40} {:<24} {:>10} {:>10}",
            num(c, "id"),
            text("protocol"),
            text("peer"),
            uid,
            duration(num(c, "age_s")),
            bytes(num(c, "queued"))
        );
    }
    let (total, listed) = (num(v, "total"), num(v, "listed"));
    if listed < total {
        let _ = writeln!(
            out,
            "({} of {} connections listed; --limit N for more)",
            grouped(listed),
            grouped(total)
        );
    } else {
        let _ = writeln!(out, "({} connections)", grouped(total));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_for_people() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(1234567), "1,234,567");
        assert_eq!(grouped(100), "100");
        assert_eq!(bytes(134), "134 B");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
        assert_eq!(duration(3725), "1h 02m 05s");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(90_061), "1d 01h 01m");
    }

    #[test]
    fn the_summary_and_the_table() {
        let stats = serde_json::json!({"connections": 10000, "uids": 9000, "pushes_ok": 5,
            "rss_bytes": 3 << 20, "uptime_seconds": 61});
        let s = status_text(&stats);
        assert!(s.starts_with("herald, up 1m 01s\n"), "{s}");
        assert!(s.contains("10,000 open"), "{s}");
        assert!(s.contains("to 9,000 uids"), "{s}");
        assert!(s.contains("RSS 3.0 MiB"), "{s}");
        let cluster = serde_json::json!({"node": "a", "worker": 0, "redis_up": 1, "nodes": [
            {"node": "a", "worker": 0, "connections": 5}, {"node": "b", "worker": 1, "connections": 7}]});
        let s = status_text(&cluster);
        assert!(s.contains("redis        up"), "{s}");
        assert!(
            s.lines()
                .any(|l| l.contains("total (2 nodes") && l.contains(" 12 ")),
            "{s}"
        );
        let conns = serde_json::json!({"total": 3, "listed": 1, "connections": [
            {"id": 4294967296u64, "protocol": "ws", "peer": "127.0.0.1:5000", "uid": "alice",
             "age_s": 12, "queued": 0}]});
        let t = connections_text(&conns);
        assert!(t.lines().nth(1).unwrap().contains("alice"), "{t}");
        assert!(t.contains("127.0.0.1:5000"), "{t}");
        assert!(t.contains("(1 of 3 connections listed"), "{t}");
    }
}
