//! The log: one line per event, `2026-12-03T11:43:56.123Z INFO message`, to
//! stderr or to a file (reopened on SIGUSR1, for logrotate), filtered by a
//! level. Events a peer can repeat are aggregated before they get here
//! (`reactor/report.rs`), so the log's size does not depend on clients.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// How much is logged: each level includes the ones above it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Herald cannot do what it was asked (a listener failed, a reload failed).
    Error = 0,
    /// Something an operator should act on (limits reached, demo mode).
    Warn = 1,
    /// Start, stop, reloads and the aggregated reports. The default.
    Info = 2,
    /// Also the first few refusals of each report period, one by one.
    Debug = 3,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "error" => Some(Level::Error),
            "warn" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "debug" => Some(Level::Debug),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        }
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

/// The worker this process is under `--workers` (`usize::MAX`: none), named
/// on each of its lines: workers share one log.
static WORKER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(usize::MAX);

/// Names worker `index` on every line this process writes from now on.
pub fn set_worker(index: usize) {
    WORKER.store(index, Ordering::Relaxed);
}

/// The log file, when not stderr. Herald's loop is one thread; the lock is
/// there for library users who log from others.
static FILE: Mutex<Option<(PathBuf, File)>> = Mutex::new(None);

pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

pub fn enabled(level: Level) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

/// Sends the log to `path` (appended, created 0640) from now on.
pub fn to_file(path: &Path) -> io::Result<()> {
    let f = open(path)?;
    *FILE.lock().unwrap_or_else(|e| e.into_inner()) = Some((path.to_path_buf(), f));
    Ok(())
}

/// Reopens the log file by its path (after logrotate moved it away); a
/// no-op when logging to stderr. On failure the old file is kept.
pub fn reopen() -> io::Result<()> {
    let mut g = FILE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((path, file)) = g.as_mut() {
        *file = open(path)?;
    }
    Ok(())
}

/// The log file's path, when logging to one.
pub fn file_path() -> Option<PathBuf> {
    let g = FILE.lock().unwrap_or_else(|e| e.into_inner());
    g.as_ref().map(|(p, _)| p.clone())
}

/// Writes one line, if `level` is enabled. Use the `log_*!` macros.
pub fn write(level: Level, args: fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let at = timestamp(now.as_secs(), now.subsec_millis());
    let line = match WORKER.load(Ordering::Relaxed) {
        usize::MAX => format!("{at} {} {args}\n", level.name()),
        w => format!("{at} {} worker {w}: {args}\n", level.name()),
    };
    let mut g = FILE.lock().unwrap_or_else(|e| e.into_inner());
    // One write per line: O_APPEND keeps lines whole.
    let _ = match g.as_mut() {
        Some((_, f)) => f.write_all(line.as_bytes()),
        None => io::stderr().lock().write_all(line.as_bytes()),
    };
}

/// RFC 3339 UTC, to the millisecond: `2026-12-03T11:43:56.123Z`.
pub fn timestamp(secs: u64, millis: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Days to a civil date (Howard Hinnant's algorithm), epoch 1970-01-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Logs at ERROR: `log_error!("cannot listen on {addr}: {e}")`.
#[macro_export]
macro_rules! log_error {
    ($($t:tt)*) => { $crate::log::write($crate::log::Level::Error, format_args!($($t)*)) };
}

/// Logs at WARN.
#[macro_export]
macro_rules! log_warn {
    ($($t:tt)*) => { $crate::log::write($crate::log::Level::Warn, format_args!($($t)*)) };
}

/// Logs at INFO.
#[macro_export]
macro_rules! log_info {
    ($($t:tt)*) => { $crate::log::write($crate::log::Level::Info, format_args!($($t)*)) };
}

/// Logs at DEBUG (the arguments are not formatted unless it is enabled).
#[macro_export]
macro_rules! log_debug {
    ($($t:tt)*) => { $crate::log::write($crate::log::Level::Debug, format_args!($($t)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_rfc3339() {
        assert_eq!(timestamp(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(timestamp(951_782_400, 7), "2000-02-29T00:00:00.007Z");
        assert_eq!(timestamp(1_796_298_236, 123), "2026-12-03T11:43:56.123Z");
        assert_eq!(timestamp(4_102_444_799, 999), "2099-12-31T23:59:59.999Z");
    }

    #[test]
    fn levels_parse_and_order() {
        assert_eq!(Level::parse("warn"), Some(Level::Warn));
        assert_eq!(Level::parse("WARN"), None);
        assert!(Level::Error < Level::Debug);
    }
}
