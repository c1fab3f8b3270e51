//! The figures /stats and /metrics report, from one table: a counter added
//! here appears in both documents.

use super::cluster::{Cluster, ClusterStats};
use super::history::HistoryStats;
use super::replay::ResumeStats;
use crate::reactor::Context;
use std::fmt::Write as _;

/// Push outcomes and refusals, for /stats and /metrics.
#[derive(Clone, Debug, Default)]
pub struct PushStats {
    pub pushes_ok: u64,
    pub pushes_fail: u64,
    pub bad_requests: u64,
    pub auth_refused: u64,
    pub origin_refused: u64,
    pub unauthorized: u64,
    /// herald.v1 connections open now.
    pub v1_connections: u64,
    /// Resumes answered from this node's memory.
    pub resume: ResumeStats,
}

impl PushStats {
    /// A push answered here that reached `delivered` connections.
    pub(super) fn count(&mut self, delivered: usize) {
        if delivered > 0 {
            self.pushes_ok += 1;
        } else {
            self.pushes_fail += 1;
        }
    }
}

/// Everything the figures are computed from, read once per request.
pub(super) struct Figures<'a> {
    pub cx: &'a Context,
    pub push: &'a PushStats,
    pub cluster: Option<&'a Cluster>,
    /// The in-memory history's figures (none with Redis or without history).
    pub history: HistoryStats,
    pub rss: u64,
    pub rss_per_connection: u64,
    /// Topics here: (topics, connection memberships, heap bytes).
    pub topics: (u64, u64, u64),
}

struct Figure {
    /// Key in /stats.
    key: &'static str,
    /// Prometheus name (after `herald_`), type and help; `None`: /stats only.
    metric: Option<(&'static str, &'static str, &'static str)>,
    value: fn(&Figures<'_>) -> u64,
}

impl Figures<'_> {
    fn redis(&self) -> Option<&ClusterStats> {
        self.cluster.map(|c| &c.stats)
    }

    /// Resumes answered from memory and from Redis.
    fn resume(&self) -> ResumeStats {
        let (a, b) = (
            self.push.resume,
            self.cluster.map(|c| c.resume_stats()).unwrap_or_default(),
        );
        ResumeStats {
            ok: a.ok + b.ok,
            lost: a.lost + b.lost,
            replayed: a.replayed + b.replayed,
        }
    }
}

const fn figure(
    key: &'static str,
    metric: Option<(&'static str, &'static str, &'static str)>,
    value: fn(&Figures<'_>) -> u64,
) -> Figure {
    Figure { key, metric, value }
}

const GAUGE: &str = "gauge";
const COUNTER: &str = "counter";

const FIGURES: &[Figure] = &[
    figure(
        "connections",
        Some(("connections", GAUGE, "Open connections, all listeners.")),
        |f| f.cx.open_connections() as u64,
    ),
    figure(
        "bound_connections",
        Some((
            "bound_connections",
            GAUGE,
            "WebSocket connections bound to a uid.",
        )),
        |f| f.cx.bound_connections() as u64,
    ),
    figure(
        "uids",
        Some(("bound_uids", GAUGE, "Distinct uids online.")),
        |f| f.cx.online_uids() as u64,
    ),
    figure(
        "accepted",
        Some(("accepted_total", COUNTER, "Connections accepted.")),
        |f| f.cx.stats().accepted,
    ),
    figure(
        "refused",
        Some(("refused_total", COUNTER, "Connections refused by a limit.")),
        |f| f.cx.stats().refused,
    ),
    figure(
        "handshake_failures",
        Some((
            "handshake_failures_total",
            COUNTER,
            "Failed WebSocket handshakes.",
        )),
        |f| f.cx.stats().handshake_failures,
    ),
    figure(
        "protocol_errors",
        Some((
            "protocol_errors_total",
            COUNTER,
            "Connections closed for protocol errors.",
        )),
        |f| f.cx.stats().protocol_errors,
    ),
    figure(
        "deflate_connections",
        Some((
            "deflate_connections",
            GAUGE,
            "WebSockets open with permessage-deflate.",
        )),
        |f| f.cx.deflate_connections() as u64,
    ),
    figure(
        "compressed_messages",
        Some((
            "compressed_messages_total",
            COUNTER,
            "Messages compressed: once per message, whatever the number of recipients.",
        )),
        |f| f.cx.stats().compressed_out,
    ),
    figure(
        "inflated_messages",
        Some((
            "inflated_messages_total",
            COUNTER,
            "Compressed client messages inflated (refused ones included).",
        )),
        |f| f.cx.inflated_messages(),
    ),
    figure(
        "messages_in",
        Some((
            "messages_in_total",
            COUNTER,
            "Messages, lines and requests received.",
        )),
        |f| f.cx.stats().messages_in,
    ),
    figure(
        "messages_out",
        Some((
            "messages_out_total",
            COUNTER,
            "Messages and lines queued for sending.",
        )),
        |f| f.cx.stats().messages_out,
    ),
    figure(
        "bytes_in",
        Some(("bytes_in_total", COUNTER, "Bytes read from sockets.")),
        |f| f.cx.stats().bytes_in,
    ),
    figure(
        "bytes_out",
        Some(("bytes_out_total", COUNTER, "Bytes written to sockets.")),
        |f| f.cx.stats().bytes_out,
    ),
    figure(
        "writes",
        Some((
            "writes_total",
            COUNTER,
            "Socket writes that sent bytes (messages_out / writes = messages per write).",
        )),
        |f| f.cx.stats().writes,
    ),
    figure("messages_per_write_x100", None, |f| {
        let s = f.cx.stats();
        (s.messages_out * 100).checked_div(s.writes).unwrap_or(0)
    }),
    figure(
        "pushes_ok",
        Some((
            "pushes_ok_total",
            COUNTER,
            "Pushes that reached at least one connection.",
        )),
        |f| f.push.pushes_ok + f.redis().map_or(0, |r| r.pushes_ok),
    ),
    figure(
        "pushes_fail",
        Some((
            "pushes_fail_total",
            COUNTER,
            "Pushes that reached no connection.",
        )),
        |f| f.push.pushes_fail + f.redis().map_or(0, |r| r.pushes_fail),
    ),
    figure(
        "bad_requests",
        Some((
            "bad_requests_total",
            COUNTER,
            "Refused text-port lines and API requests.",
        )),
        |f| f.push.bad_requests,
    ),
    figure(
        "redis_up",
        Some((
            "redis_up",
            GAUGE,
            "1 while both Redis connections are up (--redis).",
        )),
        |f| f.cluster.is_some_and(|c| c.up()) as u64,
    ),
    figure(
        "redis_reconnects",
        Some((
            "redis_reconnects_total",
            COUNTER,
            "Redis connections lost and retried.",
        )),
        |f| f.cluster.map_or(0, |c| c.reconnects()),
    ),
    figure(
        "redis_published",
        Some((
            "redis_published_total",
            COUNTER,
            "Messages published to other nodes.",
        )),
        |f| f.redis().map_or(0, |r| r.published),
    ),
    figure(
        "redis_received",
        Some((
            "redis_received_total",
            COUNTER,
            "Messages received from other nodes.",
        )),
        |f| f.redis().map_or(0, |r| r.received),
    ),
    figure(
        "redis_pending_bytes",
        Some((
            "redis_pending_bytes",
            GAUGE,
            "Bytes sent to Redis and not yet answered.",
        )),
        |f| f.cluster.map_or(0, |c| c.pending_bytes()),
    ),
    figure(
        "redis_backlog_refused",
        Some((
            "redis_backlog_refused_total",
            COUNTER,
            "Pushes refused because one alone is larger than --redis-max-pending (others wait for room).",
        )),
        |f| f.redis().map_or(0, |r| r.backlog_refused),
    ),
    figure(
        "auth_refused",
        Some((
            "auth_refused_total",
            COUNTER,
            "Uid tokens refused (HTTP 401 or close 1008).",
        )),
        |f| f.push.auth_refused,
    ),
    figure(
        "origin_refused",
        Some((
            "origin_refused_total",
            COUNTER,
            "WebSocket handshakes refused for their Origin (HTTP 403).",
        )),
        |f| f.push.origin_refused,
    ),
    figure(
        "unauthorized",
        Some((
            "unauthorized_total",
            COUNTER,
            "Text-port connections and API requests without the API token.",
        )),
        |f| f.push.unauthorized,
    ),
    figure(
        "dropped",
        Some((
            "dropped_total",
            COUNTER,
            "Sends refused (closing or slow connection).",
        )),
        |f| f.cx.stats().dropped,
    ),
    figure(
        "slow_consumers_closed",
        Some((
            "slow_consumers_closed_total",
            COUNTER,
            "Connections closed for a full send queue.",
        )),
        |f| f.cx.stats().slow_consumers_closed,
    ),
    figure(
        "paused_connections",
        Some((
            "paused_connections",
            GAUGE,
            "Text-port and HTTP connections not read now (backpressure).",
        )),
        |f| f.cx.paused_connections() as u64,
    ),
    figure(
        "pauses",
        Some((
            "pauses_total",
            COUNTER,
            "Times a text-port or HTTP connection stopped being read until Redis or its own replies drained.",
        )),
        |f| f.cx.stats().pauses,
    ),
    figure(
        "timeouts",
        Some((
            "timeouts_total",
            COUNTER,
            "Connections closed by a timeout.",
        )),
        |f| f.cx.stats().timeouts,
    ),
    figure(
        "rss_bytes",
        Some((
            "resident_memory_bytes",
            GAUGE,
            "Resident set size of the process.",
        )),
        |f| f.rss,
    ),
    figure(
        "rss_per_connection",
        Some((
            "rss_per_connection_bytes",
            GAUGE,
            "RSS growth since start divided by open connections.",
        )),
        |f| f.rss_per_connection,
    ),
    figure(
        "footprint_bytes",
        Some((
            "footprint_bytes",
            GAUGE,
            "Memory herald holds for connections (computed).",
        )),
        |f| f.cx.footprint_bytes() as u64,
    ),
    figure(
        "v1_connections",
        Some((
            "v1_connections",
            GAUGE,
            "Connections reading herald.v1 (offsets and resume).",
        )),
        |f| f.push.v1_connections,
    ),
    figure(
        "topics",
        Some(("topics", GAUGE, "Topics with a member or a joined uid here.")),
        |f| f.topics.0,
    ),
    figure(
        "topic_memberships",
        Some((
            "topic_memberships",
            GAUGE,
            "Connections in topics here, counted once per topic.",
        )),
        |f| f.topics.1,
    ),
    figure(
        "topic_bytes",
        Some((
            "topic_bytes",
            GAUGE,
            "Heap bytes of the topic tables (computed).",
        )),
        |f| f.topics.2,
    ),
    figure(
        "resumes_ok",
        Some((
            "resumes_ok_total",
            COUNTER,
            "Stream positions recovered on a resume.",
        )),
        |f| f.resume().ok,
    ),
    figure(
        "resumes_lost",
        Some((
            "resumes_lost_total",
            COUNTER,
            "Stream positions that could not be recovered (client told to reload).",
        )),
        |f| f.resume().lost,
    ),
    figure(
        "replayed",
        Some((
            "replayed_total",
            COUNTER,
            "Messages replayed to resuming clients.",
        )),
        |f| f.resume().replayed,
    ),
    figure(
        "history_streams",
        Some((
            "history_streams",
            GAUGE,
            "Streams with a record in this node's memory.",
        )),
        |f| f.history.streams,
    ),
    figure(
        "history_messages",
        Some((
            "history_messages",
            GAUGE,
            "Messages kept in this node's memory.",
        )),
        |f| f.history.messages,
    ),
    figure(
        "history_bytes",
        Some((
            "history_bytes",
            GAUGE,
            "Bytes the in-memory history holds (texts and bookkeeping).",
        )),
        |f| f.history.bytes,
    ),
    figure(
        "history_evicted",
        Some((
            "history_evicted_total",
            COUNTER,
            "Messages evicted from the in-memory history (size, age or memory bound).",
        )),
        |f| f.history.evicted,
    ),
    figure("slot_bytes", None, |f| f.cx.slot_bytes() as u64),
    figure("nofile_soft", None, |f| f.cx.nofile_limit().0),
    figure("nofile_hard", None, |f| f.cx.nofile_limit().1),
    figure(
        "uptime_seconds",
        Some(("uptime_seconds", COUNTER, "Seconds since start.")),
        |f| f.cx.uptime_s(),
    ),
];

/// The /stats document: one JSON object of every figure.
pub(super) fn stats_json(f: &Figures<'_>) -> String {
    let mut out = String::with_capacity(640);
    for (i, fig) in FIGURES.iter().enumerate() {
        let sep = if i == 0 { '{' } else { ',' };
        let _ = write!(out, "{sep}\"{}\":{}", fig.key, (fig.value)(f));
    }
    if let Some(c) = f.cluster {
        // Which node and worker these figures are, when several serve.
        let _ = write!(
            out,
            ",\"node\":{},\"worker\":{}",
            serde_json::Value::from(c.node()),
            serde_json::Value::from(c.worker())
        );
    }
    out.push('}');
    out
}

/// The /metrics document (Prometheus text format 0.0.4).
pub(super) fn prometheus(f: &Figures<'_>) -> String {
    let mut out = String::with_capacity(2048);
    for fig in FIGURES {
        if let Some((name, kind, help)) = fig.metric {
            let value = (fig.value)(f);
            let _ = write!(
                out,
                "# HELP herald_{name} {help}\n# TYPE herald_{name} {kind}\nherald_{name} {value}\n"
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_figure_has_a_unique_key_and_metric_name() {
        let mut keys: Vec<_> = FIGURES.iter().map(|f| f.key).collect();
        let mut names: Vec<_> = FIGURES
            .iter()
            .filter_map(|f| f.metric)
            .map(|m| m.0)
            .collect();
        let (k, n) = (keys.len(), names.len());
        keys.sort();
        keys.dedup();
        names.sort();
        names.dedup();
        assert_eq!((keys.len(), names.len()), (k, n));
    }
}
