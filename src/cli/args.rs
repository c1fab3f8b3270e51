//! The command line (and the `HERALD_<FLAG>` environment) read into a
//! [`Cli`], checked before anything starts.

use super::flags::{self, Flag, Kind, COMMANDS};
use herald::auth::TokenRules;
use herald::limits::LimitError;
use herald::push::PushConfig;
use herald::Limits;
use std::net::SocketAddr;

/// What the command line asks for.
#[derive(Debug)]
pub struct Cli {
    /// `start` (also when none is given), `stop`, `reload`, `restart`,
    /// `status`, `connections`, or `help` / `version` from their flags.
    pub command: String,
    pub log_level: herald::log::Level,
    pub log_file: Option<std::path::PathBuf>,
    /// status / connections: print the API's JSON as it is.
    pub json: bool,
    /// connections: how many to list.
    pub limit: usize,
    /// --http was given (status then asks that, not the daemon's).
    pub http_given: bool,
    /// `--redis`, as given; resolved into `redis` at start.
    pub redis_url: Option<String>,
    pub redis: Option<herald::redis::RedisUrl>,
    /// From `--redis-password-file` or `HERALD_REDIS_PASSWORD`, read at start.
    pub redis_password: Option<String>,
    pub redis_prefix: String,
    pub redis_max_pending: usize,
    pub workers: usize,
    pub daemon: bool,
    pub ws: Option<SocketAddr>,
    pub text: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub reuse_port: bool,
    pub limits: Limits,
    /// `--deflate on|off`; on by default in builds that have it.
    pub deflate: bool,
    /// `--deflate-level` and `--deflate-min`.
    pub deflate_settings: herald::limits::Deflate,
    pub push: PushConfig,
    pub rules: TokenRules,
    pub pid_file: String,
}

impl Default for Cli {
    fn default() -> Cli {
        Cli {
            command: "start".into(),
            log_level: herald::log::Level::Info,
            log_file: None,
            json: false,
            limit: 100,
            http_given: false,
            redis_url: None,
            redis: None,
            redis_password: None,
            redis_prefix: "herald".into(),
            redis_max_pending: 1 << 20,
            workers: 1,
            daemon: false,
            ws: Some(([0, 0, 0, 0], 1234).into()),
            text: Some(([127, 0, 0, 1], 5678).into()),
            http: Some(([127, 0, 0, 1], 5679).into()),
            reuse_port: false,
            limits: Limits::default(),
            deflate: herald::ws::deflate::BUILT_IN,
            deflate_settings: herald::limits::Deflate::default(),
            push: PushConfig::default(),
            rules: TokenRules {
                leeway_s: 5,
                ..TokenRules::default()
            },
            pid_file: "herald.pid".into(),
        }
    }
}

/// The command named first, if any, and the arguments after it.
fn split_command(args: &[String]) -> (Option<&str>, &[String]) {
    match args.first().map(String::as_str) {
        Some(c) if COMMANDS.contains(&c) => (Some(c), &args[1..]),
        _ => (None, args),
    }
}

/// The command line with the environment's settings put in front of the
/// flags (so that flags, parsed later, win). A command takes from the
/// environment only what it takes as flags.
pub fn with_env(
    args: &[String],
    env: impl Fn(&str) -> Option<String>,
) -> Result<Vec<String>, String> {
    let (command, rest) = split_command(args);
    let taken = command.unwrap_or("start");
    let mut out: Vec<String> = command.map(String::from).into_iter().collect();
    for flag in flags::all().filter(|f| f.commands.contains(&taken)) {
        let Some(name) = flag.env_name() else {
            continue;
        };
        match (env(&name), flag.kind) {
            (None, _) => {}
            (Some(v), Kind::Value(_)) => out.extend([flag.long.to_string(), v]),
            (Some(v), _) => match v.as_str() {
                "" | "0" | "false" | "no" | "off" => {}
                "1" | "true" | "yes" | "on" => out.push(flag.long.to_string()),
                other => return Err(format!("{name}: expected 1 or 0 (on/off), got {other:?}")),
            },
        }
    }
    out.extend(rest.iter().cloned());
    Ok(out)
}

/// An error about a flag that no argument gave, only its `HERALD_<FLAG>`
/// variable: says so, since the operator set the variable, not the flag.
pub fn blame_env(error: String, args: &[String], env: impl Fn(&str) -> Option<String>) -> String {
    let from_env = flags::all().find(|f| {
        error.starts_with(f.long)
            && !args.iter().any(|a| a == f.long)
            && f.env_name().is_some_and(|name| env(&name).is_some())
    });
    match from_env.and_then(|f| f.env_name()) {
        Some(name) => format!("{error} (set by {name})"),
        None => error,
    }
}

pub fn parse_args(args: &[String]) -> Result<Cli, String> {
    let (explicit, rest) = split_command(args);
    let command = explicit.unwrap_or("start");
    let mut cli = Cli {
        command: command.into(),
        ..Cli::default()
    };
    let mut rest = rest.iter();
    while let Some(arg) = rest.next() {
        let flag = taken_by(command, arg)?;
        let value = match flag.kind {
            Kind::Value(_) => rest.next().ok_or_else(|| format!("{arg} needs a value"))?,
            Kind::Switch | Kind::Action => "",
        };
        set(&mut cli, flag, value)?;
    }
    cli.limits.deflate = cli.deflate.then_some(cli.deflate_settings);
    check(&cli, explicit.is_some())?;
    if let Some(url) = &cli.redis_url {
        // A bad URL is a usage error like any bad value (exit 2). Resolving
        // its host may block on DNS: fine here, at start.
        cli.redis = Some(herald::redis::RedisUrl::parse(url)?);
    }
    Ok(cli)
}

/// How many workers `args` (as [`with_env`] returns them) ask for, read as
/// the parser reads them but without checking anything else: `herald
/// restart` reads a running daemon's command line so. `None` when they do
/// not parse.
pub fn workers_in(args: &[String]) -> Option<usize> {
    let (explicit, rest) = split_command(args);
    let command = explicit.unwrap_or("start");
    let mut workers = 1;
    let mut rest = rest.iter();
    while let Some(arg) = rest.next() {
        let flag = taken_by(command, arg).ok()?;
        if let Kind::Value(_) = flag.kind {
            let v = rest.next()?;
            if flag.long == "--workers" {
                workers = v.parse().ok()?;
            }
        }
    }
    Some(workers)
}

/// The flag `arg` names, if `command` takes it.
fn taken_by(command: &str, arg: &str) -> Result<&'static Flag, String> {
    match flags::find(arg) {
        Some(flag) if flag.commands.contains(&command) => Ok(flag),
        _ if command != "start" => Err(format!(
            "{command} takes only {}, not {arg}",
            flags::settings_of(command).join(", ")
        )),
        Some(flag) => Err(format!("{arg} goes with {}", flag.commands.join(" or "))),
        None => Err(format!("unknown argument {arg:?} (see herald --help)")),
    }
}

/// Applies one flag (`v` is "" for a switch or an action).
fn set(cli: &mut Cli, flag: &Flag, v: &str) -> Result<(), String> {
    let name = flag.long;
    let l = &mut cli.limits;
    match name {
        "--help" => cli.command = "help".into(),
        "--version" => cli.command = "version".into(),
        "--daemon" => cli.daemon = true,
        "--ws" => cli.ws = parse_addr(name, v)?,
        "--text" => cli.text = parse_addr(name, v)?,
        "--http" => (cli.http, cli.http_given) = (parse_addr(name, v)?, true),
        "--reuse-port" => cli.reuse_port = true,
        "--routing" => cli.push.routing = true,
        "--max-message" => l.max_message = parse_num(name, v)?,
        "--max-head" => l.max_head = parse_num(name, v)?,
        "--handshake-timeout" => l.handshake_timeout_ms = parse_num(name, v)?,
        "--max-line" => l.max_line = parse_num(name, v)?,
        "--max-body" => l.max_body = parse_num(name, v)?,
        "--max-queued" => l.max_queued = parse_num(name, v)?,
        "--max-connections" => l.max_connections = parse_num(name, v)?,
        "--max-per-ip" => l.max_per_ip = parse_num(name, v)?,
        "--max-uid" => l.max_uid = parse_num(name, v)?,
        "--read-buffer" => l.read_buffer = parse_num(name, v)?,
        "--send-pool" => l.send_pool = parse_num(name, v)?,
        "--ping-interval" => l.ping_interval_s = parse_num(name, v)?,
        "--idle-timeout" => l.idle_timeout_s = parse_num(name, v)?,
        "--close-timeout" => l.close_timeout_ms = parse_num(name, v)?,
        "--shutdown-grace" => l.shutdown_grace_ms = parse_num(name, v)?,
        "--restart-drain" => l.restart_drain_ms = parse_num(name, v)?,
        "--auth-secret-file" => cli.push.auth_secret_file = Some(v.into()),
        "--auth-audience" => cli.rules.audience = Some(v.into()),
        "--auth-issuer" => cli.rules.issuer = Some(v.into()),
        "--auth-leeway" => cli.rules.leeway_s = parse_num(name, v)?,
        "--api-token-file" => cli.push.api_token_file = Some(v.into()),
        "--allow-origin" => cli.push.allow_origins.extend(parse_origins(name, v)?),
        "--max-handshakes-per-ip" => l.max_handshakes_per_ip = parse_num(name, v)?,
        "--trusted-proxy" => l.trusted_proxies.extend(parse_ips(name, v)?),
        "--redis" => cli.redis_url = Some(v.into()),
        "--redis-prefix" => cli.redis_prefix = v.into(),
        "--redis-password-file" => cli.push.redis_password_file = Some(v.into()),
        "--redis-max-pending" => cli.redis_max_pending = parse_num(name, v)?,
        "--workers" => cli.workers = parse_num(name, v)?,
        "--history" => cli.push.history.size = parse_num(name, v)?,
        "--deflate" => {
            cli.deflate = match v {
                "on" => true,
                "off" => false,
                _ => return Err(format!("{name} takes on or off, not {v:?}")),
            }
        }
        "--deflate-level" => cli.deflate_settings.level = parse_num(name, v)?,
        "--deflate-min" => cli.deflate_settings.min_size = parse_num(name, v)?,
        "--history-ttl" => {
            let secs: u64 = parse_num(name, v)?;
            if secs == 0 {
                return Err(format!("{name} must be at least 1 second"));
            }
            cli.push.history.ttl_ms = secs.saturating_mul(1000);
        }
        "--history-memory" => cli.push.history.memory = parse_num(name, v)?,
        "--pid-file" => cli.pid_file = v.into(),
        "--log-level" => cli.log_level = parse_level(name, v)?,
        "--log-file" => cli.log_file = Some(v.into()),
        "--json" => cli.json = true,
        "--limit" => cli.limit = parse_num(name, v)?,
        // Only a flag added to the table and not here (a unit test looks).
        other => return Err(format!("unknown argument {other:?} (see herald --help)")),
    }
    Ok(())
}

/// What no single flag can check: how flags go together, and the limits.
fn check(cli: &Cli, explicit: bool) -> Result<(), String> {
    // `-d` goes with an explicit `start`, as --help says.
    if cli.daemon && !(explicit && cli.command == "start") {
        return Err("-d goes with start: herald start -d [OPTIONS]".into());
    }
    cli.limits.validate().map_err(|e| match e {
        LimitError::Zero(_) => {
            "--max-message, --max-line, --max-queued and --max-uid must be at least 1".to_string()
        }
        LimitError::HeadTooSmall => format!("--max-head must be at least {}", Limits::MIN_HEAD),
        LimitError::DrainTooLong => format!(
            "--restart-drain must be at most {} (one hour)",
            Limits::MAX_RESTART_DRAIN_MS
        ),
        LimitError::NoDeflate => {
            "--deflate on: this build has no permessage-deflate (built without the `deflate` feature)"
                .to_string()
        }
        LimitError::DeflateLevel => "--deflate-level must be 1 to 9".to_string(),
    })?;
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
    if cli.command == "start" && cli.ws.is_none() && cli.text.is_none() && cli.http.is_none() {
        return Err("every listener is off: nothing to serve".into());
    }
    Ok(())
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

fn parse_num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse::<T>()
        .map_err(|_| format!("{flag}: expected a non-negative number, got {v:?}"))
}

fn parse_level(flag: &str, v: &str) -> Result<herald::log::Level, String> {
    herald::log::Level::parse(v)
        .ok_or_else(|| format!("{flag}: expected error, warn, info or debug, got {v:?}"))
}

fn parse_ips(flag: &str, v: &str) -> Result<Vec<std::net::IpAddr>, String> {
    list(v)
        .map(|ip| {
            ip.parse()
                .map_err(|_| format!("{flag}: cannot parse IP address {ip:?} (e.g. 127.0.0.1)"))
        })
        .collect()
}

/// `a,b, c` -> ["a", "b", "c"].
fn list(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// Origins as browsers send them, `scheme://host[:port]`: a trailing `/`
/// (as copied from an address bar) is dropped; anything else that a
/// browser never sends (no scheme, a path) is refused, since it would
/// silently refuse every browser.
fn parse_origins(flag: &str, v: &str) -> Result<Vec<String>, String> {
    list(v)
        .map(|o| {
            let o = o.strip_suffix('/').unwrap_or(o);
            match o.split_once("://") {
                Some((scheme, host))
                    if !scheme.is_empty() && !host.is_empty() && !host.contains('/') =>
                {
                    Ok(o.to_ascii_lowercase())
                }
                _ => Err(format!(
                    "{flag} {o:?}: an origin is scheme://host[:port], as browsers send it (e.g. https://app.example.com)"
                )),
            }
        })
        .collect()
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
    fn the_defaults_the_help_shows_are_the_real_ones() {
        let real = format!("{:?}", parse_args(&[]).unwrap());
        // Without the feature, `--deflate on` (the help's default) is refused.
        let shown_default =
            |f: &flags::Flag| herald::ws::deflate::BUILT_IN || f.long != "--deflate";
        for flag in flags::all().filter(|f| !f.default.is_empty() && shown_default(f)) {
            let a = [flag.commands[0], flag.long, flag.default].map(String::from);
            let mut shown = parse_args(&a).unwrap_or_else(|e| panic!("{}: {e}", flag.long));
            shown.command = "start".into();
            shown.http_given = false;
            assert_eq!(format!("{shown:?}"), real, "{}", flag.long);
        }
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
    }

    #[test]
    fn every_flag_in_the_table_is_one_the_parser_knows() {
        for flag in flags::all() {
            let mut a = vec![flag.commands[0].to_string(), flag.long.to_string()];
            if let Kind::Value(_) = flag.kind {
                a.push(if flag.long == "--pid-file" { "p" } else { "1" }.to_string());
            }
            if let Err(e) = parse_args(&a) {
                assert!(!e.contains("unknown argument"), "{}: {e}", flag.long);
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
        assert!(parse_args(&args("start -d")).unwrap().daemon);
        let status = parse_args(&args("status --pid-file x --json")).unwrap();
        assert!(status.json);
        assert_eq!(parse_args(&args("connections --limit 5")).unwrap().limit, 5);
        assert!(parse_args(&args("stop --pid-file x")).is_ok());
        for (line, error) in [
            ("--ws nonsense", "cannot parse address"),
            ("--max-line -1", "non-negative"),
            ("--bogus", "unknown argument"),
            ("--ws", "needs a value"),
            ("-d", "-d goes with start"),
            ("stop --ws 1", "stop takes only --pid-file, not --ws"),
            ("status --ws x", "status takes only --http"),
            ("start --json", "--json goes with status"),
            ("reload --http 1", "reload takes only --pid-file"),
            ("restart --workers 2", "restart takes only --pid-file"),
            (
                "--restart-drain 3600001",
                "--restart-drain must be at most 3600000",
            ),
            ("--log-level loud", "expected error, warn, info or debug"),
            ("--ws off --text off --http off", "nothing to serve"),
        ] {
            let e = parse_args(&args(line)).unwrap_err();
            assert!(e.contains(error), "{line}: {e}");
        }
    }

    #[test]
    fn the_workers_of_a_command_line_are_read_without_the_rest() {
        let w = |line: &str| workers_in(&args(line));
        assert_eq!(w("start -d --redis redis://h --workers 4"), Some(4));
        assert_eq!(w("--workers 2 --log-file --workers"), Some(2));
        assert_eq!(w("start -d --pid-file p"), Some(1));
        assert_eq!(w("--workers x"), None);
        assert_eq!(w("--bogus"), None);
        let env = |k: &str| (k == "HERALD_WORKERS").then(|| "3".to_string());
        assert_eq!(
            workers_in(&with_env(&args("start -d"), env).unwrap()),
            Some(3)
        );
    }

    #[test]
    fn limits_are_checked_by_the_library_in_the_flags_words() {
        assert_eq!(
            parse_args(&args("--max-uid 0")).unwrap_err(),
            "--max-message, --max-line, --max-queued and --max-uid must be at least 1"
        );
        assert_eq!(
            parse_args(&args("--max-head 63")).unwrap_err(),
            "--max-head must be at least 64"
        );
        assert!(parse_args(&args("--max-head 64")).is_ok());
    }
}
