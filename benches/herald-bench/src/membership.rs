//! `membership`: what a topic membership costs herald. N bound clients,
//! the server's VmRSS and /stats, then every uid joined to K topics
//! through the text port, and VmRSS and /stats again: RSS bytes per
//! membership, herald's own count (`topic_bytes / topic_memberships`), and
//! what each connection cost before it was in any topic. herald only.

use crate::cli::{self, flag, Args, Common, Mode};
use crate::fleet::Fleet;
use crate::host::{self, check_fd_budget};
use crate::open::{open_bound, uid};
use crate::report::{fmt_num, mib, Reporter};
use crate::series::stats_json;
use crate::textport::{join, presence};
use crate::wait::{Phase, Waited};
use serde_json::{json, Map, Value};
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

pub const MODE: Mode = Mode {
    name: "membership",
    about: "server memory per topic membership: N clients joined to K topics (herald)",
    flags: &[
        cli::WS,
        cli::TEXT,
        flag("--pid", None, "server pid, for its VmRSS (required)"),
        flag(
            "--stats",
            None,
            "herald's HTTP API (IP:PORT), for /stats (required)",
        ),
        flag("--conns", Some("10000"), "bound clients u0..u(N-1)"),
        flag(
            "--topics",
            Some("5"),
            "topics t1..tK, every uid joined to each",
        ),
        flag(
            "--per-line",
            Some("1"),
            "uids per join line: 1 is {\"join\":T,\"uid\":U}, more a \"uids\" list",
        ),
        flag(
            "--settle-ms",
            Some("500"),
            "quiet time before each VmRSS reading",
        ),
        cli::LABEL,
        cli::TIMEOUT,
        cli::WINDOW,
        cli::SOURCES,
    ],
    run,
};

/// Join lines written at once, answered before the next.
const CHUNK: usize = 1000;

/// The server as one reading saw it.
struct Reading {
    rss: u64,
    stats: Value,
}

impl Reading {
    fn take(
        fleet: &mut Fleet,
        pid: u32,
        api: SocketAddrV4,
        settle: Duration,
    ) -> Result<Self, String> {
        let rss = fleet.settled_rss(pid, settle)?;
        let stats = stats_json(api).ok_or_else(|| format!("no /stats from {api}"))?;
        Ok(Reading { rss, stats })
    }

    fn stat(&self, key: &str) -> u64 {
        self.stats[key].as_u64().unwrap_or(0)
    }
}

fn run(a: &mut Args) -> Result<(), String> {
    let ws = a.addr("--ws")?;
    let text = a.addr("--text")?;
    let pid: u32 = a.num("--pid")?;
    let api = a.addr("--stats")?;
    let [n, k, per_line] = a.positive(["--conns", "--topics", "--per-line"])?;
    let settle = Duration::from_millis(a.num("--settle-ms")?);
    host::vm_rss_bytes(pid)?;
    check_fd_budget(n + 1)?;
    let common = Common::from_args(a, n, ws)?;
    let rep = Reporter::start(a, &["--conns", "--topics", "--per-line"]);

    let mut fleet = Fleet::new(ws, &common.sources)?;
    fleet.connect_text(text)?;
    let base = Reading::take(&mut fleet, pid, api, settle)?;
    if base.stat("topic_memberships") > 0 || base.stat("bound_connections") > 0 {
        return Err("start herald fresh: it has bound connections or topics already".into());
    }
    let t0 = Instant::now();
    open_bound(&mut fleet, 0, n, &uid, &common)?;
    wait_bound(&mut fleet, api, n, common.deadline())?;
    println!(
        "{n} clients open and bound in {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    let bound = Reading::take(&mut fleet, pid, api, settle)?;

    join_all(&mut fleet, n, k, per_line, &common)?;
    let after = Reading::take(&mut fleet, pid, api, settle)?;
    if fleet.open_count() != n {
        return Err(format!("{} of {n} clients still open", fleet.open_count()));
    }

    let (per_membership, extra) = figures(&base, &bound, &after, n, k)?;
    rep.result("1 run", per_membership, "RSS bytes per membership", extra);
    Ok(())
}

/// Joins every uid to `t1`..`tK`, then checks each topic's presence.
fn join_all(
    fleet: &mut Fleet,
    n: usize,
    k: usize,
    per_line: usize,
    common: &Common,
) -> Result<(), String> {
    let t1 = Instant::now();
    let mut joined = 0;
    for t in 1..=k {
        joined += join(
            fleet,
            &format!("t{t}"),
            0..n,
            per_line,
            CHUNK,
            common.deadline(),
        )?;
    }
    let lines = k * n.div_ceil(per_line);
    println!(
        "{k} topics x {n} uids joined in {:.2} s ({lines} join lines, answered ok {joined})",
        t1.elapsed().as_secs_f64()
    );
    for t in 1..=k {
        let (conns, uids) = presence(fleet, &format!("t{t}"), common.deadline())?;
        if conns != n as u64 || uids != n as u64 {
            return Err(format!(
                "topic t{t}: {conns} connections and {uids} uids, {n} expected"
            ));
        }
    }
    Ok(())
}

/// The figures of a run, printed, and the JSON fields beside its result.
fn figures(
    base: &Reading,
    bound: &Reading,
    after: &Reading,
    n: usize,
    k: usize,
) -> Result<(f64, Map<String, serde_json::Value>), String> {
    let memberships = after.stat("topic_memberships");
    if memberships != (k * n) as u64 {
        return Err(format!(
            "/stats topic_memberships is {memberships}, {} expected",
            k * n
        ));
    }
    let per_conn = bound.rss.saturating_sub(base.rss) as f64 / n as f64;
    let grown = after.rss.saturating_sub(bound.rss);
    let per_membership = grown as f64 / memberships as f64;
    let topic_bytes = after.stat("topic_bytes");
    let counted = topic_bytes as f64 / memberships as f64;
    let per_conn_in_topics = after.rss.saturating_sub(base.rss) as f64 / n as f64;
    println!(
        "VmRSS {} before any client, {} with {n} bound clients in no topic \
         = {:.0} B per connection (herald's /stats: {} B per connection, slot {} B)",
        mib(base.rss),
        mib(bound.rss),
        per_conn,
        bound.stat("rss_per_connection"),
        bound.stat("slot_bytes"),
    );
    println!(
        "VmRSS {} after {memberships} memberships (+{grown} B) = {} B per membership; \
         herald counts topic_bytes {topic_bytes} = {} B per membership; \
         {:.0} B per connection in {k} topics, all told",
        mib(after.rss),
        fmt_num(per_membership),
        fmt_num(counted),
        per_conn_in_topics,
    );
    let mut extra = Map::new();
    extra.insert("conns".into(), json!(n));
    extra.insert("memberships".into(), json!(memberships));
    extra.insert("rss_before_bytes".into(), json!(base.rss));
    extra.insert("rss_bound_bytes".into(), json!(bound.rss));
    extra.insert("rss_joined_bytes".into(), json!(after.rss));
    extra.insert("per_connection_no_topics".into(), json!(per_conn.round()));
    extra.insert(
        "stats_rss_per_connection".into(),
        json!(bound.stat("rss_per_connection")),
    );
    extra.insert("slot_bytes".into(), json!(bound.stat("slot_bytes")));
    extra.insert("topic_bytes".into(), json!(topic_bytes));
    extra.insert("topic_bytes_per_membership".into(), json!(round1(counted)));
    extra.insert(
        "per_connection_in_topics".into(),
        json!(per_conn_in_topics.round()),
    );
    Ok((per_membership, extra))
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Waits until herald's /stats says `n` connections are bound (it binds on
/// the uid message, which it may read after the handshake), serving the
/// clients meanwhile.
fn wait_bound(
    fleet: &mut Fleet,
    api: SocketAddrV4,
    n: usize,
    deadline: Instant,
) -> Result<(), String> {
    let mut b = Bound {
        api,
        n: n as u64,
        seen: 0,
        asked: Instant::now(),
        stop: None,
    };
    let waited = fleet.wait(deadline, &mut b)?;
    if let Some(why) = b.stop {
        return Err(why);
    }
    if waited == Waited::Deadline {
        return Err(format!("timed out: /stats says {} of {n} bound", b.seen));
    }
    Ok(())
}

/// [`wait_bound`]: /stats asked every 50 ms.
struct Bound {
    api: SocketAddrV4,
    n: u64,
    seen: u64,
    asked: Instant,
    stop: Option<String>,
}

impl Phase for Bound {
    fn on(&mut self, ev: crate::event::Event<'_>) {
        ev.note_end(&mut self.stop);
    }

    fn done(&self) -> bool {
        self.seen >= self.n || self.stop.is_some()
    }

    fn after_poll(&mut self, _fleet: &mut Fleet) -> Result<(), String> {
        if self.asked.elapsed() >= Duration::from_millis(50) {
            self.asked = Instant::now();
            let v = stats_json(self.api).ok_or_else(|| format!("no /stats from {}", self.api))?;
            self.seen = v["bound_connections"].as_u64().unwrap_or(0);
        }
        Ok(())
    }
}
