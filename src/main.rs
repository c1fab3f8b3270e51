//! The `herald` command line: run the push server, or stop / query a running one.

use herald::auth::{self, ApiTokens, TokenRules, Verifier};
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
    herald status [--http ADDR]      print the running server's /stats
                 [--api-token-file PATH]

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

PROCESS:
    -d                     (with start) run as a daemon, writing the pid file
    --pid-file PATH        pid file for start -d / stop     [default: herald.pid]
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
        Some(c @ ("start" | "stop" | "status")) => (Some(c), &args[1..]),
        _ => (None, args),
    };
    let wanted = |flag: &str| match command {
        Some("stop") => flag == "--pid-file",
        Some("status") => matches!(flag, "--http" | "--api-token-file"),
        _ => true,
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

#[derive(Debug)]
struct Cli {
    command: String,
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
        if matches!(first.as_str(), "start" | "stop" | "status") {
            cli.command = first.clone();
            explicit = true;
            i = 1;
        }
    }
    // `stop` and `status` take only what they use.
    let only: &[&str] = match cli.command.as_str() {
        "stop" => &["--pid-file"],
        "status" => &["--http", "--api-token-file"],
        _ => &[],
    };
    while i < args.len() {
        let flag = args[i].as_str();
        let general = matches!(flag, "-h" | "--help" | "-V" | "--version");
        if !only.is_empty() && !only.contains(&flag) && !general {
            return Err(format!(
                "{} takes only {}, not {flag}",
                cli.command,
                only.join(", ")
            ));
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
            "--http" => cli.http = parse_addr(flag, value()?)?,
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

fn run(mut cli: Cli) -> Result<(), String> {
    load_security(&mut cli)?;
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
    let mut server = Server::new(cli.limits.clone(), PushApp::new(cli.push.clone()))
        .map_err(|e| format!("cannot start the reactor: {e}"))?;
    for (proto, addr) in [
        (Protocol::WebSocket, cli.ws),
        (Protocol::Text, cli.text),
        (Protocol::Http, cli.http),
    ] {
        if let Some(addr) = addr {
            server
                .listen(proto, addr, cli.reuse_port)
                .map_err(|e| format!("cannot listen on {addr} ({}): {e}", proto.name()))?;
        }
    }
    let (soft, hard) = server.context().nofile_limit();
    let mut out = std::io::stdout().lock();
    for (proto, addr) in server.listeners() {
        let _ = writeln!(out, "herald: listening {} {}", proto.name(), addr);
    }
    // What is left once herald's own descriptors (listeners, epoll, the
    // spare one, standard streams; the signalfd comes next) are counted.
    let own = herald::sys::open_descriptors().unwrap_or(16) + 1;
    let _ = writeln!(
        out,
        "herald: open-file limit {soft} (hard {hard}): at most about {} connections in this process",
        soft.saturating_sub(own)
    );
    let _ = out.flush();
    drop(out);
    for w in security_warnings(&cli) {
        eprintln!("herald: warning: {w}");
    }
    if cli.daemon {
        herald::sys::daemonize(std::path::Path::new(&cli.pid_file))
            .map_err(|e| format!("cannot daemonize: {e}"))?;
    }
    // After daemonizing: a signalfd registered with epoll before a fork keeps
    // reporting the parent's signals, not the child's.
    server
        .stop_on_signals()
        .map_err(|e| format!("cannot handle signals: {e}"))?;
    let rss = server.context().rss_bytes();
    server.app().set_baseline_rss(rss);
    let res = server.run().map_err(|e| format!("event loop failed: {e}"));
    if cli.daemon {
        let _ = std::fs::remove_file(&cli.pid_file);
    }
    res
}

fn stop(cli: &Cli) -> Result<(), String> {
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
    let pid: i32 = text
        .trim()
        .parse()
        .map_err(|_| format!("pid file {} is corrupt", cli.pid_file))?;
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

fn status(cli: &Cli) -> Result<(), String> {
    let addr = cli
        .http
        .ok_or("status needs the HTTP listener (--http ADDR)")?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("herald is not answering on {addr}: {e}"))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let token = secrets(cli.push.api_token_file.as_deref(), "HERALD_API_TOKEN", 1)?;
    let auth = token
        .and_then(|t| t.into_iter().last())
        .map(|t| format!("Authorization: Bearer {}\r\n", String::from_utf8_lossy(&t)))
        .unwrap_or_default();
    let req = format!("GET /stats HTTP/1.1\r\nHost: herald\r\n{auth}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).map_err(|e| e.to_string())?;
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    println!("{body}");
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
        "status" => status(&cli),
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
        assert!(parse_args(&args("status --pid-file x"))
            .unwrap_err()
            .contains("status takes only --http"));
        assert!(parse_args(&args("stop --pid-file x")).is_ok());
        assert!(parse_args(&args("--ws off --text off --http off"))
            .unwrap_err()
            .contains("nothing to serve"));
    }
}
