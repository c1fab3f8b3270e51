// herald-client: the browser and Node client of herald's herald.v1 protocol
// (docs/resume.md, PROTOCOL.md): resume by position, topics, heartbeats,
// reconnects with full-jitter backoff and the close-code contract.

const noop = () => {};
// Streams of a connection before it counts as connected: its uid's and `all`;
// ANY: some `s` line came (topics' may come first).
const UID = 1, ALL = 2, ANY = 4;

export class Herald {
  constructor(url, options = {}) {
    const o = options;
    this.url = url;
    this.o = o;
    /** Last position seen per stream name ("u:u1", "all", "t:news") as "EPOCH:OFFSET". */
    this.positions = { ...o.positions };
    this.topics = new Set(o.topics || []);
    this._h = {}; // event name -> handlers
    this._attempt = 0;
    this._gen = 0; // bumped by every open and close: a stale socket or token is dropped
    this._stopped = true;
    this._set = o.setTimeout || ((f, ms) => setTimeout(f, ms));
    this._clear = o.clearTimeout || ((t) => clearTimeout(t));
    this._online = () => {
      this._attempt = 0;
      if (this._wait) this._clear(this._wait), this._open();
    };
  }

  on(event, fn) {
    (this._h[event] = this._h[event] || []).push(fn);
    return this;
  }

  off(event, fn) {
    this._h[event] = (this._h[event] || []).filter((f) => f !== fn);
    return this;
  }

  _emit(event, arg) {
    for (const f of (this._h[event] || []).slice()) f(arg);
  }

  /** Opens the connection (no-op while one is open or pending). */
  connect() {
    if (!this._stopped) return this;
    if (!(this.o.WebSocket || globalThis.WebSocket)) {
      throw new Error("herald: no WebSocket; pass options.WebSocket (Node: the ws package)");
    }
    this._stopped = false;
    this._attempt = 0;
    if (globalThis.addEventListener) globalThis.addEventListener("online", this._online);
    this._open();
    return this;
  }

  /** Closes for good: no reconnect until connect() is called again. */
  close() {
    if (this._stopped) return this;
    const ws = this._ws;
    this._stop();
    if (ws) {
      ws.close(1000);
      this._emit("disconnect", { code: 1000, reason: "", reconnect: false, delay: -1 });
    }
    return this;
  }

  subscribe(topic) {
    if (!this.topics.has(topic)) {
      this.topics.add(topic);
      const since = this.positions["t:" + topic];
      this._send(since ? { sub: topic, since } : { sub: topic });
    }
    return this;
  }

  unsubscribe(topic) {
    if (this.topics.delete(topic)) {
      delete this.positions["t:" + topic];
      this._send({ unsub: topic });
    }
    return this;
  }

  // Sends only once the hello went out; until then the next hello carries the change.
  _send(msg) {
    if (this._live) this._ws.send(JSON.stringify(msg));
  }

  async _open() {
    const gen = ++this._gen;
    this._wait = 0;
    let token = this.o.token;
    if (typeof token == "function") {
      try {
        token = await token();
      } catch (e) {
        if (gen != this._gen) return;
        this._emit("error", e);
        return this._later();
      }
      if (gen != this._gen) return;
    }
    let ws;
    try {
      ws = new (this.o.WebSocket || globalThis.WebSocket)(this.url, "herald.v1");
    } catch (e) {
      this._stop();
      return this._emit("error", e);
    }
    this._ws = ws;
    this._live = false;
    this._seen = 0;
    this._beat = 0; // heartbeat period in ms once `h SECONDS` came
    ws.onopen = () => {
      const hello = {};
      if (this.o.uid != null) hello.uid = this.o.uid;
      if (token != null) hello.token = token;
      const since = {};
      for (const k in this.positions) {
        if (!k.startsWith("t:") || this.topics.has(k.slice(2))) since[k] = this.positions[k];
      }
      if (Object.keys(since).length) hello.since = since;
      if (this.topics.size) hello.topics = [...this.topics];
      if (this.o.heartbeat !== false) hello.heartbeat = true;
      ws.send(JSON.stringify(hello));
      this._live = true;
    };
    ws.onmessage = (e) => this._message(e.data);
    ws.onclose = (e) => this._closed(e.code, e.reason || "");
    ws.onerror = noop; // a close event follows
  }

  // Detaches the socket: its late events are ignored.
  _drop() {
    const ws = this._ws;
    this._gen++;
    this._clear(this._wait);
    this._clear(this._dead);
    this._wait = this._dead = 0;
    this._ws = null;
    this._live = false;
    if (ws) ws.onopen = ws.onmessage = ws.onclose = ws.onerror = noop;
  }

  _stop() {
    this._drop();
    this._stopped = true;
    if (globalThis.removeEventListener) globalThis.removeEventListener("online", this._online);
  }

  _closed(code, reason) {
    this._drop();
    let reconnect = !(code == 1008 || (code >= 4500 && code <= 4999));
    if (code == 4401 && typeof this.o.token != "function") {
      reconnect = false;
      this._emit("error", new Error("herald: token refused (4401) and options.token is not a function"));
    }
    if (code == 1008) this._emit("error", new Error("herald: closed 1008 " + reason));
    if (!reconnect) this._stop();
    this._emit("disconnect", { code, reason, reconnect, delay: reconnect ? this._later() : -1 });
  }

  // Schedules the next open after a full-jitter delay, and returns it.
  _later() {
    const cap = Math.min(this.o.maxDelay || 20000, (this.o.minDelay || 500) * 2 ** this._attempt++);
    const delay = Math.floor((this.o.random || Math.random)() * cap);
    this._wait = this._set(() => this._open(), delay);
    return delay;
  }

  _alive() {
    if (!this._beat) return;
    this._clear(this._dead);
    this._dead = this._set(() => {
      this._ws.close(4000, "no heartbeat");
      this._closed(4000, "no heartbeat");
    }, this._beat);
  }

  _message(data) {
    if (typeof data != "string") return;
    this._alive();
    const nl = data.indexOf("\n");
    const [kind, stream, epoch, off, status] = (nl < 0 ? data : data.slice(0, nl)).split(" ");
    const offset = +off;
    const topic = stream && stream.startsWith("t:") ? stream.slice(2) : undefined;
    if (topic !== undefined && !this.topics.has(topic)) return; // unsubscribed meanwhile
    if (kind == "h") {
      if (stream > 0 && this.o.heartbeat !== false) (this._beat = (+stream + 10) * 1000), this._alive();
    } else if (kind == "s") {
      if (!this._seen) {
        this._seen = ANY;
        this._connectAttempt = this._attempt;
        this._attempt = 0;
      }
      if (status == "denied") {
        this.topics.delete(topic);
        delete this.positions[stream];
        return this._emit("subscribe", { topic, status });
      }
      if (epoch != "-") this.positions[stream] = epoch + ":" + offset;
      if (topic !== undefined) this._emit("subscribe", { topic, status });
      this._emit("recover", { stream, status });
      if (this._seen != (ANY | UID | ALL)) {
        this._seen |= stream == "all" ? ALL : stream.startsWith("u:") ? UID : 0;
        if (this._seen == (ANY | UID | ALL)) this._emit("connect", { attempt: this._connectAttempt });
      }
    } else if (kind == "m") {
      if (epoch != "-") {
        const p = this.positions[stream];
        const i = p ? p.lastIndexOf(":") : -1;
        if (p && p.slice(0, i) == epoch && offset <= +p.slice(i + 1)) return; // replay overlap
        this.positions[stream] = epoch + ":" + offset;
      }
      this._emit("message", { stream, topic, data: nl < 0 ? "" : data.slice(nl + 1), epoch, offset });
    }
  }
}

export default Herald;
