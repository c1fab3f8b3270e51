// A live check against a running herald (not part of npm test):
//   node test/live.mjs ws://127.0.0.1:WSPORT/ 127.0.0.1:TEXTPORT
// Connects as uid live1 with topics ["news"], pushes {"uid":"live1","n":1} through the text port,
// waits for it as a message event. Prints PASS/FAIL lines; exits 0 when all passed, 1 otherwise.
import net from "node:net";
import WebSocket from "ws";
import { Herald } from "../src/herald.js";

const [url, text] = process.argv.slice(2);
if (!url || !text || !text.includes(":")) {
  console.error("usage: node test/live.mjs ws://HOST:PORT/ HOST:TEXTPORT");
  process.exit(2);
}

let h;
let replied = false;
let received = false;
const done = () => {
  if (!replied || !received) return;
  if (!("t:news" in statuses) && h.topics.has("news")) {
    console.log("note: no s line for t:news came (a server without topics yet); not required");
  }
  h.off("disconnect", onDisconnect);
  h.close();
  process.exit(0);
};
const fail = (why) => {
  console.log("FAIL " + why);
  if (h) h.close();
  process.exit(1);
};
setTimeout(() => fail("timeout: 10 s without the pushed message"), 10000).unref();

function push(line) {
  const i = text.lastIndexOf(":");
  return new Promise((resolve, reject) => {
    const sock = net.connect(+text.slice(i + 1), text.slice(0, i), () => sock.write(line + "\n"));
    let got = "";
    sock.setEncoding("utf8");
    sock.on("data", (d) => {
      got += d;
      const nl = got.indexOf("\n");
      if (nl >= 0) resolve(got.slice(0, nl).trim()), sock.end();
    });
    sock.on("error", reject);
  });
}

const statuses = {};
h = new Herald(url, { uid: "live1", topics: ["news"], WebSocket });
h.on("recover", ({ stream, status }) => (statuses[stream] = status));
h.on("subscribe", ({ topic, status }) => console.log(`note: topic ${topic}: ${status}`));
h.on("error", (e) => console.log("error: " + (e && e.message ? e.message : e)));
const onDisconnect = (d) => {
  console.log(`disconnect: ${d.code} ${d.reason} reconnect=${d.reconnect}`);
  if (!d.reconnect) fail("closed for good by the server");
};
h.on("disconnect", onDisconnect);
h.on("connect", async () => {
  console.log(`PASS connected: u:live1 ${statuses["u:live1"]}, all ${statuses.all}`);
  try {
    const reply = await push('{"uid":"live1","n":1}');
    if (reply != "ok") fail(`text port answered ${JSON.stringify(reply)}, expected "ok"`);
    console.log("PASS text port answered ok");
    replied = true;
    done();
  } catch (e) {
    fail("text port: " + e.message);
  }
});
h.on("message", (m) => {
  if (m.stream != "u:live1") return console.log(`note: message on ${m.stream}: ${m.data}`);
  let n;
  try {
    n = JSON.parse(m.data).n;
  } catch {
    fail("payload is not the JSON pushed: " + m.data);
  }
  if (n !== 1) fail("unexpected payload: " + m.data);
  console.log(`PASS message on u:live1 at ${m.epoch}:${m.offset}: ${m.data}`);
  console.log(`PASS positions ${JSON.stringify(h.positions)}`);
  received = true;
  done();
});
h.connect();
