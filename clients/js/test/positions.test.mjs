import test from "node:test";
import assert from "node:assert/strict";
import { Herald } from "../src/herald.js";
import { fakeSockets, fakeClock, welcome, record } from "./fake.mjs";

function connected(opts = {}) {
  const ws = fakeSockets();
  const clock = fakeClock();
  const h = new Herald("ws://h/", { uid: "u1", WebSocket: ws.WebSocket, setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout, random: () => 0, ...opts });
  const seen = record(h, "message");
  h.connect();
  return { h, ws, clock, seen, s: ws.last() };
}

test("m lines become message events and move the position", () => {
  const { h, s, seen } = connected({ topics: ["news"] });
  welcome(s, "u1", "E1");
  s.recv("s t:news N 3 ok");
  s.recv('m u:u1 E1 1\n{"uid":"u1","n":1}');
  s.recv("m t:news N 4\nline one\nline two");
  s.recv("m all E1 1\n");
  assert.deepEqual(seen.map(([, m]) => m), [
    { stream: "u:u1", topic: undefined, data: '{"uid":"u1","n":1}', epoch: "E1", offset: 1 },
    { stream: "t:news", topic: "news", data: "line one\nline two", epoch: "N", offset: 4 },
    { stream: "all", topic: undefined, data: "", epoch: "E1", offset: 1 },
  ]);
  assert.deepEqual(h.positions, { "u:u1": "E1:1", all: "E1:1", "t:news": "N:4" });
});

test("a replayed offset at or below the known one of the same epoch is skipped", () => {
  const { h, s, seen } = connected();
  welcome(s, "u1", "E1");
  s.recv("m u:u1 E1 1\na");
  s.recv("m u:u1 E1 2\nb");
  s.recv("m u:u1 E1 2\nb again");
  s.recv("m u:u1 E1 1\na again");
  s.recv("m u:u1 E1 3\nc");
  assert.deepEqual(seen.map(([, m]) => m.data), ["a", "b", "c"]);
  assert.equal(h.positions["u:u1"], "E1:3");
});

test("an s line sets the position, so a replay overlapping it is skipped", () => {
  const { s, seen } = connected();
  s.open();
  s.recv("s u:u1 E1 7 ok");
  s.recv("s all E1 0 new");
  s.recv("m u:u1 E1 7\nold");
  s.recv("m u:u1 E1 8\nnew");
  assert.deepEqual(seen.map(([, m]) => m.data), ["new"]);
});

test("another epoch is never a duplicate: it starts again at 1", () => {
  const { h, s, seen } = connected();
  welcome(s, "u1", "E1");
  s.recv("m u:u1 E1 5\nfive");
  s.recv("m u:u1 E2 1\nnew epoch");
  assert.deepEqual(seen.map(([, m]) => m.data), ["five", "new epoch"]);
  assert.equal(h.positions["u:u1"], "E2:1");
});

test("epoch - (no history, or not kept) is delivered but does not move the position", () => {
  const { h, s, seen } = connected();
  s.open();
  s.recv("s u:u1 - 0 off");
  s.recv("s all - 0 off");
  assert.deepEqual(h.positions, {});
  s.recv("m u:u1 - 0\nx");
  s.recv("m u:u1 - 0\nx");
  assert.equal(seen.length, 2, "no dedup without a position");
  assert.deepEqual(h.positions, {});
  s.recv("s all E1 3 ok");
  s.recv("m all - 0\nunkept");
  assert.equal(h.positions.all, "E1:3");
  assert.equal(seen.length, 3);
});

test("percent-encoded uid streams are kept as written, so since matches the server's names", () => {
  const { h, ws, clock, s } = connected({ uid: "a b" });
  s.open();
  s.recv("s u:a%20b E 2 ok");
  s.recv("s all E 0 new");
  s.drop(1001);
  clock.advance(0);
  ws.last().open();
  assert.deepEqual(ws.last().hello.since, { "u:a%20b": "E:2", all: "E:0" });
  assert.equal(h.positions["u:a%20b"], "E:2");
});

test("unknown first words, binary data and the u answer are ignored", () => {
  const { h, s, seen } = connected({ topics: ["news"] });
  welcome(s);
  const before = JSON.stringify(h.positions);
  s.recv("u t:news");
  s.recv("x something new\npayload");
  s.onmessage({ data: new ArrayBuffer(4) });
  assert.equal(seen.length, 0);
  assert.equal(JSON.stringify(h.positions), before);
});
