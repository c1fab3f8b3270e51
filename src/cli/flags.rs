//! Every flag of the command line as data: its names, what it takes, its
//! default, its help and the commands that take it. `--help` and the
//! `HERALD_<FLAG>` environment variables are both read off this table.

/// What a flag does with the arguments after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Takes the next argument, shown in `--help` as this word: `--ws ADDR`.
    Value(&'static str),
    /// On when given: `--routing`.
    Switch,
    /// A command or a mode rather than a setting (`--help`, `--version`,
    /// `-d`): never taken from the environment.
    Action,
}

/// One flag.
#[derive(Clone, Copy, Debug)]
pub struct Flag {
    /// The long name, `--max-queued`; the one the parser matches on.
    pub long: &'static str,
    /// The short name, if any: `-h`.
    pub short: Option<&'static str>,
    /// Whether it takes a value.
    pub kind: Kind,
    /// The default `--help` shows, as one would type it; "" for none.
    pub default: &'static str,
    /// The `--help` text, `\n` between its lines.
    pub help: &'static str,
    /// The commands that take it.
    pub commands: &'static [&'static str],
}

/// The commands, `start` (the default) first.
pub const COMMANDS: &[&str] = &[
    "start",
    "stop",
    "reload",
    "restart",
    "status",
    "connections",
];
const START: &[&str] = &["start"];
/// Flags `status` and `connections` need to reach the API.
const QUERY: &[&str] = &["start", "status", "connections"];
const STATUS: &[&str] = &["status", "connections"];
const CONNECTIONS: &[&str] = &["connections"];

const fn value(
    long: &'static str,
    word: &'static str,
    default: &'static str,
    help: &'static str,
) -> Flag {
    Flag {
        long,
        short: None,
        kind: Kind::Value(word),
        default,
        help,
        commands: START,
    }
}

const fn switch(long: &'static str, help: &'static str) -> Flag {
    Flag {
        long,
        short: None,
        kind: Kind::Switch,
        default: "",
        help,
        commands: START,
    }
}

const fn action(
    short: &'static str,
    long: &'static str,
    help: &'static str,
    commands: &'static [&'static str],
) -> Flag {
    Flag {
        long,
        short: Some(short),
        kind: Kind::Action,
        default: "",
        help,
        commands,
    }
}

impl Flag {
    const fn taken_by(self, commands: &'static [&'static str]) -> Flag {
        Flag { commands, ..self }
    }

    /// `HERALD_MAX_QUEUED` for `--max-queued`, if this flag can come from
    /// the environment: every setting `--help` lists.
    pub fn env_name(&self) -> Option<String> {
        let listed = LISTED
            .iter()
            .any(|(_, f)| f.iter().any(|f| f.long == self.long));
        (listed && self.kind != Kind::Action).then(|| env_name(self.long))
    }
}

/// `--max-queued` -> `HERALD_MAX_QUEUED`.
pub fn env_name(long: &str) -> String {
    format!(
        "HERALD_{}",
        long.trim_start_matches('-')
            .replace('-', "_")
            .to_uppercase()
    )
}

/// The option list of `--help`: each heading with its flags, in order.
#[rustfmt::skip]
const LISTED: &[(&str, &[Flag])] = &[
    ("LISTENERS (ADDR is IP:PORT, or `off`):", &[
        value("--ws", "ADDR", "0.0.0.0:1234", "WebSocket listener"),
        value("--text", "ADDR", "127.0.0.1:5678", "internal text port"),
        value("--http", "ADDR", "127.0.0.1:5679", "HTTP API").taken_by(QUERY),
        switch("--reuse-port", "set SO_REUSEPORT on the listeners"),
        switch("--routing", "let clients send `uid:message` and `all:message`"),
    ]),
    ("LIMITS:", &[
        value("--max-message", "BYTES", "1048576", "largest WebSocket message (1009 past it)"),
        value("--max-head", "BYTES", "8192", "largest HTTP request head (431 past it)"),
        value("--handshake-timeout", "MS", "10000", "deadline for a WebSocket handshake (408)"),
        value("--max-line", "BYTES", "65536", "longest text-port line (`error` reply)"),
        value("--max-body", "BYTES", "1048576", "largest HTTP API body (413 past it)"),
        value("--max-queued", "BYTES", "1048576", "send queue per connection (slow consumer)"),
        value("--max-connections", "N", "0", "open connections, 0 = descriptor limit"),
        value("--max-per-ip", "N", "0", "open connections per IP, 0 = unlimited"),
        value("--max-uid", "BYTES", "128", "longest uid (1008 past it)"),
        value("--read-buffer", "BYTES", "65536", "the one read buffer all connections share"),
        value("--send-pool", "N", "128", "idle send buffers (<= 8 KiB each) kept"),
        value("--ping-interval", "S", "25", "ping WebSockets silent this long, 0 = off"),
        value("--idle-timeout", "S", "60", "close connections silent this long, 0 = off"),
        value("--close-timeout", "MS", "5000", "time allowed to finish a close"),
        value("--shutdown-grace", "MS", "5000", "time allowed to flush on SIGTERM/SIGINT"),
    ]),
    ("SECURITY (see Going to production in README.md):", &[
        value("--auth-secret-file", "PATH", "", "HS256 key(s) proving uids, one per line (or\n\
                                                 HERALD_AUTH_SECRET); without it, demo mode:\n\
                                                 any client may claim any uid"),
        value("--auth-audience", "AUD", "", "`aud` uid tokens must carry"),
        value("--auth-issuer", "ISS", "", "`iss` uid tokens must carry"),
        value("--auth-leeway", "S", "5", "clock skew allowed on exp, nbf, iat"),
        value("--api-token-file", "PATH", "", "token the text port (first line\n\
                                               {\"auth\":\"TOKEN\"}) and the HTTP API (Bearer)\n\
                                               require, one per line (or HERALD_API_TOKEN)")
            .taken_by(QUERY),
        value("--allow-origin", "LIST", "", "comma-separated Origins a browser may open a\n\
                                             WebSocket from (403 for others; repeatable)"),
        value("--max-handshakes-per-ip", "N", "0", "WebSocket handshakes per second per IP\n\
                                                    (429 past it), 0 = unlimited"),
        value("--trusted-proxy", "LIST", "", "comma-separated proxy IPs whose\n\
                                              X-Forwarded-For names the client (repeatable)"),
    ]),
    ("COMPRESSION (permessage-deflate; see Compression in README.md):", &[
        value("--deflate", "on|off", "on", "compress for WebSockets that offer it, each\n\
                                           message once for all (off in builds without\n\
                                           the `deflate` feature)"),
        value("--deflate-level", "N", "1", "1 (fastest) to 9 (smallest)"),
        value("--deflate-min", "BYTES", "256", "shorter messages go uncompressed"),
    ]),
    ("HISTORY (herald.v1 clients resume; see docs/resume.md):", &[
        value("--history", "N", "0", "messages kept per stream (uid, all); 0 = off"),
        value("--history-ttl", "SECS", "300", "how long a message is kept"),
        value("--history-memory", "BYTES", "67108864", "all history of a node without --redis,\n\
                                                        oldest evicted first"),
    ]),
    ("SCALE OUT (see Several processes and machines in README.md):", &[
        value("--redis", "URL", "", "redis://[:PASSWORD@]HOST:PORT[/DB]: share uids,\n\
                                     pushes and counts with every node on that Redis"),
        value("--redis-password-file", "PATH", "", "Redis password, first line (or\n\
                                                    HERALD_REDIS_PASSWORD); re-read on reload"),
        value("--redis-prefix", "NAME", "herald", "key and channel prefix"),
        value("--redis-max-pending", "BYTES", "1048576", "commands awaiting Redis before backends\n\
                                                          wait (herald stops reading them)"),
        value("--workers", "N", "1", "worker processes sharing the listening\n\
                                      sockets; N > 1 needs --redis"),
        value("--restart-drain", "MS", "5000", "herald restart: a replaced worker closes its\n\
                                               WebSockets (1012) spread over this long"),
    ]),
    ("PROCESS:", &[
        action("-d", "--daemon", "(with start) run as a daemon, writing the pid file", START),
        value("--pid-file", "PATH", "herald.pid", "pid file for start -d / stop").taken_by(COMMANDS),
        value("--log-level", "LEVEL", "info", "error, warn, info or debug"),
        value("--log-file", "PATH", "", "log here (reopened on SIGUSR1); default: stderr,\n\
                                         or beside the pid file (herald.log) with -d"),
        action("-h", "--help", "this help", COMMANDS),
        action("-V", "--version", "version", COMMANDS),
    ]),
];

/// Flags `--help` names with their commands under USAGE rather than in the
/// option list; they do not come from the environment.
const WITH_COMMANDS: &[Flag] = &[
    switch("--json", "").taken_by(STATUS),
    value("--limit", "N", "100", "").taken_by(CONNECTIONS),
];

const USAGE: &str = "\
herald: a real-time push server (WebSocket + text port + HTTP API, one thread)

USAGE:
    herald [start [-d]] [OPTIONS]    run the server (foreground unless -d)
    herald stop [--pid-file PATH]    stop a daemon started with -d (SIGTERM)
    herald reload [--pid-file PATH]  make it re-read its secret files (SIGHUP)
    herald restart [--pid-file PATH] replace its --workers one at a time, from
                                     the binary now on disk (SIGUSR2)
    herald status [--json]           its figures, for people (or /stats JSON)
    herald connections [--limit N] [--json]
                                     its connections: peer, uid, age, queue
    status and connections ask the HTTP API of the daemon of --pid-file
    (else --http, default 127.0.0.1:5679), with --api-token-file if set.
";

const ENVIRONMENT: &str = "
ENVIRONMENT:
    Every flag above can also come from HERALD_<FLAG>: --max-queued as
    HERALD_MAX_QUEUED=65536, --routing as HERALD_ROUTING=1. Flags on the
    command line win over the environment.
";

/// Where the help of a flag starts, after the four-space indent.
const LABEL_WIDTH: usize = 23;
/// The width defaults are right-aligned to.
const LINE_WIDTH: usize = 80;

/// Every flag, in the order of `--help`.
pub fn all() -> impl Iterator<Item = &'static Flag> {
    LISTED
        .iter()
        .flat_map(|(_, flags)| flags.iter())
        .chain(WITH_COMMANDS)
}

/// The flag spelled `arg` (long or short), if there is one.
pub fn find(arg: &str) -> Option<&'static Flag> {
    all().find(|f| f.long == arg || f.short == Some(arg))
}

/// The settings `command` takes, as its error message lists them.
pub fn settings_of(command: &str) -> Vec<&'static str> {
    all()
        .filter(|f| f.kind != Kind::Action && f.commands.contains(&command))
        .map(|f| f.long)
        .collect()
}

/// The text `herald --help` prints.
pub fn help() -> String {
    let mut out = String::from(USAGE);
    for (heading, flags) in LISTED {
        out.push('\n');
        out.push_str(heading);
        out.push('\n');
        for flag in *flags {
            write_help(flag, &mut out);
        }
    }
    out.push_str(ENVIRONMENT);
    out
}

/// `    --max-uid BYTES        longest uid (1008 past it)      [128]`: the
/// names, the help (continued lines aligned under it), and the default at
/// the right edge of the last line.
fn write_help(flag: &Flag, out: &mut String) {
    let mut label = match flag.short {
        Some(short) => format!("{short}, {}", flag.long),
        None => flag.long.to_string(),
    };
    if let Kind::Value(word) = flag.kind {
        label = format!("{label} {word}");
    }
    // A label too long for its column keeps two spaces before the help.
    let gap = LABEL_WIDTH.checked_sub(label.len()).filter(|&g| g > 0);
    let mut line = format!("    {label}{:1$}", "", gap.unwrap_or(2));
    let mut lines = flag.help.split('\n').peekable();
    while let Some(text) = lines.next() {
        line.push_str(text);
        if lines.peek().is_none() && !flag.default.is_empty() {
            let default = format!("[{}]", flag.default);
            let pad = LINE_WIDTH.saturating_sub(line.len() + default.len()).max(1);
            line = format!("{line}{:pad$}{default}", "");
        }
        out.push_str(&line);
        out.push('\n');
        line = " ".repeat(4 + LABEL_WIDTH);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_lists_every_flag_on_the_screen() {
        let help = help();
        for flag in LISTED.iter().flat_map(|(_, f)| f.iter()) {
            assert!(help.contains(flag.long), "{} missing", flag.long);
        }
        assert!(help.contains("\n    --max-uid BYTES        longest uid (1008 past it)"));
        assert!(help.contains("\n    -h, --help             this help\n"));
        // A label past its column, a default on the last of three lines.
        assert!(help.contains("\n    --max-handshakes-per-ip N  WebSocket handshakes"));
        assert!(help.contains("\n                           (429 past it), 0 = unlimited "));
        for line in help.lines() {
            assert!(line.len() <= LINE_WIDTH, "too wide: {line:?}");
        }
        let queued = help.lines().find(|l| l.contains("--max-queued")).unwrap();
        assert!(queued.ends_with(" [1048576]"), "{queued:?}");
        assert_eq!(queued.len(), LINE_WIDTH, "{queued:?}");
    }

    #[test]
    fn the_environment_names_come_from_the_listed_settings() {
        assert_eq!(env_name("--max-queued"), "HERALD_MAX_QUEUED");
        let env = |arg: &str| find(arg).unwrap().env_name();
        assert_eq!(env("--routing").as_deref(), Some("HERALD_ROUTING"));
        assert_eq!(env("--pid-file").as_deref(), Some("HERALD_PID_FILE"));
        for not in ["-d", "--help", "-V", "--json", "--limit"] {
            assert_eq!(env(not), None, "{not}");
        }
    }

    #[test]
    fn each_command_takes_what_it_uses() {
        assert_eq!(settings_of("stop"), ["--pid-file"]);
        assert_eq!(settings_of("reload"), ["--pid-file"]);
        assert_eq!(settings_of("restart"), ["--pid-file"]);
        assert_eq!(
            settings_of("status"),
            ["--http", "--api-token-file", "--pid-file", "--json"]
        );
        assert_eq!(
            settings_of("connections"),
            [
                "--http",
                "--api-token-file",
                "--pid-file",
                "--json",
                "--limit"
            ]
        );
        assert!(find("-h").unwrap().commands.contains(&"stop"));
        assert!(find("--bogus").is_none());
    }
}
