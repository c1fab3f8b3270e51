//! What `push` and `latency` share: N clients u0..u(N-1) opened and checked
//! through the text port, and the tally of a run of pushes (replies,
//! deliveries, the first reason to stop).

use crate::cli::Common;
use crate::event::Event;
use crate::fleet::Fleet;
use crate::open::{check_deflate, open_bound, uid};
use crate::wait::{Phase, Waited};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

/// Opens N clients u0..u(N-1) (offering permessage-deflate with
/// `--deflate`) and the text port, then makes sure each uid is bound (see
/// [`check_bound`]).
pub fn open_clients(
    ws: SocketAddrV4,
    text: SocketAddrV4,
    n: usize,
    common: &Common,
) -> Result<Fleet, String> {
    let mut fleet = Fleet::new(ws, &common.sources)?;
    if common.deflate {
        fleet.offer_deflate();
    }
    fleet.connect_text(text)?;
    let t0 = Instant::now();
    open_bound(&mut fleet, 0, n, &uid, common)?;
    check_deflate(&fleet, n, common)?;
    check_bound(&mut fleet, n, common)?;
    println!(
        "{n} clients open and bound in {:.2} s (one push each checked)",
        t0.elapsed().as_secs_f64()
    );
    Ok(fleet)
}

/// Pushes through the text port as a run sees them: what was sent, what the
/// server answered, what the clients received.
pub struct PushTally {
    /// Lines sent so far.
    pub sent: usize,
    pub replies: usize,
    /// Replies that are `ok`: pushes the server delivered.
    pub ok: usize,
    /// Replies that are `fail`: pushes that reached nobody. Replies that
    /// are neither (`error ...`) are `replies - ok - fail`.
    pub fail: usize,
    pub delivered: usize,
    /// When the latest reply arrived.
    pub last_reply: Instant,
    /// When the latest delivery arrived.
    pub last_delivery: Instant,
    /// Why the run cannot go on: a client or the text port ended.
    pub stop: Option<String>,
}

impl PushTally {
    pub fn new(sent: usize) -> PushTally {
        PushTally {
            sent,
            replies: 0,
            ok: 0,
            fail: 0,
            delivered: 0,
            last_reply: Instant::now(),
            last_delivery: Instant::now(),
            stop: None,
        }
    }

    /// Counts what `ev` says; a delivery is handed back for the caller to
    /// read (it arrived at `last_delivery`).
    pub fn count<'a>(&mut self, ev: Event<'a>) -> Option<&'a [u8]> {
        self.count_to(ev).map(|(_, m)| m)
    }

    /// [`count`](Self::count), with the client a delivery is for.
    pub fn count_to<'a>(&mut self, ev: Event<'a>) -> Option<(usize, &'a [u8])> {
        match ev {
            Event::Line(l) => {
                self.replies += 1;
                if l.starts_with(b"ok") {
                    self.ok += 1;
                } else if l.starts_with(b"fail") {
                    self.fail += 1;
                }
                self.last_reply = Instant::now();
            }
            Event::Message(i, m) => {
                self.delivered += 1;
                self.last_delivery = Instant::now();
                return Some((i, m));
            }
            ev => ev.note_end(&mut self.stop),
        }
        None
    }
}

impl Phase for PushTally {
    fn on(&mut self, ev: Event<'_>) {
        self.count(ev);
    }

    /// Every line sent is answered and every `ok` delivered, or the run
    /// cannot go on.
    fn done(&self) -> bool {
        (self.replies >= self.sent && self.delivered >= self.ok) || self.stop.is_some()
    }
}

/// Pushes one line to each uid u0..u(N-1) and waits for each to arrive;
/// uids answered `fail` (not bound yet) are pushed again. Doubles as warm-up.
fn check_bound(fleet: &mut Fleet, n: usize, common: &Common) -> Result<(), String> {
    let deadline = common.deadline();
    let mut c = Check {
        order: VecDeque::new(),
        pending: (0..n).collect(),
        arrivals: Arrivals {
            arrived: vec![false; n],
            count: 0,
        },
        stop: None,
    };
    while !c.pending.is_empty() {
        let mut lines = String::new();
        for i in &c.pending {
            let _ = writeln!(lines, "{{\"uid\":\"u{i}\",\"check\":1}}");
        }
        c.order = c.pending.drain(..).collect();
        fleet.text_send(lines.as_bytes());
        if fleet.wait(deadline, &mut c)? == Waited::Deadline {
            return Err(format!(
                "timed out checking that the uids are bound: {} replies missing",
                c.order.len()
            ));
        }
        if let Some(why) = c.stop {
            return Err(format!("while checking that the uids are bound: {why}"));
        }
        if !c.pending.is_empty() {
            // Check pushes answered `ok` may still arrive meanwhile (through
            // another node, after the reply): they count.
            let arrivals = &mut c.arrivals;
            fleet.pump(Duration::from_millis(100), &mut |ev| arrivals.on(ev))?;
        }
    }
    let mut a = c.arrivals;
    if fleet.wait(deadline, &mut a)? == Waited::Deadline {
        return Err(format!(
            "every push was answered ok, but only {} of {n} clients received theirs",
            a.count
        ));
    }
    Ok(())
}

/// [`check_bound`]: one batch of check pushes, answered in order.
struct Check {
    /// Uids whose reply is still due, in the order they were pushed.
    order: VecDeque<usize>,
    /// Uids answered `fail`, to push again.
    pending: Vec<usize>,
    arrivals: Arrivals,
    stop: Option<String>,
}

impl Phase for Check {
    fn on(&mut self, ev: Event<'_>) {
        match ev {
            Event::Line(l) => {
                if let Some(i) = self.order.pop_front() {
                    if !l.starts_with(b"ok") {
                        self.pending.push(i);
                    }
                }
            }
            Event::Message(..) => self.arrivals.on(ev),
            ev => ev.note_end(&mut self.stop),
        }
    }

    fn done(&self) -> bool {
        self.order.is_empty() || self.stop.is_some()
    }
}

/// Which of the clients received their check push.
struct Arrivals {
    arrived: Vec<bool>,
    count: usize,
}

impl Phase for Arrivals {
    fn on(&mut self, ev: Event<'_>) {
        if let Event::Message(i, _) = ev {
            if i < self.arrived.len() && !self.arrived[i] {
                self.arrived[i] = true;
                self.count += 1;
            }
        }
    }

    fn done(&self) -> bool {
        self.count >= self.arrived.len()
    }
}

/// Writes `lines` (whole lines) on the text port and waits for one reply
/// per line; the replies, in order. Messages the clients receive meanwhile
/// go to `on`.
pub fn exchange(
    fleet: &mut Fleet,
    lines: &str,
    deadline: Instant,
    on: &mut dyn FnMut(Event<'_>),
) -> Result<Vec<String>, String> {
    let mut r = Replies {
        want: lines.lines().count(),
        got: Vec::new(),
        stop: None,
        on,
    };
    fleet.text_send(lines.as_bytes());
    let waited = fleet.wait(deadline, &mut r)?;
    if let Some(why) = r.stop {
        return Err(why);
    }
    if waited == Waited::Deadline {
        return Err(format!(
            "timed out: {} of {} replies from the text port",
            r.got.len(),
            r.want
        ));
    }
    Ok(r.got)
}

/// [`exchange`]: the replies so far.
struct Replies<'a> {
    want: usize,
    got: Vec<String>,
    stop: Option<String>,
    on: &'a mut dyn FnMut(Event<'_>),
}

impl Phase for Replies<'_> {
    fn on(&mut self, ev: Event<'_>) {
        match ev {
            Event::Line(l) => self.got.push(String::from_utf8_lossy(l).into_owned()),
            Event::TextClosed(_) => ev.note_end(&mut self.stop),
            ev => (self.on)(ev),
        }
    }

    fn done(&self) -> bool {
        self.got.len() >= self.want || self.stop.is_some()
    }
}

/// The N of an `ok N` reply.
pub fn ok_count(reply: &str) -> Option<u64> {
    reply.strip_prefix("ok ")?.trim().parse().ok()
}

/// Joins uids `u<i>` for `i` in `uids` to `topic` through the text port
/// (`{"join":T,"uid":U}` when `per_line` is 1, else `{"join":T,"uids":[..]}`
/// with `per_line` uids a line), `chunk` lines at a time, each chunk
/// answered before the next; returns the connections the server says
/// joined (the sum of its `ok N`). An error on any other reply.
pub fn join(
    fleet: &mut Fleet,
    topic: &str,
    uids: std::ops::Range<usize>,
    per_line: usize,
    chunk: usize,
    deadline: Instant,
) -> Result<u64, String> {
    let per_line = per_line.max(1);
    let all: Vec<usize> = uids.collect();
    let mut joined = 0;
    for lines_of in all.chunks(per_line * chunk.max(1)) {
        let mut lines = String::new();
        for group in lines_of.chunks(per_line) {
            join_line(&mut lines, topic, group);
        }
        for reply in exchange(fleet, &lines, deadline, &mut |_| {})? {
            match ok_count(&reply) {
                Some(n) => joined += n,
                None => return Err(format!("a join to {topic} was answered {reply:?}")),
            }
        }
    }
    Ok(joined)
}

/// Appends the line joining uids `u<i>` for `i` in `group` to `topic`:
/// `{"join":T,"uid":U}` for one, a `"uids"` list for more.
fn join_line(lines: &mut String, topic: &str, group: &[usize]) {
    if let [i] = group {
        let _ = writeln!(lines, "{{\"join\":\"{topic}\",\"uid\":\"u{i}\"}}");
    } else {
        let list: Vec<String> = group.iter().map(|i| format!("\"u{i}\"")).collect();
        let _ = writeln!(
            lines,
            "{{\"join\":\"{topic}\",\"uids\":[{}]}}",
            list.join(",")
        );
    }
}

/// `{"presence":T}`: the (connections, uids) the server counts in `topic`.
pub fn presence(fleet: &mut Fleet, topic: &str, deadline: Instant) -> Result<(u64, u64), String> {
    let line = format!("{{\"presence\":\"{topic}\"}}\n");
    let reply = exchange(fleet, &line, deadline, &mut |_| {})?;
    let reply = reply.first().map(String::as_str).unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(reply)
        .map_err(|_| format!("presence of {topic} was answered {reply:?}"))?;
    match (v["connections"].as_u64(), v["uids"].as_u64()) {
        (Some(c), Some(u)) => Ok((c, u)),
        _ => Err(format!("presence of {topic} was answered {reply:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_lines_and_ok_replies() {
        use herald::push::command::{parse, Command};
        let mut lines = String::new();
        join_line(&mut lines, "t1", &[7]);
        join_line(&mut lines, "t1", &[1, 2, 3]);
        let l: Vec<&str> = lines.lines().collect();
        assert_eq!(
            l,
            [
                r#"{"join":"t1","uid":"u7"}"#,
                r#"{"join":"t1","uids":["u1","u2","u3"]}"#
            ]
        );
        for (line, uids) in l.iter().zip([1, 3]) {
            match parse(line.as_bytes()) {
                Ok(Command::Join(t, u)) => assert!(t == "t1" && u.len() == uids),
                other => panic!("{line}: {other:?}"),
            }
        }
        assert_eq!(ok_count("ok 10000"), Some(10000));
        assert_eq!(ok_count("ok"), None);
        assert_eq!(ok_count("fail"), None);
    }
}
