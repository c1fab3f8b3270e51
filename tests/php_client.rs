//! The PHP backend client (`clients/php/Herald.php`) against herald and
//! against fake text ports: the scripts in `clients/php/tests/` run with
//! `php` and check the client's side; these tests check herald's side (what
//! the browsers received, how many connections the client used) and play
//! the server where herald cannot be made to misbehave.

mod common;

use common::*;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};
use tungstenite::client::IntoClientRequest;

const QUIET: Duration = Duration::from_millis(300);
/// How long one PHP script may run.
const PHP_DEADLINE: Duration = Duration::from_secs(30);
const API: &str = "api-token-for-php-tests-0123";
const KEY: &str = "k3y-for-php-tests-only-0123456789abcdef";

/// True when `php` runs here; otherwise records the skip (a failure under CI).
fn php_here() -> bool {
    let ok = Command::new("php")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip("php-cli (apt-get install php-cli)");
    }
    ok
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("clients/php/tests")
        .join(name)
}

/// Runs `php clients/php/tests/SCRIPT args...` to completion (killed after
/// [`PHP_DEADLINE`]); returns its stdout, or fails with what it printed.
fn php(script_name: &str, args: &[&str]) -> String {
    let start = Instant::now();
    let child = Command::new("php")
        .arg(script(script_name))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn php");
    let run = run_bounded(child, PHP_DEADLINE, &format!("php {script_name}"));
    let (out, err) = (run.stdout, run.stderr);
    assert!(
        run.status.success(),
        "php {script_name} {args:?} exited with {}\nstdout: {out}\nstderr: {err}",
        run.status
    );
    eprintln!("php {script_name}: {:?}\n{out}", start.elapsed());
    out
}

/// Reads a pipe to its end in a thread.
fn collect(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut s = Vec::new();
        let _ = pipe.read_to_end(&mut s);
        let _ = tx.send(String::from_utf8_lossy(&s).into_owned());
    });
    rx
}

/// Asserts that `ws` receives exactly `lines`, in order, and nothing more.
fn assert_receives(ws: &mut Ws, lines: &[&str]) {
    for line in lines {
        assert_eq!(recv_text(ws), *line);
    }
    assert_silent(ws, QUIET);
}

#[test]
fn every_php_file_passes_php_lint() {
    if !php_here() {
        return;
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("clients/php");
    let mut files = vec![dir.join("Herald.php")];
    for e in std::fs::read_dir(dir.join("tests")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "php") {
            files.push(p);
        }
    }
    for f in files {
        let out = Command::new("php").arg("-l").arg(&f).output().unwrap();
        assert!(out.status.success(), "php -l {}: {out:?}", f.display());
    }
}

#[test]
fn the_seeds_flow_through_the_php_client() {
    if !php_here() {
        return;
    }
    let h = Herald::start(&[]);
    let mut tabs = [h.bind("uid1"), h.bind("uid1")];
    let mut uid2 = h.bind("uid2");
    let mut numeric = h.bind("42");
    let out = php("seed_flow.php", &[&h.text_addr().to_string()]);
    assert_eq!(out.trim(), "ok");
    let hi = r#"{"uids":["uid1","uid2","nobody"],"m":"hi"}"#;
    let news = r#"{"all":true,"m":"news"}"#;
    for tab in &mut tabs {
        assert_receives(
            tab,
            &[
                r#"{"uid":"uid1","percent":"88%"}"#,
                r#"{"uid":"uid1","note":"the uid argument wins"}"#,
                r#"{"uid":"uid1","text":"héllo wörld","url":"https://example.com/a/b"}"#,
                hi,
                news,
            ],
        );
    }
    assert_receives(&mut uid2, &[hi, news]);
    assert_receives(&mut numeric, &[r#"{"uid":42,"n":1}"#, news]);
}

#[test]
fn a_pipeline_of_10000_pushes_arrives_in_order_once_each() {
    if !php_here() {
        return;
    }
    const N: usize = 10_000;
    let h = Herald::start(&[]);
    let mut ws = h.bind("bulk");
    let reader = thread::spawn(move || {
        let got: Vec<String> = (0..N).map(|_| recv_text(&mut ws)).collect();
        (got, ws)
    });
    let start = Instant::now();
    php(
        "pipeline.php",
        &[&h.text_addr().to_string(), "bulk", &N.to_string()],
    );
    let (got, mut ws) = reader.join().expect("the browser got every push");
    eprintln!("{N} pushes received in {:?}", start.elapsed());
    for (i, line) in got.iter().enumerate() {
        assert_eq!(*line, format!(r#"{{"uid":"bulk","seq":{i}}}"#), "push {i}");
    }
    assert_silent(&mut ws, QUIET);
    let s = h.stats();
    assert_eq!(s["pushes_ok"], N, "{s}");
}

#[test]
fn a_pipeline_bigger_than_the_socket_buffers_does_not_wait_forever() {
    // herald stops reading a backend whose replies pile up unread (here past
    // 2 KiB queued in herald) and reads on once they went out: the client
    // must read while it writes. A client that wrote everything first would
    // stall for good once the kernel's buffers are full too (on loopback
    // about 8 MB of replies, 400,000 `count` lines: measured by hand, too
    // much PHP memory for a test); this run gets paused many times instead.
    if !php_here() {
        return;
    }
    const N: usize = 40_000;
    let h = Herald::start(&["--max-queued", "4096"]);
    php(
        "pipeline.php",
        &[&h.text_addr().to_string(), "nobody", &N.to_string(), "1024"],
    );
    let s = h.stats();
    assert_eq!(s["pushes_fail"], N, "{s}");
    eprintln!("herald paused the client {} time(s)", s["pauses"]);
}

#[test]
fn the_api_token_goes_first_and_minted_uid_tokens_bind() {
    if !php_here() {
        return;
    }
    let (api, key) = (
        secret_file(&format!("{API}\n")),
        secret_file(&format!("{KEY}\n")),
    );
    let h = Herald::start(&[
        "--api-token-file",
        api.to_str().unwrap(),
        "--auth-secret-file",
        key.to_str().unwrap(),
        "--auth-audience",
        "herald",
        "--auth-issuer",
        "app",
    ]);
    let token = php("mint.php", &[KEY, "tok-user", "herald", "app"]);
    let addr = h.ws_addr();
    let url = format!("ws://{addr}/?token={}", token.trim());
    let (mut ws, resp) = tungstenite::client(url, tcp(addr)).expect("the minted token is accepted");
    assert_eq!(resp.status().as_u16(), 101);
    let mut t = h.text_client();
    assert_eq!(t.request(&format!(r#"{{"auth":"{API}"}}"#)), "ok");
    t.wait_online("tok-user", 1);
    let out = php("auth.php", &[&h.text_addr().to_string(), API, "tok-user"]);
    assert_eq!(out.trim(), "ok");
    assert_receives(&mut ws, &[r#"{"uid":"tok-user","m":"with the token"}"#]);
    // The token's topics claim (news, room.*) says what a herald.v1 client
    // may subscribe to itself.
    let mut req = format!("ws://{addr}/").into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "herald.v1".parse().unwrap());
    let (mut v1, _) = tungstenite::client(req, tcp(addr)).expect("v1 handshake");
    let hello = serde_json::json!({"token": token.trim(), "topics": ["news", "room.7", "admin"]});
    send_text(&mut v1, &hello.to_string());
    let mut statuses = Vec::new();
    while statuses.len() < 3 {
        let t = recv_text(&mut v1);
        if t.starts_with("s t:") {
            statuses.push(t);
        }
    }
    assert_eq!(
        statuses,
        [
            "s t:news - 0 off",
            "s t:room.7 - 0 off",
            "s t:admin - 0 denied"
        ]
    );
}

/// A PHP script that talks with the test on stdin and stdout; killed when dropped.
struct Conversation {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl Conversation {
    fn start(script_name: &str, args: &[&str]) -> Conversation {
        let mut child = Command::new("php")
            .arg(script(script_name))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn php");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = collect(child.stderr.take().unwrap());
        Conversation {
            child,
            lines,
            stderr,
        }
    }

    /// The next line php prints.
    fn next(&mut self, waiting_for: &str) -> String {
        match self.lines.recv_timeout(PHP_DEADLINE) {
            Ok(line) => line,
            Err(e) => {
                let _ = self.child.kill();
                let err = self.stderr.recv_timeout(TIMEOUT).unwrap_or_default();
                panic!("php said nothing ({e}) while {waiting_for} was expected; stderr: {err}");
            }
        }
    }

    fn expect(&mut self, want: &str) {
        assert_eq!(self.next(want), want);
    }

    fn say(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").expect("php reads its stdin");
    }
}

impl Drop for Conversation {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_client_reconnects_after_herald_restarts_on_its_port() {
    if !php_here() {
        return;
    }
    // The PHP client sits idle while herald stops: herald waits for it to
    // close its side until --shutdown-grace, shortened here.
    let mut first = Herald::start(&["--shutdown-grace", "300"]);
    let text = first.text_addr().to_string();
    let mut ws = first.bind("again");
    let mut php = Conversation::start("reconnect.php", &[&text, "again"]);
    php.expect("pushed");
    assert_eq!(recv_text(&mut ws), r#"{"uid":"again","n":1}"#);
    close_ws(ws);
    first.terminate();
    assert!(first.wait_exit(TIMEOUT).is_some(), "herald stopped");
    let start = Instant::now();
    let second = Herald::start(&["--text", &text]);
    let mut ws = second.bind("again");
    php.say("go");
    php.expect("ok");
    eprintln!("herald restarted and pushed to in {:?}", start.elapsed());
    assert_receives(
        &mut ws,
        &[r#"{"uid":"again","n":2}"#, r#"{"uid":"again","n":3}"#],
    );
}

/// One connection to a fake herald: reads request lines, writes replies.
struct FakeConn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl FakeConn {
    fn accept(l: &TcpListener) -> FakeConn {
        l.set_nonblocking(true).unwrap();
        let end = Instant::now() + TIMEOUT;
        let s = loop {
            match l.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < end, "the client did not connect");
                    thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        FakeConn {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
        }
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        let n = self
            .reader
            .read_line(&mut l)
            .expect("a line from the client");
        assert!(n > 0 && l.ends_with('\n'), "the client closed: {l:?}");
        l.pop();
        l
    }

    fn reply(&mut self, replies: &[&str]) {
        let text: String = replies.iter().map(|r| format!("{r}\n")).collect();
        self.writer.write_all(text.as_bytes()).unwrap();
    }

    /// Reads until the client closes.
    fn wait_close(self) {
        let mut r = self.reader;
        let _ = io::copy(&mut r, &mut io::sink());
    }
}

#[test]
fn lines_without_a_reply_are_sent_again_on_a_new_connection() {
    if !php_here() {
        return;
    }
    const N: usize = 100;
    const ANSWERED: usize = 40;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let auth = format!(r#"{{"auth":"{API}"}}"#);
    let server = thread::spawn(move || {
        // The first connection: the token, then all N lines are read and only
        // the first 40 answered before it closes.
        let mut c = FakeConn::accept(&l);
        assert_eq!(c.line(), auth);
        c.reply(&["ok"]);
        let first: Vec<String> = (0..N).map(|_| c.line()).collect();
        c.reply(&["ok"; ANSWERED]);
        drop(c);
        // The second: the token again, then exactly the 60 unanswered lines.
        let mut c = FakeConn::accept(&l);
        assert_eq!(c.line(), auth);
        c.reply(&["ok"]);
        let second: Vec<String> = (ANSWERED..N).map(|_| c.line()).collect();
        let replies: Vec<&str> = (ANSWERED..N)
            .map(|i| if i % 2 == 0 { "ok" } else { "fail" })
            .collect();
        c.reply(&replies);
        c.wait_close();
        (first, second)
    });
    let out = php("resend.php", &[&addr.to_string(), API, &N.to_string()]);
    let (first, second) = server.join().expect("the fake herald saw what it expected");
    for (i, line) in first.iter().enumerate() {
        assert_eq!(*line, format!(r#"{{"uid":"u{i}","i":{i}}}"#));
    }
    assert_eq!(
        first[ANSWERED..],
        second[..],
        "only the unanswered lines again"
    );
    let want: String = (0..N)
        .map(|i| if i < ANSWERED || i % 2 == 0 { '1' } else { '0' })
        .collect();
    assert_eq!(out.trim(), want, "the results, in order");
}

/// A fake herald that hands each accepted connection to `serve` in a thread
/// of its own; returns its address and how many connections it accepted.
fn fake_herald(serve: fn(TcpStream)) -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { break };
            count.fetch_add(1, Ordering::SeqCst);
            thread::spawn(move || serve(s));
        }
    });
    (addr, accepted)
}

#[test]
fn the_client_gives_up_with_clear_exceptions() {
    if !php_here() {
        return;
    }
    let (closing, closing_accepts) = fake_herald(drop);
    let refused = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (silent, _) = fake_herald(|mut s| {
        let _ = io::copy(&mut s, &mut io::sink());
    });
    let (garbage, _) = fake_herald(|s| {
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut line = String::new();
        if r.read_line(&mut line).is_ok() {
            let _ = (&s).write_all(b"banana\n");
        }
        let _ = io::copy(&mut r, &mut io::sink());
    });
    let addrs = [closing, refused, silent, garbage].map(|a| a.to_string());
    let args: Vec<&str> = addrs.iter().map(String::as_str).collect();
    let out = php("give_up.php", &args);
    assert!(out.ends_with("ok\n"), "{out}");
    assert_eq!(
        closing_accepts.load(Ordering::SeqCst),
        3,
        "one connection and two retries"
    );
}

#[test]
fn server_errors_carry_the_reason_and_the_connection_goes_on() {
    if !php_here() {
        return;
    }
    let h = Herald::start(&[]);
    let mut ws = h.bind("uid1");
    let accepted = |h: &Herald| h.stats()["accepted"].as_u64().unwrap();
    let before = accepted(&h);
    let out = php("errors.php", &[&h.text_addr().to_string()]);
    assert_eq!(out.trim(), "ok");
    assert_eq!(
        accepted(&h) - before,
        2,
        "one connection for the PHP client, one for this /stats"
    );
    assert_receives(
        &mut ws,
        &[
            r#"{"uid":"uid1","after":"an error"}"#,
            r#"{"uid":"uid1","n":1}"#,
            r#"{"all":true,"m":"x"}"#,
        ],
    );
}

/// Reads `seq` numbers from `ws` in a thread until the server closes it or
/// it stays quiet for `quiet`; `seen` counts them as they come.
fn read_seqs(mut ws: Ws, seen: Arc<AtomicUsize>, quiet: Duration) -> thread::JoinHandle<Vec<u64>> {
    ws.get_mut().set_read_timeout(Some(quiet)).unwrap();
    thread::spawn(move || {
        let mut seqs = Vec::new();
        while let Ok(m) = ws.read() {
            if let Message::Text(t) = m {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                seqs.push(v["seq"].as_u64().expect("a seq"));
                seen.fetch_add(1, Ordering::SeqCst);
            }
        }
        seqs
    })
}

#[test]
fn a_pipeline_cut_by_a_stop_is_finished_by_the_next_herald_once_each() {
    // herald answers every line it read before it closes a connection; the
    // client sends the others again, to whichever herald now holds the port.
    if !php_here() {
        return;
    }
    const N: usize = 100_000;
    // Room for the bursts a pipelining backend makes (see README: Busy backends).
    let flags = ["--reuse-port", "--max-queued", "16777216"];
    let first = Herald::start(&flags);
    let text = first.text_addr().to_string();
    let ws1 = first.bind("cut");
    let mut php = Conversation::start("cut.php", &[&text, "cut", &N.to_string()]);
    php.expect("connected");
    let mut more = flags.to_vec();
    more.extend(["--text", &text]);
    let second = Herald::start(&more);
    let mut ws2 = ws_connect(second.ws_addr());
    send_text(&mut ws2, "cut");
    wait_until("cut is bound on the second herald", || {
        http_get(second.http_addr(), "/online?uid=cut").json()["connections"] == 1
    });
    let (seen1, seen2) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let r1 = read_seqs(ws1, seen1.clone(), DEADLINE);
    let r2 = read_seqs(ws2, seen2.clone(), Duration::from_secs(2));
    php.say("go");
    wait_until("the first herald delivered some", || {
        seen1.load(Ordering::SeqCst) >= 5_000
    });
    first.terminate();
    let took = php.next("the time");
    php.expect("ok");
    let (mut got1, got2) = (r1.join().unwrap(), r2.join().unwrap());
    eprintln!(
        "{took}; the first herald delivered {}, the second {}",
        got1.len(),
        got2.len()
    );
    assert!(!got2.is_empty(), "the stop came after the whole pipeline");
    got1.extend(&got2);
    got1.sort_unstable();
    let want: Vec<u64> = (0..N as u64).collect();
    assert!(
        got1 == want,
        "every push exactly once ({} received)",
        got1.len()
    );
}

/// The text messages a WebSocket client received, and the close code and
/// reason that ended them (`None`: no close frame within [`PHP_DEADLINE`]).
type Recording = (Vec<String>, Option<(u16, String)>);

/// Records what `ws` receives, in a thread, until the server closes it.
fn record(mut ws: Ws) -> thread::JoinHandle<Recording> {
    ws.get_mut().set_read_timeout(Some(PHP_DEADLINE)).unwrap();
    thread::spawn(move || {
        let mut texts = Vec::new();
        loop {
            match ws.read() {
                Ok(Message::Text(t)) => texts.push(t.to_string()),
                Ok(Message::Close(f)) => {
                    return (texts, f.map(|f| (u16::from(f.code), f.reason.to_string())))
                }
                Ok(_) => {}
                Err(_) => return (texts, None),
            }
        }
    })
}

/// Asserts that `got` is `want`, naming the first line that differs.
fn assert_lines(who: &str, got: &[String], want: &[String]) {
    if let Some(i) = (0..got.len().max(want.len())).find(|&i| got.get(i) != want.get(i)) {
        panic!(
            "{who} received {} messages, want {}; the first to differ, #{i}: got {:?}, want {:?}",
            got.len(),
            want.len(),
            got.get(i),
            want.get(i)
        );
    }
}

#[test]
fn topics_and_kicks_go_through_the_php_client() {
    if !php_here() {
        return;
    }
    const N: usize = 1000;
    let h = Herald::start(&[]);
    let [u1, u2, u3] = ["u1", "u2", "u3"].map(|u| record(h.bind(u)));
    // Uids enough for a members page over 4 KiB.
    let _big: Vec<Ws> = (0..60)
        .map(|i| h.bind(&format!("member-{}-{i:02}", "m".repeat(80))))
        .collect();
    let out = php("topics.php", &[&h.text_addr().to_string(), &N.to_string()]);
    assert!(out.ends_with("ok\n"), "{out}");
    // The script kicked u1; kicking u2 and u3 here ends their recordings.
    let mut t = h.text_client();
    assert_eq!(t.request(r#"{"kick":"u2"}"#), "ok 1");
    assert_eq!(t.request(r#"{"kick":"u3"}"#), "ok 1");
    let [u1, u2, u3] = [u1, u2, u3].map(|r| r.join().expect("a recording"));

    let hello = r#"{"topic":"news","title":"hello"}"#.to_string();
    let seq = |i: usize| format!(r#"{{"topic":"{}","seq":{i}}}"#, ["news", "solo"][i % 3]);
    let kicked = Some((4500, "kicked".to_string()));
    let mut want = vec![hello.clone()];
    want.extend((0..N).filter(|i| i % 3 != 2).map(seq));
    want.push(r#"{"topic":"news","m":"after leave"}"#.into());
    assert_lines("u1", &u1.0, &want);
    assert_eq!(u1.1, kicked, "u1 closed by the script's kick");
    let mut want = vec![hello];
    want.extend((0..N).filter(|i| i % 3 == 0).map(seq));
    assert_lines("u2", &u2.0, &want);
    assert_eq!(u2.1, kicked);
    assert_eq!(
        u3,
        (vec![r#"{"topic":"room","m":"room"}"#.to_string()], kicked)
    );
}
