//! `herald status` and `herald connections`: a small HTTP client asking the
//! running herald's API, and the answer printed as JSON or for people.

use super::args::Cli;
use super::{daemon, secrets, status};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The HTTP API to ask: `--http` if given, else the one the daemon of
/// `--pid-file` recorded, else the default.
fn api_addr(cli: &Cli) -> Result<SocketAddr, String> {
    if !cli.http_given {
        if let Some(a) = daemon::recorded_http(&cli.pid_file) {
            return Ok(a);
        }
    }
    cli.http
        .ok_or_else(|| format!("{} needs the HTTP listener (--http ADDR)", cli.command))
}

/// GET `path` from the running herald's API; the body, or why not.
fn api_get(cli: &Cli, path: &str) -> Result<String, String> {
    let addr = api_addr(cli)?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| {
        // After `herald stop` the pid file is gone: say that no daemon
        // runs, rather than only that a default address is silent.
        let daemon = if cli.http_given || std::path::Path::new(&cli.pid_file).exists() {
            String::new()
        } else {
            format!(
                "; no daemon runs with pid file {} (give --pid-file, or --http for a herald in the foreground)",
                cli.pid_file
            )
        };
        format!("not answering on {addr}: {e}{daemon}")
    })?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let token = secrets::load(
        ("--api-token-file", cli.push.api_token_file.as_deref()),
        "HERALD_API_TOKEN",
        1,
    )?;
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

/// Prints what the API answers at `path` (the `route` it names): as it is
/// with `--json`, else through `render`.
fn show(cli: &Cli, path: &str, route: &str, render: fn(&Value) -> String) -> Result<(), String> {
    let body = api_get(cli, path)?;
    if cli.json {
        println!("{body}");
        return Ok(());
    }
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("{route} is not JSON: {e}"))?;
    print!("{}", render(&v));
    Ok(())
}

/// `herald status`: the figures of /stats.
pub fn status(cli: &Cli) -> Result<(), String> {
    show(cli, "/stats", "/stats", status::status_text)
}

/// `herald connections`: the first `--limit` of /connections.
pub fn connections(cli: &Cli) -> Result<(), String> {
    let path = format!("/connections?limit={}", cli.limit);
    show(cli, &path, "/connections", status::connections_text)
}
