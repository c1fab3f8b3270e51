import test from "node:test";
import assert from "node:assert/strict";
import { Herald } from "../src/herald.js";
import { fakeSockets, fakeClock, settle, welcome, record } from "./fake.mjs";

function client(opts = {}) {
  const ws = fakeSockets();
  const clock = fakeClock();
  const h = new Herald("ws://h/", { uid: "u1", WebSocket: ws.WebSocket, setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout, ...opts });
  const seen = record(h, "disconnect", "error", "connect");
  return { h, ws, clock, seen };
}
const disconnects = (seen) => seen.filter(([e]) => e == "disconnect").map(([, d]) => d);

test("backoff: full jitter within [0, min(maxDelay, minDelay * 2^n)], growing to the cap", () => {
  const draws = [0.999999, 0, 0.5, 0.999999, 0.999999, 0.999999, 0.999999, 0.999999, 0.999999];
  const { h, ws, clock, seen } = client({ random: () => draws.shift() });
  h.connect();
  const caps = [500, 1000, 2000, 4000, 8000, 16000, 20000, 20000, 20000];
  for (const [n, cap] of caps.entries()) {
    ws.last().drop(1006); // never got past the hello: attempt keeps growing
    const d = disconnects(seen)[n];
    assert.equal(d.reconnect, true);
    assert.ok(d.delay >= 0 && d.delay <= cap, `attempt ${n}: ${d.delay} not in [0, ${cap}]`);
    assert.deepEqual(clock.pending(), [d.delay], "one timer, of the delay reported");
    const before = ws.sockets.length;
    if (d.delay > 0) {
      clock.advance(d.delay - 1);
      assert.equal(ws.sockets.length, before, "no reconnect before the delay");
    }
    clock.advance(1);
    assert.equal(ws.sockets.length, before + 1);
  }
  assert.deepEqual(disconnects(seen).map((d) => d.delay), [499, 0, 1000, 3999, 7999, 15999, 19999, 19999, 19999]);
});

test("backoff resets after a connection got its s lines; connect reports the attempt", () => {
  const { h, ws, clock, seen } = client({ random: () => 0.999999, minDelay: 100, maxDelay: 5000 });
  h.connect();
  for (let i = 0; i < 4; i++) {
    ws.last().drop(1006);
    clock.advance(5000);
  }
  assert.equal(disconnects(seen)[3].delay, 799);
  welcome(ws.last());
  assert.deepEqual(seen.at(-1), ["connect", { attempt: 4 }]);
  ws.last().drop(1001);
  assert.equal(disconnects(seen).at(-1).delay, 99, "back to minDelay after a good connection");
});

test("connect reports the attempt when a topic's s line comes before the uid's (herald sends them so)", () => {
  const { h, ws, clock, seen } = client({ random: () => 0.999999, topics: ["news"] });
  h.connect();
  for (let i = 0; i < 3; i++) {
    ws.last().drop(1006);
    clock.advance(5000);
  }
  ws.last().open();
  ws.last().recv("s t:news - 0 off");
  ws.last().recv("s u:u1 E1 0 new");
  ws.last().recv("s all E1 0 new");
  assert.deepEqual(seen.at(-1), ["connect", { attempt: 3 }]);
  ws.last().drop(1006);
  assert.equal(disconnects(seen).at(-1).delay, 499, "attempt reset by the first s line");
});

test("close 4500 (kicked) and the rest of 4500-4999: no reconnect", () => {
  for (const code of [4500, 4999, 4700]) {
    const { h, ws, clock, seen } = client({ random: () => 0 });
    h.connect();
    welcome(ws.last());
    ws.last().drop(code, "kicked");
    assert.deepEqual(disconnects(seen), [{ code, reason: "kicked", reconnect: false, delay: -1 }]);
    assert.deepEqual(clock.pending(), []);
    clock.advance(60000);
    assert.equal(ws.sockets.length, 1);
  }
});

test("close 1008: no reconnect, and an error", () => {
  const { h, ws, clock, seen } = client({ random: () => 0 });
  h.connect();
  ws.last().open();
  ws.last().drop(1008, 'hello: "uid" is missing');
  assert.deepEqual(disconnects(seen), [{ code: 1008, reason: 'hello: "uid" is missing', reconnect: false, delay: -1 }]);
  const errors = seen.filter(([e]) => e == "error");
  assert.equal(errors.length, 1);
  assert.match(errors[0][1].message, /1008/);
  clock.advance(60000);
  assert.equal(ws.sockets.length, 1);
});

test("close 4401 calls the token function again and reconnects with the fresh token", async () => {
  const tokens = ["old", "fresh"];
  let calls = 0;
  const { h, ws, clock, seen } = client({ uid: undefined, token: async () => tokens[calls++], random: () => 0.5 });
  h.connect();
  await settle();
  welcome(ws.last());
  ws.last().drop(4401, "token expired");
  const d = disconnects(seen)[0];
  assert.equal(d.reconnect, true);
  assert.equal(d.delay, 250);
  assert.equal(calls, 1, "the token is fetched when the reconnect starts");
  clock.advance(250);
  await settle();
  assert.equal(calls, 2);
  ws.last().open();
  assert.equal(ws.last().hello.token, "fresh");
});

test("close 4401 with a string token: stop and emit an error", () => {
  const { h, ws, clock, seen } = client({ uid: undefined, token: "abc", random: () => 0 });
  h.connect();
  welcome(ws.last());
  ws.last().drop(4401, "token expired");
  assert.deepEqual(disconnects(seen), [{ code: 4401, reason: "token expired", reconnect: false, delay: -1 }]);
  assert.match(seen.find(([e]) => e == "error")[1].message, /4401/);
  clock.advance(60000);
  assert.equal(ws.sockets.length, 1);
});

test("1006, 1001, 1011, 1012, 4000 and 4499 reconnect", () => {
  for (const code of [1006, 1001, 1011, 1012, 4000, 4499]) {
    const { h, ws, clock, seen } = client({ random: () => 0.5 });
    h.connect();
    welcome(ws.last());
    ws.last().drop(code);
    assert.equal(disconnects(seen)[0].reconnect, true, `code ${code}`);
    clock.advance(250);
    assert.equal(ws.sockets.length, 2, `code ${code}`);
  }
});

test("close(): closes with 1000, no reconnect, late events of the socket are ignored", () => {
  const { h, ws, clock, seen } = client({ random: () => 0 });
  const messages = record(h, "message");
  h.connect();
  welcome(ws.last());
  const s = ws.last();
  h.close();
  assert.deepEqual(s.closedWith, { code: 1000, reason: undefined });
  assert.deepEqual(disconnects(seen), [{ code: 1000, reason: "", reconnect: false, delay: -1 }]);
  s.drop(1006);
  s.recv("m u:u1 E1 1\nlate");
  clock.advance(60000);
  assert.equal(ws.sockets.length, 1);
  assert.equal(messages.length, 0);
  assert.equal(disconnects(seen).length, 1);
  h.connect();
  assert.equal(ws.sockets.length, 2, "connect() after close() starts again");
});

test("close() while the token is being fetched opens nothing", async () => {
  let release;
  const { h, ws } = client({ token: () => new Promise((r) => (release = r)) });
  h.connect();
  h.close();
  release("t");
  await settle();
  assert.equal(ws.sockets.length, 0);
});

test("online: resets the backoff and reconnects at once; close() removes the listener", () => {
  const listeners = new Map();
  globalThis.addEventListener = (name, fn) => listeners.set(name, fn);
  globalThis.removeEventListener = (name, fn) => listeners.get(name) === fn && listeners.delete(name);
  try {
    const { h, ws, clock, seen } = client({ random: () => 0.999999 });
    h.connect();
    assert.equal(typeof listeners.get("online"), "function");
    for (let i = 0; i < 5; i++) {
      ws.last().drop(1006);
      clock.advance(20000);
    }
    ws.last().drop(1006);
    assert.equal(disconnects(seen).at(-1).delay, 15999);
    listeners.get("online")();
    assert.equal(ws.sockets.length, 7, "reconnected without waiting");
    assert.deepEqual(clock.pending(), []);
    ws.last().drop(1006);
    assert.equal(disconnects(seen).at(-1).delay, 499, "attempt reset");
    h.close();
    assert.equal(listeners.has("online"), false);
  } finally {
    delete globalThis.addEventListener;
    delete globalThis.removeEventListener;
  }
});

test("a server stop (4500) removes the online listener too", () => {
  const listeners = new Map();
  globalThis.addEventListener = (name, fn) => listeners.set(name, fn);
  globalThis.removeEventListener = (name, fn) => listeners.get(name) === fn && listeners.delete(name);
  try {
    const { h, ws } = client();
    h.connect();
    welcome(ws.last());
    ws.last().drop(4500, "kicked");
    assert.equal(listeners.has("online"), false);
  } finally {
    delete globalThis.addEventListener;
    delete globalThis.removeEventListener;
  }
});
