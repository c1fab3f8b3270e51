//! `topic`: N bound clients joined to one topic; the text port publishes M
//! lines to it back-to-back (`{"topic":T,...}`), or, with `--publish all`,
//! broadcasts M lines of the same size (`{"all":true,...}`); deliveries/s
//! until each client has all M, each message checked byte for byte.
//! herald only: the seed protocol has no topics.

use crate::cli::{self, flag, Args, Common, Mode};
use crate::event::Event;
use crate::fleet::Fleet;
use crate::host::check_fd_budget;
use crate::report::fmt_num;
use crate::series::{Measured, Series};
use crate::textport::{join, ok_count, open_clients, presence};
use crate::wait::Phase;
use herald::push::command::valid_topic;
use std::time::{Duration, Instant};

pub const MODE: Mode = Mode {
    name: "topic",
    about: "text-port publish to a topic of N clients, or broadcast to them (deliveries/s)",
    flags: &[
        cli::WS,
        cli::TEXT,
        flag(
            "--conns",
            Some("10000"),
            "bound clients u0..u(N-1), all in the topic",
        ),
        flag(
            "--messages",
            Some("100"),
            "lines per run, written back-to-back",
        ),
        flag(
            "--size",
            Some("64"),
            "bytes each client receives (the whole line)",
        ),
        flag(
            "--publish",
            Some("topic"),
            "`topic`: {\"topic\":T,..} lines; `all`: {\"all\":true,..} lines",
        ),
        flag("--topic", Some("bench"), "the topic's name"),
        cli::RUNS,
        cli::LABEL,
        cli::TIMEOUT,
        cli::WINDOW,
        cli::SOURCES,
        cli::SERVER_PID,
        cli::SERVER_STATS,
    ],
    run,
};

/// uids a join line carries while the clients join the topic.
const JOIN_PER_LINE: usize = 500;

fn run(a: &mut Args) -> Result<(), String> {
    let ws = a.addr("--ws")?;
    let text = a.addr("--text")?;
    let [n, messages, size, runs] = a.positive(["--conns", "--messages", "--size", "--runs"])?;
    let topic = a.required("--topic")?.to_string();
    let all = match a.required("--publish")? {
        "topic" => false,
        "all" => true,
        other => return Err(format!("--publish is `topic` or `all`, not {other:?}")),
    };
    // Written into the lines as it is: no JSON escapes.
    if !valid_topic(&topic) || topic.contains(['"', '\\']) {
        return Err(format!("--topic {topic:?}: not a topic name"));
    }
    let min = Line::new(all, &topic, messages, 0).len() + 1;
    if size < min {
        return Err(format!(
            "--size must be at least {min} (the line without padding)"
        ));
    }
    check_fd_budget(n + 1)?;
    let common = Common::from_args(a, n, ws)?;
    let table_params = ["--conns", "--messages", "--size", "--publish"];
    let mut series = Series::start(a, &table_params, "deliveries/s", "deliveries")?;
    let mut fleet = open_clients(ws, text, n, &common)?;

    let t0 = Instant::now();
    let joined = join(
        &mut fleet,
        &topic,
        0..n,
        JOIN_PER_LINE,
        1000,
        common.deadline(),
    )?;
    let (conns, uids) = presence(&mut fleet, &topic, common.deadline())?;
    println!(
        "{n} clients joined topic {topic} in {:.2} s (joins answered ok {joined}; \
         presence: {conns} connections, {uids} uids)",
        t0.elapsed().as_secs_f64()
    );
    if conns != n as u64 {
        return Err(format!(
            "topic {topic} has {conns} connections, {n} expected"
        ));
    }
    for run in 1..=runs {
        let lines = (0..messages)
            .map(|k| Line::new(all, &topic, run, k).padded(size))
            .collect::<Vec<_>>();
        let before = series.before()?;
        let m = one_run(&mut fleet, run, n, &lines, all, common.timeout)?;
        series.record(run, before, m);
    }
    series.finish();
    Ok(())
}

/// The line of message `k` of run `run`: `{"topic":T,"m":"r<run>.<k>:` (or
/// `{"all":true,...`), padded with `x` to the asked size and closed. The
/// clients receive it whole.
struct Line(String);

impl Line {
    fn head(all: bool, topic: &str, run: usize) -> String {
        if all {
            format!("{{\"all\":true,\"m\":\"r{run}.")
        } else {
            format!("{{\"topic\":\"{topic}\",\"m\":\"r{run}.")
        }
    }

    fn new(all: bool, topic: &str, run: usize, k: usize) -> Line {
        Line(format!("{}{k}:", Line::head(all, topic, run)))
    }

    /// Its length once closed (`"}`) without padding.
    fn len(&self) -> usize {
        self.0.len() + 2
    }

    /// The line of `size` bytes (newline not counted).
    fn padded(mut self, size: usize) -> String {
        let pad = size.saturating_sub(self.len());
        self.0.extend(std::iter::repeat_n('x', pad));
        self.0.push_str("\"}");
        self.0
    }
}

/// Writes the run's lines at once and waits until every client received
/// every line, in order, and every line was answered.
fn one_run(
    fleet: &mut Fleet,
    run: usize,
    n: usize,
    lines: &[String],
    all: bool,
    timeout: Duration,
) -> Result<Measured, String> {
    let messages = lines.len();
    let mut d = Deliveries {
        lines,
        next: vec![0; n],
        delivered: 0,
        malformed: 0,
        replies: 0,
        reached: 0,
        bad_reply: None,
        stop: None,
        last: Instant::now(),
        expected: n * messages,
    };
    let mut batch = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for l in lines {
        batch.push_str(l);
        batch.push('\n');
    }
    let wire_before = fleet.wire_bytes(0..n);
    let start = Instant::now();
    fleet.text_send(batch.as_bytes());
    let _ = fleet.wait(start + timeout, &mut d)?;
    let wire = fleet.wire_bytes(0..n) - wire_before;
    let Deliveries {
        delivered,
        malformed,
        replies,
        reached,
        bad_reply,
        stop,
        last,
        expected,
        ..
    } = d;
    if let Some(why) = stop {
        return Err(format!(
            "run {run}: {delivered} of {expected} deliveries, {replies} of {messages} replies, then: {why}"
        ));
    }
    if let Some(r) = bad_reply {
        return Err(format!("run {run}: a line was answered {r:?}"));
    }
    if delivered < expected || replies < messages {
        return Err(format!(
            "run {run}: timed out after {} s: {delivered} of {expected} deliveries \
             ({malformed} malformed), {replies} of {messages} replies",
            timeout.as_secs()
        ));
    }
    let counts = [
        ("deliveries", expected),
        ("malformed", malformed),
        ("reached", reached as usize),
    ];
    let m = Measured::new((last - start).as_secs_f64(), expected, &counts).with_wire(wire);
    println!(
        "run {run}: {expected} deliveries ({n} clients x {messages} {} lines of {} B; \
         the server said it reached {reached}) in {:.3} s = {} deliveries/s{}",
        if all { "broadcast" } else { "topic" },
        lines[0].len(),
        m.elapsed,
        fmt_num(m.rate()),
        if malformed > 0 {
            format!(" ({malformed} MALFORMED)")
        } else {
            String::new()
        }
    );
    Ok(m)
}

/// One run: each client must receive the lines in order.
struct Deliveries<'l> {
    lines: &'l [String],
    /// Per client, the index of the line it should receive next.
    next: Vec<u32>,
    delivered: usize,
    /// Messages that are not the line a client should receive next.
    malformed: usize,
    replies: usize,
    /// The sum of the `ok N` replies: deliveries the server made.
    reached: u64,
    bad_reply: Option<String>,
    stop: Option<String>,
    /// When the latest delivery or reply arrived.
    last: Instant,
    expected: usize,
}

impl Phase for Deliveries<'_> {
    fn on(&mut self, ev: Event<'_>) {
        match ev {
            Event::Message(i, m) if i < self.next.len() => {
                let k = self.next[i] as usize;
                if self.lines.get(k).is_some_and(|l| l.as_bytes() == m) {
                    self.next[i] += 1;
                    self.delivered += 1;
                } else {
                    self.malformed += 1;
                }
                self.last = Instant::now();
            }
            Event::Line(l) => {
                self.replies += 1;
                match ok_count(&String::from_utf8_lossy(l)) {
                    Some(k) => self.reached += k,
                    None => {
                        let r = String::from_utf8_lossy(l).into_owned();
                        self.bad_reply.get_or_insert(r);
                    }
                }
                self.last = Instant::now();
            }
            ev => ev.note_end(&mut self.stop),
        }
    }

    fn done(&self) -> bool {
        (self.delivered >= self.expected && self.replies >= self.lines.len())
            || self.stop.is_some()
            || self.bad_reply.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::Line;

    #[test]
    fn topic_and_broadcast_lines_have_the_asked_size_and_parse() {
        for all in [false, true] {
            let l = Line::new(all, "bench", 3, 299).padded(64);
            assert_eq!(l.len(), 64, "{l}");
            let cmd = herald::push::command::parse(l.as_bytes()).unwrap();
            let is_all = matches!(cmd, herald::push::command::Command::Broadcast);
            assert_eq!(is_all, all, "{l}");
        }
    }
}
