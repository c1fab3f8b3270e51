//! The `--workers` supervisor over real processes: workers start, a killed
//! one is restarted alone, signals are forwarded, stops are graceful and
//! bounded, a worker failing at start is not restarted in a loop.
//!
//! `supervise` forks and blocks signals for its thread, so it must run in a
//! single-threaded process. The test harness is not one (each test runs on
//! its own thread, and the main thread would take a process-directed
//! SIGTERM with its default action). So each scenario runs in this test
//! executable spawned again with `HERALD_SUPERVISOR_SCENARIO` set, where a
//! constructor (`.init_array`) runs the scenario before the harness's `main`
//! and exits: that process is the master, single-threaded like herald.
//! Workers record what they see in files of a temporary directory.

use herald::supervisor::{supervise, Supervision};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SCENARIO: &str = "HERALD_SUPERVISOR_SCENARIO";
const DIR: &str = "HERALD_SUPERVISOR_DIR";
const WORKERS: &str = "HERALD_SUPERVISOR_WORKERS";
const GRACE: &str = "HERALD_SUPERVISOR_GRACE_MS";

// ---- The scenario side: runs in the spawned master and its workers. ----

#[used]
#[link_section = ".init_array"]
static SCENARIO_HOOK: extern "C" fn() = scenario_hook;

extern "C" fn scenario_hook() {
    let Some(name) = std::env::var_os(SCENARIO) else {
        return;
    };
    let dir = PathBuf::from(std::env::var_os(DIR).expect("HERALD_SUPERVISOR_DIR"));
    let num = |var: &str, default: u64| {
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let s = Supervision::new(num(WORKERS, 2) as usize, num(GRACE, 0));
    // A watchdog should the test die without stopping this master (alarms
    // are not inherited by the forked workers).
    // SAFETY: alarm has no preconditions.
    unsafe { libc::alarm(30) };
    let code = match name.to_str() {
        Some("wait") => supervise(&s, &mut |i| waiting_worker(&dir, i, false)),
        Some("stubborn") => supervise(&s, &mut |i| waiting_worker(&dir, i, true)),
        Some("failing") => supervise(&s, &mut |i| failing_worker(&dir, i)),
        other => {
            eprintln!("unknown scenario {other:?}");
            99
        }
    };
    std::process::exit(code);
}

fn append(path: &Path, line: &str) {
    use std::io::Write;
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(format!("{line}\n").as_bytes()).unwrap();
}

/// The signals among 1..32 blocked for this thread.
fn blocked_signals() -> Vec<i32> {
    // SAFETY: sigset_t is plain data, filled in by pthread_sigmask.
    let mut cur: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: a null new set only reads the current mask into `cur`.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut cur) };
    // SAFETY: `cur` is an initialised sigset_t.
    (1..32)
        .filter(|&s| unsafe { libc::sigismember(&cur, s) } == 1)
        .collect()
}

fn open_signalfds() -> usize {
    fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .filter(|l| l.to_string_lossy() == "anon_inode:[signalfd]")
        .count()
}

/// Records its pid and signal state in `worker-<i>`, then each SIGHUP,
/// SIGUSR1 and SIGTERM it receives in `events-<pid>`; exits 0 on SIGTERM
/// unless `stubborn`.
fn waiting_worker(dir: &Path, i: usize, stubborn: bool) -> i32 {
    // Dies with the master, whatever happens to the test.
    // SAFETY: plain integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let blocked = blocked_signals();
    let signalfds = open_signalfds();
    // SAFETY: sigset_t is plain data; sigemptyset initialises it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    let pid = std::process::id();
    // Written once the signals are blocked: the test signals only after.
    let tmp = dir.join(format!("worker-{i}.tmp"));
    fs::write(&tmp, format!("{pid} {blocked:?} {signalfds}")).unwrap();
    fs::rename(&tmp, dir.join(format!("worker-{i}"))).unwrap();
    let events = dir.join(format!("events-{pid}"));
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        let timeout = libc::timespec {
            tv_sec: 0,
            tv_nsec: 200_000_000,
        };
        // SAFETY: `set` holds only signals blocked above; no siginfo wanted.
        let sig = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &timeout) };
        match sig {
            libc::SIGHUP => append(&events, "hup"),
            libc::SIGUSR1 => append(&events, "usr1"),
            libc::SIGTERM => {
                append(&events, "term");
                if !stubborn {
                    return 0;
                }
            }
            _ => {}
        }
    }
    4
}

/// Records its start in `starts-<i>` and exits 3 at once.
fn failing_worker(dir: &Path, i: usize) -> i32 {
    append(
        &dir.join(format!("starts-{i}")),
        &std::process::id().to_string(),
    );
    3
}

// ---- The test side. ----

/// A worker as it recorded itself.
#[derive(Debug, PartialEq, Eq)]
struct Worker {
    pid: i32,
    blocked: String,
    signalfds: usize,
}

/// One spawned master; killed (with its workers) and cleaned up on drop.
struct Master {
    child: Child,
    dir: PathBuf,
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: plain integer arguments.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig})");
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

impl Master {
    fn start(scenario: &str, workers: usize, grace_ms: u64) -> Master {
        let dir = std::env::temp_dir().join(format!(
            "herald-supervisor-{}-{scenario}-{workers}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let log = fs::File::create(dir.join("master.log")).unwrap();
        let child = Command::new(std::env::current_exe().unwrap())
            // Should the hook not run, the harness runs no test and exits.
            .args(["--exact", "no test has this name"])
            .env(SCENARIO, scenario)
            .env(DIR, &dir)
            .env(WORKERS, workers.to_string())
            .env(GRACE, grace_ms.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Master { child, dir }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("master.log")).unwrap_or_default()
    }

    fn worker(&self, i: usize) -> Option<Worker> {
        let text = fs::read_to_string(self.dir.join(format!("worker-{i}"))).ok()?;
        let (pid, rest) = text.split_once(' ')?;
        let (blocked, signalfds) = rest.rsplit_once(' ')?;
        Some(Worker {
            pid: pid.parse().ok()?,
            blocked: blocked.to_string(),
            signalfds: signalfds.parse().ok()?,
        })
    }

    fn events(&self, pid: i32) -> Vec<String> {
        fs::read_to_string(self.dir.join(format!("events-{pid}")))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Polls `f` until it gives a value, for at most `within`.
    fn wait_for<T>(
        &mut self,
        what: &str,
        within: Duration,
        mut f: impl FnMut(&Self) -> Option<T>,
    ) -> T {
        let end = Instant::now() + within;
        loop {
            if let Some(v) = f(self) {
                return v;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "master exited ({status}) before {what}; log:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < end,
                "no {what} within {within:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn workers(&mut self, n: usize) -> Vec<Worker> {
        self.wait_for("worker started", Duration::from_secs(5), |m| {
            (0..n).map(|i| m.worker(i)).collect()
        })
    }

    /// The master's exit code, and how long it took, within `within`.
    fn exit_code(&mut self, within: Duration) -> (i32, Duration) {
        let t0 = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let code = status
                    .code()
                    .unwrap_or_else(|| panic!("master {status}; log:\n{}", self.log()));
                return (code, t0.elapsed());
            }
            assert!(
                t0.elapsed() < within,
                "master still running after {within:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Workers die with their master (PR_SET_PDEATHSIG); these are
        // belt and braces for the ones recorded.
        for i in 0..8 {
            if let Some(w) = self.worker(i) {
                // SAFETY: plain integer arguments; ESRCH is fine.
                unsafe { libc::kill(w.pid, libc::SIGKILL) };
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn workers_start_each_in_its_own_process_and_a_killed_one_is_restarted_alone() {
    let mut m = Master::start("wait", 2, 0);
    let ws = m.workers(2);
    assert_ne!(ws[0].pid, ws[1].pid);
    for w in &ws {
        assert_ne!(w.pid, m.pid());
        // The master blocks its signals and reads them from a signalfd; a
        // worker starts with neither.
        assert_eq!(w.blocked, "[]", "worker {} inherited a signal mask", w.pid);
        assert_eq!(
            w.signalfds, 0,
            "worker {} inherited the master's signalfd",
            w.pid
        );
    }
    let log = m.log();
    for (i, w) in ws.iter().enumerate() {
        assert!(
            log.contains(&format!("worker {i} started (pid {})", w.pid)),
            "{log}"
        );
    }

    signal(ws[0].pid, libc::SIGKILL);
    let again = m.wait_for("worker 0 restarted", Duration::from_secs(5), |m| {
        m.worker(0).filter(|w| w.pid != ws[0].pid)
    });
    assert_eq!(again.blocked, "[]");
    assert_eq!(again.signalfds, 0);
    assert_eq!(
        m.worker(1).as_ref(),
        Some(&ws[1]),
        "worker 1 was restarted too"
    );
    assert!(alive(ws[1].pid));
    let log = m.log();
    assert!(
        log.contains(&format!(
            "worker 0 (pid {}) killed by signal 9; restarting in",
            ws[0].pid
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!("worker 0 started (pid {})", again.pid)),
        "{log}"
    );

    signal(m.pid(), libc::SIGTERM);
    assert_eq!(m.exit_code(Duration::from_secs(5)).0, 0, "{}", m.log());
}

#[test]
fn sigterm_stops_every_worker_gracefully_and_the_master_exits_0() {
    let mut m = Master::start("wait", 3, 0);
    let ws = m.workers(3);
    signal(m.pid(), libc::SIGTERM);
    let (code, took) = m.exit_code(Duration::from_secs(5));
    assert_eq!(code, 0, "{}", m.log());
    // Well before the SIGKILL time (grace 0 + 2 s): the workers stopped.
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    for w in &ws {
        assert_eq!(m.events(w.pid), ["term"], "worker {}", w.pid);
        assert!(!alive(w.pid), "worker {} outlived its master", w.pid);
    }
    let log = m.log();
    assert!(log.contains("SIGTERM: stopping 3 workers"), "{log}");
    assert!(!log.contains("restarting"), "{log}");
}

#[test]
fn sighup_and_sigusr1_reach_every_worker() {
    let mut m = Master::start("wait", 2, 0);
    let ws = m.workers(2);
    signal(m.pid(), libc::SIGHUP);
    m.wait_for("SIGHUP at every worker", Duration::from_secs(3), |m| {
        ws.iter().all(|w| m.events(w.pid) == ["hup"]).then_some(())
    });
    signal(m.pid(), libc::SIGUSR1);
    m.wait_for("SIGUSR1 at every worker", Duration::from_secs(3), |m| {
        ws.iter()
            .all(|w| m.events(w.pid) == ["hup", "usr1"])
            .then_some(())
    });
    // Forwarded, not fatal: the same workers still run.
    for (i, w) in ws.iter().enumerate() {
        assert_eq!(m.worker(i).map(|w| w.pid), Some(w.pid));
    }
    signal(m.pid(), libc::SIGTERM);
    assert_eq!(m.exit_code(Duration::from_secs(5)).0, 0, "{}", m.log());
}

#[test]
fn a_worker_ignoring_sigterm_is_killed_after_the_grace_and_the_master_exits_1() {
    let mut m = Master::start("stubborn", 1, 0);
    let w = m.workers(1).remove(0);
    signal(m.pid(), libc::SIGTERM);
    m.wait_for("SIGTERM at the worker", Duration::from_secs(3), |m| {
        (m.events(w.pid) == ["term"]).then_some(())
    });
    let (code, took) = m.exit_code(Duration::from_secs(6));
    assert_eq!(code, 1, "{}", m.log());
    // --shutdown-grace 0 + the master's 2 s.
    assert!(took >= Duration::from_millis(1500), "took {took:?}");
    assert!(!alive(w.pid));
    let log = m.log();
    assert!(log.contains("killing them"), "{log}");
    assert!(
        log.contains(&format!("worker 0 (pid {}) killed by signal 9", w.pid)),
        "{log}"
    );
}

#[test]
fn a_worker_failing_at_start_is_restarted_with_backoff_not_in_a_loop() {
    let mut m = Master::start("failing", 1, 0);
    let starts = |m: &Master| {
        fs::read_to_string(m.dir.join("starts-0"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    m.wait_for("first start", Duration::from_secs(3), |m| {
        (starts(m) > 0).then_some(())
    });
    // Restarts after about 100, 200, 400, 800 ms: at 0, .1, .3, .7, 1.5 s.
    std::thread::sleep(Duration::from_millis(1600));
    let n = starts(&m);
    assert!(
        (3..=6).contains(&n),
        "{n} starts in 1.6 s; log:\n{}",
        m.log()
    );
    let log = m.log();
    let exits = log.matches("exited with code 3; restarting in").count();
    assert!(
        exits >= n - 1,
        "{exits} exits logged for {n} starts:\n{log}"
    );

    // SIGINT stops like SIGTERM; the pending restart is cancelled.
    signal(m.pid(), libc::SIGINT);
    let (code, took) = m.exit_code(Duration::from_secs(3));
    assert_eq!(code, 0, "{}", m.log());
    assert!(took < Duration::from_millis(500), "took {took:?}");
    assert!(starts(&m) <= n + 1);
    assert!(m.log().contains("SIGINT: stopping"), "{}", m.log());
}

#[test]
fn zero_workers_is_refused_with_exit_code_2() {
    // Returns before touching signals or forking: safe in the harness.
    let code = supervise(&Supervision::new(0, 0), &mut |_| unreachable!());
    assert_eq!(code, 2);
}
