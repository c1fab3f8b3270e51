//! Several herald nodes through a real `redis-server` (started here on a
//! free loopback port, no persistence): pushes reach every node's
//! connections exactly once, answers and counts are cluster-wide, Redis
//! going away and coming back, and `--workers`.

mod common;

use common::redis::Redis;
use common::*;
use std::net::TcpListener;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

const QUIET: Duration = Duration::from_millis(300);

/// A herald node on `redis`, once its Redis connections are up.
fn node(redis: &Redis, prefix: &str) -> Herald {
    let url = redis.url();
    let h = Herald::start(&["--redis", &url, "--redis-prefix", prefix]);
    wait_until("the node joined", || h.stderr().contains("redis: up"));
    h
}

fn prefix() -> String {
    format!("t{}", unique())
}

/// Binds `uid` on `h` and waits until `via` (another node) sees it online.
fn bind_seen(h: &Herald, via: &Herald, uid: &str, n: usize) -> Ws {
    let mut ws = ws_connect(h.ws_addr());
    send_text(&mut ws, uid);
    let mut t = via.text_client();
    wait_until("the cluster sees the binding", || t.online(uid) >= n);
    ws
}

#[test]
fn bound_on_one_node_pushed_through_another() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let p = prefix();
    let (a, b) = (node(&redis, &p), node(&redis, &p));
    let mut browser = bind_seen(&a, &b, "alice", 1);
    let line = r#"{"uid":"alice","m":"via b"}"#;
    assert_eq!(b.push(line), "ok");
    assert_eq!(recv_text(&mut browser), line);
    assert_silent(&mut browser, QUIET);
    // Nobody holds this uid anywhere: fail, cluster-wide.
    assert_eq!(b.push(r#"{"uid":"nobody"}"#), "fail");
    // The HTTP API too.
    let r = http_request(b.http_addr(), "POST", "/push", &[], Some(line));
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, r#"{"ok":true,"delivered":1}"#)
    );
    assert_eq!(recv_text(&mut browser), line);
    let stats = b.stats();
    assert!(stats["redis_published"].as_u64().unwrap() >= 2, "{stats}");
    assert_eq!(stats["redis_up"], 1, "{stats}");
    assert_eq!(stats["nodes"].as_array().map(Vec::len), Some(2), "{stats}");
}

#[test]
fn a_tab_on_each_node_gets_exactly_one_copy() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let p = prefix();
    let (a, b) = (node(&redis, &p), node(&redis, &p));
    let mut on_a = bind_seen(&a, &b, "bob", 1);
    let mut on_b = bind_seen(&b, &a, "bob", 2);
    for via in [&a, &b] {
        let line = format!(r#"{{"uid":"bob","via":{}}}"#, via.ws_addr().port());
        assert_eq!(via.push(&line), "ok");
        assert_eq!(recv_text(&mut on_a), line);
        assert_eq!(recv_text(&mut on_b), line);
    }
    assert_silent(&mut on_a, QUIET);
    assert_silent(&mut on_b, QUIET);
    // Pipelined pushes from one connection arrive in order on both nodes.
    let mut t = a.text_client();
    let lines: Vec<String> = (0..50)
        .map(|i| format!(r#"{{"uid":"bob","n":{i}}}"#))
        .collect();
    t.send_raw((lines.join("\n") + "\n").as_bytes());
    for _ in &lines {
        assert_eq!(t.reply(), "ok");
    }
    for l in &lines {
        assert_eq!(&recv_text(&mut on_a), l);
        assert_eq!(&recv_text(&mut on_b), l);
    }
}

#[test]
fn uids_broadcast_and_counts_are_cluster_wide() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let p = prefix();
    let (a, b) = (node(&redis, &p), node(&redis, &p));
    let mut x = bind_seen(&a, &b, "x", 1);
    let mut y1 = bind_seen(&b, &a, "y", 1);
    let mut y2 = bind_seen(&b, &a, "y", 2);
    let mut t = a.text_client();
    // uids split across nodes: x here, y on b (one node, counted once).
    let line = r#"{"uids":["x","y"],"m":1}"#;
    assert_eq!(t.request(line), "ok 2");
    for ws in [&mut x, &mut y1, &mut y2] {
        assert_eq!(recv_text(ws), line);
    }
    let all = r#"{"all":true,"m":2}"#;
    let reply = t.request(all);
    assert!(reply.starts_with("ok "), "{reply}");
    for ws in [&mut x, &mut y1, &mut y2] {
        assert_eq!(recv_text(ws), all);
        assert_silent(ws, QUIET);
    }
    assert_eq!(t.request(r#"{"online":"y"}"#), "2");
    assert_eq!(t.request(r#"{"online":"nobody"}"#), "0");
    assert_eq!(
        t.request(r#"{"count":true}"#),
        r#"{"uids":2,"connections":3}"#
    );
    let r = http_request(b.http_addr(), "GET", "/online?uid=x", &[], None);
    assert_eq!(r.body, r#"{"uid":"x","online":true,"connections":1}"#);
    // Closing a tab is seen everywhere.
    drop(y2);
    wait_until("y has one connection left", || t.online("y") == 1);
}

#[test]
fn a_dead_node_stops_being_counted() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let p = prefix();
    let a = node(&redis, &p);
    let b = node(&redis, &p);
    let _tab = bind_seen(&b, &a, "ghost", 1);
    signal(b.pid(), libc::SIGKILL);
    let mut t = a.text_client();
    let t0 = Instant::now();
    wait_until("the dead node's uid is gone", || t.online("ghost") == 0);
    assert!(t0.elapsed() < Duration::from_secs(9), "{:?}", t0.elapsed());
    assert_eq!(t.request(r#"{"uid":"ghost"}"#), "fail");
}

#[test]
fn redis_going_away_and_coming_back() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let p = prefix();
    let (a, b) = (node(&redis, &p), node(&redis, &p));
    let mut local = bind_seen(&a, &b, "here", 1);
    let mut remote = bind_seen(&b, &a, "there", 1);
    redis.kill();
    wait_until("a knows redis is down", || a.stats()["redis_up"] == 0);
    let mut t = a.text_client();
    // Local delivery goes on.
    assert_eq!(t.request(r#"{"uid":"here","m":1}"#), "ok");
    assert_eq!(recv_text(&mut local), r#"{"uid":"here","m":1}"#);
    // A push that needed another node says so.
    let reply = t.request(r#"{"uid":"there","m":1}"#);
    assert!(reply.starts_with("error redis unavailable"), "{reply}");
    assert!(t
        .request(r#"{"online":"there"}"#)
        .starts_with("error redis unavailable"));
    redis.restart();
    // Both nodes reconnect and restore their subscriptions and counts.
    let t0 = Instant::now();
    wait_until("cross-node delivery resumes", || {
        t.request(r#"{"online":"there"}"#) == "1"
    });
    assert_eq!(t.request(r#"{"uid":"there","m":2}"#), "ok");
    assert_eq!(recv_text(&mut remote), r#"{"uid":"there","m":2}"#);
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
    assert!(a.stats()["redis_reconnects"].as_u64().unwrap() >= 1);
    assert!(
        a.stderr().contains("redis: command connection"),
        "{}",
        a.stderr()
    );
}

#[test]
fn redis_unreachable_at_start_then_there() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    redis.kill();
    let url = redis.url();
    let h = Herald::start(&["--redis", &url, "--redis-prefix", &prefix()]);
    // It serves local connections meanwhile.
    let mut ws = ws_connect(h.ws_addr());
    send_text(&mut ws, "solo");
    // `online` needs Redis now (it answers for the cluster): a push says
    // when the binding is there.
    let mut t = h.text_client();
    wait_until("solo is bound", || t.request(r#"{"uid":"solo"}"#) == "ok");
    assert_eq!(recv_text(&mut ws), r#"{"uid":"solo"}"#);
    assert!(h.stderr().contains("retrying in"), "{}", h.stderr());
    redis.restart();
    wait_until("herald reaches redis", || h.stderr().contains("redis: up"));
    let reply = h.text_client().request(r#"{"online":"solo"}"#);
    assert_eq!(reply, "1", "{}", h.stderr());
}

#[test]
fn workers_share_the_ports_and_one_killed_is_restarted() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let url = redis.url();
    let p = prefix();
    let h = Herald::start(&["--redis", &url, "--redis-prefix", &p, "--workers", "2"]);
    let worker_pids = || -> Vec<i32> {
        let out = Command::new("pgrep")
            .args(["-P", &h.pid().to_string()])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    };
    wait_until("two workers", || worker_pids().len() == 2);
    wait_until("both joined", || {
        h.stderr().matches("redis: up").count() >= 2
    });
    // Workers share one log: each line says which worker wrote it.
    let log = h.stderr();
    for w in ["worker 0: redis: up", "worker 1: redis: up"] {
        assert!(log.contains(w), "{log}");
    }
    // Enough connections that both workers hold some (the kernel spreads
    // them), all on one uid: every push reaches each exactly once.
    let mut tabs: Vec<Ws> = (0..16)
        .map(|_| {
            let mut ws = ws_connect(h.ws_addr());
            send_text(&mut ws, "many");
            ws
        })
        .collect();
    let mut t = h.text_client();
    wait_until("16 tabs online", || t.online("many") == 16);
    for i in 0..4 {
        // Each push goes through whichever worker accepts the connection.
        let line = format!(r#"{{"uid":"many","i":{i}}}"#);
        assert_eq!(h.push(&line), "ok");
        for ws in &mut tabs {
            assert_eq!(recv_text(ws), line);
        }
    }
    let stats = h.stats();
    assert_eq!(stats["nodes"].as_array().map(Vec::len), Some(2), "{stats}");
    // SIGKILL one worker: it is restarted; the other's clients stay.
    let before = worker_pids();
    signal(before[0], libc::SIGKILL);
    wait_until("the worker is replaced", || {
        let now = worker_pids();
        now.len() == 2 && !now.contains(&before[0])
    });
    assert!(h.stderr().contains("restarting"), "{}", h.stderr());
    let mut t = h.text_client();
    wait_until("the survivors are still online", || {
        let n = t.online("many");
        n > 0 && n < 16
    });
    let survivors = t.online("many");
    let line = r#"{"uid":"many","after":"restart"}"#;
    assert_eq!(h.push(line), "ok");
    let mut got = 0;
    for ws in &mut tabs {
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        if let Ok(tungstenite::Message::Text(m)) = ws.read() {
            assert_eq!(m, line);
            got += 1;
        }
    }
    assert_eq!(got, survivors, "every surviving tab got it once");
    // A graceful stop stops every worker.
    h.terminate();
    thread::sleep(Duration::from_millis(100));
    wait_until("no workers left", || worker_pids().is_empty());
}

#[test]
fn workers_need_redis() {
    let r = run_herald(&["--workers", "2"]);
    assert_eq!(r.code(), Some(2), "{r:?}");
    assert!(r.stderr.contains("--workers 2 needs --redis"), "{r:?}");
}

#[test]
fn dropped_by_redis_like_a_full_pubsub_buffer_then_resubscribed() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let p = prefix();
    let (a, b) = (node(&redis, &p), node(&redis, &p));
    let mut remote = bind_seen(&b, &a, "sub", 1);
    // What Redis does to a subscriber past client-output-buffer-limit.
    let out = Command::new("redis-cli")
        .args([
            "-p",
            &redis.port.to_string(),
            "CLIENT",
            "KILL",
            "TYPE",
            "pubsub",
        ])
        .output()
        .expect("redis-cli");
    assert!(out.status.success(), "{out:?}");
    wait_until("b resubscribed", || {
        b.stats()["redis_reconnects"].as_u64().unwrap() >= 1
    });
    let mut t = a.text_client();
    wait_until("cross-node delivery resumes", || {
        t.request(r#"{"uid":"sub","probe":1}"#) == "ok"
    });
    assert_eq!(recv_text(&mut remote), r#"{"uid":"sub","probe":1}"#);
}

#[test]
fn bytes_pending_to_redis_are_bounded() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let p = prefix();
    let url = redis.url();
    let h = Herald::start(&[
        "--redis",
        &url,
        "--redis-prefix",
        &p,
        "--redis-max-pending",
        "1",
    ]);
    wait_until("joined", || h.stderr().contains("redis: up"));
    let mut t = h.text_client();
    let reply = t.request(r#"{"uid":"elsewhere"}"#);
    assert!(reply.starts_with("error redis backlog full"), "{reply}");
    // Delivered here all the same, and said so.
    let mut ws = ws_connect(h.ws_addr());
    send_text(&mut ws, "here");
    wait_until("bound", || t.request(r#"{"uid":"here"}"#) == "ok");
    assert_eq!(recv_text(&mut ws), r#"{"uid":"here"}"#);
    assert!(h.stats()["redis_backlog_refused"].as_u64().unwrap() >= 1);
}

#[test]
fn start_d_and_stop_with_workers() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let url = redis.url();
    let dir = std::env::temp_dir().join(format!("herald-dw-{}-{}", std::process::id(), unique()));
    std::fs::create_dir_all(&dir).unwrap();
    let pid_file = dir.join("herald.pid");
    let pid_path = pid_file.to_str().unwrap().to_string();
    let p = prefix();
    let r = run_herald(&[
        "start",
        "-d",
        "--pid-file",
        &pid_path,
        "--ws",
        "127.0.0.1:0",
        "--text",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--redis",
        &url,
        "--redis-prefix",
        &p,
        "--workers",
        "2",
    ]);
    assert_eq!(r.code(), Some(0), "{r:?}");
    let master: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let log = || std::fs::read_to_string(dir.join("herald.log")).unwrap_or_default();
    wait_until("both workers joined", || {
        log().matches("redis: up").count() >= 2
    });
    // status finds the daemon and shows every worker.
    let s = run_herald(&["status", "--pid-file", &pid_path]);
    assert_eq!(s.code(), Some(0), "{s:?}");
    assert!(s.stdout.contains("total (2 nodes"), "{s:?}");
    let st = run_herald(&["stop", "--pid-file", &pid_path]);
    assert_eq!(st.code(), Some(0), "{st:?}");
    wait_until("master and workers gone", || {
        !pid_alive(master) && !log().is_empty() && log().contains("all workers stopped")
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_refused_login_is_never_up_and_backs_off() {
    let Some(redis) = Redis::start_with(&["--requirepass", "s3cretpass"]) else {
        return;
    };
    let p = prefix();
    let wrong = format!("redis://:wrong@127.0.0.1:{}", redis.port);
    let h = Herald::start(&["--redis", &wrong, "--redis-prefix", &p]);
    let mut t = h.text_client();
    // Throughout, a push that needs the other nodes says they cannot be
    // asked: a refused login is no link, not a cluster where nobody holds
    // the uid.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(3) {
        let reply = t.request(r#"{"uid":"elsewhere"}"#);
        assert!(reply.starts_with("error redis unavailable"), "{reply}");
        thread::sleep(Duration::from_millis(100));
    }
    let log = h.stderr();
    assert!(!log.contains("redis: up"), "{log}");
    // Told, but not at every attempt: the retries back off, and the log
    // stays quiet while they go on.
    let refusals = log.lines().filter(|l| l.contains("WRONGPASS")).count();
    assert!(
        (1..=5).contains(&refusals),
        "{refusals} refusals logged:\n{log}"
    );
    assert!(log.contains("login refused"), "{log}");
    // The right password joins.
    let right = format!("redis://:s3cretpass@127.0.0.1:{}", redis.port);
    let h = Herald::start(&["--redis", &right, "--redis-prefix", &p]);
    wait_until("it joined", || h.stderr().contains("redis: up"));
    assert_eq!(h.text_client().request(r#"{"uid":"elsewhere"}"#), "fail");
}

#[test]
fn workers_end_with_their_supervisor_and_leave_its_pid_file_free() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!(
        "herald-orphans-{}-{}",
        std::process::id(),
        unique()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let pid_file = dir.join("herald.pid");
    let start = || {
        Command::new(herald_bin())
            .args(["start", "-d", "--workers", "2", "--redis", &redis.url()])
            .args([
                "--redis-prefix",
                &prefix(),
                "--pid-file",
                pid_file.to_str().unwrap(),
            ])
            .args([
                "--ws",
                "127.0.0.1:0",
                "--text",
                "127.0.0.1:0",
                "--http",
                "127.0.0.1:0",
            ])
            .output()
            .unwrap()
    };
    let workers_of = |pid: i32| -> Vec<i32> {
        let out = Command::new("pgrep")
            .args(["-P", &pid.to_string()])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    };
    let supervisor = || -> i32 {
        std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let r = start();
    assert!(r.status.success(), "{r:?}");
    let master = supervisor();
    wait_until("two workers", || workers_of(master).len() == 2);
    let workers = workers_of(master);
    // What the OOM killer does: no chance to stop them.
    signal(master, libc::SIGKILL);
    wait_until("the workers end with their supervisor", || {
        workers.iter().all(|&w| !pid_alive(w))
    });
    // No orphan holds the pid file's lock: the same command starts again.
    let r = start();
    assert!(r.status.success(), "{r:?}");
    let again = supervisor();
    assert_ne!(again, master);
    wait_until("two new workers", || workers_of(again).len() == 2);
    let stop = Command::new(herald_bin())
        .args(["stop", "--pid-file", pid_file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(stop.status.success(), "{stop:?}");
    wait_until("stopped", || !pid_alive(again));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn herald_own_redis_links_are_not_counted_as_clients() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let h = Herald::start(&["--redis", &redis.url(), "--redis-prefix", &prefix()]);
    wait_until("redis: up", || h.stderr().contains("redis: up"));
    // A few heartbeats (every 2 s) go to Redis meanwhile.
    thread::sleep(Duration::from_millis(2_500));
    let stats = h.stats();
    // The /stats request itself is the one connection and the one write.
    assert_eq!(stats["connections"], 1, "{stats}");
    assert_eq!(stats["messages_out"], 0, "{stats}");
    let listed = http_get(h.http_addr(), "/connections").json();
    let rows = listed["connections"].as_array().expect("a list").clone();
    assert!(rows.iter().all(|c| c["protocol"] != "outbound"), "{listed}");
    // Each node (each worker) lists only its own: the answer says whose.
    assert!(listed["node"].is_string(), "{listed}");
    // A lone process is no worker (not "worker 0", which --workers has).
    assert!(listed["worker"].is_null(), "{listed}");
}

#[test]
fn the_redis_password_comes_from_a_file_rotates_on_reload_and_may_be_percent_encoded() {
    let Some(redis) = Redis::start_with(&["--requirepass", "s3cret pass@x"]) else {
        return;
    };
    // Percent-encoded in the URL, as URLs need for a space or an `@`.
    let url = format!("redis://:s3cret%20pass%40x@127.0.0.1:{}", redis.port);
    let h = Herald::start(&["--redis", &url, "--redis-prefix", &prefix()]);
    wait_until("it joined", || h.stderr().contains("redis: up"));
    // From a file, off the command line; a wrong one first, then rotated.
    let file = std::env::temp_dir().join(format!("herald-redis-pw-{}", unique()));
    std::fs::write(&file, "not-it\n").unwrap();
    let plain = format!("redis://127.0.0.1:{}", redis.port);
    let path = file.to_str().unwrap();
    let h = Herald::start(&["--redis", &plain, "--redis-password-file", path]);
    wait_until("the login refused", || h.stderr().contains("WRONGPASS"));
    assert!(!h.stderr().contains("redis: up"));
    std::fs::write(&file, "s3cret pass@x\n").unwrap();
    signal(h.pid(), libc::SIGHUP);
    wait_until("the rotated password logs in", || {
        h.stderr().contains("redis: up")
    });
    assert!(h.stderr().contains("the Redis password"), "{}", h.stderr());
    let _ = std::fs::remove_file(&file);
}

#[test]
fn a_daemon_node_is_named_with_its_own_pid() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("herald-node-{}-{}", std::process::id(), unique()));
    std::fs::create_dir_all(&dir).unwrap();
    let pid_file = dir.join("herald.pid");
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let r = Command::new(herald_bin())
        .args([
            "start",
            "-d",
            "--redis",
            &redis.url(),
            "--redis-prefix",
            &prefix(),
        ])
        .args([
            "--pid-file",
            pid_file.to_str().unwrap(),
            "--ws",
            "127.0.0.1:0",
        ])
        .args(["--text", "off", "--http", &port.to_string()])
        .output()
        .unwrap();
    assert!(r.status.success(), "{r:?}");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut stats = serde_json::Value::Null;
    wait_until("the node's figures", || {
        stats = http_get(port, "/stats").json();
        stats["node"].is_string()
    });
    signal(pid, libc::SIGTERM);
    wait_until("stopped", || !pid_alive(pid));
    let _ = std::fs::remove_dir_all(&dir);
    let node = stats["node"].as_str().unwrap();
    // Not the pid of the process that forked it before it detached.
    assert!(
        node.ends_with(&format!("-{pid}")),
        "node {node}, daemon pid {pid}"
    );
    assert!(stats["worker"].is_null(), "{stats}");
}
