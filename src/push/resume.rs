//! herald.v1 clients (docs/resume.md): the hello, and the replay of what a
//! client missed, from this node's memory (the Redis history's is in
//! `cluster/history`).

use super::metrics::PushStats;
use super::replay::replay;
use super::router::Router;
use super::stream::{Hello, Position, Status, Stream};
use super::PushApp;
use crate::app::ConnId;
use crate::reactor::{Context, Refusal};
use crate::ws::CloseCode;

/// The close code for a token that expired (in the hello or the URL):
/// "fetch a fresh token and reconnect".
pub const TOKEN_EXPIRED: CloseCode = CloseCode(4401);

/// The reason `prove` gives for an expired token, as the hello says it.
const EXPIRED: &str = "token: token expired";

impl PushApp {
    /// A herald.v1 client's first message: who it is and where it was. It
    /// is told where it is in each of its streams, gets what it missed,
    /// then its live messages.
    pub(super) fn hello(&mut self, cx: &mut Context, conn: ConnId, text: &str) {
        let hello = Hello::parse(text).map_err(String::from).and_then(|h| {
            let uid = self.hello_uid(cx, conn, &h)?;
            Ok((h, uid))
        });
        match hello {
            Ok((hello, uid)) => {
                self.router.resume(cx, &mut self.stats, conn, &uid, &hello);
                self.after_hello(cx, conn, &hello);
            }
            Err(reason) => {
                if reason.starts_with("token") {
                    self.stats.auth_refused += 1;
                }
                // An expired token is the one a client can mend by itself:
                // it fetches a fresh one and comes back (docs/topics.md).
                let code = if reason == EXPIRED {
                    TOKEN_EXPIRED
                } else {
                    CloseCode::POLICY
                };
                cx.note_refusal(conn, Refusal::Close(code.0), &reason);
                cx.close(conn, code, &reason);
            }
        }
    }

    /// The uid a hello proves: its token's (or the URL's), else its uid.
    fn hello_uid(&mut self, cx: &Context, conn: ConnId, h: &Hello) -> Result<String, String> {
        let max = cx.limits().max_uid;
        if let Some(v) = &self.config.tokens {
            let claims = match self.url_uids.remove(&conn) {
                Some(claims) => claims,
                None => {
                    let token = h.token.as_deref().ok_or("hello: \"token\" is missing")?;
                    super::prove(v, token, max).map_err(|e| format!("token: {e}"))?
                }
            };
            if !claims.topics.is_empty() {
                let patterns = claims.topics.into_iter().map(Into::into).collect();
                self.allowed.insert(conn, patterns);
            }
            return Ok(claims.sub);
        }
        match h.uid.as_deref() {
            None | Some("") => Err("hello: \"uid\" is missing".into()),
            Some(uid) if uid.len() > max => Err(format!("uid too long (max {max} bytes)")),
            Some(uid) => Ok(uid.to_string()),
        }
    }
}

impl Router {
    /// Binds `conn` to `uid` after telling it where it is in its streams
    /// and replaying what it missed: at once from memory, or once Redis
    /// has answered (the connection is held out of live sends meanwhile).
    pub(super) fn resume(
        &mut self,
        cx: &mut Context,
        stats: &mut PushStats,
        conn: ConnId,
        uid: &str,
        hello: &Hello,
    ) {
        let streams = [Stream::Uid(uid), Stream::All];
        match self {
            Router::Cluster(cl) if cl.keeps_history() => {
                cx.bind_uid(conn, uid);
                cx.hold(conn, true);
                cl.resume(conn, uid, hello);
            }
            Router::Local(Some(h)) => {
                let now = cx.now_ms();
                for s in streams {
                    let r = h.resume(s, hello.position(s), now);
                    let missed = r.missed.iter().copied();
                    replay(
                        cx,
                        &mut stats.resume,
                        conn,
                        s,
                        &r.position,
                        r.status,
                        missed,
                    );
                }
                cx.bind_uid(conn, uid);
            }
            Router::Local(None) | Router::Cluster(_) => {
                for s in streams {
                    let here = Position {
                        epoch: "-".into(),
                        offset: 0,
                    };
                    replay(
                        cx,
                        &mut stats.resume,
                        conn,
                        s,
                        &here,
                        Status::Off,
                        std::iter::empty(),
                    );
                }
                cx.bind_uid(conn, uid);
            }
        }
    }
}
