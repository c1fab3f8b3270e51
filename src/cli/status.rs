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

/// The lines of the summary under their labels: each `{key}` is that
/// figure of /stats as a count, each `{key:bytes}` as a size.
const SUMMARY: &[(&str, &str)] = &[
    (
        "connections",
        "{connections} open, {bound_connections} bound to {uids} uids; \
         {accepted} accepted, {refused} refused by limits",
    ),
    (
        "memory",
        "RSS {rss_bytes:bytes}, {rss_per_connection:bytes} per connection; \
         open-file limit {nofile_soft} (hard {nofile_hard})",
    ),
    (
        "pushes",
        "{pushes_ok} ok, {pushes_fail} fail, {bad_requests} bad requests",
    ),
    (
        "delivery",
        "messages {messages_in} in, {messages_out} out \
         ({bytes_in:bytes} in, {bytes_out:bytes} out); \
         {dropped} dropped, {slow_consumers_closed} slow consumers closed",
    ),
    (
        "refusals",
        "{handshake_failures} handshakes, {protocol_errors} protocol errors, \
         {timeouts} timeouts, {auth_refused} uid tokens, {origin_refused} origins, \
         {unauthorized} without API token",
    ),
];

/// The Redis line of a node in a cluster, after `up` or `DOWN`.
const REDIS: &str = "{redis_published} published, {redis_received} received, \
     {redis_reconnects} reconnects, {redis_pending_bytes:bytes} pending";

/// `template` with its `{key}` and `{key:bytes}` filled from `v`.
fn fill(template: &str, v: &Value) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some((before, after)) = rest.split_once('{') {
        let (field, after) = after.split_once('}').unwrap_or((after, ""));
        out.push_str(before);
        out.push_str(&match field.split_once(':') {
            Some((key, "bytes")) => bytes(num(v, key)),
            _ => grouped(num(v, field)),
        });
        rest = after;
    }
    out.push_str(rest);
    out
}

/// The summary `herald status` prints from /stats.
pub fn status_text(v: &Value) -> String {
    let mut rows: Vec<(&str, String)> = SUMMARY.iter().map(|&(l, t)| (l, fill(t, v))).collect();
    if let Some(node) = v.get("node").and_then(Value::as_str) {
        let up = if num(v, "redis_up") == 1 {
            "up"
        } else {
            "DOWN"
        };
        rows.push(("redis", format!("{up}; {}", fill(REDIS, v))));
        let worker = match v.get("worker").and_then(Value::as_u64) {
            Some(w) => format!(" (worker {w})"),
            None => String::new(),
        };
        rows.push(("this node", format!("{node}{worker}")));
    }
    let mut out = format!("herald, up {}\n", duration(num(v, "uptime_seconds")));
    for (label, text) in rows {
        let _ = writeln!(out, "  {label:<12} {text}");
    }
    let nodes = v.get("nodes").and_then(Value::as_array);
    if let Some(nodes) = nodes.filter(|n| !n.is_empty()) {
        let _ = writeln!(
            out,
            "  (the figures above are this node's and worker's alone; every node is below)"
        );
        out.push('\n');
        nodes_table(nodes, &mut out);
    }
    out
}

/// One row per node of the cluster, as of its last heartbeat, and a total.
fn nodes_table(nodes: &[Value], out: &mut String) {
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
    // Connections, pushes ok, pushes failed, RSS.
    let figures = |f: [u64; 4]| [grouped(f[0]), grouped(f[1]), grouped(f[2]), bytes(f[3])];
    let mut total = [0u64; 4];
    for node in nodes {
        let f = ["connections", "pushes_ok", "pushes_fail", "rss_bytes"].map(|k| num(node, k));
        for (t, x) in total.iter_mut().zip(f) {
            *t += x;
        }
        let name = node.get("node").and_then(Value::as_str).unwrap_or("?");
        // A lone process is no worker: `-`, not a worker 0.
        let worker = node
            .get("worker")
            .and_then(Value::as_u64)
            .map_or("-".to_string(), |w| w.to_string());
        let [c, ok, fail, rss] = figures(f);
        row([name, &worker, &c, &ok, &fail, &rss]);
    }
    let label = format!("total ({} nodes, as of their last heartbeat)", nodes.len());
    let [c, ok, fail, rss] = figures(total);
    row([&label, "", &c, &ok, &fail, &rss]);
}

/// The table `herald connections` prints from /connections.
pub fn connections_text(v: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:<6} {:<40} {:<24} {:>10} {:>10}",
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
            // 20: a connection id is a u64 (generation and slot).
            "{:<20} {:<6} {:<40} {:<24} {:>10} {:>10}",
            num(c, "id"),
            text("protocol"),
            text("peer"),
            uid,
            duration(num(c, "age_s")),
            bytes(num(c, "queued"))
        );
    }
    let (total, listed) = (num(v, "total"), num(v, "listed"));
    let noun = if total == 1 {
        "connection"
    } else {
        "connections"
    };
    if listed < total {
        let _ = writeln!(
            out,
            "({} of {} {noun} listed; --limit N for more)",
            grouped(listed),
            grouped(total)
        );
    } else {
        let _ = writeln!(out, "({} {noun})", grouped(total));
    }
    if let Some(node) = v.get("node").and_then(Value::as_str) {
        let _ = writeln!(
            out,
            "(these are node {node}, worker {}'s only: each node and each --workers worker \
             lists its own; run again to reach another worker, `herald status` counts every node)",
            num(v, "worker")
        );
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

    #[test]
    fn a_cluster_node_says_whose_connections_it_listed() {
        let one = serde_json::json!({"total": 1, "listed": 1, "connections": []});
        let text = connections_text(&one);
        assert!(text.contains("(1 connection)"), "{text}");
        assert!(!text.contains("worker"), "{text}");
        let worker = serde_json::json!({"total": 2, "listed": 2, "node": "n1", "worker": 1, "connections": []});
        let text = connections_text(&worker);
        assert!(text.contains("node n1, worker 1's only"), "{text}");
        assert!(text.contains("run again"), "{text}");
    }
}
