//! `herald start`: the secrets loaded, the push server built and bound, what
//! an operator should know logged, then one server run here or one per
//! worker under the supervisor; and a worker, started by the supervisor
//! from the binary on disk, serving the listening sockets it inherited.

use super::args::Cli;
use super::{daemon, secrets};
use herald::auth::{self, ApiTokens, Verifier};
use herald::push::cluster::ClusterConfig;
use herald::push::PushApp;
use herald::supervisor::{Exec, Inherited, Supervision, Workers};
use herald::{Protocol, Server};
use std::net::SocketAddr;

/// Runs the server the command line describes until it stops.
pub fn run(mut cli: Cli) -> Result<(), String> {
    if let Some(worker) = Inherited::from_env()? {
        return run_worker(cli, worker);
    }
    load_security(&mut cli)?;
    herald::log::set_level(cli.log_level);
    // Before anything is bound: a live daemon keeps its pid file. Held
    // until this returns; workers do not inherit it (close-on-exec), so the
    // lock dies with this process.
    let _pid_lock = daemon::lock_pid_file(&cli)?;
    let res = run_locked(&cli);
    if cli.daemon {
        // Ours (we hold the lock) whether the daemon stopped or the start
        // failed before it detached: no empty pid file is left to confuse
        // `stop`.
        daemon::remove_files(&cli);
    }
    res
}

/// [`run`], once the pid file (under `-d`) is ours.
fn run_locked(cli: &Cli) -> Result<(), String> {
    let log_file = daemon::log_file(cli);
    if let Some(path) = &log_file {
        herald::log::to_file(path)
            .map_err(|e| format!("cannot open log file {}: {e}", path.display()))?;
    }
    // With workers: bound here once (a port in use fails now, port 0 is
    // resolved) and kept open by this process, which serves none of them;
    // every worker inherits them, so that one leaving (drained or dead)
    // resets nothing in their accept queues.
    let mut server = bind_server(cli, &wanted(cli), None)?;
    let listeners = server.listeners();
    let room = Descriptors::left_by(&mut server);
    let (server, exec) = if cli.workers > 1 {
        (None, Some(workers_exec(&server)?))
    } else {
        (Some(server), None)
    };
    let warnings = security_warnings(cli);
    if cli.daemon {
        daemon::detach(cli, &warnings, &listeners, log_file.as_deref())?;
    }
    log_start(cli, &warnings, &listeners, &room);
    let res = match (server, exec) {
        (Some(server), _) => serve(server, None),
        (None, Some(exec)) => supervise(cli, &exec),
        (None, None) => unreachable!("a server or workers"),
    };
    match &res {
        Ok(()) => herald::log_info!("stopped"),
        Err(e) => herald::log_error!("{e}"),
    }
    res
}

/// The uid-token keys and API tokens, read before anything is bound.
fn load_security(cli: &mut Cli) -> Result<(), String> {
    let keys = secrets::load(
        ("--auth-secret-file", cli.push.auth_secret_file.as_deref()),
        "HERALD_AUTH_SECRET",
        auth::MIN_KEY,
    )?;
    cli.push.tokens = keys.map(|k| Verifier::new(k, cli.rules.clone()));
    let api = secrets::load(
        ("--api-token-file", cli.push.api_token_file.as_deref()),
        "HERALD_API_TOKEN",
        auth::MIN_API_TOKEN,
    )?;
    cli.push.api_tokens = api.map(|t| ApiTokens::new(&t));
    // The Redis password: a file (re-read on reload) or the environment,
    // never a flag value that `ps` shows; either wins over the URL's.
    cli.redis_password = match &cli.push.redis_password_file {
        Some(path) => Some(
            herald::push::redis_password(path)
                .map_err(|e| format!("--redis-password-file: {e}"))?,
        ),
        None => std::env::var("HERALD_REDIS_PASSWORD").ok(),
    };
    Ok(())
}

/// What an operator should know about the security settings at start.
fn security_warnings(cli: &Cli) -> Vec<String> {
    let mut w = Vec::new();
    if cli.ws.is_some() && cli.push.tokens.is_none() {
        w.push("demo mode: no --auth-secret-file (or HERALD_AUTH_SECRET), so any client can claim any uid and read its pushes".to_string());
    }
    if cli.push.api_tokens.is_none() {
        for (name, addr) in [("text port", cli.text), ("HTTP API", cli.http)] {
            if let Some(a) = addr.filter(|a| !a.ip().is_loopback()) {
                w.push(format!("the {name} on {a} is reachable beyond this machine and has no --api-token-file: anyone who reaches it can push"));
            }
        }
    }
    w
}

/// The security settings in one line, so that the log says what is on as
/// well as what is missing.
fn security_summary(cli: &Cli) -> String {
    let tokens = match cli.push.tokens {
        Some(_) => "uid tokens required",
        None => "uid tokens not required (demo mode)",
    };
    let api = match cli.push.api_tokens {
        Some(_) => "API token required on the text port and HTTP API",
        None => "no API token on the text port and HTTP API",
    };
    let origins = match cli.push.allow_origins.as_slice() {
        [] => "browsers from any origin".to_string(),
        list => format!("browsers from {} only", list.join(", ")),
    };
    let routing = if cli.push.routing {
        "--routing on: clients may message any uid and everyone"
    } else {
        "client routing off"
    };
    format!("{tokens}; {api}; {origins}; {routing}")
}

/// The listeners that are not `off`.
fn wanted(cli: &Cli) -> Vec<(Protocol, SocketAddr)> {
    [
        (Protocol::WebSocket, cli.ws),
        (Protocol::Text, cli.text),
        (Protocol::Http, cli.http),
    ]
    .into_iter()
    .filter_map(|(p, a)| Some((p, a?)))
    .collect()
}

/// The open-file limit, and the connections it leaves room for.
struct Descriptors {
    soft: u64,
    hard: u64,
    room: u64,
}

impl Descriptors {
    /// What is left once herald's own descriptors (listeners, epoll, the
    /// spare one, standard streams; the two signalfds come next) are
    /// counted.
    fn left_by(server: &mut Server<PushApp>) -> Descriptors {
        let (soft, hard) = server.context().nofile_limit();
        let own = herald::sys::open_descriptors().unwrap_or(16) + 2;
        Descriptors {
            soft,
            hard,
            room: soft.saturating_sub(own),
        }
    }
}

/// The start, the warnings, the limits, the listeners and the descriptor
/// room, in the log.
fn log_start(
    cli: &Cli,
    warnings: &[String],
    listeners: &[(Protocol, SocketAddr)],
    d: &Descriptors,
) {
    herald::log_info!(
        "herald {} starting, pid {}{}",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        if cli.workers > 1 {
            format!(", {} workers", cli.workers)
        } else {
            String::new()
        }
    );
    for w in warnings {
        herald::log_warn!("{w}");
    }
    herald::log_info!("security: {}", security_summary(cli));
    let l = &cli.limits;
    herald::log_info!(
        "limits: max-connections {}, max-per-ip {}, max-handshakes-per-ip {}, max-queued {} B, max-message {} B, idle-timeout {} s",
        l.max_connections,
        l.max_per_ip,
        l.max_handshakes_per_ip,
        l.max_queued,
        l.max_message,
        l.idle_timeout_s
    );
    for (proto, addr) in listeners {
        herald::log_info!("listening {} {}", proto.name(), addr);
    }
    let max = l.max_connections as u64;
    let capped = if max == 0 || max > d.room {
        " (the cap: raise the hard limit, e.g. LimitNOFILE, for more)"
    } else {
        ""
    };
    let (soft, hard, room) = (d.soft, d.hard, d.room);
    herald::log_info!(
        "open-file limit {soft} (hard {hard}): at most about {room} connections in this process{capped}"
    );
}

/// The listening sockets and this binary, resolved now (before any new
/// version replaces the file), to start the workers with.
fn workers_exec(server: &Server<PushApp>) -> Result<Exec, String> {
    let fds = server
        .listener_fds()
        .map_err(|e| format!("cannot keep the listeners for the workers: {e}"))?;
    Exec::this_binary(fds).map_err(|e| format!("cannot find herald's own binary: {e}"))
}

/// `--workers N`: the supervisor starts the workers from this binary's
/// path, each serving the listening sockets it holds, restarts and replaces
/// them until told to stop.
fn supervise(cli: &Cli, exec: &Exec) -> Result<(), String> {
    let s = Supervision {
        workers: cli.workers,
        shutdown_grace_ms: cli.limits.shutdown_grace_ms,
        restart_drain_ms: cli.limits.restart_drain_ms,
        ..Supervision::default()
    };
    match herald::supervisor::supervise_workers(&s, Workers::Exec(exec)) {
        0 => Ok(()),
        c => Err(format!("the workers stopped with code {c}")),
    }
}

/// A worker started by the supervisor: the master's command line, its own
/// log lines, no pid file and no daemon of its own, the inherited listening
/// sockets.
fn run_worker(mut cli: Cli, mut worker: Inherited) -> Result<(), String> {
    load_security(&mut cli)?;
    herald::log::set_level(cli.log_level);
    herald::log::set_worker(worker.index);
    if let Some(path) = daemon::log_file(&cli) {
        herald::log::to_file(&path)
            .map_err(|e| format!("cannot open log file {}: {e}", path.display()))?;
    }
    let res = (|| {
        let mut server = new_server(&cli, Some(worker.index))?;
        for (proto, fd) in std::mem::take(&mut worker.listeners) {
            server.adopt_listener(proto, fd).map_err(|e| {
                format!("cannot serve the inherited {} listener: {e}", proto.name())
            })?;
        }
        serve(server, Some(&mut worker))
    })();
    if let Err(e) = &res {
        herald::log_error!("{e}");
    }
    res
}

/// A server with `listeners` bound (`worker`: its index under --workers).
fn bind_server(
    cli: &Cli,
    listeners: &[(Protocol, SocketAddr)],
    worker: Option<usize>,
) -> Result<Server<PushApp>, String> {
    let mut server = new_server(cli, worker)?;
    for &(proto, addr) in listeners {
        server.listen(proto, addr, cli.reuse_port).map_err(|e| {
            let msg = format!("cannot listen on {addr} ({}): {e}", proto.name());
            // The terminal hears it from main; a log file needs it too.
            if herald::log::file_path().is_some() {
                herald::log_error!("{msg}");
            }
            msg
        })?;
    }
    Ok(server)
}

/// The push server the command line describes, not yet listening.
fn new_server(cli: &Cli, worker: Option<usize>) -> Result<Server<PushApp>, String> {
    let mut push = cli.push.clone();
    if let Some(redis) = &cli.redis {
        let mut redis = redis.clone();
        if let Some(password) = &cli.redis_password {
            redis.password = Some(password.clone());
        }
        push.cluster = Some(ClusterConfig {
            redis,
            prefix: cli.redis_prefix.clone(),
            max_pending: cli.redis_max_pending,
            node: node_id(worker),
            worker,
        });
    }
    Server::new(cli.limits.clone(), PushApp::new(push))
        .map_err(|e| format!("cannot start the reactor: {e}"))
}

/// Runs a server until it stops; a `worker` drains on SIGUSR2 (a lone
/// process logs and ignores it) and tells its supervisor once it serves.
fn serve(mut server: Server<PushApp>, worker: Option<&mut Inherited>) -> Result<(), String> {
    // After daemonizing and forking: a signalfd registered with epoll before
    // a fork keeps reporting the parent's signals, not the child's.
    server
        .stop_on_signals()
        .and_then(|()| server.handle_sigusr2(worker.is_some()))
        .map_err(|e| format!("cannot handle signals: {e}"))?;
    let rss = server.context().rss_bytes();
    server.app().set_baseline_rss(rss);
    if let Some(w) = worker {
        if let Err(e) = w.ready() {
            herald::log_warn!("cannot tell the supervisor this worker serves: {e}");
        }
    }
    server.run().map_err(|e| format!("event loop failed: {e}"))
}

/// This process's name in a cluster: host, start time and worker (the pid is
/// added at start, by the process that serves), so that a
/// restarted worker is a new node.
fn node_id(worker: Option<usize>) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    // The serving process's pid is appended when it starts (ClusterConfig).
    let w = worker.map_or(String::new(), |i| format!("-w{i}"));
    format!("{}-{started:x}{w}", host.trim())
}
