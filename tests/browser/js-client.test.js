// The JS client (clients/js, its built script-tag file) in headless Chromium
// against a real herald cluster: Redis-backed history, tokens from a token
// function that calls back into this process, a topic, herald killed and
// restarted mid-run (the page reconnects with jitter, resubscribes and
// resumes every message pushed while it was away), then a kick that stops
// it for good. The scenario and the cluster: js-client.common.js.
//
// usage: node js-client.test.js PATH_TO_HERALD_BINARY
// Needs clients/js/dist/herald.iife.min.js (npm run build in clients/js;
// .ci/js.sh does) and redis-server. Bounded: 90 s, then it fails; every
// process it started is killed on exit.
'use strict';
const fs = require('fs');
const http = require('http');
const path = require('path');
const { chromium } = require('playwright-core');
const { startCluster, killAll, run } = require('./js-client.common.js');

const HERALD = process.argv[2];
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const DIST = path.join(__dirname, '../../clients/js/dist/herald.iife.min.js');
const started = Date.now();
const deadline = setTimeout(() => fail('timed out after 90 s'), 90_000);

let browser;
let server;

async function cleanup() {
  clearTimeout(deadline);
  if (browser) await browser.close().catch(() => {});
  if (server) server.close();
  killAll();
}

async function fail(msg) {
  console.error('FAIL: ' + msg);
  await cleanup();
  process.exit(1);
}
process.on('SIGTERM', () => fail('stopped by SIGTERM'));
process.on('SIGINT', () => fail('stopped by SIGINT'));

// The page: the built client, and hooks that report to this process. Every
// WebSocket the client constructs is reported as `open`; rawHello uses the
// browser's own class.
const PAGE = `<!doctype html><meta charset="utf-8"><title>herald-client</title>
<script src="/herald.iife.min.js"></script>
<script>
const RealWebSocket = window.WebSocket;
const report = (name, arg) => heraldEvent(name, arg === undefined ? null : arg, performance.now());
window.WebSocket = class extends RealWebSocket {
  constructor(url, protocols) {
    super(url, protocols);
    report('open', { url, protocols });
  }
};
function start(url) {
  const h = new Herald(url, { token: () => heraldToken(), topics: ['news'], heartbeat: true });
  for (const name of ['connect', 'recover', 'subscribe', 'message', 'disconnect']) h.on(name, (a) => report(name, a));
  h.on('error', (e) => report('error', String((e && e.message) || e)));
  window.h = h;
  h.connect();
}
function rawHello(url, token) {
  return new Promise((resolve) => {
    const ws = new RealWebSocket(url, 'herald.v1');
    ws.onopen = () => ws.send(JSON.stringify({ token }));
    ws.onclose = (e) => resolve(e.code);
  });
}
</script>`;

function serve(script) {
  server = http.createServer((req, res) => {
    if (req.url == '/herald.iife.min.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      res.end(script);
    } else if (req.url == '/') {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(PAGE);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

(async () => {
  if (!fs.existsSync(DIST)) return fail(`${DIST} is missing: run npm run build in clients/js first`);
  const httpPort = await serve(fs.readFileSync(DIST));
  const cluster = await startCluster(HERALD);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.error('page error: ' + e.message));
  const events = [];
  let tokens;
  await page.exposeFunction('heraldEvent', (name, arg, t) => events.push({ name, arg, t }));
  await page.exposeFunction('heraldToken', () => tokens.next());
  await page.goto(`http://127.0.0.1:${httpPort}/`);
  const client = {
    events,
    start(url, source) {
      tokens = source;
      page.evaluate((u) => start(u), url).catch((e) => fail('start: ' + e.message));
    },
    rawHello: (url, token) => page.evaluate(([u, t]) => rawHello(u, t), [url, token]),
  };
  console.log(`js-client: Chromium ${browser.version()}, herald A ws ${cluster.a.ws}, Redis ${cluster.redis}`);
  await run(cluster, client, (what) => console.log('PASS: ' + what));
  console.log(`PASS: JS client in Chromium, all checks in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  await cleanup();
  process.exit(0);
})().catch((e) => fail(e.stack || String(e)));
