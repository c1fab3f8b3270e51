//! The `herald` command line: run the push server, or stop / query a running one.

use herald::auth::{self, ApiTokens, TokenRules, Verifier};
use herald::push::cluster::ClusterConfig;
use herald::push::{PushApp, PushConfig};
use herald::{Limits, Protocol, Server};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

const HELP: &str = "\
herald: a real-time push server (WebSocket + text port + HTTP API, one thread)

USAGE:
    herald [start [-d]] [OPTIONS]    run the server (foreground unless -d)
    herald stop [--pid-file PATH]    stop a daemon started with -d (SIGTERM)
    herald reload [--pid-file PATH]  make it re-read its secret files (SIGHUP)
    herald status [--json]           its figures, for people (or /stats JSON)
    herald connections [--limit N] [--json]
                                     its connections: peer, uid, age, queue
    status and connections ask the HTTP API of the daemon of --pid-file
    (else --http, default 127.0.0.1:5679), with --api-token-file if set.

LISTENERS (ADDR is IP:PORT, or `off`):
    --ws ADDR              WebSocket listener        [default: 0.0.0.0:1234]
    --text ADDR            internal text port        [default: 127.0.0.1:5678]
    --http ADDR            HTTP API                  [default: 127.0.0.1:5679]
    --reuse-port           set SO_REUSEPORT on the listeners
    --routing              let clients send `uid:message` and `all:message`

LIMITS:
    --max-message BYTES    largest WebSocket message (1009 past it)   [1048576]
    --max-head BYTES       largest HTTP request head (431 past it)     [8192]
    --handshake-timeout MS deadline for a WebSocket handshake (408)    [10000]
    --max-line BYTES       longest text-port line (`error` reply)      [65536]
    --max-body BYTES       largest HTTP API body (413 past it)         [1048576]
    --max-queued BYTES     send queue per connection (slow consumer)   [1048576]
    --max-connections N    open connections, 0 = descriptor limit     [0]
    --max-per-ip N         open connections per IP, 0 = unlimited      [0]
    --max-uid BYTES        longest uid (1008 past it)                  [128]
    --read-buffer BYTES    the one read buffer all connections share   [65536]
    --send-pool N          idle send buffers (<= 8 KiB each) kept      [128]
    --ping-interval S      ping WebSockets silent this long, 0 = off   [25]
    --idle-timeout S       close connections silent this long, 0 = off [60]
    --close-timeout MS     time allowed to finish a close              [5000]
    --shutdown-grace MS    time allowed to flush on SIGTERM/SIGINT     [5000]

SECURITY (see Going to production in README.md):
    --auth-secret-file PATH  HS256 key(s) proving uids, one per line (or
                           HERALD_AUTH_SECRET); without it, demo mode:
                           any client may claim any uid
    --auth-audience AUD    `aud` uid tokens must carry
    --auth-issuer ISS      `iss` uid tokens must carry
    --auth-leeway S        clock skew allowed on exp, nbf, iat       [5]
    --api-token-file PATH  token the text port (first line
                           {\"auth\":\"TOKEN\"}) and the HTTP API (Bearer)
                           require, one per line (or HERALD_API_TOKEN)
    --allow-origin LIST    comma-separated Origins a browser may open a
                           WebSocket from (403 for others; repeatable)
    --max-handshakes-per-ip N  WebSocket handshakes per second per IP
                           (429 past it), 0 = unlimited             [0]
    --trusted-proxy LIST   comma-separated proxy IPs whose
                           X-Forwarded-For names the client (repeatable)

SCALE OUT (see Several processes and machines in README.md):
    --redis URL            redis://[:PASSWORD@]HOST:PORT[/DB]: share uids,
                           pushes and counts with every node on that Redis
    --redis-prefix NAME    key and channel prefix               [herald]
    --redis-max-pending BYTES  commands awaiting Redis before pushes get
                           an error                              [1048576]
    --workers N            worker processes sharing the ports
                           (SO_REUSEPORT); N > 1 needs --redis   [1]

PROCESS:
    -d                     (with start) run as a daemon, writing the pid file
    --pid-file PATH        pid file for start -d / stop     [default: herald.pid]
    --log-level LEVEL      error, warn, info or debug                 [info]
    --log-file PATH        log here (reopened on SIGUSR1); default: stderr,
                           or beside the pid file (herald.log) with -d
    -h, --help             this help
    -V, --version          version

ENVIRONMENT:
    Every flag above can also come from HERALD_<FLAG>: --max-queued as
    HERALD_MAX_QUEUED=65536, --routing as HERALD_ROUTING=1. Flags on the
    command line win over the environment.
";

/// The long flags `--help` lists, each with whether it takes a value
/// (`--ws ADDR`) or is a switch (`--routing`): the one list the environment
/// variables come from, so a new flag gets its `HERALD_` variable by being
/// documented.
fn help_flags() -> impl Iterator<Item = (&'static str, bool)> {
    HELP.lines().filter_map(|line| {
        let mut words = line.split_whitespace();
        let flag = words.next().filter(|f| f.starts_with("--"))?;
        if matches!(flag, "--help" | "--version") {
            return None;
        }
        let takes_value = words
            .next()
            .is_some_and(|w| w.chars().all(|c| c.is_ascii_uppercase() || c == '_'));
        Some((flag, takes_value))
    })
}

/// `--max-queued` -> `HERALD_MAX_QUEUED`.
fn env_name(flag: &str) -> String {
    format!(
        "HERALD_{}",
        flag.trim_start_matches('-')
            .replace('-', "_")
            .to_uppercase()
    )
}

/// The command line with the environment's settings put in front of the
/// flags (so that flags, parsed later, win). `stop` and `status` take from
/// the environment only what they take as flags.
fn with_env(args: &[String], env: impl Fn(&str) -> Option<String>) -> Result<Vec<String>, String> {
    let (command, rest) = match args.first().map(String::as_str) {
        Some(c) if COMMANDS.contains(&c) => (Some(c), &args[1..]),
        _ => (None, args),
    };
    let wanted = |flag: &str| match command.and_then(command_flags) {
        Some(only) => only.contains(&flag),
        None => true,
    };
    let mut out: Vec<String> = command.map(String::from).into_iter().collect();
    for (flag, takes_value) in help_flags().filter(|(f, _)| wanted(f)) {
        let name = env_name(flag);
        match (env(&name), takes_value) {
            (None, _) => {}
            (Some(v), true) => out.extend([flag.to_string(), v]),
            (Some(v), false) => match v.as_str() {
                "" | "0" | "false" | "no" => {}
                "1" | "true" | "yes" => out.push(flag.to_string()),
                other => return Err(format!("{name}: expected 1 or 0, got {other:?}")),
            },
        }
    }
    out.extend(rest.iter().cloned());
    Ok(out)
}

/// The commands, and the flags each takes (`None`: every server flag).
fn command_flags(command: &str) -> Option<&'static [&'static str]> {
    const QUERY: &[&str] = &["--http", "--api-token-file", "--pid-file", "--json"];
    match command {
        "stop" | "reload" => Some(&["--pid-file"]),
        "status" => Some(QUERY),
        "connections" => Some(&[
            "--http",
            "--api-token-file",
            "--pid-file",
            "--json",
            "--limit",
        ]),
        _ => None,
    }
}

const COMMANDS: &[&str] = &["start", "stop", "reload", "status", "connections"];

#[derive(Debug)]
struct Cli {
    command: String,
    log_level: herald::log::Level,
    log_file: Option<std::path::PathBuf>,
    /// status / connections: print the API's JSON as it is.
    json: bool,
    /// connections: how many to list.
    limit: usize,
    /// --http was given (status then asks that, not the daemon's).
    http_given: bool,
    /// `--redis`, as given; resolved into `redis` at start.
    redis_url: Option<String>,
    redis: Option<herald::redis::RedisUrl>,
    redis_prefix: String,
    redis_max_pending: usize,
    workers: usize,
    daemon: bool,
    ws: Option<SocketAddr>,
    text: Option<SocketAddr>,
    http: Option<SocketAddr>,
    reuse_port: bool,
    limits: Limits,
    push: PushConfig,
    rules: TokenRules,
    pid_file: String,
}

fn parse_addr(flag: &str, v: &str) -> Result<Option<SocketAddr>, String> {
    if v == "off" {
        return Ok(None);
    }
    v.parse::<SocketAddr>().map(Some).map_err(|_| {
        format!(
            "{flag}: cannot parse address {v:?} (expected IP:PORT, e.g. 127.0.0.1:5678, or off)"
        )
    })
}

/// `a,b, c` -> ["a", "b", "c"].
fn list(v: &str) -> impl Iterator<Item = String> + '_ {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

fn parse_num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse::<T>()
        .map_err(|_| format!("{flag}: expected a non-negative number, got {v:?}"))
}

fn parse_args(args: &[String]) -> Result<Cli, String> {
    let mut cli = Cli {
        command: "start".into(),
        log_level: herald::log::Level::Info,
        log_file: None,
        json: false,
        limit: 100,
        http_given: false,
        redis_url: None,
        redis: None,
        redis_prefix: "herald".into(),
        redis_max_pending: 1 << 20,
        workers: 1,
        daemon: false,
        ws: Some(([0, 0, 0, 0], 1234).into()),
        text: Some(([127, 0, 0, 1], 5678).into()),
        http: Some(([127, 0, 0, 1], 5679).into()),
        reuse_port: false,
        limits: Limits::default(),
        push: PushConfig::default(),
        rules: TokenRules {
            leeway_s: 5,
            ..TokenRules::default()
        },
        pid_file: "herald.pid".into(),
    };
    let mut i = 0;
    let mut explicit = false;
    if let Some(first) = args.first() {
        if COMMANDS.contains(&first.as_str()) {
            cli.command = first.clone();
            explicit = true;
            i = 1;
        }
    }
    // Commands other than `start` take only what they use.
    let only = command_flags(&cli.command);
    while i < args.len() {
        let flag = args[i].as_str();
        let general = matches!(flag, "-h" | "--help" | "-V" | "--version");
        match only {
            Some(only) if !only.contains(&flag) && !general => {
                return Err(format!(
                    "{} takes only {}, not {flag}",
                    cli.command,
                    only.join(", ")
                ));
            }
            None if matches!(flag, "--json" | "--limit") => {
                return Err(format!("{flag} goes with status or connections"));
            }
            _ => {}
        }
        let mut value = || -> Result<&str, String> {
            i += 1;
            args.get(i)
                .map(String::as_str)
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag {
            "-h" | "--help" => cli.command = "help".into(),
            "-V" | "--version" => cli.command = "version".into(),
            "-d" | "--daemon" => cli.daemon = true,
            "--ws" => cli.ws = parse_addr(flag, value()?)?,
            "--text" => cli.text = parse_addr(flag, value()?)?,
            "--http" => {
                cli.http = parse_addr(flag, value()?)?;
                cli.http_given = true;
            }
            "--log-level" => {
                let v = value()?;
                cli.log_level = herald::log::Level::parse(v).ok_or_else(|| {
                    format!("{flag}: expected error, warn, info or debug, got {v:?}")
                })?;
            }
            "--log-file" => cli.log_file = Some(value()?.into()),
            "--json" => cli.json = true,
            "--redis" => cli.redis_url = Some(value()?.to_string()),
            "--redis-prefix" => cli.redis_prefix = value()?.to_string(),
            "--redis-max-pending" => cli.redis_max_pending = parse_num(flag, value()?)?,
            "--workers" => cli.workers = parse_num(flag, value()?)?,
            "--limit" => cli.limit = parse_num(flag, value()?)?,
            "--reuse-port" => cli.reuse_port = true,
            "--routing" => cli.push.routing = true,
            "--max-message" => cli.limits.max_message = parse_num(flag, value()?)?,
            "--max-head" => cli.limits.max_head = parse_num(flag, value()?)?,
            "--handshake-timeout" => cli.limits.handshake_timeout_ms = parse_num(flag, value()?)?,
            "--max-line" => cli.limits.max_line = parse_num(flag, value()?)?,
            "--max-body" => cli.limits.max_body = parse_num(flag, value()?)?,
            "--max-queued" => cli.limits.max_queued = parse_num(flag, value()?)?,
            "--max-connections" => cli.limits.max_connections = parse_num(flag, value()?)?,
            "--max-per-ip" => cli.limits.max_per_ip = parse_num(flag, value()?)?,
            "--max-uid" => cli.limits.max_uid = parse_num(flag, value()?)?,
            "--read-buffer" => cli.limits.read_buffer = parse_num(flag, value()?)?,
            "--send-pool" => cli.limits.send_pool = parse_num(flag, value()?)?,
            "--ping-interval" => cli.limits.ping_interval_s = parse_num(flag, value()?)?,
            "--idle-timeout" => cli.limits.idle_timeout_s = parse_num(flag, value()?)?,
            "--close-timeout" => cli.limits.close_timeout_ms = parse_num(flag, value()?)?,
            "--shutdown-grace" => cli.limits.shutdown_grace_ms = parse_num(flag, value()?)?,
            "--pid-file" => cli.pid_file = value()?.to_string(),
            "--auth-secret-file" => cli.push.auth_secret_file = Some(value()?.into()),
            "--auth-audience" => cli.rules.audience = Some(value()?.to_string()),
            "--auth-issuer" => cli.rules.issuer = Some(value()?.to_string()),
            "--auth-leeway" => cli.rules.leeway_s = parse_num(flag, value()?)?,
            "--api-token-file" => cli.push.api_token_file = Some(value()?.into()),
            "--allow-origin" => cli.push.allow_origins.extend(list(value()?)),
            "--max-handshakes-per-ip" => {
                cli.limits.max_handshakes_per_ip = parse_num(flag, value()?)?
            }
            "--trusted-proxy" => {
                for ip in list(value()?) {
                    let ip = ip.parse().map_err(|_| {
                        format!("{flag}: cannot parse IP address {ip:?} (e.g. 127.0.0.1)")
                    })?;
                    cli.limits.trusted_proxies.push(ip);
                }
            }
            other => return Err(format!("unknown argument {other:?} (see herald --help)")),
        }
        i += 1;
    }
    // `-d` goes with an explicit `start`, as --help says.
    if cli.daemon && !(explicit && cli.command == "start") {
        return Err("-d goes with start: herald start -d [OPTIONS]".into());
    }
    if cli.limits.max_message == 0
        || cli.limits.max_line == 0
        || cli.limits.max_queued == 0
        || cli.limits.max_uid == 0
    {
        return Err(
            "--max-message, --max-line, --max-queued and --max-uid must be at least 1".into(),
        );
    }
    if cli.workers == 0 {
        return Err("--workers must be at least 1".into());
    }
    if cli.workers > 1 && cli.redis_url.is_none() {
        return Err(format!(
            "--workers {} needs --redis: workers share their uids through Redis (one process needs neither)",
            cli.workers
        ));
    }
    if cli.redis_prefix.is_empty() || cli.redis_prefix.contains(char::is_whitespace) {
        return Err("--redis-prefix must be a non-empty word".into());
    }
    if cli.limits.max_head < 64 {
        return Err("--max-head must be at least 64".into());
    }
    if cli.command == "start" && cli.ws.is_none() && cli.text.is_none() && cli.http.is_none() {
        return Err("every listener is off: nothing to serve".into());
    }
    Ok(cli)
}

/// Secrets from `file`, else from the environment variable `var`.
fn secrets(
    file: Option<&std::path::Path>,
    var: &str,
    min_len: usize,
) -> Result<Option<Vec<Vec<u8>>>, String> {
    match (file, std::env::var(var)) {
        (Some(path), _) => auth::load_secrets(path, min_len).map(Some),
        (None, Ok(v)) => auth::check_secrets(auth::parse_secrets(&v), min_len)
            .map(Some)
            .map_err(|e| format!("{var}: {e}")),
        (None, Err(_)) => Ok(None),
    }
}

/// The uid-token keys and API tokens, read before anything is bound.
fn load_security(cli: &mut Cli) -> Result<(), String> {
    let keys = secrets(
        cli.push.auth_secret_file.as_deref(),
        "HERALD_AUTH_SECRET",
        auth::MIN_KEY,
    )?;
    cli.push.tokens = keys.map(|k| Verifier::new(k, cli.rules.clone()));
    let api = secrets(
        cli.push.api_token_file.as_deref(),
        "HERALD_API_TOKEN",
        auth::MIN_API_TOKEN,
    )?;
    cli.push.api_tokens = api.map(|t| ApiTokens::new(&t));
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

/// `herald.pid` -> `herald.log` (`ext` replaces a `.pid` extension, else is
/// appended): the files a daemon keeps beside its pid file.
fn beside(pid_file: &str, ext: &str) -> std::path::PathBuf {
    let p = std::path::Path::new(pid_file);
    match p.extension() {
        Some(e) if e == "pid" => p.with_extension(ext),
        _ => format!("{pid_file}.{ext}").into(),
    }
}

fn run(mut cli: Cli) -> Result<(), String> {
    load_security(&mut cli)?;
    if let Some(url) = &cli.redis_url {
        cli.redis = Some(herald::redis::RedisUrl::parse(url)?);
    }
    herald::log::set_level(cli.log_level);
    // Before anything is bound: a live daemon keeps its pid file.
    let _pid_lock = if cli.daemon {
        let path = std::path::Path::new(&cli.pid_file);
        let lock = herald::sys::PidLock::acquire(path)
            .map_err(|e| format!("cannot open pid file {}: {e}", cli.pid_file))?;
        match lock {
            Some(l) => Some(l),
            None => {
                let pid = std::fs::read_to_string(path).unwrap_or_default();
                return Err(format!(
                    "herald is already running with pid file {} (pid {}); stop it first or give another --pid-file",
                    cli.pid_file,
                    pid.trim()
                ));
            }
        }
    } else {
        None
    };
    let log_file = cli
        .log_file
        .clone()
        .or_else(|| cli.daemon.then(|| beside(&cli.pid_file, "log")));
    if let Some(path) = &log_file {
        herald::log::to_file(path)
            .map_err(|e| format!("cannot open log file {}: {e}", path.display()))?;
    }
    let wanted: Vec<(Protocol, SocketAddr)> = [
        (Protocol::WebSocket, cli.ws),
        (Protocol::Text, cli.text),
        (Protocol::Http, cli.http),
    ]
    .into_iter()
    .filter_map(|(p, a)| Some((p, a?)))
    .collect();
    // With workers: bound here once (a port in use fails now, port 0 is
    // resolved), closed, then bound by every worker with SO_REUSEPORT.
    let workers = cli.workers > 1;
    let mut server = bind_server(&cli, &wanted, cli.reuse_port || workers, None)?;
    let listeners = server.listeners();
    // What is left once herald's own descriptors (listeners, epoll, the
    // spare one, standard streams; the signalfd comes next) are counted.
    let (soft, hard) = server.context().nofile_limit();
    let own = herald::sys::open_descriptors().unwrap_or(16) + 1;
    // Under workers each binds its own listeners; this process serves none.
    let server = (!workers).then_some(server);
    let warnings = security_warnings(&cli);
    let addr_file = beside(&cli.pid_file, "addr");
    if cli.daemon {
        // The terminal hears the warnings too, not only the log.
        for w in &warnings {
            eprintln!("herald: warning: {w}");
        }
        let http = listeners
            .iter()
            .find(|(p, _)| *p == Protocol::Http)
            .map(|(_, a)| *a);
        // Where `status` finds this daemon's HTTP API.
        let _ = match http {
            Some(a) => std::fs::write(&addr_file, format!("{a}\n")),
            None => std::fs::remove_file(&addr_file),
        };
        let shown = log_file.as_deref().unwrap_or(std::path::Path::new("-"));
        herald::sys::daemonize(std::path::Path::new(&cli.pid_file), shown)
            .map_err(|e| format!("cannot daemonize: {e}"))?;
    }
    herald::log_info!(
        "herald {} starting, pid {}{}",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        if workers {
            format!(", {} workers", cli.workers)
        } else {
            String::new()
        }
    );
    for w in &warnings {
        herald::log_warn!("{w}");
    }
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
    for (proto, addr) in &listeners {
        herald::log_info!("listening {} {}", proto.name(), addr);
    }
    let room = soft.saturating_sub(own);
    let max = cli.limits.max_connections as u64;
    let capped = if max == 0 || max > room {
        " (the cap: raise the hard limit, e.g. LimitNOFILE, for more)"
    } else {
        ""
    };
    herald::log_info!(
        "open-file limit {soft} (hard {hard}): at most about {room} connections in this process{capped}"
    );
    let res = if let Some(server) = server {
        serve(server)
    } else {
        let s = herald::supervisor::Supervision {
            workers: cli.workers,
            shutdown_grace_ms: cli.limits.shutdown_grace_ms,
            ..herald::supervisor::Supervision::default()
        };
        let code = herald::supervisor::supervise(&s, &mut |i| match bind_server(
            &cli,
            &listeners,
            true,
            Some(i),
        )
        .and_then(serve)
        {
            Ok(()) => 0,
            Err(e) => {
                herald::log_error!("worker {i}: {e}");
                1
            }
        });
        match code {
            0 => Ok(()),
            c => Err(format!("the workers stopped with code {c}")),
        }
    };
    match &res {
        Ok(()) => herald::log_info!("stopped"),
        Err(e) => herald::log_error!("{e}"),
    }
    if cli.daemon {
        let _ = std::fs::remove_file(&cli.pid_file);
        let _ = std::fs::remove_file(&addr_file);
    }
    res
}

/// A server with `listeners` bound (`worker`: its index under --workers).
fn bind_server(
    cli: &Cli,
    listeners: &[(Protocol, SocketAddr)],
    reuse_port: bool,
    worker: Option<usize>,
) -> Result<Server<PushApp>, String> {
    let mut push = cli.push.clone();
    if let Some(redis) = &cli.redis {
        push.cluster = Some(ClusterConfig {
            redis: redis.clone(),
            prefix: cli.redis_prefix.clone(),
            max_pending: cli.redis_max_pending,
            node: node_id(worker),
            worker: worker.unwrap_or(0),
        });
    }
    let mut server = Server::new(cli.limits.clone(), PushApp::new(push))
        .map_err(|e| format!("cannot start the reactor: {e}"))?;
    for &(proto, addr) in listeners {
        server.listen(proto, addr, reuse_port).map_err(|e| {
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

/// Runs a bound server until it stops.
fn serve(mut server: Server<PushApp>) -> Result<(), String> {
    // After daemonizing and forking: a signalfd registered with epoll before
    // a fork keeps reporting the parent's signals, not the child's.
    server
        .stop_on_signals()
        .map_err(|e| format!("cannot handle signals: {e}"))?;
    let rss = server.context().rss_bytes();
    server.app().set_baseline_rss(rss);
    server.run().map_err(|e| format!("event loop failed: {e}"))
}

/// This process's name in a cluster: host, pid and start time, so that a
/// restarted worker is a new node.
fn node_id(worker: Option<usize>) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let w = worker.map_or(String::new(), |i| format!("-w{i}"));
    format!("{}-{}{w}-{started:x}", host.trim(), std::process::id())
}

/// The pid of the herald holding `--pid-file`; a stale file is removed.
fn daemon_pid(cli: &Cli) -> Result<i32, String> {
    let text = std::fs::read_to_string(&cli.pid_file).map_err(|e| {
        format!(
            "cannot read pid file {}: {e} (is herald running as a daemon?)",
            cli.pid_file
        )
    })?;
    let path = std::path::Path::new(&cli.pid_file);
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

fn stop(cli: &Cli) -> Result<(), String> {
    let pid = daemon_pid(cli)?;
    herald::sys::kill(pid, herald::sys::SIGTERM)
        .map_err(|e| format!("cannot signal pid {pid}: {e}"))?;
    for _ in 0..100 {
        if herald::sys::kill(pid, 0).is_err() {
            println!("herald: stopped (pid {pid})");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("pid {pid} still running after 10 s"))
}

fn reload(cli: &Cli) -> Result<(), String> {
    let pid = daemon_pid(cli)?;
    herald::sys::kill(pid, herald::sys::SIGHUP)
        .map_err(|e| format!("cannot signal pid {pid}: {e}"))?;
    println!("herald: asked pid {pid} to re-read its secret files (its log says how it went)");
    Ok(())
}

/// The HTTP API to ask: `--http` if given, else the one the daemon of
/// `--pid-file` recorded, else the default.
fn api_addr(cli: &Cli) -> Result<SocketAddr, String> {
    if !cli.http_given {
        let recorded = std::fs::read_to_string(beside(&cli.pid_file, "addr")).ok();
        if let Some(a) = recorded.and_then(|t| t.trim().parse().ok()) {
            return Ok(a);
        }
    }
    cli.http
        .ok_or_else(|| format!("{} needs the HTTP listener (--http ADDR)", cli.command))
}

/// GET `path` from the running herald's API; the body, or why not.
fn api_get(cli: &Cli, path: &str) -> Result<String, String> {
    let addr = api_addr(cli)?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("herald is not answering on {addr}: {e}"))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let token = secrets(cli.push.api_token_file.as_deref(), "HERALD_API_TOKEN", 1)?;
    let auth = token
        .and_then(|t| t.into_iter().last())
        .map(|t| format!("Authorization: Bearer {}\r\n", String::from_utf8_lossy(&t)))
        .unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: herald\r\n{auth}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).map_err(|e| e.to_string())?;
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let status = head.split_whitespace().nth(1).unwrap_or("?");
    if status != "200" {
        return Err(format!(
            "{addr} answered {path} with {status}: {}",
            body.trim()
        ));
    }
    Ok(body.to_string())
}

fn status(cli: &Cli) -> Result<(), String> {
    let body = api_get(cli, "/stats")?;
    if cli.json {
        println!("{body}");
        return Ok(());
    }
    let v: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("/stats is not JSON: {e}"))?;
    print!("{}", herald::push::status::status_text(&v));
    Ok(())
}

fn connections(cli: &Cli) -> Result<(), String> {
    let body = api_get(cli, &format!("/connections?limit={}", cli.limit))?;
    if cli.json {
        println!("{body}");
        return Ok(());
    }
    let v: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("/connections is not JSON: {e}"))?;
    print!("{}", herald::push::status::connections_text(&v));
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cli = match with_env(&args, |k| std::env::var(k).ok()).and_then(|a| parse_args(&a)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("herald: {e}");
            return ExitCode::from(2);
        }
    };
    let res = match cli.command.as_str() {
        "help" => {
            print!("{HELP}");
            Ok(())
        }
        "version" => {
            println!("herald {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        "stop" => stop(&cli),
        "reload" => reload(&cli),
        "status" => status(&cli),
        "connections" => connections(&cli),
        _ => run(cli),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn defaults_are_the_seeds_ports() {
        let c = parse_args(&[]).unwrap();
        assert_eq!(c.ws.unwrap().port(), 1234);
        assert_eq!(c.text.unwrap().to_string(), "127.0.0.1:5678");
        assert!(!c.push.routing);
    }

    #[test]
    fn the_environment_sets_flags_and_flags_win() {
        let env = |k: &str| match k {
            "HERALD_MAX_LINE" => Some("10".to_string()),
            "HERALD_TEXT" => Some("off".to_string()),
            "HERALD_ROUTING" => Some("1".to_string()),
            "HERALD_WS" => Some("127.0.0.1:0".to_string()),
            _ => None,
        };
        let c = parse_args(&with_env(&args("--text 127.0.0.1:0"), env).unwrap()).unwrap();
        assert_eq!(c.limits.max_line, 10);
        assert!(c.push.routing);
        assert_eq!(c.text.unwrap().to_string(), "127.0.0.1:0", "the flag wins");
        assert_eq!(c.ws.unwrap().to_string(), "127.0.0.1:0");
        // stop and status take only what they use, from the environment too.
        let c = parse_args(&with_env(&args("stop"), env).unwrap()).unwrap();
        assert_eq!(c.command, "stop");
        let bad = |k: &str| (k == "HERALD_ROUTING").then(|| "maybe".to_string());
        assert!(with_env(&args("start"), bad)
            .unwrap_err()
            .contains("HERALD_ROUTING"));
        assert_eq!(env_name("--max-queued"), "HERALD_MAX_QUEUED");
    }

    #[test]
    fn every_flag_in_the_help_is_one_the_parser_knows() {
        // The environment's variables come from the help: each must parse.
        let flags: Vec<_> = help_flags().collect();
        assert!(flags.contains(&("--max-connections", true)), "{flags:?}");
        assert!(flags.contains(&("--routing", false)), "{flags:?}");
        for (flag, takes_value) in flags {
            let mut a = vec![flag.to_string()];
            if takes_value {
                a.push(if flag == "--pid-file" { "p" } else { "1" }.to_string());
            }
            if let Err(e) = parse_args(&a) {
                assert!(!e.contains("unknown argument"), "{flag}: {e}");
            }
        }
    }

    #[test]
    fn flags_and_errors() {
        let c = parse_args(&args(
            "start --ws off --text 127.0.0.1:0 --max-line 10 --routing",
        ))
        .unwrap();
        assert!(c.ws.is_none());
        assert_eq!(c.limits.max_line, 10);
        assert!(c.push.routing);
        assert!(parse_args(&args("--ws nonsense"))
            .unwrap_err()
            .contains("cannot parse address"));
        assert!(parse_args(&args("--max-line -1"))
            .unwrap_err()
            .contains("non-negative"));
        assert!(parse_args(&args("--bogus"))
            .unwrap_err()
            .contains("unknown argument"));
        assert!(parse_args(&args("--ws"))
            .unwrap_err()
            .contains("needs a value"));
        assert!(parse_args(&args("-d"))
            .unwrap_err()
            .contains("-d goes with start"));
        assert!(parse_args(&args("start -d")).unwrap().daemon);
        assert_eq!(
            parse_args(&args("stop --ws 1")).unwrap_err(),
            "stop takes only --pid-file, not --ws"
        );
        assert!(parse_args(&args("status --ws x"))
            .unwrap_err()
            .contains("status takes only --http"));
        assert!(
            parse_args(&args("status --pid-file x --json"))
                .unwrap()
                .json
        );
        assert_eq!(parse_args(&args("connections --limit 5")).unwrap().limit, 5);
        assert!(parse_args(&args("start --json"))
            .unwrap_err()
            .contains("--json goes with status"));
        assert!(parse_args(&args("reload --http 1"))
            .unwrap_err()
            .contains("reload takes only --pid-file"));
        assert!(parse_args(&args("--log-level loud"))
            .unwrap_err()
            .contains("expected error, warn, info or debug"));
        assert!(parse_args(&args("stop --pid-file x")).is_ok());
        assert!(parse_args(&args("--ws off --text off --http off"))
            .unwrap_err()
            .contains("nothing to serve"));
    }
}
