//! Where Redis is: the `--redis` URL, parsed and resolved once at start.

use std::net::{SocketAddr, ToSocketAddrs};

/// Where Redis is: `redis://[:PASSWORD@]HOST:PORT[/DB]`.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    pub addr: SocketAddr,
    pub password: Option<String>,
    pub db: u32,
}

impl std::fmt::Debug for RedisUrl {
    // Never the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let auth = if self.password.is_some() { ":***@" } else { "" };
        write!(f, "redis://{auth}{}/{}", self.addr, self.db)
    }
}

impl RedisUrl {
    /// Parses the URL and resolves its host (which may block on DNS: call
    /// it at start, never from the event loop).
    pub fn parse(url: &str) -> Result<RedisUrl, String> {
        let bad = |why: &str| {
            format!("--redis {url:?}: {why} (expected redis://[:PASSWORD@]HOST:PORT[/DB])")
        };
        let rest = url
            .strip_prefix("redis://")
            .ok_or_else(|| bad("not a redis:// URL"))?;
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((a, r)) => (Some(a), r),
            None => (None, rest),
        };
        let password = match auth {
            // `:PASSWORD` (no user) or `USER:PASSWORD`; herald sends AUTH
            // PASSWORD, so a user name other than `default` is refused.
            Some(a) => match a.split_once(':') {
                // Percent-encoded, as URLs need for `@`, `:`, `/` or spaces.
                Some(("" | "default", p)) if !p.is_empty() => Some(crate::http::percent_decode(p)),
                Some((_, _)) => return Err(bad("only the default user is supported")),
                None => return Err(bad("the password goes after a colon")),
            },
            None => None,
        };
        let (host, db) = match rest.split_once('/') {
            Some((h, "")) => (h, 0),
            Some((h, d)) => (h, d.parse().map_err(|_| bad("DB must be a number"))?),
            None => (rest, 0),
        };
        let host = if host.contains(':') {
            host.to_string()
        } else {
            format!("{host}:6379")
        };
        let addr = host
            .to_socket_addrs()
            .map_err(|e| bad(&format!("cannot resolve {host}: {e}")))?
            .next()
            .ok_or_else(|| bad("no address"))?;
        Ok(RedisUrl { addr, password, db })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = RedisUrl::parse("redis://127.0.0.1:6380/2").unwrap();
        assert_eq!((u.addr.port(), u.db, u.password), (6380, 2, None));
        let u = RedisUrl::parse("redis://:s3cret@127.0.0.1").unwrap();
        assert_eq!(
            (u.addr.port(), u.password.as_deref()),
            (6379, Some("s3cret"))
        );
        assert_eq!(format!("{u:?}"), "redis://:***@127.0.0.1:6379/0");
        assert!(RedisUrl::parse("http://x").is_err());
        assert!(RedisUrl::parse("redis://127.0.0.1:1/x").is_err());
        assert!(RedisUrl::parse("redis://bob:pw@127.0.0.1").is_err());
        let u = RedisUrl::parse("redis://:s3cret%20pass%40x@127.0.0.1").unwrap();
        assert_eq!(u.password.as_deref(), Some("s3cret pass@x"));
    }
}
