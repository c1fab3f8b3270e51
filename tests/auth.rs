//! Security over real sockets: uids proven by HS256 tokens (URL and first
//! message), the API token on the text port and HTTP API, Origin checks,
//! the per-IP handshake rate and trusted proxies.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use common::v1;
use common::*;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const KEY: &str = "k3y-for-tests-only-0123456789abcdef";
const API: &str = "api-token-for-tests-0123";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token with header `header` and claims `claims`, signed with `key`.
fn token_with(header: &str, claims: &str, key: &str) -> String {
    sign(
        &format!("{}.{}", B64.encode(header), B64.encode(claims)),
        key,
    )
}

/// `signed` (header and payload, as written) with its HS256 signature.
fn sign(signed: &str, key: &str) -> String {
    let sig = hmac_sha256::HMAC::mac(signed.as_bytes(), key.as_bytes());
    format!("{signed}.{}", B64.encode(sig))
}

fn token(claims: &str) -> String {
    token_with(r#"{"alg":"HS256","typ":"JWT"}"#, claims, KEY)
}

fn valid(uid: &str) -> String {
    token(&format!(r#"{{"sub":"{uid}","exp":{}}}"#, now() + 300))
}

fn herald_with_auth(extra: &[&str]) -> (Herald, PathBuf) {
    let f = secret_file(&format!("{KEY}\n"));
    let path = f.to_str().unwrap().to_string();
    let mut flags = vec!["--auth-secret-file", path.as_str()];
    flags.extend_from_slice(extra);
    (Herald::start(&flags), f)
}

/// A raw handshake for `target` with `headers`, from `local` if given;
/// returns the status and the response head.
fn handshake(
    addr: SocketAddr,
    target: &str,
    headers: &[&str],
    local: Option<Ipv4Addr>,
) -> (u16, String, TcpStream) {
    let mut s = tcp_with(addr, local, None);
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    let req = format!(
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    (status_of(&head), head, s)
}

fn ws_to(addr: SocketAddr, target: &str) -> Ws {
    let (ws, resp) = tungstenite::client(format!("ws://{addr}{target}"), tcp(addr))
        .unwrap_or_else(|e| panic!("handshake for {target}: {e}"));
    assert_eq!(resp.status().as_u16(), 101);
    ws
}

/// How many connections `uid` has (the text port has no API token here).
fn online(h: &Herald, uid: &str) -> usize {
    h.text_client().online(uid)
}

#[test]
fn a_token_in_the_url_binds_its_sub_before_any_message() {
    let (h, _f) = herald_with_auth(&[]);
    let mut ws = ws_to(h.ws_addr(), &format!("/?token={}", valid("alice")));
    h.text_client().wait_online("alice", 1);
    let line = r#"{"uid":"alice","m":1}"#;
    assert_eq!(h.push(line), "ok");
    assert_eq!(recv_text(&mut ws), line);
}

#[test]
fn a_token_as_the_first_message_binds_its_sub() {
    let (h, _f) = herald_with_auth(&[]);
    let mut ws = ws_connect(h.ws_addr());
    send_text(&mut ws, &valid("bob"));
    h.text_client().wait_online("bob", 1);
    assert_eq!(h.push(r#"{"uid":"bob","m":2}"#), "ok");
    assert_eq!(recv_text(&mut ws), r#"{"uid":"bob","m":2}"#);
    // A bare uid is not a proof any more.
    let mut claimer = ws_connect(h.ws_addr());
    send_text(&mut claimer, "bob");
    let c = recv_close(&mut claimer);
    assert_eq!((c.code, c.reason.as_str()), (1008, "malformed token"));
    assert_eq!(online(&h, "bob"), 1);
}

/// Every refused token with what herald says about it.
fn bad_tokens() -> Vec<(&'static str, String, &'static str)> {
    let t = now();
    let claims = format!(r#"{{"sub":"mallory","exp":{}}}"#, t + 300);
    let hs = |alg: &str| token_with(&format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#), &claims, KEY);
    let good = token(&claims);
    let (head, _) = good.split_once('.').unwrap();
    vec![
        (
            "forged signature",
            token_with(
                r#"{"alg":"HS256"}"#,
                &claims,
                "some-other-key-0123456789abcdef!",
            ),
            "bad token signature",
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                B64.encode(r#"{"alg":"none"}"#),
                B64.encode(&claims)
            ),
            "token algorithm must be HS256",
        ),
        ("alg HS512", hs("HS512"), "token algorithm must be HS256"),
        ("alg RS256", hs("RS256"), "token algorithm must be HS256"),
        (
            "expired",
            token(&format!(r#"{{"sub":"mallory","exp":{}}}"#, t - 60)),
            "token expired",
        ),
        (
            "not yet valid",
            token(&format!(
                r#"{{"sub":"mallory","exp":{},"nbf":{}}}"#,
                t + 600,
                t + 300
            )),
            "token not yet valid",
        ),
        (
            "wrong audience",
            token(&format!(
                r#"{{"sub":"mallory","exp":{},"aud":"other","iss":"app"}}"#,
                t + 300
            )),
            "token audience not accepted",
        ),
        (
            "wrong issuer",
            token(&format!(
                r#"{{"sub":"mallory","exp":{},"aud":"herald","iss":"evil"}}"#,
                t + 300
            )),
            "token issuer not accepted",
        ),
        // Signed, so that the signature check lets them reach the decoder.
        (
            "malformed base64",
            sign(&format!("{head}.%%%"), KEY),
            "malformed token",
        ),
        (
            "malformed JSON",
            sign(&format!("{head}.{}", B64.encode("{\"sub\":")), KEY),
            "malformed token",
        ),
        (
            "malformed signature",
            format!("{head}.{}.%%%", B64.encode(&claims)),
            "malformed token",
        ),
        ("huge", "a".repeat(5000), "token too long"),
    ]
}

#[test]
fn refused_url_tokens_get_401_and_never_an_upgrade() {
    let (h, _f) = herald_with_auth(&["--auth-audience", "herald", "--auth-issuer", "app"]);
    // With audience and issuer required, a token carrying both is accepted.
    let ok = token(&format!(
        r#"{{"sub":"mallory","exp":{},"aud":"herald","iss":"app"}}"#,
        now() + 300
    ));
    let (status, _, _kept) = handshake(h.ws_addr(), &format!("/?token={ok}"), &[], None);
    assert_eq!(status, 101);
    h.text_client().wait_online("mallory", 1);
    for (what, t, reason) in bad_tokens() {
        let (status, head, mut s) = handshake(h.ws_addr(), &format!("/?token={t}"), &[], None);
        assert_eq!(status, 401, "{what}: {head}");
        let (body, closed) = read_to_close(&mut s, TIMEOUT);
        assert!(closed, "{what}: the connection is closed");
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains(reason), "{what}: {body:?}");
    }
    assert_eq!(online(&h, "mallory"), 1, "no refused token bound anything");
    assert_eq!(h.stats()["auth_refused"], bad_tokens().len());
}

#[test]
fn refused_first_message_tokens_close_with_1008_and_bind_nothing() {
    let (h, _f) = herald_with_auth(&["--auth-audience", "herald", "--auth-issuer", "app"]);
    for (what, t, reason) in bad_tokens() {
        let mut ws = ws_connect(h.ws_addr());
        send_text(&mut ws, &t);
        let c = recv_close(&mut ws);
        assert_eq!((c.code, c.reason.as_str()), (1008, reason), "{what}");
    }
    assert_eq!(online(&h, "mallory"), 0);
    // Good clients are still served.
    let probe = token(&format!(
        r#"{{"sub":"probe","exp":{},"aud":"herald","iss":"app"}}"#,
        now() + 300
    ));
    let mut ws = ws_connect(h.ws_addr());
    send_text(&mut ws, &probe);
    h.text_client().wait_online("probe", 1);
    assert_eq!(h.push(r#"{"uid":"probe"}"#), "ok");
    assert_eq!(recv_text(&mut ws), r#"{"uid":"probe"}"#);
}

/// A Python with PyJWT: `HERALD_PYTHON`, else the repository's `.venv`
/// (which `.ci/run` fills), else `python3`.
fn pyjwt_python() -> Option<String> {
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
    let candidates = [
        std::env::var("HERALD_PYTHON").ok(),
        Some(venv.into()),
        Some("python3".into()),
    ];
    candidates.into_iter().flatten().find(|py| {
        std::process::Command::new(py)
            .args(["-c", "import jwt"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Runs `program args` with the test key as HERALD_AUTH_SECRET; its
/// output's last line, or `None` when the program cannot run here.
fn mint_with(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/mint"))
        .env("HERALD_AUTH_SECRET", KEY)
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let text = String::from_utf8(out.stdout).ok()?;
    text.lines().last().map(str::to_string)
}

#[test]
fn tokens_minted_by_the_readme_examples_are_accepted() {
    // The README's minting code, in examples/mint/: PHP's hash_hmac, PyJWT
    // and Node's jsonwebtoken. CI installs all three (.ci/run).
    let python = pyjwt_python().unwrap_or_else(|| "python3".into());
    let minters = [
        ("php", vec!["php", "mint.php"]),
        ("PyJWT", vec![python.as_str(), "mint.py"]),
        ("jsonwebtoken", vec!["node", "mint.js"]),
    ];
    let (h, _f) = herald_with_auth(&[]);
    let mut checked = Vec::new();
    for (name, cmd) in &minters {
        let uid = format!("minted-by-{name}");
        let mut args = cmd[1..].to_vec();
        args.push(&uid);
        let Some(t) = mint_with(cmd[0], &args) else {
            skip(&format!("the {name} example to run ({cmd:?})"));
            continue;
        };
        let mut ws = ws_to(h.ws_addr(), &format!("/?token={t}"));
        h.text_client().wait_online(&uid, 1);
        let line = format!(r#"{{"uid":"{uid}"}}"#);
        assert_eq!(h.push(&line), "ok", "{name}");
        assert_eq!(recv_text(&mut ws), line, "{name}");
        checked.push(*name);
    }
    eprintln!("tokens accepted from: {checked:?}");
}

#[test]
fn tokens_minted_by_pyjwt_with_an_audience_are_accepted() {
    let Some(py) = pyjwt_python() else {
        skip("a python with PyJWT (pip install pyjwt, or set HERALD_PYTHON)");
        return;
    };
    let script = format!(
        "import jwt, time\n\
         print(jwt.encode({{'sub': 'py-user', 'exp': int(time.time()) + 300, 'nbf': int(time.time()), \
         'aud': ['herald', 'other']}}, '{KEY}', algorithm='HS256'))"
    );
    let out = std::process::Command::new(&py)
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let (h, _f) = herald_with_auth(&["--auth-audience", "herald"]);
    let mut ws = ws_connect(h.ws_addr());
    send_text(&mut ws, &t);
    h.text_client().wait_online("py-user", 1);
    assert_eq!(h.push(r#"{"uid":"py-user"}"#), "ok");
    assert_eq!(recv_text(&mut ws), r#"{"uid":"py-user"}"#);
}

#[test]
fn demo_mode_says_so_at_start() {
    let h = Herald::start(&[]);
    assert!(h.stderr_eventually("demo mode"), "{}", h.stderr());
    let (h, _f) = herald_with_auth(&[]);
    std::thread::sleep(Duration::from_millis(200));
    assert!(!h.stderr().contains("demo mode"), "{}", h.stderr());
}

trait Eventually {
    fn stderr_eventually(&self, text: &str) -> bool;
}

impl Eventually for Herald {
    fn stderr_eventually(&self, text: &str) -> bool {
        let end = std::time::Instant::now() + TIMEOUT;
        while std::time::Instant::now() < end {
            if self.stderr().contains(text) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

#[test]
fn the_text_port_wants_the_api_token_first() {
    let f = secret_file(&format!("{API}\n"));
    let h = Herald::start(&["--api-token-file", f.to_str().unwrap()]);
    // No token: the first line is refused and the connection closes.
    let mut t = h.text_client();
    assert_eq!(t.request(r#"{"uid":"u","m":1}"#), "error unauthorized");
    assert_eq!(
        t.try_reply().ok().flatten(),
        None,
        "closed after the refusal"
    );
    // A wrong token.
    let mut t = h.text_client();
    assert_eq!(
        t.request(r#"{"auth":"api-token-for-tests-0124"}"#),
        "error unauthorized"
    );
    // The right one, then pushes work.
    let mut t = h.text_client();
    assert_eq!(t.request(&format!(r#"{{"auth":"{API}"}}"#)), "ok");
    assert_eq!(t.request(r#"{"uid":"nobody"}"#), "fail");
    assert_eq!(
        t.request(r#"{"count":true}"#),
        r#"{"uids":0,"connections":0}"#
    );
}

#[test]
fn the_http_api_wants_the_bearer_token() {
    let f = secret_file(&format!("{API}\n"));
    let h = Herald::start(&["--api-token-file", f.to_str().unwrap()]);
    let r = http_request(h.http_addr(), "GET", "/stats", &[], None);
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("unauthorized"), "{}", r.body);
    let wrong = "Authorization: Bearer api-token-for-tests-9999";
    let r = http_request(
        h.http_addr(),
        "POST",
        "/push",
        &[wrong],
        Some(r#"{"uid":"u"}"#),
    );
    assert_eq!(r.status, 401);
    let right = format!("Authorization: Bearer {API}");
    let r = http_request(
        h.http_addr(),
        "POST",
        "/push",
        &[&right],
        Some(r#"{"uid":"u"}"#),
    );
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, r#"{"ok":false,"delivered":0}"#)
    );
    let r = http_request(h.http_addr(), "GET", "/stats", &[&right], None);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["unauthorized"], 2);
}

#[test]
fn the_bearer_scheme_is_case_insensitive() {
    // RFC 9110 11.1: the authentication scheme is a case-insensitive token.
    let f = secret_file(&format!("{API}\n"));
    let h = Herald::start(&["--api-token-file", f.to_str().unwrap()]);
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let auth = format!("Authorization: {scheme} {API}");
        let r = http_request(h.http_addr(), "GET", "/stats", &[&auth], None);
        assert_eq!(r.status, 200, "{scheme}: {}", r.body);
    }
    // Another scheme, or a scheme run into its token, is still refused.
    for auth in [
        format!("Authorization: Basic {API}"),
        format!("Authorization: Bearer{API}"),
    ] {
        let r = http_request(h.http_addr(), "GET", "/stats", &[&auth], None);
        assert_eq!(r.status, 401, "{auth}");
    }
}

#[test]
fn a_browser_from_another_origin_gets_403() {
    let h = Herald::start(&[
        "--allow-origin",
        "https://app.example,https://admin.example",
    ]);
    let (status, _, _) = handshake(h.ws_addr(), "/", &["Origin: https://evil.example"], None);
    assert_eq!(status, 403);
    let (status, _, _) = handshake(h.ws_addr(), "/", &["Origin: https://admin.example"], None);
    assert_eq!(status, 101);
    // Not a browser: no Origin, allowed.
    let (status, _, _) = handshake(h.ws_addr(), "/", &[], None);
    assert_eq!(status, 101);
    assert_eq!(h.stats()["origin_refused"], 1);
}

#[test]
fn an_origin_given_with_a_trailing_slash_still_lets_its_browsers_in() {
    // Copied from the address bar: browsers send the Origin without it.
    let h = Herald::start(&["--allow-origin", "https://App.example.com/"]);
    let origin = "Origin: https://app.example.com";
    let (status, _, _) = handshake(h.ws_addr(), "/", &[origin], None);
    assert_eq!(status, 101);
}

#[test]
fn handshakes_per_ip_are_rate_limited() {
    let h = Herald::start(&["--max-handshakes-per-ip", "3"]);
    let mut open = Vec::new();
    for i in 0..3 {
        let (status, head, s) = handshake(h.ws_addr(), "/", &[], None);
        assert_eq!(status, 101, "handshake {i}: {head}");
        open.push(s);
    }
    let (status, head, _) = handshake(h.ws_addr(), "/", &[], None);
    assert_eq!(status, 429, "{head}");
    // Another address has its own budget.
    let (status, _, _) = handshake(h.ws_addr(), "/", &[], Some(Ipv4Addr::new(127, 0, 0, 2)));
    assert_eq!(status, 101);
    // The bucket refills: 3 per second.
    std::thread::sleep(Duration::from_millis(400));
    let (status, _, _) = handshake(h.ws_addr(), "/", &[], None);
    assert_eq!(status, 101);
}

#[test]
fn behind_a_trusted_proxy_the_forwarded_address_is_counted() {
    let h = Herald::start(&["--trusted-proxy", "127.0.0.1", "--max-per-ip", "1"]);
    let from = |client: &str| format!("X-Forwarded-For: 10.1.1.1, {client}");
    let (a, _, _a) = handshake(h.ws_addr(), "/", &[&from("203.0.113.1")], None);
    let (b, _, _b) = handshake(h.ws_addr(), "/", &[&from("203.0.113.2")], None);
    assert_eq!((a, b), (101, 101), "two clients behind one proxy");
    let (c, head, _c) = handshake(h.ws_addr(), "/", &[&from("203.0.113.1")], None);
    assert_eq!(c, 503, "{head}");
    // Not a trusted proxy: its X-Forwarded-For is ignored, its own address counted.
    let h = Herald::start(&["--max-per-ip", "1"]);
    let (a, _, _a) = handshake(h.ws_addr(), "/", &[&from("203.0.113.1")], None);
    let (b, _, _b) = handshake(h.ws_addr(), "/", &[&from("203.0.113.2")], None);
    assert_eq!((a, b), (101, 503));
}

#[test]
fn sighup_rotates_the_secrets_without_dropping_anyone() {
    const NEW_KEY: &str = "the-next-key-for-tests-0123456789";
    const NEW_API: &str = "next-api-token-for-tests";
    let keys = secret_file(&format!("{KEY}\n"));
    let api = secret_file(&format!("{API}\n"));
    let h = Herald::start(&[
        "--auth-secret-file",
        keys.to_str().unwrap(),
        "--api-token-file",
        api.to_str().unwrap(),
    ]);
    let mut backend = h.text_client();
    assert_eq!(backend.request(&format!(r#"{{"auth":"{API}"}}"#)), "ok");
    let mut old = ws_to(h.ws_addr(), &format!("/?token={}", valid("old-tab")));
    assert_eq!(backend.request(r#"{"online":"old-tab"}"#), "1");
    let with_new = |uid: &str| {
        let claims = format!(r#"{{"sub":"{uid}","exp":{}}}"#, now() + 300);
        token_with(r#"{"alg":"HS256"}"#, &claims, NEW_KEY)
    };
    let status = |t: &str| handshake(h.ws_addr(), &format!("/?token={t}"), &[], None).0;
    assert_eq!(status(&with_new("x")), 401, "not yet rotated");

    // During the rotation both keys (and both API tokens) are accepted.
    std::fs::write(&keys, format!("{KEY}\n{NEW_KEY}\n")).unwrap();
    std::fs::write(&api, format!("{API}\n{NEW_API}\n")).unwrap();
    signal(h.pid(), libc::SIGHUP);
    wait_until("the reload is logged", || {
        h.stderr()
            .contains("SIGHUP: reload: 2 uid-token key(s), 2 API token(s)")
    });
    assert_eq!(status(&with_new("x")), 101);
    assert_eq!(status(&valid("x")), 101);
    let mut t = h.text_client();
    assert_eq!(t.request(&format!(r#"{{"auth":"{NEW_API}"}}"#)), "ok");

    // Then the old ones go; what was open stays open and served.
    std::fs::write(&keys, format!("{NEW_KEY}\n")).unwrap();
    std::fs::write(&api, format!("{NEW_API}\n")).unwrap();
    signal(h.pid(), libc::SIGHUP);
    wait_until("the second reload", || {
        h.stderr()
            .contains("SIGHUP: reload: 1 uid-token key(s), 1 API token(s)")
    });
    assert_eq!(status(&valid("x")), 401);
    assert_eq!(status(&with_new("x")), 101);
    let mut late = h.text_client();
    assert_eq!(
        late.request(&format!(r#"{{"auth":"{API}"}}"#)),
        "error unauthorized"
    );
    assert_eq!(backend.request(r#"{"uid":"old-tab","still":"here"}"#), "ok");
    assert_eq!(recv_text(&mut old), r#"{"uid":"old-tab","still":"here"}"#);

    // A bad file changes nothing and says why.
    std::fs::write(&keys, "short\n").unwrap();
    signal(h.pid(), libc::SIGHUP);
    wait_until("the failed reload", || {
        h.stderr().contains("the secrets in use are kept")
    });
    assert!(h.stderr().contains("too short"), "{}", h.stderr());
    assert_eq!(status(&with_new("x")), 101);
}

#[test]
fn a_resuming_client_proves_its_uid_in_the_hello_or_the_url() {
    let (h, _f) = herald_with_auth(&["--history", "10"]);
    let mut in_hello = v1::Client::new("alice");
    in_hello.token = Some(valid("alice"));
    in_hello.connect(h.ws_addr());
    assert_eq!(in_hello.statuses().0, "new");
    let mut in_url = v1::Client::new("bob");
    in_url.path = format!("/?token={}", valid("bob"));
    in_url.connect(h.ws_addr());
    assert_eq!(in_url.statuses().0, "new");
    assert_eq!(h.push(r#"{"uid":"alice","n":1}"#), "ok");
    assert_eq!(h.push(r#"{"uid":"bob","n":1}"#), "ok");
    assert_eq!(in_hello.next_text(), r#"{"uid":"alice","n":1}"#);
    assert_eq!(in_url.next_text(), r#"{"uid":"bob","n":1}"#);
    // A hello that claims a uid instead of proving one is refused.
    let mut claim = v1::Client::new("mallory");
    claim.connect(h.ws_addr());
    let closed = recv_close(claim.ws.as_mut().unwrap());
    assert_eq!(closed.code, 1008);
    assert!(closed.reason.contains("token"), "{closed:?}");
}
