//! Figures out: human lines, one JSON line per run and per result, medians
//! and percentiles, and the markdown table built from saved JSON lines.

use crate::cli::{label_of, params, Args};
use serde_json::{json, Map, Value};

/// Prints the figures of one mode against one server.
pub struct Reporter {
    mode: &'static str,
    label: String,
    command: String,
    /// Parameters shown in tables, e.g. "conns=10000 messages=100".
    params: String,
}

impl Reporter {
    /// The reporter of the mode `a` runs, against the server `--label` names
    /// (see [`label_of`]), with `table_params` as its table parameters;
    /// prints what runs against what and the command line that reproduces it.
    pub fn start(a: &Args, table_params: &[&str]) -> Reporter {
        let rep = Reporter {
            mode: a.mode,
            label: label_of(a, None),
            command: a.command_line(),
            params: params(a, table_params),
        };
        println!("herald-bench {} against {}", rep.mode, rep.label);
        println!("reproduce: {}", rep.command);
        rep
    }

    /// The server's name in the output (`--label`).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// One JSON object on one line: the identifying fields first (in this
    /// order, for people reading logs), then the mode's extra figures.
    fn line(&self, kind: &str, run: Value, value: f64, unit: &str, extra: Map<String, Value>) {
        let mut fields: Vec<(String, Value)> = vec![
            ("mode".into(), json!(self.mode)),
            ("server".into(), json!(self.label)),
            ("kind".into(), json!(kind)),
            ("run".into(), run),
            ("value".into(), json!(round3(value))),
            ("unit".into(), json!(unit)),
            ("params".into(), json!(self.params)),
        ];
        fields.extend(extra);
        fields.push(("command".into(), json!(self.command)));
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}:{v}", Value::from(k.as_str())))
            .collect();
        println!("{{{}}}", body.join(","));
    }

    /// One measured run (or one step of the idle mode).
    pub fn run(&self, run: usize, value: f64, unit: &str, extra: Map<String, Value>) {
        self.line("run", json!(run), value, unit, extra);
    }

    /// The figure of the whole invocation; `how` says how it was obtained
    /// ("median of 3 runs", "at N=19000").
    pub fn result(&self, how: &str, value: f64, unit: &str, extra: Map<String, Value>) {
        println!("result: {} {unit} ({}; {how})", fmt_num(value), self.label);
        self.line("result", json!(how), value, unit, extra);
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// "median of 3 runs", "1 run".
pub fn median_of(runs: usize) -> String {
    if runs == 1 {
        "1 run".into()
    } else {
        format!("median of {runs} runs")
    }
}

/// The median; the mean of the two middle values for an even count.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Nearest-rank percentile `q` (0..=1) of sorted values.
pub fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// 1234567.8 -> "1,234,568"; small values keep one decimal.
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    if v.abs() < 100.0 {
        return format!("{v:.1}");
    }
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if v < 0.0 {
        out.insert(0, '-');
    }
    out
}

pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The figure a table shows only when some result has it (results saved
/// before it existed do not).
const WIRE: &str = "wire_bytes_per_message";

/// The figures a table shows for a mode: (JSON field, name, lower is better).
fn figures(mode: &str, unit: &str) -> Vec<(&'static str, String, bool)> {
    match mode {
        "latency" => vec![
            ("p50_us", "p50 latency, µs".into(), true),
            ("p99_us", "p99 latency, µs".into(), true),
            ("p999_us", "p99.9 latency, µs".into(), true),
            ("max_us", "max latency, µs".into(), true),
        ],
        "idle" => vec![("value", unit.to_string(), true)],
        "handshakes" => vec![
            ("value", unit.to_string(), false),
            (
                "per_cpu_second",
                "handshakes per server CPU-second".into(),
                false,
            ),
        ],
        "push" => vec![
            ("value", unit.to_string(), false),
            (
                "per_cpu_second",
                "pushes per server CPU-second".into(),
                false,
            ),
            (
                "messages_per_write",
                "messages per socket write".into(),
                false,
            ),
            (WIRE, "wire bytes per delivered message".into(), true),
        ],
        "broadcast" | "topic" => vec![
            ("value", unit.to_string(), false),
            (
                "per_cpu_second",
                "deliveries per server CPU-second".into(),
                false,
            ),
            (
                "messages_per_write",
                "messages per socket write".into(),
                false,
            ),
            (WIRE, "wire bytes per delivered message".into(), true),
        ],
        "membership" => vec![
            ("value", unit.to_string(), true),
            (
                "topic_bytes_per_membership",
                "topic bytes per membership, herald's count".into(),
                true,
            ),
            (
                "per_connection_no_topics",
                "RSS bytes per bound connection in no topic".into(),
                true,
            ),
        ],
        "history-memory" => vec![
            ("value", unit.to_string(), true),
            (
                "per_kept_message",
                "RSS bytes per kept message".into(),
                true,
            ),
            (
                "history_bytes_per_message",
                "history bytes per message, herald's count".into(),
                true,
            ),
        ],
        _ => vec![("value", unit.to_string(), false)],
    }
}

/// Reads JSON lines (the `result` lines of herald-bench runs, other lines
/// are skipped) and prints a markdown table of medians per mode and server.
pub fn table(paths: &[String]) -> Result<(), String> {
    let mut lines = Vec::new();
    for p in paths {
        let text = std::fs::read_to_string(p).map_err(|e| format!("cannot read {p}: {e}"))?;
        lines.extend(text.lines().map(str::to_string));
    }
    print!("{}", table_of(&lines)?);
    Ok(())
}

/// The markdown table of medians for JSON `lines` (see [`table`]).
fn table_of(lines: &[String]) -> Result<String, String> {
    let mut out = String::new();
    let mut rows: Vec<(String, String)> = Vec::new(); // (mode, params) in order seen
    let mut servers: Vec<String> = Vec::new();
    let mut seen: Vec<Value> = Vec::new();
    for l in lines.iter().filter(|l| l.starts_with('{')) {
        let Ok(v) = serde_json::from_str::<Value>(l) else {
            continue;
        };
        if v.get("kind").and_then(Value::as_str) != Some("result") {
            continue;
        }
        let mode = v["mode"].as_str().unwrap_or("?").to_string();
        let params = v["params"].as_str().unwrap_or("").to_string();
        let server = v["server"].as_str().unwrap_or("?").to_string();
        if !rows.contains(&(mode.clone(), params.clone())) {
            rows.push((mode, params));
        }
        if !servers.contains(&server) {
            servers.push(server);
        }
        seen.push(v);
    }
    if seen.is_empty() {
        return Err("no result lines found".into());
    }
    let mut head = "| mode | parameters | figure |".to_string();
    let mut rule = "| --- | --- | --- |".to_string();
    for s in &servers {
        head.push_str(&format!(" {s} |"));
        rule.push_str(" ---: |");
    }
    // The first server (herald in run-compare.sh) against each other one.
    for s in servers.iter().skip(1) {
        head.push_str(&format!(" {} / {s} |", servers[0]));
        rule.push_str(" ---: |");
    }
    out.push_str(&format!("{head}\n{rule}\n"));
    for (mode, params) in &rows {
        let of_row: Vec<&Value> = seen
            .iter()
            .filter(|v| v["mode"] == mode.as_str() && v["params"] == params.as_str())
            .collect();
        let unit = of_row[0]["unit"].as_str().unwrap_or("");
        for (field, name, lower_better) in figures(mode, unit) {
            if field == WIRE && of_row.iter().all(|v| v[field].is_null()) {
                continue;
            }
            let better = if lower_better { "lower" } else { "higher" };
            let mut line = format!("| {mode} | {params} | {name} ({better} is better) |");
            let mut meds = Vec::new();
            for s in &servers {
                let vals: Vec<f64> = of_row
                    .iter()
                    .filter(|v| v["server"] == s.as_str())
                    .filter_map(|v| v[field].as_f64())
                    .collect();
                let m = median(&vals);
                meds.push(m);
                let n = vals.len();
                if n == 0 {
                    line.push_str(" – |");
                } else {
                    line.push_str(&format!(" {} (n={n}) |", fmt_num(m)));
                }
            }
            for m in meds.iter().skip(1) {
                let r = meds[0] / m;
                if r.is_finite() && r > 0.0 {
                    line.push_str(&format!(" {r:.2} |"));
                } else {
                    line.push_str(" – |");
                }
            }
            out.push_str(&line);
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_percentiles_and_numbers() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 0.5), 500);
        assert_eq!(percentile(&v, 0.99), 990);
        assert_eq!(percentile(&v, 0.999), 999);
        assert_eq!(percentile(&v, 1.0), 1000);
        assert_eq!(fmt_num(1_234_567.8), "1,234,568");
        assert_eq!(fmt_num(999.0), "999");
        assert_eq!(fmt_num(12.34), "12.3");
    }

    #[test]
    fn the_table_compares_the_first_server_with_each_other_one() {
        let line = |server: &str, value: f64, cpu: Option<f64>| {
            let mut v = serde_json::json!({"mode": "handshakes", "kind": "result",
                "server": server, "params": "total=20000", "value": value,
                "unit": "handshakes/s"});
            if let Some(c) = cpu {
                v["per_cpu_second"] = serde_json::json!(c);
            }
            v.to_string()
        };
        let lines = vec![
            line("herald", 30_000.0, Some(40_000.0)),
            "not json".to_string(),
            line("uws", 20_000.0, Some(30_000.0)),
            line("herald", 10_000.0, Some(60_000.0)),
            line("node", 10_000.0, None),
            line("herald", 20_000.0, Some(50_000.0)),
        ];
        let t = table_of(&lines).unwrap();
        let rows: Vec<&str> = t.lines().collect();
        assert_eq!(
            rows[0],
            "| mode | parameters | figure | herald | uws | node | herald / uws | herald / node |"
        );
        assert!(rows[2].starts_with("| handshakes | total=20000 | handshakes/s (higher is better) | 20,000 (n=3) | 20,000 (n=1) | 10,000 (n=1) | 1.00 | 2.00 |"), "{}", rows[2]);
        assert!(
            rows[3].ends_with("| 50,000 (n=3) | 30,000 (n=1) | – | 1.67 | – |"),
            "{}",
            rows[3]
        );
    }
}
