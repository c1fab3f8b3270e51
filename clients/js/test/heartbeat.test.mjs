import test from "node:test";
import assert from "node:assert/strict";
import { Herald } from "../src/herald.js";
import { fakeSockets, fakeClock, welcome, record } from "./fake.mjs";

function connected(opts = {}) {
  const ws = fakeSockets();
  const clock = fakeClock();
  const h = new Herald("ws://h/", { uid: "u1", WebSocket: ws.WebSocket, setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout, random: () => 0.5, ...opts });
  const seen = record(h, "disconnect", "message");
  h.connect();
  welcome(ws.last());
  return { h, ws, clock, seen };
}

test("silence for SECONDS+10 after h SECONDS closes with 4000 and reconnects", () => {
  const { ws, clock, seen } = connected();
  const s = ws.last();
  s.recv("h 25");
  clock.advance(34999);
  assert.equal(s.closedWith, null);
  clock.advance(1);
  assert.deepEqual(s.closedWith, { code: 4000, reason: "no heartbeat" });
  assert.deepEqual(seen, [["disconnect", { code: 4000, reason: "no heartbeat", reconnect: true, delay: 250 }]]);
  clock.advance(250);
  assert.equal(ws.sockets.length, 2);
  s.drop(1006); // the dead socket's own close event, much later
  assert.equal(seen.length, 1, "ignored");
});

test("every message, h or m, resets the heartbeat deadline", () => {
  const { ws, clock, seen } = connected();
  const s = ws.last();
  s.recv("h 5");
  for (let i = 0; i < 10; i++) {
    clock.advance(14000);
    s.recv(i % 2 ? "h" : `m u:u1 E1 ${i + 1}\nx`);
  }
  assert.equal(s.closedWith, null);
  assert.equal(seen.filter(([e]) => e == "message").length, 5);
  clock.advance(15000);
  assert.equal(s.closedWith.code, 4000);
});

test("no h SECONDS line, no deadline (a server that does not do heartbeats)", () => {
  const { ws, clock } = connected();
  clock.advance(600000);
  assert.equal(ws.last().closedWith, null);
  assert.deepEqual(clock.pending(), []);
});

test("the deadline ends with the connection", () => {
  const { ws, clock, seen } = connected();
  ws.last().recv("h 25");
  ws.last().drop(1001);
  assert.deepEqual(clock.pending(), [250], "only the reconnect timer");
  clock.advance(250);
  clock.advance(100000);
  assert.equal(ws.last().closedWith, null, "the new connection has no h line yet");
  assert.equal(seen.length, 1);
});
