//! `herald restart` (SIGUSR2 to the supervisor) under `--workers`: the
//! workers are replaced one at a time by processes running the binary now
//! on disk; no handshake, queued or in progress, is reset meanwhile; the
//! old workers' clients are closed with 1012 (Service Restart) spread over
//! `--restart-drain`. Without workers, `restart` is refused and SIGUSR2
//! changes nothing.
//!
//! Each daemon runs from its own copy of the binary in a temporary
//! directory, so that the test can replace the file as an upgrade does.

mod common;

use common::*;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A herald daemon started from a copy of the binary in its own temporary
/// directory; stopped (killed if need be) and removed on drop.
struct Daemon {
    dir: PathBuf,
    master: i32,
    ws: SocketAddr,
    text: SocketAddr,
}

impl Daemon {
    fn start(name: &str, flags: &[&str]) -> Daemon {
        let dir = std::env::temp_dir().join(format!(
            "herald-restart-{}-{name}-{}",
            std::process::id(),
            unique()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(herald_bin(), dir.join("herald")).unwrap();
        let mut d = Daemon {
            dir,
            master: 0,
            ws: "0.0.0.0:0".parse().unwrap(),
            text: "0.0.0.0:0".parse().unwrap(),
        };
        let listeners = ["--ws", "127.0.0.1:0", "--text", "127.0.0.1:0"];
        let mut args = vec!["start", "-d", "--http", "127.0.0.1:0"];
        args.extend(listeners);
        args.extend(flags);
        let out = d.run(&args);
        assert!(out.status.success(), "{out:?}");
        let pid = std::fs::read_to_string(d.dir.join("herald.pid")).unwrap();
        d.master = pid.trim().parse().unwrap();
        wait_until("the daemon listens", || d.log().contains("open-file limit"));
        for line in d.log().lines() {
            let Some(rest) = log_message(line).strip_prefix("listening ") else {
                continue;
            };
            let (proto, addr) = rest.split_once(' ').unwrap();
            match proto {
                "ws" => d.ws = addr.parse().unwrap(),
                "text" => d.text = addr.parse().unwrap(),
                _ => {}
            }
        }
        d
    }

    /// Runs this daemon's binary (as it is on disk now) with `args` and
    /// its `--pid-file`.
    fn run(&self, args: &[&str]) -> Output {
        let pid_file = self.dir.join("herald.pid");
        Command::new(self.dir.join("herald"))
            .args(args)
            .args(["--pid-file", pid_file.to_str().unwrap()])
            .output()
            .unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("herald.log")).unwrap_or_default()
    }

    /// The master's children, sorted.
    fn workers(&self) -> Vec<i32> {
        let out = Command::new("pgrep")
            .args(["-P", &self.master.to_string()])
            .output()
            .unwrap();
        let mut pids: Vec<i32> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        pids.sort();
        pids
    }

    /// Installs a new binary under the same name, as an upgrade does: a
    /// copy beside it, renamed over it.
    fn replace_binary(&self) {
        let new = self.dir.join("herald.new");
        std::fs::copy(herald_bin(), &new).unwrap();
        std::fs::rename(&new, self.dir.join("herald")).unwrap();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.master > 0 && pid_alive(self.master) {
            signal(self.master, libc::SIGTERM);
            let end = Instant::now() + Duration::from_secs(8);
            while pid_alive(self.master) && Instant::now() < end {
                thread::sleep(Duration::from_millis(20));
            }
            // Its workers die with it (SIGTERM on their parent's death).
            signal(self.master, libc::SIGKILL);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where /proc says `pid` runs its program from.
fn exe_of(pid: i32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|e| format!("<{e}>"))
}

/// One fresh client: the WebSocket handshake, then its uid (demo mode
/// binds the first message). What went wrong, if anything.
fn fresh_client(addr: SocketAddr, uid: &str) -> Result<(), String> {
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    let (mut ws, resp) = tungstenite::client(format!("ws://{addr}/"), stream)
        .map_err(|e| format!("handshake: {e}"))?;
    if resp.status().as_u16() != 101 {
        return Err(format!("handshake answered {}", resp.status()));
    }
    ws.send(Message::text(uid))
        .map_err(|e| format!("binding {uid}: {e}"))
}

/// Opens fresh clients one after another until `stop`: when each began,
/// and how it went.
type Churn = Arc<Mutex<Vec<(Instant, Result<(), String>)>>>;

fn churn(addr: SocketAddr, stop: Arc<AtomicBool>) -> (Churn, thread::JoinHandle<()>) {
    let results: Churn = Arc::default();
    let out = results.clone();
    let t = thread::spawn(move || {
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            let at = Instant::now();
            let r = fresh_client(addr, &format!("fresh-{n}"));
            out.lock().unwrap().push((at, r));
            n += 1;
            // A tight loop, short of running the client's ports dry.
            thread::sleep(Duration::from_millis(1));
        }
    });
    (results, t)
}

/// A bound client's close, read in a thread: when it came and its code.
fn await_close(mut ws: Ws) -> thread::JoinHandle<Result<(Instant, u16), String>> {
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    thread::spawn(move || loop {
        match ws.read() {
            Ok(Message::Close(Some(f))) => return Ok((Instant::now(), u16::from(f.code))),
            Ok(Message::Close(None)) => return Err("a close frame without a code".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("no close frame: {e}")),
        }
    })
}

#[test]
fn a_restart_resets_no_handshake_spreads_1012_and_runs_the_new_binary() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let prefix = format!("r{}", unique());
    let d = Daemon::start(
        "rolling",
        &[
            "--redis",
            &redis.url(),
            "--redis-prefix",
            &prefix,
            "--workers",
            "2",
            "--restart-drain",
            "1500",
        ],
    );
    wait_until("both workers joined", || {
        d.log().matches("redis: up").count() >= 2
    });
    let old = d.workers();
    assert_eq!(old.len(), 2, "{}", d.log());

    // Clients bound before the restart, each waiting for its close.
    let mut t = TextClient::connect(d.text);
    let closes: Vec<_> = (0..16)
        .map(|i| {
            let uid = format!("old-{i}");
            let mut ws = ws_connect(d.ws);
            send_text(&mut ws, &uid);
            t.wait_online(&uid, 1);
            await_close(ws)
        })
        .collect();

    // Fresh clients all along, from before the restart until it is done.
    let stop = Arc::new(AtomicBool::new(false));
    let (results, churner) = churn(d.ws, stop.clone());
    wait_until("fresh clients connect", || {
        results.lock().unwrap().len() >= 20
    });

    d.replace_binary();
    for &pid in &old {
        assert!(exe_of(pid).ends_with(" (deleted)"), "{}", exe_of(pid));
    }
    let began = Instant::now();
    let out = d.run(&["restart"]);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("replace its workers one at a time"), "{said}");
    wait_until("the restart is done", || d.log().contains("restart: done"));
    let done = Instant::now();
    stop.store(true, Ordering::Relaxed);
    churner.join().unwrap();

    // Every handshake succeeded: none reset, refused or cut before its 101.
    let results = results.lock().unwrap();
    let failed: Vec<_> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().err())
        .collect();
    let during = results
        .iter()
        .filter(|(at, _)| (began..done).contains(at))
        .count();
    assert!(
        failed.is_empty(),
        "{} of {} fresh clients failed, e.g. {:?}; log:\n{}",
        failed.len(),
        results.len(),
        &failed[..failed.len().min(5)],
        d.log()
    );
    assert!(during >= 200, "only {during} handshakes during the restart");

    // The old clients were told 1012, not all at once but over the drain.
    let mut at: Vec<Instant> = closes
        .into_iter()
        .map(|c| {
            let (when, code) = c.join().unwrap().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(code, 1012, "close code");
            when
        })
        .collect();
    at.sort();
    let spread = at[at.len() - 1] - at[0];
    assert!(
        spread >= Duration::from_millis(500),
        "16 closes within {spread:?} of a 1500 ms drain"
    );
    assert!(at[0] >= began);

    // New processes, running the new file; the old ones are gone.
    let new = d.workers();
    assert_eq!(new.len(), 2, "{new:?}; log:\n{}", d.log());
    for pid in &new {
        assert!(!old.contains(pid), "{pid} was not replaced");
        let exe = exe_of(*pid);
        assert!(!exe.ends_with(" (deleted)"), "{pid} runs {exe}");
        assert_eq!(PathBuf::from(exe), d.dir.join("herald"));
    }
    assert!(old.iter().all(|&p| !pid_alive(p)));
    let log = d.log();
    for i in 0..2 {
        assert!(log.contains(&format!("worker {i} replaced")), "{log}");
    }
    assert!(!log.contains("abandoned"), "{log}");

    // And they serve: a fresh client is bound and pushed to. (The text
    // port's connections were the old workers' too: closed, reconnect.)
    let mut t = TextClient::connect(d.text);
    let mut ws = ws_connect(d.ws);
    send_text(&mut ws, "after");
    t.wait_online("after", 1);
    assert_eq!(t.request(r#"{"uid":"after","n":1}"#), "ok");
    assert_eq!(recv_text(&mut ws), r#"{"uid":"after","n":1}"#);
}

#[test]
fn sigterm_during_a_restart_stops_every_process() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let prefix = format!("r{}", unique());
    let d = Daemon::start(
        "term",
        &[
            "--redis",
            &redis.url(),
            "--redis-prefix",
            &prefix,
            "--workers",
            "2",
            "--restart-drain",
            "60000",
        ],
    );
    wait_until("both workers joined", || {
        d.log().matches("redis: up").count() >= 2
    });
    // Enough clients that a worker holding some drains for a long while.
    let mut t = TextClient::connect(d.text);
    let _clients: Vec<Ws> = (0..8)
        .map(|i| {
            let uid = format!("c{i}");
            let mut ws = ws_connect(d.ws);
            send_text(&mut ws, &uid);
            t.wait_online(&uid, 1);
            ws
        })
        .collect();
    assert!(d.run(&["restart"]).status.success());
    wait_until("a worker with clients drains", || {
        d.log()
            .lines()
            .any(|l| l.contains("draining: ") && !l.contains("draining: 0 "))
    });
    // A second request while it runs is ignored, and said so.
    assert!(d.run(&["restart"]).status.success());
    wait_until("the second request is ignored", || {
        d.log()
            .contains("SIGUSR2 ignored: a rolling restart is running")
    });
    let mut everyone = d.workers();
    everyone.push(d.master);
    let t0 = Instant::now();
    let out = d.run(&["stop"]);
    assert!(out.status.success(), "{out:?}; log:\n{}", d.log());
    // Well within the 60 s drain: the stop does not wait for it.
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
    wait_until("every process gone", || {
        everyone.iter().all(|&p| !pid_alive(p))
    });
    let log = d.log();
    assert!(log.contains("all workers stopped"), "{log}");
    assert!(!log.contains("killing"), "{log}");
}

#[test]
fn restart_without_workers_is_refused_and_signals_nothing() {
    let d = Daemon::start("lone", &[]);
    let out = d.run(&["restart"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rolling restarts need --workers"), "{err}");
    thread::sleep(Duration::from_millis(200));
    assert!(pid_alive(d.master));
    assert!(!d.log().contains("SIGUSR2"), "{}", d.log());
}

#[test]
fn sigusr2_to_a_lone_herald_is_logged_and_ignored() {
    let h = Herald::start(&[]);
    signal(h.pid(), libc::SIGUSR2);
    wait_until("SIGUSR2 is logged", || {
        h.stderr().contains("SIGUSR2 ignored")
    });
    h.assert_still_serving();
    assert!(!h.stderr().contains("draining"), "{}", h.stderr());
}
