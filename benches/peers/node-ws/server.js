'use strict';
// The seed push protocol on Node.js + ws, as a peer for herald-bench: the
// same behaviour as `herald --routing`, written the way a Node developer
// would, in one process.
//
//   node server.js WS_PORT TEXT_PORT [HOST]      (defaults 1234 5678 127.0.0.1)
//
// - WebSocket: a client's first text message is its uid; later messages are
//   routed: `all:<message>` to every bound client, `<uid>:<message>` to uid.
// - Text port: newline-delimited JSON lines such as
//   {"uid":"uid1","percent":"88%"}; the raw line goes to uid1's connections
//   and the backend reads `ok` (at least one connection) or `fail`.

const net = require('net');
const { WebSocketServer } = require('ws');

const wsPort = Number(process.argv[2] || 1234);
const textPort = Number(process.argv[3] || 5678);
const host = process.argv[4] || '127.0.0.1';

/** uid -> Set of WebSocket connections bound to it. */
const byUid = new Map();

function bind(ws, uid) {
  let set = byUid.get(uid);
  if (set === undefined) {
    set = new Set();
    byUid.set(uid, set);
  }
  set.add(ws);
}

function unbind(ws, uid) {
  const set = byUid.get(uid);
  if (set === undefined) return;
  set.delete(ws);
  if (set.size === 0) byUid.delete(uid);
}

/** Sends `data` to every connection of `uid`; returns how many. */
function sendToUid(uid, data) {
  const set = byUid.get(uid);
  if (set === undefined) return 0;
  for (const ws of set) ws.send(data);
  return set.size;
}

function broadcast(data) {
  // Encode once, not once per recipient.
  const buf = Buffer.from(data);
  for (const set of byUid.values()) {
    for (const ws of set) ws.send(buf, { binary: false });
  }
}

// The app keeps its own registry of bound clients, so ws need not keep one.
const wss = new WebSocketServer({ host, port: wsPort, clientTracking: false });

wss.on('connection', (ws) => {
  let uid = null;
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    const text = data.toString();
    if (uid === null) {
      uid = text;
      bind(ws, uid);
      return;
    }
    const colon = text.indexOf(':');
    if (colon < 0) return;
    const to = text.slice(0, colon);
    const message = text.slice(colon + 1);
    if (to === 'all') broadcast(message);
    else sendToUid(to, message);
  });
  ws.on('close', () => {
    if (uid !== null) unbind(ws, uid);
  });
  ws.on('error', () => {});
});

wss.on('listening', () => {
  console.log(`node-ws: listening ws ${host}:${wsPort}`);
});

function onLine(line) {
  let uid;
  try {
    uid = JSON.parse(line).uid;
  } catch (e) {
    return 'fail';
  }
  if (typeof uid !== 'string' && typeof uid !== 'number') return 'fail';
  return sendToUid(String(uid), line) > 0 ? 'ok' : 'fail';
}

const text = net.createServer((sock) => {
  sock.setNoDelay(true);
  sock.setEncoding('utf8');
  let pending = '';
  sock.on('data', (chunk) => {
    pending += chunk;
    let start = 0;
    let nl;
    let replies = '';
    while ((nl = pending.indexOf('\n', start)) >= 0) {
      let line = pending.slice(start, nl);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      start = nl + 1;
      replies += onLine(line) + '\n';
    }
    pending = pending.slice(start);
    // One write per chunk read: the replies of pipelined lines travel together.
    if (replies !== '') sock.write(replies);
  });
  sock.on('error', () => {});
});

text.listen(textPort, host, () => {
  console.log(`node-ws: listening text ${host}:${textPort}`);
});

function stop() {
  text.close();
  wss.close();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
