// Reconnect storm (issue 21): N herald.v1 clients -- the real client,
// clients/js/src/herald.js, over the ws package -- are connected to herald;
// herald is SIGKILLed and started again on the same WebSocket port after
// --pause ms; each client's time to its next `connect` event, counted from the
// kill, goes into a histogram. Shows whether the full-jitter backoff spreads
// the reconnects over its window or whether they all land at once.
//
// usage (the shell must allow the sockets: one per client, plus some):
//   ulimit -n 20000; node benches/storm/storm.mjs --herald target/release/herald
// options (defaults in brackets):
//   --herald PATH     herald binary [target/release/herald]
//   --n N             clients, uids s1..sN [10000]
//   --pause MS        time between the kill and the new start [1000]
//   --clients LIST    phases, in turn, each with a fresh herald and fresh clients:
//                     jitter = the client's defaults (0.5 s base, 20 s cap, full jitter),
//                     naive  = minDelay 1, maxDelay 1 (every retry at once) [jitter]
//   --threads T       event loops (worker threads) the clients are spread over [2]
//   --bucket MS       histogram bucket [500]
//   --window N        connects in flight while opening the clients, all threads [500]
//   --limit S         a phase fails if not every client reconnected S s after the kill [60]
// Bounded: opening the clients is cut after 120 s, each phase after --limit,
// the whole run after 10 minutes; every process started here is killed on exit.
// Exit status 1 when a phase did not see every client reconnect in time.

import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import WebSocket from "ws";
import Herald from "../../clients/js/src/herald.js";

// Epoch ms, comparable across the threads, the poller and herald's log.
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const HERE = fileURLToPath(import.meta.url);

function options() {
  const o = { herald: "target/release/herald", n: 10000, pause: 1000, clients: "jitter", threads: 2, bucket: 500, window: 500, limit: 60 };
  const a = process.argv.slice(2);
  for (let i = 0; i < a.length; i += 2) {
    const k = a[i].replace(/^--/, "");
    if (!(k in o) || a[i + 1] === undefined) {
      console.error(`unknown option or missing value: ${a[i]}\n` + readFileSync(HERE, "utf8").split("\n").slice(7, 22).join("\n"));
      process.exit(2);
    }
    o[k] = typeof o[k] == "number" ? +a[i + 1] : a[i + 1];
  }
  o.clients = o.clients.split(",");
  for (const c of o.clients) if (c != "jitter" && c != "naive") throw new Error(`--clients: jitter or naive, not ${c}`);
  return o;
}

// ---- one event loop of clients (a worker thread) ----
//
// Messages from the main thread: "record" (from now on, note every attempt,
// disconnect and reconnect), "stop" (send the notes, close the clients).
async function clientThread({ url, from, to, kind, window }) {
  const clientOpts = kind == "naive" ? { minDelay: 1, maxDelay: 1 } : {};
  let recording = false;
  const notes = { back: [], downs: [], due: [], att: [], lag: [], refused: 0 };
  // ws's class, noting every WebSocket the client constructs (an attempt) and
  // whether it opened.
  class Counted extends WebSocket {
    constructor(u, p) {
      super(u, p);
      if (recording) {
        notes.att.push(now());
        this.once("error", () => notes.refused++);
      }
    }
  }
  // The client's timers, noting when each retry was due and how late this
  // event loop ran it (the heartbeat deadline never fires here: nothing is silent).
  const setT = (f, ms) => {
    const due = now() + ms;
    return setTimeout(() => {
      if (recording) notes.lag.push(now() - due);
      f();
    }, ms);
  };
  const clients = [];
  let connected = 0;
  for (let i = from; i < to; i++) {
    while (clients.length - connected >= window) await sleep(5);
    const c = { first: false, back: false, down: false };
    const h = new Herald(url, { uid: `s${i + 1}`, heartbeat: true, WebSocket: Counted, setTimeout: setT, ...clientOpts });
    h.on("connect", () => {
      if (!c.first) (c.first = true), connected++;
      else if (recording && !c.back) (c.back = true), notes.back.push(now());
    });
    h.on("disconnect", ({ delay }) => {
      if (!recording) return;
      const t = now();
      if (!c.down) (c.down = true), notes.downs.push(t);
      if (delay >= 0) notes.due.push(t + delay);
    });
    h.on("error", (e) => console.error(`client s${i + 1}: ${e.message || e}`));
    c.h = h;
    clients.push(c);
    h.connect();
  }
  while (connected < to - from) await sleep(20);
  parentPort.on("message", (m) => {
    if (m == "record") recording = true;
    if (m == "stop") {
      recording = false;
      parentPort.postMessage({ notes });
      for (const c of clients) c.h.close();
      setTimeout(() => process.exit(0), 500);
    }
    parentPort.postMessage({ ack: m });
  });
  const progress = setInterval(() => parentPort.postMessage({ back: notes.back.length }), 100);
  progress.unref();
  parentPort.postMessage({ ready: true });
}

// ---- the main thread: herald, the poller, the phases, the report ----

// Every process started here, killed on exit whatever happens.
const children = new Set();
function killAll() {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

// Starts herald; resolves with the child, `up` being the epoch ms at which it
// logged "listening ws" (its own clock, not when this thread read the line).
function startHerald(bin, wsPort, httpPort) {
  const args = ["--ws", `127.0.0.1:${wsPort}`, "--text", "127.0.0.1:0", "--http", `127.0.0.1:${httpPort}`];
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ["ignore", "ignore", "pipe"] });
    children.add(child);
    let log = "";
    const timer = setTimeout(() => reject(new Error("herald did not start in 10 s:\n" + log)), 10_000);
    child.on("error", reject);
    child.on("exit", (code, sig) => {
      children.delete(child);
      if (!child.killedHere) reject(new Error(`herald exited (${code ?? sig}):\n${log}`));
    });
    child.stderr.on("data", (d) => {
      if (log.length < 100_000) log += d;
      const m = /^(\S+) INFO listening ws /m.exec(log);
      if (m && !child.up) {
        child.up = Date.parse(m[1]);
        clearTimeout(timer);
        resolve(child);
      }
    });
  });
}

function killHerald(child) {
  child.killedHere = true;
  child.kill("SIGKILL");
}

// The poller: a child process that samples herald's GET /stats every 100 ms,
// in its own process so that the clients' event loops do not delay it.
function startPoller(httpPort, samples) {
  const child = spawn(process.execPath, [HERE, "--poll", String(httpPort)], { stdio: ["ignore", "pipe", "inherit"] });
  children.add(child);
  let rest = "";
  child.stdout.on("data", (d) => {
    const lines = (rest + d).split("\n");
    rest = lines.pop();
    for (const l of lines) samples.push(JSON.parse(l));
  });
  return child;
}

function poller(port) {
  const poll = () => {
    const start = now();
    const next = () => setTimeout(poll, Math.max(0, start + 100 - now()));
    const req = http.get({ host: "127.0.0.1", port, path: "/stats", agent: false, timeout: 2000 }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => {
        try {
          const s = JSON.parse(body);
          process.stdout.write(JSON.stringify({ t: now(), accepted: s.accepted }) + "\n");
        } catch {}
        next();
      });
    });
    req.on("timeout", () => req.destroy());
    req.on("error", next);
  };
  poll();
}

function startThreads(o, kind, url) {
  const threads = [];
  for (let k = 0; k < o.threads; k++) {
    const from = Math.floor((k * o.n) / o.threads), to = Math.floor(((k + 1) * o.n) / o.threads);
    const w = new Worker(HERE, { workerData: { url, from, to, kind, window: Math.max(1, Math.floor(o.window / o.threads)) } });
    const t = { w, ready: false, back: 0, notes: null, acks: new Set() };
    w.on("message", (m) => {
      if (m.ready) t.ready = true;
      if (m.back !== undefined) t.back = m.back;
      if (m.notes) t.notes = m.notes;
      if (m.ack) t.acks.add(m.ack);
    });
    w.on("error", (e) => {
      console.error("client thread failed: " + (e.stack || e));
      process.exit(1);
    });
    threads.push(t);
  }
  return threads;
}

async function until(what, cond, ms) {
  const start = now();
  while (!cond()) {
    if (now() - start > ms) throw new Error(`timed out after ${ms / 1000} s: ${what}`);
    await sleep(20);
  }
}

async function phase(o, kind) {
  const wsPort = await freePort(), httpPort = await freePort();
  let herald = await startHerald(o.herald, wsPort, httpPort);
  const samples = [];
  const poll = startPoller(httpPort, samples);

  const opened = now();
  const threads = startThreads(o, kind, `ws://127.0.0.1:${wsPort}/`);
  await until(`opening ${o.n} clients`, () => threads.every((t) => t.ready), 120_000);
  const openSecs = (now() - opened) / 1000;
  await sleep(1000); // the last hellos' answers and the poller settle

  for (const t of threads) t.w.postMessage("record");
  await until("record acks", () => threads.every((t) => t.acks.has("record")), 5000);
  const tKill = now();
  killHerald(herald);
  if (o.pause > 0) await sleep(o.pause);
  const tStart = now();
  herald = await startHerald(o.herald, wsPort, httpPort);
  const tUp = herald.up;
  const all = () => threads.reduce((n, t) => n + t.back, 0) >= o.n;
  while (!all() && now() - tKill < o.limit * 1000) await sleep(50);
  await sleep(300); // a last /stats sample

  for (const t of threads) t.w.postMessage("stop");
  await until("the threads' notes", () => threads.every((t) => t.notes), 10_000);
  await Promise.all(threads.map((t) => new Promise((r) => t.w.once("exit", r))));
  poll.kill("SIGKILL");
  killHerald(herald);
  await sleep(500);

  const rel = (xs) => xs.map((t) => t - tKill).sort((a, b) => a - b);
  const cat = (k) => threads.flatMap((t) => t.notes[k]);
  // Server accepts between successive /stats samples of the new herald (each
  // sample's own HTTP connection not counted).
  const accepts = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1], b = samples[i];
    if (b.t < tStart) continue; // the old herald's, or a straggler answered as it died
    const fresh = a.t < tStart; // b is the new herald's first sample
    const n = fresh ? b.accepted - 1 : b.accepted - a.accepted - 1;
    if (n > 0) accepts.push({ t: b.t - tKill, dt: b.t - (fresh ? tUp : a.t), n });
  }
  return {
    kind, n: o.n, openSecs, accepts,
    back: rel(cat("back")), downs: rel(cat("downs")), due: rel(cat("due")), att: rel(cat("att")),
    lag: cat("lag").sort((a, b) => a - b), refused: threads.reduce((n, t) => n + t.notes.refused, 0),
    tUp: tUp - tKill, tStart: tStart - tKill,
  };
}

function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

// The most times within any window of `width` ms, and where it starts.
function busiest(sorted, width) {
  let best = 0, at = 0;
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (sorted[i] - sorted[j] >= width) j++;
    if (i - j + 1 > best) (best = i - j + 1), (at = sorted[j]);
  }
  return { count: best, at };
}

const s = (ms) => (ms / 1000).toFixed(2);

function report(o, r, command) {
  const name = r.kind == "naive" ? "naive clients (minDelay 1, maxDelay 1: every retry at once)" : "the JS client's defaults (0.5 s base, 20 s cap, full jitter)";
  console.log(`\n== ${r.kind}: ${r.n} clients over ${o.threads} event loop(s), ${name}`);
  console.log(`opened in ${r.openSecs.toFixed(1)} s; herald SIGKILLed at t=0, started again at ${s(r.tStart)} s (pause ${o.pause} ms), listening at ${s(r.tUp)} s`);
  if (r.downs.length) console.log(`the clients saw the close between ${s(r.downs[0])} and ${s(r.downs[r.downs.length - 1])} s`);
  console.log(`attempts after the kill: ${r.att.length} (${r.refused} refused or failed); retry timers ran late by p50 ${r.lag.length ? s(percentile(r.lag, 50)) : "-"} s, p99 ${r.lag.length ? s(percentile(r.lag, 99)) : "-"} s (a busy client event loop)`);

  const width = o.bucket;
  const last = r.back.length ? r.back[r.back.length - 1] : 0;
  const buckets = Math.max(1, Math.ceil((Math.max(last, r.tUp) + 1) / width));
  const rows = Array.from({ length: buckets }, () => ({ back: 0, due: 0, att: 0, acc: 0 }));
  const at = (t) => rows[Math.min(buckets - 1, Math.max(0, Math.floor(t / width)))];
  for (const t of r.back) at(t).back++;
  for (const t of r.due) if (t < buckets * width) at(t).due++;
  for (const t of r.att) at(t).att++;
  for (const a of r.accepts) at(a.t).acc += a.n;
  const max = Math.max(...rows.map((x) => x.back), 1);
  console.log(`\nreconnect time = from the kill to the client's next connect event; ${width} ms buckets.`);
  console.log("due = retries the clients scheduled for then; attempts = WebSockets constructed; accepts = herald's /stats `accepted`");
  console.log("  from     to | reconnected |    due | attempts | accepts |");
  for (let b = 0; b < buckets; b++) {
    const x = rows[b];
    const bar = "#".repeat(Math.round((40 * x.back) / max));
    const col = (v, w) => String(v).padStart(w);
    console.log(`${s(b * width).padStart(6)} ${s((b + 1) * width).padStart(6)} | ${col(x.back, 11)} | ${col(x.due, 6)} | ${col(x.att, 8)} | ${col(x.acc, 7)} | ${bar}`);
  }
  const missing = r.n - r.back.length;
  const busy1 = busiest(r.back, 1000);
  const busyDue = busiest(r.due.filter((t) => t >= r.tUp), 1000);
  const peakAcc = r.accepts.reduce((m, a) => Math.max(m, (a.n * 1000) / Math.max(a.dt, 1)), 0);
  const pcs = r.back.length ? [10, 50, 90, 99].map((p) => `p${p} ${s(percentile(r.back, p))} s`).join(", ") + `, max ${s(last)} s` : "none";
  console.log(`\nreconnected: ${r.back.length} of ${r.n}${missing ? ` (${missing} NOT within ${o.limit} s)` : ""}`);
  console.log(`reconnect time: ${pcs}`);
  console.log(`busiest 1 s of reconnects: ${busy1.count} (${((100 * busy1.count) / r.n).toFixed(1)}% of the clients), from ${s(busy1.at)} s`);
  console.log(`busiest 1 s of retries due once herald listened: ${busyDue.count}, from ${s(busyDue.at)} s; herald's peak accept rate between /stats samples: ${Math.round(peakAcc)}/s`);
  console.log(`reproduce: ${command}`);
  const f = (p) => +s(percentile(r.back, p));
  console.log(
    JSON.stringify({
      bench: "storm", clients: r.kind, n: r.n, pause_ms: o.pause, threads: o.threads, reconnected: r.back.length,
      p10_s: f(10), p50_s: f(50), p90_s: f(90), p99_s: f(99), max_s: +s(last),
      busiest_1s: busy1.count, busiest_1s_from_s: +s(busy1.at), busiest_1s_due: busyDue.count,
      attempts: r.att.length, refused: r.refused, timer_lag_p50_s: +s(percentile(r.lag, 50)), timer_lag_p99_s: +s(percentile(r.lag, 99)),
      peak_accepts_per_s: Math.round(peakAcc), listening_at_s: +s(r.tUp), command,
    }),
  );
  return missing == 0;
}

async function main() {
  process.on("exit", killAll);
  for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => (console.error(`stopped by ${sig}`), process.exit(1)));
  const o = options();
  const whole = setTimeout(() => (console.error("FAIL: the whole run took over 10 minutes"), process.exit(1)), 600_000);
  const soft = +(/Max open files\s+(\d+)/.exec(readFileSync("/proc/self/limits", "utf8")) || [])[1];
  if (soft < o.n + 100) console.error(`WARNING: open-file soft limit ${soft} < ${o.n + 100}: run \`ulimit -n 20000\` first`);
  const command =
    `ulimit -n 20000; node benches/storm/storm.mjs --herald ${o.herald} --n ${o.n} --pause ${o.pause} --clients ${o.clients.join(",")} ` +
    `--threads ${o.threads} --bucket ${o.bucket} --window ${o.window} --limit ${o.limit}`;
  const wsVersion = JSON.parse(readFileSync(new URL("./node_modules/ws/package.json", import.meta.url))).version;
  console.log(`storm: Node ${process.version}, ws ${wsVersion}, herald ${o.herald}`);
  let ok = true;
  for (const kind of o.clients) {
    try {
      ok = report(o, await phase(o, kind), command) && ok;
    } catch (e) {
      console.error(`FAIL (${kind}): ${e.stack || e}`);
      ok = false;
      break;
    }
  }
  clearTimeout(whole);
  killAll();
  process.exit(ok ? 0 : 1);
}

if (!isMainThread) await clientThread(workerData);
else if (process.argv[2] == "--poll") poller(+process.argv[3]);
else await main();
