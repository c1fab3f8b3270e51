import test from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import vm from "node:vm";

const esm = new URL("../dist/herald.min.js", import.meta.url);
const iife = new URL("../dist/herald.iife.min.js", import.meta.url);
const built = existsSync(esm) && existsSync(iife);

test("dist/herald.min.js exports the class (named and default)", { skip: !built && "npm run build first" }, async () => {
  const m = await import(esm);
  assert.equal(m.default, m.Herald);
  const h = new m.default("ws://h/", { uid: "u1" });
  assert.equal(typeof h.connect, "function");
  assert.deepEqual(h.positions, {});
});

test("dist/herald.iife.min.js sets window.Herald to the class", { skip: !built && "npm run build first" }, () => {
  const window = {};
  vm.runInNewContext(readFileSync(iife, "utf8"), { window });
  assert.equal(typeof window.Herald, "function");
  const h = new window.Herald("ws://h/", { topics: ["a"] });
  assert.deepEqual([...h.topics], ["a"]);
});
