//! The `herald` command line: help, flag errors, listen failures, and the
//! daemon life cycle (start -d, status, stop).

mod common;

use common::*;
use std::net::TcpListener;
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

#[test]
fn help_lists_every_flag() {
    for flag in ["--help", "-h"] {
        let r = run_herald(&[flag]);
        assert_eq!(r.code(), Some(0), "{r:?}");
        for name in [
            "--ws",
            "--text",
            "--http",
            "--reuse-port",
            "--routing",
            "--max-message",
            "--max-head",
            "--handshake-timeout",
            "--max-line",
            "--max-body",
            "--max-queued",
            "--max-connections",
            "--max-per-ip",
            "--max-uid",
            "--ping-interval",
            "--idle-timeout",
            "--close-timeout",
            "--shutdown-grace",
            "--pid-file",
            "start",
            "stop",
            "status",
            "-d",
        ] {
            assert!(r.stdout.contains(name), "{flag} does not mention {name}");
        }
    }
}

#[test]
fn version_prints_the_version() {
    let r = run_herald(&["--version"]);
    assert_eq!(r.code(), Some(0), "{r:?}");
    assert_eq!(
        r.stdout.trim(),
        format!("herald {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn bad_arguments_exit_2_with_a_message() {
    let cases: &[(&[&str], &str)] = &[
        (&["--bogus"], "unknown argument \"--bogus\""),
        (&["start", "--frobnicate", "1"], "unknown argument"),
        (&["--ws", "nonsense"], "cannot parse address"),
        (&["--text", "127.0.0.1"], "cannot parse address"),
        (&["--http", "localhost:80"], "cannot parse address"),
        (&["--ws"], "needs a value"),
        (&["--max-line", "-1"], "non-negative"),
        (&["--max-queued", "lots"], "non-negative"),
        (&["--max-uid", "0"], "at least 1"),
        (
            &["--allow-origin", "app.example.com"],
            "scheme://host[:port]",
        ),
        (
            &["--allow-origin", "https://app.example.com/app"],
            "scheme://host[:port]",
        ),
        (&["--redis", "foo://x"], "not a redis:// URL"),
        (&["--redis", "redis://127.0.0.1:99999"], "cannot resolve"),
        (
            &["--redis", "redis://bob:pw@127.0.0.1"],
            "only the default user",
        ),
        (
            &["--ws", "off", "--text", "off", "--http", "off"],
            "nothing to serve",
        ),
    ];
    for (args, want) in cases {
        let r = run_herald(args);
        assert_eq!(r.code(), Some(2), "{args:?}: {r:?}");
        assert!(r.stderr.contains(want), "{args:?}: stderr {:?}", r.stderr);
        assert!(r.stdout.is_empty(), "{args:?}: stdout {:?}", r.stdout);
    }
}

#[test]
fn a_port_in_use_exits_1_naming_the_address() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let r = run_herald(&[
        "--ws",
        "127.0.0.1:0",
        "--text",
        &addr,
        "--http",
        "127.0.0.1:0",
    ]);
    assert_eq!(r.code(), Some(1), "{r:?}");
    // The OS's words: glibc says "Address already in use", musl "Address in use".
    let want = format!("cannot listen on {addr} (text): Address ");
    let line = r.stderr.lines().find(|l| l.contains(&want));
    assert!(
        line.is_some_and(|l| l.contains("in use")),
        "stderr {:?}",
        r.stderr
    );
}

#[test]
fn listeners_can_be_turned_off() {
    let h = Herald::start(&["--ws", "off", "--http", "off"]);
    assert!(h.ws.is_none() && h.http.is_none());
    assert_eq!(h.push(r#"{"uid":"nobody"}"#), "fail");
}

#[test]
fn status_and_stop_without_a_server_fail_clearly() {
    // A port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let r = run_herald(&["status", "--http", &port]);
    assert_eq!(r.code(), Some(1), "{r:?}");
    assert!(r.stderr.contains("not answering"), "{r:?}");
    assert!(!r.stderr.contains("herald: herald"), "said twice: {r:?}");

    let dir = TempDir::new();
    let pid_file = dir.path.join("none.pid");
    let r = run_herald(&["stop", "--pid-file", pid_file.to_str().unwrap()]);
    assert_eq!(r.code(), Some(1), "{r:?}");
    assert!(r.stderr.contains("cannot read pid file"), "{r:?}");
}

/// A directory removed on drop.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new() -> TempDir {
        let path =
            std::env::temp_dir().join(format!("herald-cli-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Kills the daemon named in the pid file when the test ends, however it ends.
struct DaemonGuard {
    pid_file: PathBuf,
    pid: Option<i32>,
}

impl DaemonGuard {
    fn pid(&mut self) -> Option<i32> {
        if self.pid.is_none() {
            self.pid = std::fs::read_to_string(&self.pid_file)
                .ok()
                .and_then(|s| s.trim().parse().ok());
        }
        self.pid
    }
}

impl Drop for DaemonGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            if pid > 1 && pid_alive(pid) {
                signal(pid, libc::SIGKILL);
            }
        }
    }
}

/// A temporary directory, its `herald.pid` (as a path and a string) and the
/// guard that kills whatever daemon the file names when the test ends.
fn daemon_files() -> (TempDir, PathBuf, String, DaemonGuard) {
    let dir = TempDir::new();
    let pid_file = dir.path.join("herald.pid");
    let pid_path = pid_file.to_str().unwrap().to_string();
    let guard = DaemonGuard {
        pid_file: pid_file.clone(),
        pid: None,
    };
    (dir, pid_file, pid_path, guard)
}

#[test]
fn daemon_start_status_stop() {
    let (_dir, pid_file, pid_path, mut guard) = daemon_files();
    let r = run_herald(&[
        "start",
        "-d",
        "--pid-file",
        &pid_path,
        "--ws",
        "127.0.0.1:0",
        "--text",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
    ]);
    assert_eq!(r.code(), Some(0), "{r:?}");
    let pid = guard
        .pid()
        .expect("the pid file is written before start returns");
    assert!(pid_alive(pid), "daemon pid {pid} is not running");
    // The terminal is told where things are; the rest is in the log file
    // beside the pid file.
    let log_file = pid_file.with_extension("log");
    assert!(
        r.stdout
            .contains(&format!("started as a daemon, pid {pid}"))
            && r.stdout.contains(log_file.to_str().unwrap()),
        "{r:?}"
    );
    let log = || std::fs::read_to_string(&log_file).unwrap_or_default();
    wait_until("the daemon logged its start", || {
        log().contains("open-file limit")
    });
    let listener = |proto: &str| -> std::net::SocketAddr {
        log()
            .lines()
            .find_map(|l| {
                log_message(l)
                    .strip_prefix(&format!("listening {proto} "))
                    .map(String::from)
            })
            .unwrap_or_else(|| panic!("no {proto} listener in {:?}", log()))
            .parse()
            .unwrap()
    };
    let http = listener("http");
    let text = listener("text");
    let ws = listener("ws");
    assert!(log().contains(&format!("starting, pid {pid}")), "{}", log());

    // The daemon serves.
    assert_eq!(
        TextClient::connect(text).request(r#"{"uid":"nobody"}"#),
        "fail"
    );

    let mut browser = ws_connect(ws);
    send_text(&mut browser, "watched-uid");
    TextClient::connect(text).wait_online("watched-uid", 1);

    // status finds the daemon's HTTP API from its pid file: no --http.
    let s = run_herald(&["status", "--pid-file", &pid_path, "--json"]);
    assert_eq!(s.code(), Some(0), "{s:?}");
    let stats: serde_json::Value = serde_json::from_str(s.stdout.trim())
        .unwrap_or_else(|e| panic!("status --json did not print JSON ({e}): {:?}", s.stdout));
    assert!(stats["connections"].is_u64(), "{stats}");
    assert_eq!(stats["pushes_fail"], 1, "{stats}");
    let s = run_herald(&["status", "--pid-file", &pid_path]);
    assert_eq!(s.code(), Some(0), "{s:?}");
    assert!(s.stdout.starts_with("herald, up "), "{s:?}");
    assert!(s.stdout.contains("1 bound to 1 uids"), "{s:?}");
    assert!(s.stdout.contains("0 ok, 1 fail"), "{s:?}");
    let c = run_herald(&["connections", "--pid-file", &pid_path]);
    assert_eq!(c.code(), Some(0), "{c:?}");
    let row = c.stdout.lines().find(|l| l.contains("watched-uid"));
    assert!(
        row.is_some_and(|r| r.contains(" ws ") && r.contains("127.0.0.1:")),
        "{c:?}"
    );
    let c = run_herald(&[
        "connections",
        "--pid-file",
        &pid_path,
        "--limit",
        "1",
        "--json",
    ]);
    let listed: serde_json::Value = serde_json::from_str(c.stdout.trim()).unwrap();
    assert_eq!(listed["listed"], 1, "{listed}");
    assert!(listed["total"].as_u64().unwrap() >= 2, "{listed}");

    // SIGUSR1 reopens the log: logrotate moved it away.
    let rotated = pid_file.with_extension("log.1");
    std::fs::rename(&log_file, &rotated).unwrap();
    signal(pid, libc::SIGUSR1);
    wait_until("a new log file", || log().contains("log file reopened"));
    assert!(!std::fs::read_to_string(&rotated)
        .unwrap()
        .contains("reopened"));
    drop(browser);

    // `herald reload` is SIGHUP for the daemon of the pid file.
    let r = run_herald(&["reload", "--pid-file", &pid_path]);
    assert_eq!(r.code(), Some(0), "{r:?}");
    wait_until("the reload is logged", || {
        log().contains("SIGHUP: reload: no secret file to re-read")
    });

    let st = run_herald(&["stop", "--pid-file", &pid_path]);
    assert_eq!(st.code(), Some(0), "{st:?}");
    assert!(
        st.stdout.contains(&format!("stopped (pid {pid})")),
        "{st:?}"
    );
    wait_until("the daemon has exited", || !pid_alive(pid));
    wait_until("the daemon removed its pid file", || !pid_file.exists());
    assert!(
        std::net::TcpStream::connect(http).is_err(),
        "still listening after stop"
    );
}

#[test]
fn stop_never_signals_a_process_that_is_not_its_herald() {
    // `sleep 300 & echo $! > herald.pid; herald stop` must not kill the sleep.
    let dir = TempDir::new();
    let pid_file = dir.path.join("herald.pid");
    let mut sleeper = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    std::fs::write(&pid_file, format!("{}\n", sleeper.id())).unwrap();
    let r = run_herald(&["stop", "--pid-file", pid_file.to_str().unwrap()]);
    assert_eq!(r.code(), Some(1), "{r:?}");
    assert!(r.stderr.contains("stale"), "{r:?}");
    assert!(r.stderr.contains("nothing signalled"), "{r:?}");
    thread::sleep(Duration::from_millis(200));
    assert!(
        sleeper.try_wait().unwrap().is_none(),
        "herald stop signalled an unrelated process"
    );
    assert!(!pid_file.exists(), "the stale pid file stays");
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}

#[test]
fn a_second_daemon_cannot_take_a_live_daemons_pid_file() {
    let (_dir, pid_file, pid_path, mut guard) = daemon_files();
    let start = |pid_path: &str| {
        run_herald(&[
            "start",
            "-d",
            "--pid-file",
            pid_path,
            "--ws",
            "127.0.0.1:0",
            "--text",
            "127.0.0.1:0",
            "--http",
            "off",
        ])
    };
    let first = start(&pid_path);
    assert_eq!(first.code(), Some(0), "{first:?}");
    let pid = guard.pid().expect("pid file written");
    let second = start(&pid_path);
    assert_eq!(second.code(), Some(1), "{second:?}");
    assert!(second.stderr.contains("already running"), "{second:?}");
    assert!(second.stderr.contains(&format!("pid {pid}")), "{second:?}");
    assert!(
        !second.stdout.contains("listening"),
        "it bound ports: {second:?}"
    );
    let now: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(now, pid, "the live daemon's pid file was overwritten");
    let st = run_herald(&["stop", "--pid-file", &pid_path]);
    assert_eq!(st.code(), Some(0), "{st:?}");
    wait_until("the first daemon has exited", || !pid_alive(pid));
}

#[test]
fn daemon_and_command_flags_are_checked() {
    let r = run_herald(&["-d", "--ws", "127.0.0.1:0"]);
    assert_eq!(r.code(), Some(2), "{r:?}");
    assert!(r.stderr.contains("-d goes with start"), "{r:?}");
    let r = run_herald(&["stop", "--ws", "1"]);
    assert_eq!(r.code(), Some(2), "{r:?}");
    assert!(
        r.stderr.contains("stop takes only --pid-file, not --ws"),
        "{r:?}"
    );
}

#[test]
fn at_a_low_descriptor_limit_the_start_line_is_right_and_refusals_are_reported_once() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    // Soft and hard limit 64: herald cannot raise it.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -n 64 && exec "$0" "$@""#)
        .arg(herald_bin())
        .args(["--ws", "127.0.0.1:0", "--text", "off", "--http", "off"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stderr.take().unwrap());
    let (mut ws, mut most) = (None, None);
    let mut line = String::new();
    while out.read_line(&mut line).unwrap() > 0 {
        if let Some(a) = log_message(line.trim()).strip_prefix("listening ws ") {
            ws = Some(a.parse::<std::net::SocketAddr>().unwrap());
        }
        if let Some(rest) = line.split("at most about ").nth(1) {
            most = rest.split(' ').next().and_then(|n| n.parse::<usize>().ok());
            break;
        }
        line.clear();
    }
    let (ws, most) = (ws.expect("ws listener"), most.expect("the limit line"));
    assert!(
        (40..64).contains(&most),
        "says at most about {most} at limit 64"
    );
    // Open more than it can hold; count what it really holds.
    let mut conns = Vec::new();
    for _ in 0..(most + 30) {
        conns.push(tcp(ws));
    }
    thread::sleep(Duration::from_millis(500));
    let mut held: usize = 0;
    for c in &mut conns {
        c.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut b = [0u8; 1];
        match std::io::Read::read(c, &mut b) {
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                held += 1
            }
            _ => {}
        }
    }
    assert!(
        held.abs_diff(most) <= 2,
        "said at most about {most}, held {held}"
    );
    drop(conns);
    let _ = child.kill();
    let _ = child.wait();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut out, &mut err).unwrap();
    let reports = err.matches("out of file descriptors").count();
    assert_eq!(
        reports, 1,
        "one report per 10 s, not one per refusal: {err}"
    );
    assert!(err.contains("refused 1 connection(s) so far"), "{err}");
}

#[test]
fn settings_come_from_the_environment_and_flags_win() {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(herald_bin())
        .args(["--text", "127.0.0.1:0"])
        .env("HERALD_WS", "off")
        .env("HERALD_HTTP", "off")
        .env("HERALD_TEXT", "off") // the flag wins
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stderr.take().unwrap());
    let mut lines = Vec::new();
    let mut line = String::new();
    while out.read_line(&mut line).unwrap() > 0 {
        lines.push(line.trim().to_string());
        if line.contains("open-file limit") {
            break;
        }
        line.clear();
    }
    let _ = child.kill();
    let _ = child.wait();
    let listening: Vec<&String> = lines.iter().filter(|l| l.contains("listening")).collect();
    assert_eq!(listening.len(), 1, "{lines:?}");
    assert!(
        log_message(listening[0]).starts_with("listening text 127.0.0.1:"),
        "{lines:?}"
    );
}

#[test]
fn a_failed_start_d_leaves_no_pid_file_behind() {
    let (_dir, pid_file, pid_path, _guard) = daemon_files();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let r = run_herald(&[
        "start",
        "-d",
        "--pid-file",
        &pid_path,
        "--ws",
        &port,
        "--text",
        "off",
        "--http",
        "off",
    ]);
    assert_ne!(r.code(), Some(0), "{r:?}");
    assert!(!pid_file.exists(), "an empty pid file was left: {r:?}");
    assert!(!pid_file.with_extension("addr").exists());
    // So `stop` has nothing misleading to say.
    let r = run_herald(&["stop", "--pid-file", &pid_path]);
    assert!(!r.stderr.contains("names pid ,"), "{r:?}");
}

#[test]
fn the_systemd_unit_reads_the_secret_files_in_place_so_reload_rotates_them() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/herald.service"
    ))
    .unwrap();
    // LoadCredential= copies the files once at start: a reload would
    // re-read the old copy.
    let settings: String = unit.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(!settings.contains("LoadCredential"), "{unit}");
    assert!(!settings.contains("CREDENTIALS_DIRECTORY"), "{unit}");
    let readable: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("ReadOnlyPaths="))
        .flat_map(str::split_whitespace)
        .collect();
    for flag in ["--auth-secret-file", "--api-token-file"] {
        let path = unit
            .split(flag)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("{flag} in the unit"));
        assert!(
            readable.iter().any(|dir| path.starts_with(dir)),
            "{flag} {path} is not under ReadOnlyPaths= {readable:?}"
        );
    }
    assert!(
        unit.contains("ExecReload=/bin/kill -HUP $MAINPID"),
        "{unit}"
    );
    // Where systemd's own checker is installed, the unit must pass it.
    let analyze = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output();
    if analyze.is_ok_and(|o| o.status.success()) {
        let copy = std::env::temp_dir().join(format!("herald-unit-{}.service", unique()));
        std::fs::write(&copy, unit.replace("/usr/local/bin/herald", herald_bin())).unwrap();
        let r = std::process::Command::new("systemd-analyze")
            .arg("verify")
            .arg(&copy)
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&copy);
        assert!(r.status.success(), "{r:?}");
    }
}

#[test]
fn the_shell_supervisor_stops_on_a_usage_error_instead_of_restarting() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/herald.sh");
    let started = std::time::Instant::now();
    let r = std::process::Command::new("timeout")
        .args(["10", "sh", script, herald_bin(), "--bogus-flag"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2), "{r:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "it restarted"
    );
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("not restarting"),
        "{r:?}"
    );
}

#[test]
fn errors_name_the_flag_or_the_variable_the_operator_set() {
    let herald = |env: &[(&str, &str)], args: &[&str]| {
        let mut c = std::process::Command::new(herald_bin());
        c.args(args).env_remove("HERALD_ROUTING");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let r = herald(&[("HERALD_MAX_LINE", "abc")], &[]);
    assert_eq!(r.status.code(), Some(2), "{r:?}");
    let err = String::from_utf8_lossy(&r.stderr).into_owned();
    assert!(
        err.contains("--max-line") && err.contains("set by HERALD_MAX_LINE"),
        "{err}"
    );
    // The flag given on the command line is the one to blame.
    let r = herald(&[("HERALD_MAX_LINE", "8")], &["--max-line", "abc"]);
    let err = String::from_utf8_lossy(&r.stderr).into_owned();
    assert!(!err.contains("set by"), "{err}");
    // on/off as well as 1/0 for switches.
    let r = herald(
        &[("HERALD_ROUTING", "on")],
        &["--ws", "127.0.0.1:0", "--text", "nonsense"],
    );
    let err = String::from_utf8_lossy(&r.stderr).into_owned();
    assert!(
        err.contains("--text") && !err.contains("HERALD_ROUTING"),
        "{err}"
    );
    // A secret file that cannot be read names its flag.
    let r = herald(&[], &["--auth-secret-file", "/nonexistent/herald-secret"]);
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr).into_owned();
    assert!(err.contains("--auth-secret-file: cannot read"), "{err}");
}

#[test]
fn status_after_stop_says_that_no_daemon_runs() {
    let (_dir, _pid_file, pid_path, _guard) = daemon_files();
    let r = run_herald(&["status", "--pid-file", &pid_path]);
    assert_eq!(r.code(), Some(1), "{r:?}");
    assert!(r.stderr.contains("no daemon runs with pid file"), "{r:?}");
}

#[test]
fn the_start_log_sums_up_the_security_settings() {
    let h = Herald::start(&["--routing", "--allow-origin", "https://app.example"]);
    wait_until("the summary", || h.stderr().contains("INFO security: "));
    let log = h.stderr();
    let line = log.lines().find(|l| l.contains("INFO security: ")).unwrap();
    for want in [
        "uid tokens not required (demo mode)",
        "no API token",
        "browsers from https://app.example only",
        "--routing on",
    ] {
        assert!(line.contains(want), "{want:?} in {line}");
    }
}

/// Run by `a_skipped_test_says_so_in_plain_cargo_test_output` in a child
/// process; does nothing in a normal run.
#[test]
fn skip_probe() {
    if std::env::var_os("HERALD_SKIP_PROBE").is_some() {
        skip("the probe tool");
    }
}

#[test]
fn a_skipped_test_says_so_in_plain_cargo_test_output() {
    // This test binary again, as `cargo test` runs it: output captured.
    let r = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "skip_probe", "--test-threads", "1"])
        .env("HERALD_SKIP_PROBE", "1")
        .env_remove("CI")
        .output()
        .unwrap();
    assert!(r.status.success(), "{r:?}");
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(
        shown.contains("SKIPPED skip_probe: did not run, needs the probe tool"),
        "a skip hidden by the harness's capture:\n{shown}"
    );
}
