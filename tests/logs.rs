//! The log an operator reads: timestamped lines with a level, filtered by
//! --log-level, in --log-file when asked, and bounded whatever clients do.

mod common;

use common::*;
use std::io::Write;
use std::time::Duration;

/// Lines of `text` that are log lines (timestamp, level, message).
fn log_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !log_message(l).is_empty())
        .collect()
}

#[test]
fn every_line_has_a_timestamp_and_a_level() {
    let h = Herald::start(&[]);
    let err = h.stderr();
    assert!(!err.is_empty());
    for line in err.lines() {
        assert!(!log_message(line).is_empty(), "not a log line: {line:?}");
    }
    assert!(err.contains(" INFO herald "), "{err}");
    assert!(err.contains(" WARN demo mode"), "{err}");
}

#[test]
fn a_flood_of_bad_handshakes_makes_a_bounded_number_of_lines() {
    let h = Herald::start(&["--log-level", "debug"]);
    let before = log_lines(&h.stderr()).len();
    for _ in 0..400 {
        let mut s = tcp(h.ws_addr());
        let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"); // not an upgrade: 426
        let _ = read_to_close(&mut s, TIMEOUT);
    }
    std::thread::sleep(Duration::from_millis(300));
    let err = h.stderr();
    let new = log_lines(&err).len() - before;
    // At debug: up to 20 refusals one by one per report, an aggregated
    // report at once and then at most one per 10 s: nowhere near one line
    // per refusal.
    assert!(new <= 42, "{new} lines for 400 refusals:\n{err}");
    let one_by_one = err.matches(" DEBUG refused 127.0.0.1: HTTP 426").count();
    assert!((20..=40).contains(&one_by_one), "{err}");
    let summary = err
        .lines()
        .find(|l| log_message(l).starts_with("refused 1 so far"));
    assert!(summary.is_some_and(|l| l.contains("HTTP 426 x1")), "{err}");
    h.assert_still_serving();
}

#[test]
fn the_aggregated_line_names_the_busiest_address() {
    let h = Herald::start(&["--max-handshakes-per-ip", "1"]);
    // The first refusal is reported at once ("so far"); the next report
    // comes 10 s later and sums up everything in between.
    let mut kept = Vec::new();
    let mut flood = |n: usize| {
        for _ in 0..n {
            let mut s = tcp(h.ws_addr());
            let _ = s.write_all(upgrade_request(h.ws_addr()).as_bytes());
            kept.push(s);
        }
    };
    flood(3);
    wait_until("the first report", || {
        h.stderr().contains(" so far: HTTP 429")
    });
    flood(30);
    let end = std::time::Instant::now() + Duration::from_secs(15);
    while !h.stderr().contains("in the last 10 s") {
        assert!(
            std::time::Instant::now() < end,
            "no 10 s report: {}",
            h.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let err = h.stderr();
    let line = err
        .lines()
        .find(|l| l.contains("in the last 10 s"))
        .unwrap();
    assert!(line.contains("HTTP 429 x"), "{line}");
    assert!(line.contains("1 address(es), top 127.0.0.1 x"), "{line}");
}

#[test]
fn the_log_level_filters_and_the_log_file_receives() {
    let dir = std::env::temp_dir().join(format!("herald-log-{}-{}", std::process::id(), unique()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("herald.log");
    let mut child = std::process::Command::new(herald_bin())
        .args([
            "--ws",
            "127.0.0.1:0",
            "--text",
            "127.0.0.1:0",
            "--http",
            "off",
        ])
        .args(["--log-level", "warn", "--log-file", file.to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let read = || std::fs::read_to_string(&file).unwrap_or_default();
    wait_until("the warning in the log file", || {
        read().contains(" WARN demo mode")
    });
    std::thread::sleep(Duration::from_millis(200));
    signal(child.id() as i32, libc::SIGTERM);
    let _ = child.wait();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    // Warn and above only: the demo-mode warning, not the start lines.
    let text = read();
    assert!(!text.contains(" INFO "), "{text}");
    assert!(err.is_empty(), "logged to the file, not stderr: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn refusals_waiting_for_the_next_report_are_logged_at_stop() {
    let mut h = Herald::start(&["--max-handshakes-per-ip", "1"]);
    let mut kept = Vec::new();
    let mut flood = |n: usize| {
        for _ in 0..n {
            let mut s = tcp(h.ws_addr());
            let _ = s.write_all(upgrade_request(h.ws_addr()).as_bytes());
            kept.push(s);
        }
    };
    flood(3);
    wait_until("the first report", || {
        h.stderr().contains(" so far: HTTP 429")
    });
    // These wait for the next report, 10 s away: the stop must not lose them.
    flood(5);
    std::thread::sleep(Duration::from_millis(200));
    h.terminate();
    assert!(
        h.wait_exit(Duration::from_secs(10)).is_some(),
        "herald did not stop"
    );
    let err = h.stderr();
    let last = err
        .lines()
        .find(|l| log_message(l).contains("since the last report"));
    assert!(last.is_some_and(|l| l.contains("HTTP 429")), "{err}");
}
