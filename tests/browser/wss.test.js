// The seed's client code in a real browser over wss:// through a TLS proxy
// (nginx, started by .ci/tls.sh): a backend pushes on herald's text port and
// the page must show the pushed message. seed.test.js starts its own herald
// and speaks ws://; this one is pointed at a proxy that is already running.
//
// usage: node wss.test.js WSS_URL TEXT_PORT [BACKEND_SOURCE_IP]
//   e.g. node wss.test.js wss://127.0.0.1:8443/ 5678 127.0.0.11
// The backend keeps one text-port connection for all its lines; under
// --max-per-ip give it a source address of its own (any of 127/8), as the
// browser's WebSocket already counts against 127.0.0.1.
// The proxy's certificate is a throw-away self-signed one, so Chromium is
// told to accept it (--ignore-certificate-errors, ignoreHTTPSErrors).
'use strict';
const net = require('net');
const { chromium } = require('playwright-core');

const [URL, TEXT_PORT, BACKEND_IP] = [process.argv[2], +process.argv[3], process.argv[4]];
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const UID = 'wss-browser';
const deadline = setTimeout(() => fail('timed out after 60 s'), 60_000);

let browser;
let backend;

async function cleanup() {
  clearTimeout(deadline);
  if (browser) await browser.close().catch(() => {});
  if (backend) backend.destroy();
}

async function fail(msg) {
  console.error('FAIL: ' + msg);
  await cleanup();
  process.exit(1);
}

// The backend: one connection; each JSON line + "\n" gets one reply line,
// in order.
const waiting = [];
let received = '';
function textPort(line) {
  if (!backend) {
    backend = net.connect({ port: TEXT_PORT, host: '127.0.0.1', localAddress: BACKEND_IP });
    backend.setEncoding('utf8');
    backend.on('data', (d) => {
      received += d;
      let nl;
      while ((nl = received.indexOf('\n')) >= 0) {
        const reply = received.slice(0, nl).trim();
        received = received.slice(nl + 1);
        const w = waiting.shift();
        if (w) w.resolve(reply);
      }
    });
    const broken = (e) => {
      for (const w of waiting.splice(0)) w.reject(e);
    };
    backend.on('error', broken);
    backend.on('close', () => broken(new Error('text port closed the connection')));
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('text port: no reply within 5 s')), 5000);
    waiting.push({
      resolve: (r) => (clearTimeout(timer), resolve(r)),
      reject: (e) => (clearTimeout(timer), reject(e)),
    });
    backend.write(line + '\n');
  });
}

(async () => {
  if (!/^wss:\/\//.test(URL || '') || !TEXT_PORT) return fail('usage: node wss.test.js WSS_URL TEXT_PORT');
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--ignore-certificate-errors',
    ],
  });
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  // The seed's client code, but for the wss:// URL and the uid.
  await page.setContent(`<!doctype html><body><pre id="log"></pre><pre id="err"></pre><script>
var ws = new WebSocket(${JSON.stringify(URL)});
ws.onopen = function(){
    var uid = ${JSON.stringify(UID)};
    ws.send(uid);
};
ws.onmessage = function(e){
    document.getElementById('log').textContent += e.data + '\\n';
};
ws.onerror = ws.onclose = function(e){
    document.getElementById('err').textContent += e.type + ' ' + (e.code || '') + '\\n';
};
</script></body>`);

  // Wait until the browser's uid is bound.
  for (let i = 0; ; i++) {
    if ((await textPort(`{"online":"${UID}"}`)) === '1') break;
    if (i > 200) {
      const err = await page.evaluate(() => document.getElementById('err').textContent);
      return fail(`${UID} never came online over ${URL} (page saw: ${JSON.stringify(err)})`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const line = `{"uid":"${UID}","msg":"over tls"}`;
  const reply = await textPort(line);
  if (reply !== 'ok') return fail(`push reply was ${JSON.stringify(reply)}, expected "ok"`);
  await page.waitForFunction((l) => document.getElementById('log').textContent.includes(l), line, { timeout: 10_000 });
  console.log(`PASS: Chromium ${browser.version()} over ${URL} (nginx, TLS) received ${line} from herald`);
  await cleanup();
  process.exit(0);
})().catch((e) => fail(e.stack || String(e)));
