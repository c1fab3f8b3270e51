// Builds dist/herald.min.js (ES module) and dist/herald.iife.min.js (script tag: window.Herald).
import { build } from "esbuild";

const common = { bundle: true, minify: true, target: "es2018", logLevel: "info" };
await build({ ...common, entryPoints: ["src/herald.js"], format: "esm", outfile: "dist/herald.min.js" });
await build({
  ...common,
  // The class itself as the global, not a namespace object around it.
  stdin: { contents: 'import H from "./herald.js"; window.Herald = H;', resolveDir: "src" },
  format: "iife",
  outfile: "dist/herald.iife.min.js",
});
