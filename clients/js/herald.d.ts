// Type declarations of herald-client (src/herald.js).

/** What the client needs of a WebSocket class: the browser's, or the `ws` package's default export. */
export type WebSocketConstructor = new (
  url: string,
  protocols: string,
) => {
  send(data: string): void;
  close(code?: number, reason?: string): void;
};

/** The word at the end of an `s` line for a stream the client is in. */
export type RecoverStatus = "new" | "ok" | "lost" | "off";

export interface HeraldOptions {
  /** Demo mode (a server without --auth-secret): the uid, sent in every hello. */
  uid?: string;
  /**
   * A signed token, or a function (possibly async) called before every connect for a fresh one.
   * Only a function lets the client recover from close code 4401. Leave both uid and token out
   * when the token is in the URL (`?token=`).
   */
  token?: string | (() => string | Promise<string>);
  /** Topics to subscribe to from the first hello on. */
  topics?: Iterable<string>;
  /** Positions to resume from, e.g. saved from `positions` by an earlier page. Default {}. */
  positions?: Record<string, string>;
  /** Ask the server for heartbeats and close a silent connection. Default true. */
  heartbeat?: boolean;
  /** Default globalThis.WebSocket. In Node 20, pass the `ws` package's WebSocket. */
  WebSocket?: WebSocketConstructor;
  /** Backoff base in ms. Default 500. */
  minDelay?: number;
  /** Backoff cap in ms. Default 20000. */
  maxDelay?: number;
  /** A number in [0, 1), for the jitter. Default Math.random. */
  random?: () => number;
  /** Timers, for tests. Default the global ones. */
  setTimeout?: (fn: () => void, ms: number) => any;
  clearTimeout?: (id: any) => void;
}

export interface HeraldMessage {
  /** "u:UID", "all" or "t:NAME", as the server wrote it. */
  stream: string;
  /** NAME for a "t:NAME" stream, otherwise undefined. */
  topic: string | undefined;
  /** The payload: what a seed client would have received. */
  data: string;
  /** "-" for a message that was not kept (it has no position). */
  epoch: string;
  offset: number;
}

export interface HeraldEvents {
  message: HeraldMessage;
  /** The hello's s lines for u:UID and all have arrived. attempt: 0 on a first try, n on the nth retry. */
  connect: { attempt: number };
  /** delay: ms until the next attempt, -1 when reconnect is false. */
  disconnect: { code: number; reason: string; reconnect: boolean; delay: number };
  /** One per s line that is not "denied". "lost": reload the stream's state from your backend. */
  recover: { stream: string; status: RecoverStatus };
  /** One per s line of a topic; "denied" removes the topic from `topics`. */
  subscribe: { topic: string; status: RecoverStatus | "denied" };
  /** An Error from the client (1008, 4401 without a token function), or what the token function threw. */
  error: unknown;
}

export class Herald {
  constructor(url: string, options?: HeraldOptions);
  readonly url: string;
  /** Last position seen per stream ("u:u1", "all", "t:news") as "EPOCH:OFFSET"; sent as since. */
  positions: Record<string, string>;
  /** The current subscriptions. Change them with subscribe() and unsubscribe(). */
  readonly topics: ReadonlySet<string>;
  on<K extends keyof HeraldEvents>(event: K, fn: (arg: HeraldEvents[K]) => void): this;
  off<K extends keyof HeraldEvents>(event: K, fn: (arg: HeraldEvents[K]) => void): this;
  /** Opens the connection; a no-op while one is open or pending. Throws if no WebSocket class is found. */
  connect(): this;
  /** Closes with 1000 and stops reconnecting, until connect() is called again. */
  close(): this;
  subscribe(topic: string): this;
  unsubscribe(topic: string): this;
}

export default Herald;
