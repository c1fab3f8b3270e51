//! What a churn run prints: the figures for people, one JSON result line,
//! and one markdown row (`row: | ... |`) that benches/churn.sh gathers
//! into its table under [`ROW_HEADER`].

use super::backend::Replies;
use super::population::{Churn, Counts};
use super::tally::{Summary, Tally};
use crate::report::{fmt_num, Reporter};
use serde_json::{json, Map, Value};

/// The header of the rows [`print`] writes.
pub const ROW_HEADER: &str = "| run | resume | expected | delivered | missing | duplicated | \
     lost statuses | offsets skipped | lines resent | drops | server closes | \
     pushes per server CPU-s |\n\
     | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |";

/// What the server spent over the window and the settle period.
pub struct Cpu {
    pub seconds: f64,
    pub wall: f64,
}

/// The /stats figures whose name says "history", flattened ("history.bytes").
pub fn history_figures(stats: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    walk(stats, String::new(), false, &mut out);
    out
}

fn walk(v: &Value, path: String, inside: bool, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(v, p, inside || k.contains("history"), out);
            }
        }
        _ if inside => out.push((path, v.clone())),
        _ => {}
    }
}

/// A finished run.
pub struct Outcome<'a> {
    pub churn: &'a Churn,
    /// The window's length.
    pub secs: f64,
    pub cpu: Option<Cpu>,
    /// From /stats, see [`history_figures`].
    pub history: Vec<(String, Value)>,
}

/// Prints the figures of a run (see the module docs).
pub fn print(rep: &Reporter, o: Outcome<'_>) {
    let (s, tally, counts) = (o.churn.settings(), &o.churn.tally, &o.churn.counts);
    let (replies, secs, cpu, history) = (&o.churn.backend.replies, o.secs, o.cpu, &o.history);
    let sum = tally.summary();
    let missing = sum.expected.saturating_sub(sum.delivered);
    println!(
        "window {secs} s: {} pushes ({}/s) and {} broadcasts to {} clients, {}",
        sum.pushes,
        fmt_num(s.rate),
        sum.broadcasts,
        s.clients,
        if s.resume {
            "resuming (herald.v1)"
        } else {
            "seed clients, no resume"
        }
    );
    println!(
        "expected {}, delivered {} ({:.3}%), missing {missing}, duplicated {}",
        sum.expected,
        sum.delivered,
        sum.delivered_percent(),
        sum.duplicates
    );
    print_counts(&sum, counts, replies, tally);
    let per_cpu = cpu.as_ref().filter(|c| c.seconds > 0.0).map(|c| {
        let lines = (sum.pushes + sum.broadcasts) as f64;
        let per = lines / c.seconds;
        println!(
            "server CPU {:.2} s over {:.1} s = {:.0}% of one core; {} pushes per server CPU-second \
             (handshakes and closes included)",
            c.seconds,
            c.wall,
            c.seconds / c.wall * 100.0,
            fmt_num(per)
        );
        per
    });
    for (k, v) in history {
        println!("  /stats {k} = {v}");
    }
    let lost = counts.statuses[2];
    let drops = counts.drops_clean + counts.drops_reset;
    for h in ROW_HEADER.lines() {
        println!("row-header: {h}");
    }
    println!(
        "row: | {} | {} | {} | {} ({:.3}%) | {missing} | {} | {lost} | {} | {} | {drops} | {} | {} |",
        rep.label(),
        if s.resume { "on" } else { "off" },
        sum.expected,
        sum.delivered,
        sum.delivered_percent(),
        sum.duplicates,
        counts.skipped,
        replies.resent,
        counts.server_closes,
        per_cpu.map_or("–".into(), fmt_num)
    );
    let mut extra = figures(&sum, counts, replies, tally);
    if let Some(per) = per_cpu {
        extra.insert("per_cpu_second".into(), json!(per));
    }
    if let Some(c) = cpu {
        extra.insert("server_cpu_s".into(), json!(c.seconds));
    }
    for (k, v) in history {
        extra.insert(format!("stats.{k}"), v.clone());
    }
    rep.result("1 run", sum.delivered_percent(), "% delivered", extra);
}

fn print_counts(sum: &Summary, c: &Counts, r: &Replies, t: &Tally) {
    println!(
        "backend replies: ok {}, fail {}, error {}; lines resent {} (unanswered when the \
         server closed their connection){}",
        r.ok,
        r.fail,
        r.error,
        r.resent,
        r.first_error
            .as_ref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );
    println!(
        "clients: drops {} clean + {} reset, reconnects {}, server closes {} ({} with 1012), \
         connect failures {}",
        c.drops_clean,
        c.drops_reset,
        c.reconnects,
        c.server_closes,
        c.restart_closes,
        c.connect_failures
    );
    if let Some(f) = &c.first_failure {
        println!("  first failure: {f}");
    }
    let [new, ok, lost, off] = c.statuses;
    if new + ok + lost + off > 0 {
        println!(
            "resume: s lines new {new}, ok {ok}, lost {lost}, off {off}; offsets skipped {}, \
             repeated {}, protocol errors {}",
            c.skipped, c.repeated, c.bad
        );
    }
    if let Some(b) = &c.first_bad {
        println!("  first protocol error: {b}");
    }
    if t.misrouted + t.unknown > 0 {
        println!(
            "WARNING: {} pushes reached the wrong client, {} messages carried no sequence \
             number of this run (of {} expected)",
            t.misrouted, t.unknown, sum.expected
        );
    }
}

fn figures(sum: &Summary, c: &Counts, r: &Replies, t: &Tally) -> Map<String, Value> {
    let pairs: [(&str, u64); 22] = [
        ("pushes", sum.pushes),
        ("broadcasts", sum.broadcasts),
        ("expected", sum.expected),
        ("delivered", sum.delivered),
        ("missing", sum.expected.saturating_sub(sum.delivered)),
        ("duplicated", sum.duplicates),
        ("misrouted", t.misrouted),
        ("unknown", t.unknown),
        ("replies_ok", r.ok),
        ("replies_fail", r.fail),
        ("replies_error", r.error),
        ("resent", r.resent),
        ("drops_clean", c.drops_clean),
        ("drops_reset", c.drops_reset),
        ("reconnects", c.reconnects),
        ("server_closes", c.server_closes),
        ("restart_closes", c.restart_closes),
        ("connect_failures", c.connect_failures),
        ("status_lost", c.statuses[2]),
        ("status_ok", c.statuses[1]),
        ("offsets_skipped", c.skipped),
        ("offsets_repeated", c.repeated),
    ];
    pairs.iter().map(|&(k, v)| (k.into(), json!(v))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_figures_are_found_at_any_depth() {
        let v = json!({"connections": 3, "history_messages": 10,
            "history": {"bytes": 640, "streams": 2}, "other": {"history_x": 1, "y": 2}});
        let mut f = history_figures(&v);
        f.sort_by(|a, b| a.0.cmp(&b.0));
        let names: Vec<&str> = f.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "history.bytes",
                "history.streams",
                "history_messages",
                "other.history_x"
            ]
        );
    }
}
