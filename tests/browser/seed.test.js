// A real browser runs the seed's client code against herald; a backend pushes
// through the text port; the page must show the pushed message. Chromium
// always offers permessage-deflate: the connection must have it, a large
// push must arrive compressed (herald's /stats counts it) and intact, and a
// message the page sends (Chromium compresses it) must be inflated and
// routed back.
//
// usage: node seed.test.js PATH_TO_HERALD_BINARY
'use strict';
const { spawn } = require('child_process');
const net = require('net');
const { chromium } = require('playwright-core');

const HERALD = process.argv[2];
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const deadline = setTimeout(() => fail('timed out after 60 s'), 60_000);

let herald;
let browser;

async function cleanup() {
  clearTimeout(deadline);
  if (browser) await browser.close().catch(() => {});
  if (herald) herald.kill('SIGKILL');
}

async function fail(msg) {
  console.error('FAIL: ' + msg);
  await cleanup();
  process.exit(1);
}

function startHerald() {
  return new Promise((resolve, reject) => {
    herald = spawn(HERALD, ['--ws', '127.0.0.1:0', '--text', '127.0.0.1:0', '--http', '127.0.0.1:0', '--routing'], {
      stdio: ['ignore', 'inherit', 'pipe'],
    });
    const ports = {};
    let buf = '';
    herald.stderr.on('data', (d) => {
      process.stderr.write(d);
      buf += d;
      for (const m of buf.matchAll(/ INFO listening (ws|text|http) 127\.0\.0\.1:(\d+)/g)) ports[m[1]] = +m[2];
      if (ports.ws && ports.text && ports.http) resolve(ports);
    });
    herald.on('exit', (code) => reject(new Error('herald exited with ' + code)));
  });
}

// The PHP backend of the seed: connect, write JSON + "\n", read the reply.
function textPort(port, line) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(line + '\n'));
    let got = '';
    s.on('data', (d) => {
      got += d;
      if (got.includes('\n')) {
        s.end();
        resolve(got.trim());
      }
    });
    s.on('error', reject);
    s.setTimeout(5000, () => reject(new Error('text port timeout')));
  });
}

// herald's /stats figures.
function stats(port) {
  return new Promise((resolve, reject) => {
    require('http')
      .get({ host: '127.0.0.1', port, path: '/stats' }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve(JSON.parse(body)));
      })
      .on('error', reject);
  });
}

(async () => {
  const ports = await startHerald();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  const page = await browser.newPage();
  const alerts = [];
  page.on('dialog', async (d) => {
    alerts.push(d.message());
    await d.dismiss();
  });
  // The seed's client code, unchanged but for the port.
  await page.setContent(`<!doctype html><body><pre id="log"></pre><script>
var ws = new WebSocket('ws://127.0.0.1:${ports.ws}');
ws.onopen = function(){
    var uid = 'uid1';
    ws.send(uid);
};
ws.onmessage = function(e){
    document.getElementById('log').textContent += e.data + '\\n';
    alert(e.data);
};
</script></body>`);

  // Wait until the browser's uid is bound.
  for (let i = 0; ; i++) {
    if ((await textPort(ports.text, '{"online":"uid1"}')) === '1') break;
    if (i > 100) return fail('uid1 never came online');
    await new Promise((r) => setTimeout(r, 50));
  }
  const line = '{"uid":"uid1","percent":"88%"}';
  const reply = await textPort(ports.text, line);
  if (reply !== 'ok') return fail(`push reply was ${JSON.stringify(reply)}, expected "ok"`);
  const offline = await textPort(ports.text, '{"uid":"uid2","percent":"1%"}');
  if (offline !== 'fail') return fail(`push to an offline uid replied ${JSON.stringify(offline)}`);

  await page.waitForFunction((l) => document.getElementById('log').textContent.includes(l), line, { timeout: 10_000 });
  for (let i = 0; i < 100 && alerts.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
  if (alerts[0] !== line) return fail(`alert showed ${JSON.stringify(alerts[0])}, expected ${line}`);
  console.log(`ok: Chromium ${browser.version()} received ${line} from herald (alert + page)`);

  // permessage-deflate, negotiated the way herald offers it.
  const ext = await page.evaluate(() => ws.extensions);
  const want = 'permessage-deflate; server_no_context_takeover; client_no_context_takeover';
  if (ext !== want) return fail(`ws.extensions is ${JSON.stringify(ext)}, expected ${JSON.stringify(want)}`);
  // Pushes of 40, 5, 300 and 12 items (about 2.8 KiB, 350 B, 21 KiB and
  // 850 B): herald's own encoder under 16 KiB, zlib-rs over it, each
  // message inflated on its own by Chromium.
  const sizes = [];
  for (const n of [40, 5, 300, 12]) {
    const items = [];
    for (let i = 0; i < n; i++) items.push({ id: i, name: `item ${i}`, price: `${i % 9}.99`, tags: ['new', 'sale'] });
    const big = JSON.stringify({ uid: 'uid1', n, items });
    const before = (await stats(ports.http)).compressed_messages;
    if ((await textPort(ports.text, big)) !== 'ok') return fail(`the ${big.length}-byte push was not ok`);
    await page.waitForFunction((l) => document.getElementById('log').textContent.includes(l), big, { timeout: 10_000 });
    const after = (await stats(ports.http)).compressed_messages;
    if (after !== before + 1) return fail(`compressed_messages went from ${before} to ${after} for a ${big.length}-byte push, expected one more`);
    sizes.push(big.length);
  }
  // The page sends a large message (Chromium compresses what it sends);
  // herald inflates it and routes it back to uid1.
  const echo = 'x'.repeat(3000) + 'end';
  const inflated = (await stats(ports.http)).inflated_messages;
  await page.evaluate((m) => ws.send('uid1:' + m), echo);
  await page.waitForFunction((l) => document.getElementById('log').textContent.includes(l), echo, { timeout: 10_000 });
  const inflatedAfter = (await stats(ports.http)).inflated_messages;
  if (inflatedAfter !== inflated + 1) return fail(`inflated_messages went from ${inflated} to ${inflatedAfter}: the page's message did not arrive compressed`);
  console.log(`ok: permessage-deflate: ${sizes.join(', ')}-byte pushes received compressed, ${echo.length}-byte page message routed`);
  await cleanup();
  process.exit(0);
})().catch((e) => fail(e.stack || String(e)));
