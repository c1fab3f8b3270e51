// The JS client (clients/js, the package's entry src/herald.js) in Node with
// the ws package, through the same scenario as js-client.test.js runs in
// Chromium (js-client.common.js): connect with a token function, uid and
// topic messages, herald killed and restarted (reconnect with jitter,
// resubscribe, resume every message pushed while away), kick stops it.
//
// usage: node js-client.node.test.mjs PATH_TO_HERALD_BINARY
// Needs redis-server. Bounded: 30 s, then it fails; every process it started
// is killed on exit.
import { createRequire } from "node:module";
import WebSocket from "ws";
import { Herald } from "../../clients/js/src/herald.js";

const require = createRequire(import.meta.url);
const { startCluster, killAll, run } = require("./js-client.common.js");

const HERALD = process.argv[2];
const started = Date.now();
const deadline = setTimeout(() => fail("timed out after 30 s"), 30_000);
let h;

function cleanup() {
  clearTimeout(deadline);
  if (h) h.close();
  killAll();
}

function fail(msg) {
  console.error("FAIL: " + msg);
  cleanup();
  process.exit(1);
}
process.on("SIGTERM", () => fail("stopped by SIGTERM"));
process.on("SIGINT", () => fail("stopped by SIGINT"));

const events = [];
const report = (name, arg) => events.push({ name, arg: arg === undefined ? null : arg, t: performance.now() });

// ws's class, reporting every WebSocket the client constructs as `open`.
class Reported extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols);
    report("open", { url, protocols });
  }
}

const client = {
  events,
  start(url, tokens) {
    h = new Herald(url, { token: async () => tokens.next(), topics: ["news"], heartbeat: true, WebSocket: Reported });
    for (const name of ["connect", "recover", "subscribe", "message", "disconnect"]) h.on(name, (a) => report(name, a));
    h.on("error", (e) => report("error", String((e && e.message) || e)));
    h.connect();
  },
  rawHello(url, token) {
    return new Promise((resolve) => {
      const ws = new WebSocket(url, "herald.v1");
      ws.on("open", () => ws.send(JSON.stringify({ token })));
      ws.on("error", () => {});
      ws.on("close", (code) => resolve(code));
    });
  },
};

try {
  const cluster = await startCluster(HERALD);
  console.log(`js-client (Node ${process.version}, ws): herald A ws ${cluster.a.ws}, Redis ${cluster.redis}`);
  await run(cluster, client, (what) => console.log("PASS: " + what));
  console.log(`PASS: JS client in Node, all checks in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  cleanup();
  process.exit(0);
} catch (e) {
  fail(e.stack || String(e));
}
