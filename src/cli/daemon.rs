//! `start -d` and the files a daemon keeps beside its pid file (its log,
//! the address of its HTTP API), and `stop` / `reload` / `restart` through
//! the pid file.

use super::args::{self, Cli};
use herald::sys::PidLock;
use herald::Protocol;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `herald.pid` -> `herald.log` (`ext` replaces a `.pid` extension, else is
/// appended): the files a daemon keeps beside its pid file.
fn beside(pid_file: &str, ext: &str) -> PathBuf {
    let p = Path::new(pid_file);
    match p.extension() {
        Some(e) if e == "pid" => p.with_extension(ext),
        _ => format!("{pid_file}.{ext}").into(),
    }
}

/// Under `-d`, the pid file locked, so that a live daemon keeps its file:
/// taken before anything is bound. `None` in the foreground.
pub fn lock_pid_file(cli: &Cli) -> Result<Option<PidLock>, String> {
    if !cli.daemon {
        return Ok(None);
    }
    let path = Path::new(&cli.pid_file);
    let lock = PidLock::acquire(path)
        .map_err(|e| format!("cannot open pid file {}: {e}", cli.pid_file))?;
    if lock.is_none() {
        let pid = std::fs::read_to_string(path).unwrap_or_default();
        return Err(format!(
            "herald is already running with pid file {} (pid {}); stop it first or give another --pid-file",
            cli.pid_file,
            pid.trim()
        ));
    }
    Ok(lock)
}

/// Where to log: `--log-file`, else under `-d` beside the pid file, else
/// (`None`) stderr.
pub fn log_file(cli: &Cli) -> Option<PathBuf> {
    cli.log_file
        .clone()
        .or_else(|| cli.daemon.then(|| beside(&cli.pid_file, "log")))
}

/// Leaves the terminal: tells it the `warnings` (not only the log), records
/// where `status` finds the HTTP API, and forks into the background.
pub fn detach(
    cli: &Cli,
    warnings: &[String],
    listeners: &[(Protocol, SocketAddr)],
    log_file: Option<&Path>,
) -> Result<(), String> {
    for w in warnings {
        eprintln!("herald: warning: {w}");
    }
    let http = listeners
        .iter()
        .find(|(p, _)| *p == Protocol::Http)
        .map(|(_, a)| *a);
    let addr_file = beside(&cli.pid_file, "addr");
    let _ = match http {
        Some(a) => std::fs::write(&addr_file, format!("{a}\n")),
        None => std::fs::remove_file(&addr_file),
    };
    let shown = log_file.unwrap_or(Path::new("-"));
    herald::sys::daemonize(Path::new(&cli.pid_file), shown)
        .map_err(|e| format!("cannot daemonize: {e}"))
}

/// The daemon's last act: its pid file and HTTP address go.
pub fn remove_files(cli: &Cli) {
    let _ = std::fs::remove_file(&cli.pid_file);
    let _ = std::fs::remove_file(beside(&cli.pid_file, "addr"));
}

/// The HTTP API address the daemon of `pid_file` recorded, if any.
pub fn recorded_http(pid_file: &str) -> Option<SocketAddr> {
    let recorded = std::fs::read_to_string(beside(pid_file, "addr")).ok()?;
    recorded.trim().parse().ok()
}

/// The pid of the herald holding `--pid-file`; a stale file is removed.
fn daemon_pid(cli: &Cli) -> Result<i32, String> {
    let text = std::fs::read_to_string(&cli.pid_file).map_err(|e| {
        format!(
            "cannot read pid file {}: {e} (is herald running as a daemon?)",
            cli.pid_file
        )
    })?;
    let path = Path::new(&cli.pid_file);
    let held = herald::sys::pid_file_held(path)
        .map_err(|e| format!("cannot check pid file {}: {e}", cli.pid_file))?;
    if !held {
        // No herald holds it: whatever runs under that pid now is not ours.
        let _ = std::fs::remove_file(path);
        return Err(format!(
            "pid file {} names pid {}, but no herald holds it: stale, removed; nothing signalled",
            cli.pid_file,
            text.trim()
        ));
    }
    text.trim()
        .parse()
        .map_err(|_| format!("pid file {} is corrupt", cli.pid_file))
}

/// Sends `signal` to the daemon of `--pid-file`; its pid.
fn signal_daemon(cli: &Cli, signal: i32) -> Result<i32, String> {
    let pid = daemon_pid(cli)?;
    herald::sys::kill(pid, signal).map_err(|e| format!("cannot signal pid {pid}: {e}"))?;
    Ok(pid)
}

/// `herald stop`: SIGTERM, then wait up to 10 s for the daemon to exit.
pub fn stop(cli: &Cli) -> Result<(), String> {
    let pid = signal_daemon(cli, herald::sys::SIGTERM)?;
    for _ in 0..100 {
        if herald::sys::kill(pid, 0).is_err() {
            println!("herald: stopped (pid {pid})");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("pid {pid} still running after 10 s"))
}

/// `herald reload`: SIGHUP, which makes the daemon re-read its secrets.
pub fn reload(cli: &Cli) -> Result<(), String> {
    let pid = signal_daemon(cli, herald::sys::SIGHUP)?;
    println!("herald: asked pid {pid} to re-read its secret files (its log says how it went)");
    Ok(())
}

/// `herald restart`: SIGUSR2, on which a daemon with `--workers` replaces
/// them one at a time from the binary now on disk. A daemon without
/// workers has nothing to replace them with: refused, nothing signalled.
pub fn restart(cli: &Cli) -> Result<(), String> {
    let pid = daemon_pid(cli)?;
    if daemon_workers(pid) == Some(1) {
        return Err(format!(
            "rolling restarts need --workers: the daemon of {} (pid {pid}) runs as one process, so there is no other process to take over its connections; start it with --workers N (N > 1, with --redis), or use herald stop and herald start -d",
            cli.pid_file
        ));
    }
    herald::sys::kill(pid, herald::sys::SIGUSR2)
        .map_err(|e| format!("cannot signal pid {pid}: {e}"))?;
    println!(
        "herald: asked pid {pid} to replace its workers one at a time, from the binary now on disk (its log says how it goes)"
    );
    Ok(())
}

/// How many workers process `pid` runs, read off its command line and
/// environment as it read them; `None` when they cannot be read.
fn daemon_workers(pid: i32) -> Option<usize> {
    let read = |what: &str| -> Option<Vec<String>> {
        let bytes = std::fs::read(format!("/proc/{pid}/{what}")).ok()?;
        Some(
            bytes
                .split(|&b| b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect(),
        )
    };
    let argv = read("cmdline")?;
    let environ = read("environ")?;
    let env = |k: &str| {
        environ
            .iter()
            .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
            .map(String::from)
    };
    args::workers_in(&args::with_env(argv.get(1..)?, env).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daemons_files_sit_beside_its_pid_file() {
        assert_eq!(beside("run/herald.pid", "log"), Path::new("run/herald.log"));
        assert_eq!(beside("herald", "addr"), Path::new("herald.addr"));
        assert_eq!(beside("h.lock", "log"), Path::new("h.lock.log"));
    }
}
