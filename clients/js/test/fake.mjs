// Test doubles: a WebSocket class that records what the client does, and a
// clock whose timers run only when a test advances it.

export function fakeSockets() {
  const sockets = [];
  class FakeWebSocket {
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.sent = [];
      this.closedWith = null;
      sockets.push(this);
    }
    send(text) {
      this.sent.push(text);
    }
    close(code, reason) {
      this.closedWith = { code, reason };
    }
    // What the server side does to it.
    open() {
      this.onopen({});
    }
    recv(text) {
      this.onmessage({ data: text });
    }
    drop(code, reason = "") {
      this.onclose({ code, reason });
    }
    get hello() {
      return JSON.parse(this.sent[0]);
    }
    get json() {
      return this.sent.slice(1).map((s) => JSON.parse(s));
    }
  }
  return { WebSocket: FakeWebSocket, sockets, last: () => sockets[sockets.length - 1] };
}

export function fakeClock() {
  let now = 0;
  let next = 1;
  const timers = new Map();
  return {
    setTimeout(fn, ms) {
      timers.set(next, { fn, at: now + ms });
      return next++;
    },
    clearTimeout(id) {
      timers.delete(id);
    },
    get now() {
      return now;
    },
    pending() {
      return [...timers.values()].map((t) => t.at - now).sort((a, b) => a - b);
    },
    advance(ms) {
      const end = now + ms;
      for (;;) {
        let due = null;
        for (const [id, t] of timers) if (t.at <= end && (!due || t.at < due[1].at)) due = [id, t];
        if (!due) break;
        timers.delete(due[0]);
        now = due[1].at;
        due[1].fn();
      }
      now = end;
    },
  };
}

// Lets pending promise callbacks (an async token function) run.
export const settle = () => new Promise((r) => setImmediate(r));

// Opens the last socket and plays a hello's answer for uid `uid`.
export function welcome(ws, uid = "u1", epoch = "E1") {
  ws.open();
  ws.recv(`s u:${uid} ${epoch} 0 new`);
  ws.recv(`s all ${epoch} 0 new`);
}

export function record(h, ...events) {
  const seen = [];
  for (const e of events) h.on(e, (x) => seen.push([e, x]));
  return seen;
}
