//! Workers started from the binary on disk: what the master keeps to start
//! them ([`Exec`]), and what a worker finds in its environment
//! ([`Inherited`]): its index, the listening sockets it shares with the
//! other workers, and the pipe on which it says it is ready.
//!
//! Exec rather than fork alone, so that a rolling restart runs the binary
//! now on disk (a new version installed under the same name); the
//! listening sockets are the master's, bound once and inherited, so that
//! a worker leaving them (drained, or dead) resets no connection in their
//! accept queues.

use crate::reactor::Protocol;
use crate::sys;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

/// The worker's index (`0..workers`).
const ENV_INDEX: &str = "HERALD_WORKER_INDEX";
/// Its listening sockets: `ws:5,text:6,http:7` (protocol, descriptor).
const ENV_LISTENERS: &str = "HERALD_WORKER_LISTENERS";
/// The write end of its ready pipe, for a replacement in a rolling restart.
const ENV_READY: &str = "HERALD_WORKER_READY_FD";

/// How the master starts a worker by exec.
pub struct Exec {
    /// The binary: resolved when the master starts, so that a file
    /// installed later under that name is what the workers started next
    /// run.
    pub path: PathBuf,
    /// The command line, the program's name first.
    pub args: Vec<OsString>,
    /// The listening sockets, open in the master for as long as it runs.
    pub listeners: Vec<(Protocol, OwnedFd)>,
}

impl Exec {
    /// This process's own binary and command line, with `listeners`.
    pub fn this_binary(listeners: Vec<(Protocol, OwnedFd)>) -> io::Result<Exec> {
        // /proc/self/exe, resolved now: once the file is replaced, the
        // link reads "... (deleted)".
        let path = std::fs::canonicalize(std::env::current_exe()?)?;
        Ok(Exec {
            path,
            args: std::env::args_os().collect(),
            listeners,
        })
    }

    /// Starts worker `index`; `ready`: the write end of its ready pipe.
    /// Returns its pid.
    pub(super) fn start(&self, index: usize, ready: Option<&OwnedFd>) -> io::Result<i32> {
        let listeners = self
            .listeners
            .iter()
            .map(|(p, fd)| format!("{}:{}", p.name(), fd.as_raw_fd()))
            .collect::<Vec<_>>()
            .join(",");
        let mut env = vec![
            (ENV_INDEX.to_string(), index.to_string()),
            (ENV_LISTENERS.to_string(), listeners),
        ];
        let mut keep: Vec<RawFd> = self
            .listeners
            .iter()
            .map(|(_, fd)| fd.as_raw_fd())
            .collect();
        if let Some(fd) = ready {
            env.push((ENV_READY.to_string(), fd.as_raw_fd().to_string()));
            keep.push(fd.as_raw_fd());
        }
        sys::spawn_exec(&self.path, &self.args, &env, &keep)
    }
}

/// What a worker started by [`Exec`] inherited.
pub struct Inherited {
    /// Its index (`0..workers`), the same for each restart of it.
    pub index: usize,
    /// The listening sockets to serve (see
    /// [`crate::Server::adopt_listener`]).
    pub listeners: Vec<(Protocol, OwnedFd)>,
    ready: Option<RawFd>,
}

impl Inherited {
    /// `None` when this process was not started as a worker; an error when
    /// the environment says it was but does not hold together.
    pub fn from_env() -> Result<Option<Inherited>, String> {
        let Ok(index) = std::env::var(ENV_INDEX) else {
            return Ok(None);
        };
        let index = index
            .parse()
            .map_err(|_| format!("{ENV_INDEX}: not a number: {index:?}"))?;
        let listeners = std::env::var(ENV_LISTENERS).unwrap_or_default();
        let listeners = parse_listeners(&listeners)
            .ok_or_else(|| {
                format!("{ENV_LISTENERS}: expected ws:FD,text:FD,..., got {listeners:?}")
            })?
            .into_iter()
            .map(|(p, fd)| {
                let fd = sys::adopt_listener(fd)
                    .map_err(|e| format!("inherited {} listener (fd {fd}): {e}", p.name()))?;
                Ok((p, fd))
            })
            .collect::<Result<_, String>>()?;
        let ready = match std::env::var(ENV_READY) {
            Ok(v) => Some(
                v.parse()
                    .map_err(|_| format!("{ENV_READY}: not a number: {v:?}"))?,
            ),
            Err(_) => None,
        };
        // Not handed down further: nothing this process starts is a worker.
        for var in [ENV_INDEX, ENV_LISTENERS, ENV_READY] {
            std::env::remove_var(var);
        }
        Ok(Some(Inherited {
            index,
            listeners,
            ready,
        }))
    }

    /// Tells the master this worker serves (its listeners are in its event
    /// loop): a rolling restart then drains the worker it replaces. Once;
    /// a worker that is no replacement has nobody to tell.
    pub fn ready(&mut self) -> io::Result<()> {
        match self.ready.take() {
            Some(fd) => sys::notify_ready(fd),
            None => Ok(()),
        }
    }
}

/// `ws:5,text:6` -> [(WebSocket, 5), (Text, 6)]; `None` if malformed.
fn parse_listeners(v: &str) -> Option<Vec<(Protocol, RawFd)>> {
    v.split(',')
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (name, fd) = item.split_once(':')?;
            let protocol = [Protocol::WebSocket, Protocol::Text, Protocol::Http]
                .into_iter()
                .find(|p| p.name() == name)?;
            Some((protocol, fd.parse().ok().filter(|&fd: &RawFd| fd >= 0)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listeners_variable_names_protocols_and_descriptors() {
        assert_eq!(
            parse_listeners("ws:5,text:6,http:7"),
            Some(vec![
                (Protocol::WebSocket, 5),
                (Protocol::Text, 6),
                (Protocol::Http, 7)
            ])
        );
        assert_eq!(parse_listeners(""), Some(vec![]));
        for bad in ["ws", "ws:x", "outbound:3", "ws:-1", "smtp:4"] {
            assert_eq!(parse_listeners(bad), None, "{bad}");
        }
    }
}
