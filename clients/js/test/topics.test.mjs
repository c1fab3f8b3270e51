import test from "node:test";
import assert from "node:assert/strict";
import { Herald } from "../src/herald.js";
import { fakeSockets, fakeClock, welcome, record } from "./fake.mjs";

function client(opts = {}) {
  const ws = fakeSockets();
  const clock = fakeClock();
  const h = new Herald("ws://h/", { uid: "u1", WebSocket: ws.WebSocket, setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout, random: () => 0, ...opts });
  return { h, ws, clock };
}

test("subscribe and unsubscribe while connected send sub and unsub", () => {
  const { h, ws } = client({ topics: ["news"] });
  h.connect();
  welcome(ws.last());
  ws.last().recv("s t:news N 3 new");
  h.subscribe("room.7");
  h.subscribe("room.7");
  h.unsubscribe("news");
  h.unsubscribe("news");
  h.unsubscribe("never");
  assert.deepEqual(ws.last().json, [{ sub: "room.7" }, { unsub: "news" }]);
  assert.equal(h.positions["t:news"], undefined, "position dropped on unsubscribe");
  assert.deepEqual([...h.topics], ["room.7"]);
});

test("subscribe sends the known position as since", () => {
  const { h, ws } = client({ positions: { "t:room.7": "R:12" } });
  h.connect();
  welcome(ws.last());
  h.subscribe("room.7");
  assert.deepEqual(ws.last().json, [{ sub: "room.7", since: "R:12" }]);
});

test("subscriptions survive a reconnect: the next hello lists the current set and their positions", () => {
  const { h, ws, clock } = client({ topics: ["news", "sport"] });
  h.connect();
  welcome(ws.last());
  ws.last().recv("s t:news N 3 ok");
  ws.last().recv("s t:sport S 1 ok");
  h.subscribe("room.7");
  ws.last().recv("s t:room.7 R 5 new");
  ws.last().recv("m t:room.7 R 6\nhi");
  h.unsubscribe("sport");
  ws.last().drop(1006);
  clock.advance(0);
  ws.last().open();
  const hello = ws.last().hello;
  assert.deepEqual(hello.topics, ["news", "room.7"]);
  assert.deepEqual(hello.since, { "u:u1": "E1:0", all: "E1:0", "t:news": "N:3", "t:room.7": "R:6" });
});

test("subscribe before the hello went out is carried by the hello, not sent apart", () => {
  const { h, ws } = client();
  h.subscribe("early");
  h.connect();
  h.subscribe("while-connecting");
  ws.last().open();
  assert.deepEqual(ws.last().hello.topics, ["early", "while-connecting"]);
  assert.deepEqual(ws.last().json, []);
});

test("subscribe events; a denied topic is removed from the set and from the next hello", () => {
  const { h, ws, clock } = client({ topics: ["news", "secret"] });
  const seen = record(h, "subscribe", "recover");
  h.connect();
  welcome(ws.last());
  ws.last().recv("s t:news N 0 new");
  ws.last().recv("s t:secret - 0 denied");
  assert.deepEqual(seen.slice(2), [
    ["subscribe", { topic: "news", status: "new" }],
    ["recover", { stream: "t:news", status: "new" }],
    ["subscribe", { topic: "secret", status: "denied" }],
  ]);
  assert.deepEqual([...h.topics], ["news"]);
  h.subscribe("nope");
  ws.last().recv("s t:nope - 0 denied");
  assert.equal(h.topics.has("nope"), false);
  ws.last().drop(1006);
  clock.advance(0);
  ws.last().open();
  assert.deepEqual(ws.last().hello.topics, ["news"]);
  assert.equal(ws.last().hello.since["t:secret"], undefined);
});

test("messages of a topic unsubscribed meanwhile are dropped", () => {
  const { h, ws } = client({ topics: ["news"] });
  const seen = record(h, "message");
  h.connect();
  welcome(ws.last());
  ws.last().recv("s t:news N 0 new");
  h.unsubscribe("news");
  ws.last().recv("m t:news N 1\nlate");
  ws.last().recv("u t:news");
  assert.equal(seen.length, 0);
  assert.equal(h.positions["t:news"], undefined);
});
