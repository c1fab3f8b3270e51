import test from "node:test";
import assert from "node:assert/strict";
import Herald, { Herald as Named } from "../src/herald.js";
import { fakeSockets, fakeClock, settle, welcome, record } from "./fake.mjs";

function client(opts = {}) {
  const ws = fakeSockets();
  const clock = fakeClock();
  const h = new Herald("ws://h/", { WebSocket: ws.WebSocket, setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout, ...opts });
  return { h, ws, clock };
}

test("default and named exports are the same class", () => {
  assert.equal(Herald, Named);
});

test("opens with the herald.v1 subprotocol and sends the hello once open", () => {
  const { h, ws } = client({ uid: "u1", topics: ["news", "room.7"] });
  assert.equal(ws.sockets.length, 0, "nothing before connect()");
  h.connect();
  assert.equal(ws.sockets.length, 1);
  assert.equal(ws.last().url, "ws://h/");
  assert.equal(ws.last().protocols, "herald.v1");
  assert.equal(ws.last().sent.length, 0, "no hello before open");
  ws.last().open();
  assert.deepEqual(ws.last().hello, { uid: "u1", topics: ["news", "room.7"], heartbeat: true });
});

test("connect() twice opens one socket", () => {
  const { h, ws } = client({ uid: "u1" });
  h.connect();
  h.connect();
  assert.equal(ws.sockets.length, 1);
});

test("heartbeat:false leaves heartbeat out; no topics, no since when there are none", () => {
  const { h, ws } = client({ uid: "u1", heartbeat: false });
  h.connect();
  ws.last().open();
  assert.deepEqual(ws.last().hello, { uid: "u1" });
});

test("a string token is sent as token, without uid", () => {
  const { h, ws } = client({ token: "abc" });
  h.connect();
  ws.last().open();
  assert.deepEqual(ws.last().hello, { token: "abc", heartbeat: true });
});

test("a token function is called before every connect", async () => {
  let n = 0;
  const { h, ws, clock } = client({ token: async () => "t" + ++n, random: () => 0 });
  h.connect();
  await settle();
  ws.last().open();
  assert.equal(ws.last().hello.token, "t1");
  ws.last().drop(1006);
  clock.advance(0);
  await settle();
  assert.equal(ws.sockets.length, 2);
  ws.last().open();
  assert.equal(ws.last().hello.token, "t2");
  assert.equal(n, 2);
});

test("a failing token function emits error and retries with backoff", async () => {
  let n = 0;
  const { h, ws, clock } = client({
    token: () => {
      if (++n == 1) throw new Error("offline");
      return "ok";
    },
    random: () => 0.5,
  });
  const seen = record(h, "error");
  h.connect();
  await settle();
  assert.equal(ws.sockets.length, 0);
  assert.equal(seen[0][1].message, "offline");
  assert.deepEqual(clock.pending(), [250]);
  clock.advance(250);
  await settle();
  assert.equal(ws.sockets.length, 1);
});

test("since carries the positions of the last connection", () => {
  const { h, ws, clock } = client({ uid: "u1", random: () => 0 });
  h.connect();
  welcome(ws.last(), "u1", "E1");
  ws.last().recv("m u:u1 E1 1\nhello");
  ws.last().drop(1006);
  clock.advance(0);
  ws.last().open();
  assert.deepEqual(ws.last().hello.since, { "u:u1": "E1:1", all: "E1:0" });
});

test("options.positions seeds since (a page restoring what it saved)", () => {
  const { h, ws } = client({ uid: "u1", positions: { "u:u1": "Q:9" } });
  h.connect();
  ws.last().open();
  assert.deepEqual(ws.last().hello.since, { "u:u1": "Q:9" });
});

test("connect fires after the s-lines of u: and all, not before", () => {
  const { h, ws } = client({ uid: "u1" });
  const seen = record(h, "connect", "recover");
  h.connect();
  ws.last().open();
  ws.last().recv("s u:u1 E1 4 ok");
  assert.deepEqual(seen, [["recover", { stream: "u:u1", status: "ok" }]]);
  ws.last().recv("s all E1 2 lost");
  assert.deepEqual(seen.slice(1), [
    ["recover", { stream: "all", status: "lost" }],
    ["connect", { attempt: 0 }],
  ]);
  ws.last().recv("s t:x E1 0 new");
  assert.equal(seen.filter(([e]) => e == "connect").length, 1);
});

test("no WebSocket anywhere: connect() throws a clear error", () => {
  const h = new Herald("ws://h/", { uid: "u1" });
  assert.equal(globalThis.WebSocket, undefined, "Node 20 has no global WebSocket");
  assert.throws(() => h.connect(), /options\.WebSocket/);
});
