// Fails when a built file, gzipped at level 9, is over the client's size budget.
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const BUDGET = 4096;
let over = false;
for (const file of ["dist/herald.iife.min.js", "dist/herald.min.js"]) {
  let raw;
  try {
    raw = readFileSync(new URL("../" + file, import.meta.url));
  } catch {
    console.error(`${file}: missing; run npm run build first`);
    process.exit(1);
  }
  const gz = gzipSync(raw, { level: 9 }).length;
  console.log(`${file}: ${raw.length} bytes, ${gz} bytes gzipped (budget ${BUDGET})`);
  if (gz > BUDGET) {
    console.error(`${file}: ${gz} bytes gzipped is over the ${BUDGET}-byte budget`);
    over = true;
  }
}
process.exit(over ? 1 : 0);
