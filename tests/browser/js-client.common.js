// What the JS client's two live tests share (js-client.test.js in Chromium,
// js-client.node.test.mjs in Node with ws): a throw-away Redis and two herald
// nodes on it, HS256 tokens, the text port, and the scenario both run.
//
// The restart is a real one: node A (the one the client talks to) is killed
// with SIGKILL and started again on the same ports; history (--history 100)
// lives in Redis, so it outlives A. The messages "pushed while the client was
// away" are pushed while A is down, through node B (--ws off, same Redis:
// a backend of the cluster), so they can only reach the client by the resume
// (`since` in the reconnect's hello), never live. Pushing them into the
// restarted A before the client came back would race the client's retry
// timer, and a push made before A's Redis link is up is not kept.
// Topics are streams too (history in Redis): topic messages published while
// A is down are resumed like the uid's, and after the restart a live topic
// publish to A only arrives if the client resubscribed (membership a client
// made itself lasts as long as its connection).
'use strict';
const { spawn } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');

const UID = 'b1';
const TOPIC = 'news';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Every process started here, killed on exit whatever happens.
const children = new Set();
let tmp;
function killAll() {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children.clear();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  tmp = undefined;
}
process.on('exit', killAll);

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// Starts `cmd` and resolves once every pattern of `ready` matched its output
// (stderr for herald, stdout for Redis); rejects if it exits first.
function startProcess(name, cmd, args, ready, stream = 'stderr') {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    let done = false;
    const onData = (d) => {
      if (name.startsWith('herald')) process.stderr.write(`${name}: ${d}`);
      out += d;
      if (!done && ready.every((re) => re.test(out))) {
        done = true;
        resolve({ child, out });
      }
    };
    child[stream].on('data', onData);
    child[stream === 'stderr' ? 'stdout' : 'stderr'].on('data', (d) => process.stderr.write(`${name}: ${d}`));
    child.on('error', reject);
    child.on('exit', (code, sig) => {
      children.delete(child);
      if (!done) reject(new Error(`${name} exited (${code ?? sig}) before it was ready:\n${out}`));
    });
  });
}

async function startRedis() {
  for (let i = 0; ; i++) {
    const port = await freePort();
    try {
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
      await startProcess('redis', 'redis-server', args, [/Ready to accept connections/], 'stdout');
      return port;
    } catch (e) {
      if (i == 2) throw e; // the port was taken meanwhile, three times
    }
  }
}

// Node A (WebSocket, tokens required) or B (text port only). ws and text
// are "127.0.0.1:PORT" (port 0 at first, A's own ports for its restart).
async function startHerald(bin, name, redisPort, secret, ws, text) {
  const args = ['--ws', ws, '--text', text, '--http', 'off'];
  args.push('--redis', `redis://127.0.0.1:${redisPort}`, '--history', '100');
  // Leeway 0: a token is refused from its exp on, not 5 s later.
  if (secret) args.push('--auth-secret-file', secret, '--auth-leeway', '0');
  const ready = [/ INFO listening text 127\.0\.0\.1:\d+/, / INFO redis: up/];
  if (ws !== 'off') ready.push(/ INFO listening ws 127\.0\.0\.1:\d+/);
  const { child, out } = await startProcess(name, bin, args, ready);
  const port = (kind) => +(out.match(new RegExp(` INFO listening ${kind} 127\\.0\\.0\\.1:(\\d+)`)) || [])[1];
  return { child, ws: port('ws'), text: port('text') };
}

// Redis, node A (what the client connects to) and node B (a backend's).
async function startCluster(bin) {
  if (!bin || !fs.existsSync(bin)) throw new Error(`no herald binary at ${bin}`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-js-'));
  const key = crypto.randomBytes(48).toString('base64');
  const secret = path.join(tmp, 'secret');
  fs.writeFileSync(secret, key + '\n', { mode: 0o600 });
  const redis = await startRedis();
  const c = { bin, key, secret, redis };
  c.a = await startHerald(bin, 'heraldA', redis, secret, '127.0.0.1:0', '127.0.0.1:0');
  c.b = await startHerald(bin, 'heraldB', redis, null, 'off', '127.0.0.1:0');
  c.url = `ws://127.0.0.1:${c.a.ws}/`;
  return c;
}

async function killA(c) {
  const exited = new Promise((r) => c.a.child.once('exit', r));
  c.a.child.kill('SIGKILL');
  await exited;
}

async function restartA(c) {
  const { ws, text } = c.a;
  c.a = await startHerald(c.bin, 'heraldA', c.redis, c.secret, `127.0.0.1:${ws}`, `127.0.0.1:${text}`);
}

// An HS256 JWT for `claims`, signed with `key`.
function mint(key, claims) {
  const b64 = (s) => Buffer.from(s).toString('base64url');
  const signed = b64('{"alg":"HS256","typ":"JWT"}') + '.' + b64(JSON.stringify(claims));
  return signed + '.' + crypto.createHmac('sha256', key).update(signed).digest('base64url');
}

// One line to a text port, its one-line reply.
function textPort(port, line) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(line + '\n'));
    let got = '';
    s.setEncoding('utf8');
    s.on('data', (d) => {
      got += d;
      if (got.includes('\n')) {
        s.end();
        resolve(got.trim());
      }
    });
    s.on('error', reject);
    s.setTimeout(5000, () => {
      s.destroy();
      reject(new Error(`text port ${port}: no reply to ${line}`));
    });
  });
}

// The client's token function, on the test's side: the first token expires
// 2 s after it is minted, the later ones after a minute.
function tokenSource(c) {
  const t = { calls: 0, first: null, firstExp: 0 };
  t.next = () => {
    t.calls++;
    const exp = Math.floor(Date.now() / 1000) + (t.calls == 1 ? 2 : 60);
    const token = mint(c.key, { sub: UID, exp, topics: [TOPIC] });
    if (t.calls == 1) [t.first, t.firstExp] = [token, exp];
    return token;
  };
  return t;
}

// The scenario. `client` runs a Herald somewhere and reports to the test:
//   client.events: [{name, arg, t}] in order, t in ms on the client's clock;
//     names: the Herald events, and `open` for every WebSocket it constructs;
//   client.start(url, tokenSource) makes the Herald (token: async () =>
//     tokenSource.next(), topics ["news"], heartbeat true) and connects it;
//   client.rawHello(url, token) opens a bare herald.v1 WebSocket, sends
//     {"token": token}, resolves to its close code.
async function run(c, client, pass) {
  const ev = client.events;
  const check = (ok, what) => {
    if (!ok) throw new Error(what);
  };
  const waitFor = async (what, pred, ms = 10_000) => {
    const end = Date.now() + ms;
    for (;;) {
      const e = ev.find(pred);
      if (e) return e;
      if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}; events:\n${dump(ev)}`);
      await sleep(20);
    }
  };
  const after = (i) => ev.slice(i);
  const named = (list, name) => list.filter((e) => e.name == name);
  const recoverOf = (list, stream) => (named(list, 'recover').find((e) => e.arg.stream == stream) || {}).arg;
  const tokens = tokenSource(c);

  // 1. Connect.
  client.start(c.url, tokens);
  const first = await waitFor('connect', (e) => e.name == 'connect');
  check(first.arg.attempt === 0, `first connect attempt ${first.arg.attempt}, expected 0`);
  for (const [s, want] of [[`u:${UID}`, 'new'], ['all', 'new'], [`t:${TOPIC}`, 'new']]) {
    const got = (recoverOf(ev, s) || {}).status;
    check(got == want, `first hello: recover ${s} ${got}, expected ${want}`);
  }
  check(tokens.calls == 1, `token() called ${tokens.calls} times for the first connect`);
  pass(`connect: token from token(), u:${UID} new, all new, t:${TOPIC} new`);

  // 2. A uid push through A and one through B (the cluster), a topic publish.
  const msg = (stream, data) => (e) => e.name == 'message' && e.arg.stream == stream && e.arg.data == data;
  for (const [node, line] of [['A', `{"uid":"${UID}","n":0}`], ['B', `{"uid":"${UID}","via":"B"}`]]) {
    const reply = await textPort(c[node.toLowerCase()].text, line);
    check(reply == 'ok', `push through ${node} replied ${reply}`);
    await waitFor(`push ${line}`, msg(`u:${UID}`, line));
  }
  const last = named(ev, 'message').at(-1).arg;
  const news1 = `{"topic":"${TOPIC}","n":1}`;
  const pub = await textPort(c.a.text, news1);
  check(pub == 'ok 1', `topic publish replied ${pub}, expected ok 1`);
  const t1 = await waitFor('topic message', msg(`t:${TOPIC}`, news1));
  check(t1.arg.topic == TOPIC, `topic message has topic ${t1.arg.topic}`);
  const lastTopic = t1.arg;
  pass(`uid pushes through node A and node B arrive (u:${UID} at ${last.epoch}:${last.offset}); topic publish arrives`);

  // 3. Let the first token expire, then kill A and push while it is down.
  const wait = tokens.firstExp * 1000 + 300 - Date.now();
  if (wait > 0) await sleep(wait);
  const cut = ev.length;
  await killA(c);
  const killed = Date.now();
  const away = [];
  for (let n = 1; n <= 5; n++) {
    const line = `{"uid":"${UID}","away":${n}}`;
    away.push(line);
    const reply = await textPort(c.b.text, line);
    check(reply == 'fail', `push ${n} while A is down replied ${reply}, expected fail (nobody holds ${UID})`);
  }
  const awayTopic = [];
  for (let n = 1; n <= 3; n++) {
    const line = `{"topic":"${TOPIC}","away":${n}}`;
    awayTopic.push(line);
    const reply = await textPort(c.b.text, line);
    check(reply == 'fail', `topic publish ${n} while A is down replied ${reply}, expected fail (no member anywhere)`);
  }
  // A stays down 600 ms: the first retry (within 500 ms) fails for sure, and
  // rarely more than three do. The reconnect may wait up to the 20 s cap.
  await sleep(killed + 600 - Date.now());
  await restartA(c);
  const again = await waitFor('the reconnect', (e, i) => i >= cut && e.name == 'connect', 21_000);
  const outage = ev.slice(cut, ev.indexOf(again) + 1);

  // 4. Reconnect with jitter: each delay reported within its cap, honoured.
  const downs = named(outage, 'disconnect');
  check(downs.length >= 2, `${downs.length} disconnects while A was down, expected at least 2 (the kill, a failed retry)`);
  check(downs[0].arg.code == 1006, `the kill closed with ${downs[0].arg.code}, expected 1006`);
  const shown = [];
  for (const [n, d] of downs.entries()) {
    const cap = Math.min(20000, 500 * 2 ** n);
    check(d.arg.reconnect === true, `disconnect ${n} says reconnect ${d.arg.reconnect}`);
    check(Number.isInteger(d.arg.delay) && d.arg.delay >= 0 && d.arg.delay <= cap, `retry ${n}: delay ${d.arg.delay} not in [0, ${cap}]`);
    const open = outage.slice(outage.indexOf(d)).find((e) => e.name == 'open');
    check(open, `no WebSocket opened after disconnect ${n}`);
    const waited = open.t - d.t;
    // Early by at most timer rounding; late by the token round trip and a busy machine.
    check(waited >= d.arg.delay - 5 && waited <= d.arg.delay + 3000, `retry ${n}: opened ${waited.toFixed(0)} ms after a ${d.arg.delay} ms delay`);
    shown.push(`${d.arg.delay}/${cap} ms (waited ${waited.toFixed(0)})`);
  }
  check(again.arg.attempt == downs.length, `reconnect reports attempt ${again.arg.attempt}, expected ${downs.length}`);
  pass(`herald A killed (1006) and restarted on port ${c.a.ws}: ${downs.length} retries with full jitter, delay/cap ${shown.join(', ')}; connect attempt ${again.arg.attempt}`);

  // 5. Resume: every message pushed while away, in order, once.
  const rec = recoverOf(outage, `u:${UID}`);
  check(rec && rec.status == 'ok', `recover u:${UID} ${rec && rec.status}, expected ok`);
  check((recoverOf(outage, 'all') || {}).status == 'ok', `recover all ${(recoverOf(outage, 'all') || {}).status}, expected ok`);
  await sleep(300); // anything extra (a duplicate) would come now
  const got = named(after(cut), 'message').filter((e) => e.arg.stream == `u:${UID}`).map((e) => e.arg);
  check(JSON.stringify(got.map((m) => m.data)) == JSON.stringify(away), `after the reconnect u:${UID} got ${JSON.stringify(got.map((m) => m.data))}, expected ${JSON.stringify(away)}`);
  for (const [i, m] of got.entries()) {
    check(m.epoch == last.epoch && m.offset == last.offset + 1 + i, `replayed message ${i} at ${m.epoch}:${m.offset}, expected ${last.epoch}:${last.offset + 1 + i}`);
  }
  pass(`resume: recover u:${UID} ok, all ok; the 5 messages pushed while A was down arrived in order, once, at offsets ${got[0].offset}..${got.at(-1).offset}`);
  const recT = recoverOf(outage, `t:${TOPIC}`);
  check(recT && recT.status == 'ok', `recover t:${TOPIC} ${recT && recT.status}, expected ok`);
  const gotT = named(after(cut), 'message').filter((e) => e.arg.stream == `t:${TOPIC}`).map((e) => e.arg);
  check(JSON.stringify(gotT.map((m) => m.data)) == JSON.stringify(awayTopic), `after the reconnect t:${TOPIC} got ${JSON.stringify(gotT.map((m) => m.data))}, expected ${JSON.stringify(awayTopic)}`);
  for (const [i, m] of gotT.entries()) {
    check(m.epoch == lastTopic.epoch && m.offset == lastTopic.offset + 1 + i, `replayed topic message ${i} at ${m.epoch}:${m.offset}, expected ${lastTopic.epoch}:${lastTopic.offset + 1 + i}`);
  }
  pass(`resume: recover t:${TOPIC} ok; the 3 topic messages published while A was down arrived in order, once, at offsets ${gotT[0].offset}..${gotT.at(-1).offset}`);

  // 6. Tokens: a fresh one for the reconnect; the first one is refused now.
  check(tokens.calls >= 2, `token() called ${tokens.calls} times`);
  const refused = named(after(cut), 'disconnect').filter((e) => e.arg.code == 4401);
  check(refused.length == 0, 'the reconnect was refused with 4401: a stale token was sent');
  check(named(ev, 'error').length == 0, `error events: ${JSON.stringify(named(ev, 'error'))}`);
  const code = await client.rawHello(c.url, tokens.first);
  check(code == 4401, `the first token (exp ${tokens.firstExp}) is now closed with ${code}, expected 4401`);
  pass(`tokens: token() called ${tokens.calls} times; the first token has expired (a hello with it gets 4401), the reconnect used a fresh one`);

  // 7. Resubscribed: the restarted A knows the topic only from the new hello.
  const news2 = `{"topic":"${TOPIC}","n":2}`;
  const pub2 = await textPort(c.a.text, news2);
  check(pub2 == 'ok 1', `topic publish after the restart replied ${pub2}, expected ok 1`);
  await waitFor('topic message after the restart', msg(`t:${TOPIC}`, news2));
  pass('resubscribed: a topic publish to the restarted node arrives');

  // 8. Kick: closed with 4500, no reconnect. The killed A's presence in
  // Redis is swept a few seconds after its death; wait for that first.
  const online = () => textPort(c.a.text, `{"online":"${UID}"}`);
  const end = Date.now() + 15_000;
  while ((await online()) != '1') {
    check(Date.now() < end, `online ${UID} did not come to 1 within 15 s of the restart`);
    await sleep(200);
  }
  const kickAt = ev.length;
  const calls = tokens.calls;
  const kick = await textPort(c.a.text, `{"kick":"${UID}"}`);
  check(kick == 'ok 1', `kick replied ${kick}, expected ok 1`);
  const k = await waitFor('the kick', (e, i) => i >= kickAt && e.name == 'disconnect');
  const want = JSON.stringify({ code: 4500, reason: 'kicked', reconnect: false, delay: -1 });
  check(JSON.stringify(k.arg) == want, `kick gave disconnect ${JSON.stringify(k.arg)}, expected ${want}`);
  for (let i = 0; i < 12; i++) {
    const n = await online();
    check(n == '0', `online ${UID} is ${n} ${i * 250} ms after the kick`);
    await sleep(250);
  }
  const later = after(kickAt).filter((e) => e.name != 'disconnect');
  check(later.length == 0, `after the kick: ${dump(later)}`);
  check(tokens.calls == calls, 'token() called after the kick');
  pass(`kick: disconnect ${want}; no reconnect, no token() call, online ${UID} 0 for 3 s`);
}

function dump(list) {
  return list.map((e) => `  ${e.t.toFixed(0)} ${e.name} ${JSON.stringify(e.arg)}`).join('\n');
}

module.exports = { startCluster, killAll, run, UID, TOPIC };
