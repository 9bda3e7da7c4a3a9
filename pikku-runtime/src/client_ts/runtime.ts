// ---------------------------------------------------------------------------------------------
// The client runtime: the same in every generated client (pikku-runtime/src/client_ts/runtime.ts).

/** Options of every call. */
export interface PikkuCallOptions {
  /**
   * Cancels the call. A JSON call then rejects with the signal's reason (as `fetch` does); a
   * stream ends its iteration without an error and closes its connection.
   */
  signal?: AbortSignal | undefined;
  /** Extra request headers for this call, over the client's. */
  headers?: Record<string, string> | undefined;
}

/** Options of a stream operation. Unset numbers fall back to the client's, then the defaults. */
export interface PikkuStreamOptions extends PikkuCallOptions {
  /** Resume after this event id: sent as `Last-Event-ID` on the first connection. */
  lastEventId?: string | undefined;
  /** Reconnection delay in ms until the server sends `retry:` (default 1000). */
  retryMs?: number;
  /** Cap of the growing delay while connecting keeps failing (default 30000). */
  maxRetryMs?: number;
  /** Reconnect when nothing, not even a `: ping`, arrives for this long (ms; default 45000,
   *  3x the server's default heartbeat; 0 turns the check off). */
  heartbeatTimeoutMs?: number;
  /** Called for `event: gap` (the server could not replay everything after `lastEventId`).
   *  Without it, a gap ends the iteration by throwing a `PikkuGapError`. */
  onGap?: (gap: PikkuGap) => void;
  /** Called for `event: error` items; iteration goes on. Without it, an error event ends the
   *  iteration by throwing the `PikkuStreamError`. */
  onError?: (error: PikkuStreamError) => void;
  /** Called before each reconnection, with why and how long until it. */
  onReconnect?: (info: PikkuReconnect) => void;
}

/** Headers sent with every request: fixed, or computed per request (e.g. a fresh token). */
export type PikkuHeaders =
  | Record<string, string>
  | (() => Record<string, string> | Promise<Record<string, string>>);

/** How a client reaches the server. */
export interface PikkuClientConfig {
  /** Where the routes are, e.g. `https://api.example.com` or `/api` (default: the generated
   *  default, the page's own origin). */
  baseUrl?: string;
  /** Headers of every request, e.g. `{ Authorization: 'Bearer ...' }`. */
  headers?: PikkuHeaders;
  /** The `fetch` to use (default: the global one). */
  fetch?: typeof fetch;
  /** `fetch`'s `credentials` (browsers; `same-origin` by default sends the session cookie). */
  credentials?: 'omit' | 'same-origin' | 'include';
  /** Defaults of every stream: see `PikkuStreamOptions`. */
  retryMs?: number;
  /** Defaults of every stream: see `PikkuStreamOptions`. */
  maxRetryMs?: number;
  /** Defaults of every stream: see `PikkuStreamOptions`. */
  heartbeatTimeoutMs?: number;
}

/** Why and when a stream reconnects. */
export interface PikkuReconnect {
  /** 1 for the first reconnection of this iteration, then 2, ... */
  attempt: number;
  /** Milliseconds until the next connection. */
  delayMs: number;
  /** What will be sent as `Last-Event-ID`. */
  lastEventId: string | undefined;
  /** `ended` (the server closed the stream), `shutdown`/`close` (it said so first),
   *  `network`, `heartbeat-timeout`, or `http` (a 408, 429 or 5xx answer). */
  reason:
    | 'ended'
    | typeof ReservedEvent.shutdown
    | typeof ReservedEvent.close
    | 'network'
    | 'heartbeat-timeout'
    | 'http';
}

/** Base class of the errors this client throws. */
export class PikkuClientError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PikkuClientError';
  }
}

/** The server answered with an error status; `body` is its JSON error body. */
export class PikkuHttpError extends PikkuClientError {
  constructor(
    readonly status: number,
    readonly body: PikkuErrorBody,
  ) {
    super(`${status} ${body.error}: ${body.message}`);
    this.name = 'PikkuHttpError';
  }
}

/** An `event: error` of a stream (a failed item, or the function failed). */
export class PikkuStreamError extends PikkuClientError {
  constructor(readonly body: PikkuErrorBody) {
    super(`stream error ${body.error}: ${body.message}`);
    this.name = 'PikkuStreamError';
  }
}

/** An `event: gap` with no `onGap` handler: events after `lastEventId` were lost. */
export class PikkuGapError extends PikkuClientError {
  constructor(readonly gap: PikkuGap) {
    super(`stream gap (${gap.reason}${gap.missed == null ? '' : `, ${gap.missed} missed`})`);
    this.name = 'PikkuGapError';
  }
}

/** What the client knows of an operation. */
export interface PikkuOperation {
  readonly name: string;
  readonly method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  readonly path: string;
  /** Whether the input (less the path params) is the JSON body; otherwise the query string. */
  readonly body: boolean;
}

/** One dispatched Server-Sent Event. */
export interface PikkuSseEvent {
  /** `message` when the event had no `event:` field. */
  event: string;
  data: string;
  /** The last event id seen so far (this event's `id:` or an earlier one). */
  lastEventId: string | undefined;
}

/**
 * An incremental `text/event-stream` parser, per the WHATWG HTML spec: UTF-8 with an optional
 * BOM, lines ended by CRLF, LF or CR (also when split across chunks), comments, `event`,
 * `data` (joined with LF), `id` (ignored when it holds NUL) and `retry` (ASCII digits only).
 * One deviation: the last event id carries over from `lastEventId` given to the constructor,
 * and only an `id:` field changes it, so a reconnection never forgets where it was.
 */
export class PikkuSseParser {
  /** The reconnection time the stream asked for with `retry:`, if any. */
  retry: number | undefined;
  private readonly decoder = new TextDecoder('utf-8');
  private buffer = '';
  private skipLf = false;
  private data = '';
  private hasData = false;
  private eventType = '';
  private idBuffer: string | undefined;
  private lastId: string | undefined;

  constructor(lastEventId?: string) {
    this.idBuffer = lastEventId;
    this.lastId = lastEventId;
  }

  /** The last event id of a dispatched event. */
  get lastEventId(): string | undefined {
    return this.lastId;
  }

  /** Feeds bytes (or text); returns the events they completed. */
  push(chunk: Uint8Array | string): PikkuSseEvent[] {
    this.buffer += typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    const events: PikkuSseEvent[] = [];
    let start = 0;
    if (this.skipLf && this.buffer.length > 0) {
      if (this.buffer[0] === '\n') start = 1;
      this.skipLf = false;
    }
    for (;;) {
      let end = -1;
      for (let i = start; i < this.buffer.length; i++) {
        const c = this.buffer.charCodeAt(i);
        if (c === 10 || c === 13) {
          end = i;
          break;
        }
      }
      if (end < 0) break;
      const line = this.buffer.slice(start, end);
      if (this.buffer.charCodeAt(end) === 13) {
        if (end + 1 < this.buffer.length) {
          start = this.buffer.charCodeAt(end + 1) === 10 ? end + 2 : end + 1;
        } else {
          start = end + 1;
          this.skipLf = true;
        }
      } else {
        start = end + 1;
      }
      const event = this.line(line);
      if (event) events.push(event);
    }
    this.buffer = this.buffer.slice(start);
    return events;
  }

  private line(line: string): PikkuSseEvent | undefined {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        this.eventType = value;
        break;
      case 'data':
        this.data += this.hasData ? `\n${value}` : value;
        this.hasData = true;
        break;
      case 'id':
        if (!value.includes('\0')) this.idBuffer = value;
        break;
      case 'retry':
        if (/^[0-9]+$/.test(value)) this.retry = Number(value);
        break;
      default:
        break;
    }
    return undefined;
  }

  private dispatch(): PikkuSseEvent | undefined {
    this.lastId = this.idBuffer;
    const hasData = this.hasData;
    const event: PikkuSseEvent = {
      event: this.eventType === '' ? 'message' : this.eventType,
      data: this.data,
      lastEventId: this.lastId,
    };
    this.data = '';
    this.hasData = false;
    this.eventType = '';
    // Per the spec, an event whose data buffer is empty is not dispatched.
    return hasData && event.data !== '' ? event : undefined;
  }
}

const DEFAULT_RETRY_MS = 1000;
const DEFAULT_MAX_RETRY_MS = 30000;
const DEFAULT_HEARTBEAT_TIMEOUT_MS = 45000;
/** The smallest delay between failing connection attempts, whatever `retry:` said. */
const MIN_FAILURE_DELAY_MS = 250;

type Outcome =
  | { stop: true }
  | {
      stop: false;
      reason: PikkuReconnect['reason'];
      /** Whether a stream response was received (resets the growing delay). */
      established: boolean;
      retryAfterMs: number;
    };

function pick(...values: (number | undefined)[]): number {
  for (const v of values) if (v !== undefined && Number.isFinite(v) && v >= 0) return v;
  return 0;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

function isEventStream(res: Response): boolean {
  return (res.headers.get('content-type') ?? '').toLowerCase().startsWith('text/event-stream');
}

async function errorBody(res: Response): Promise<PikkuErrorBody> {
  const text = await res.text().catch(() => '');
  try {
    const body = JSON.parse(text) as unknown;
    if (body && typeof body === 'object' && 'error' in body && 'message' in body) {
      return body as PikkuErrorBody;
    }
  } catch {
    // Not JSON (e.g. a proxy's page): described below.
  }
  return { error: 'http_error', message: text || res.statusText, status: res.status };
}

function retryAfterMs(res: Response): number {
  const v = res.headers.get('retry-after');
  return v && /^[0-9]+$/.test(v.trim()) ? Number(v.trim()) * 1000 : 0;
}

function parseData(data: string, what: string): unknown {
  try {
    return JSON.parse(data) as unknown;
  } catch (cause) {
    throw new PikkuClientError(`${what}: the event data is not JSON: ${data.slice(0, 200)}`, { cause });
  }
}

/**
 * The items of a stream operation: iterate with `for await`. Each iteration opens a
 * connection (resuming after `lastEventId`), reconnects as the options say, and closes it when
 * the loop ends (`break`, `return`, a thrown error) or the signal aborts.
 */
export class PikkuStream<T> implements AsyncIterable<T> {
  private lastId: string | undefined;

  constructor(
    private readonly transport: PikkuTransport,
    private readonly op: PikkuOperation,
    private readonly input: unknown,
    private readonly options: PikkuStreamOptions = {},
  ) {
    this.lastId = options.lastEventId;
  }

  /** The id of the last event received that had one: where a new iteration resumes. */
  get lastEventId(): string | undefined {
    return this.lastId;
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return this.iterate();
  }

  private async *iterate(): AsyncGenerator<T, void, undefined> {
    const { signal } = this.options;
    const cfg = this.transport.config;
    let retry = pick(this.options.retryMs, cfg.retryMs, DEFAULT_RETRY_MS);
    const maxRetry = pick(this.options.maxRetryMs, cfg.maxRetryMs, DEFAULT_MAX_RETRY_MS);
    const heartbeat = pick(
      this.options.heartbeatTimeoutMs,
      cfg.heartbeatTimeoutMs,
      DEFAULT_HEARTBEAT_TIMEOUT_MS,
    );
    let failures = 0;
    let attempt = 0;
    while (!signal?.aborted) {
      const parserRetry: { ms: number | undefined } = { ms: undefined };
      const outcome = yield* this.connect(heartbeat, parserRetry);
      if (parserRetry.ms !== undefined) retry = parserRetry.ms;
      if (outcome.stop || signal?.aborted) return;
      failures = outcome.established ? 0 : failures + 1;
      let delayMs =
        failures === 0
          ? retry
          : Math.min(Math.max(retry, MIN_FAILURE_DELAY_MS) * 2 ** (failures - 1), maxRetry);
      delayMs = Math.max(delayMs, outcome.retryAfterMs);
      attempt += 1;
      this.options.onReconnect?.({
        attempt,
        delayMs,
        lastEventId: this.lastId,
        reason: outcome.reason,
      });
      await sleep(delayMs, signal);
    }
  }

  /** One connection: yields its items, says how it ended. */
  private async *connect(
    heartbeatMs: number,
    retry: { ms: number | undefined },
  ): AsyncGenerator<T, Outcome, undefined> {
    const outer = this.options.signal;
    const conn = new AbortController();
    const onAbort = () => conn.abort();
    outer?.addEventListener('abort', onAbort, { once: true });
    let timer: ReturnType<typeof setTimeout> | undefined;
    let timedOut = false;
    const disarm = () => {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
    };
    const arm = () => {
      disarm();
      if (heartbeatMs <= 0) return;
      timer = setTimeout(() => {
        timedOut = true;
        conn.abort();
      }, heartbeatMs);
    };
    const dropped = (): Outcome =>
      outer?.aborted
        ? { stop: true }
        : {
            stop: false,
            reason: timedOut ? 'heartbeat-timeout' : 'network',
            established: false,
            retryAfterMs: 0,
          };
    try {
      arm();
      let res: Response;
      try {
        res = await this.transport.send(this.op, this.input, this.options, conn.signal, {
          accept: 'text/event-stream',
          lastEventId: this.lastId,
        });
      } catch (e) {
        if (e instanceof PikkuClientError) throw e;
        return dropped();
      }
      // 204 No Content: the server says there is nothing to stream; do not reconnect.
      if (res.status === 204) return { stop: true };
      if (!res.ok) {
        const retryable = res.status === 408 || res.status === 429 || res.status >= 500;
        if (!retryable) throw new PikkuHttpError(res.status, await errorBody(res));
        const after = retryAfterMs(res);
        await res.body?.cancel().catch(() => undefined);
        return { stop: false, reason: 'http', established: false, retryAfterMs: after };
      }
      if (!isEventStream(res) || !res.body) {
        await res.body?.cancel().catch(() => undefined);
        throw new PikkuClientError(
          `${this.op.name}: expected a text/event-stream answer, got ${res.headers.get('content-type') ?? 'none'}`,
        );
      }
      const reader = res.body.getReader();
      const parser = new PikkuSseParser(this.lastId);
      let reason: PikkuReconnect['reason'] = 'ended';
      try {
        for (;;) {
          let chunk: { done: boolean; value?: Uint8Array | undefined };
          try {
            chunk = await reader.read();
          } catch {
            const out = dropped();
            return out.stop ? out : { ...out, established: true };
          }
          if (chunk.done || !chunk.value) break;
          arm();
          const events = parser.push(chunk.value);
          if (parser.retry !== undefined) retry.ms = parser.retry;
          for (const ev of events) {
            this.lastId = ev.lastEventId;
            switch (ev.event) {
              case ReservedEvent.error: {
                const err = new PikkuStreamError(parseData(ev.data, this.op.name) as PikkuErrorBody);
                if (!this.options.onError) throw err;
                this.options.onError(err);
                break;
              }
              case ReservedEvent.gap: {
                const gap = parseData(ev.data, this.op.name) as PikkuGap;
                if (!this.options.onGap) throw new PikkuGapError(gap);
                this.options.onGap(gap);
                break;
              }
              case ReservedEvent.shutdown:
              case ReservedEvent.close:
                reason = ev.event;
                break;
              case ReservedEvent.sessionEnd:
                // The session expired or was revoked: log in again rather than reconnect.
                throw new PikkuStreamError(parseData(ev.data, this.op.name) as PikkuErrorBody);
              default: {
                const item = parseData(ev.data, this.op.name) as T;
                // The timeout measures the server's silence, not the time the loop body takes.
                disarm();
                yield item;
                arm();
              }
            }
          }
        }
      } finally {
        this.lastId = parser.lastEventId;
        reader.cancel().catch(() => undefined);
      }
      return { stop: false, reason, established: true, retryAfterMs: 0 };
    } finally {
      disarm();
      outer?.removeEventListener('abort', onAbort);
      conn.abort();
    }
  }
}

/** Builds requests and runs JSON calls; what `createClient` wraps. */
export class PikkuTransport {
  constructor(
    readonly config: PikkuClientConfig,
    private readonly defaultBaseUrl: string,
  ) {}

  /** The URL and body of a call: path params substituted, the rest in the query or body. */
  prepare(op: PikkuOperation, input: unknown): { url: string; body: string | undefined } {
    const values: Record<string, unknown> =
      input !== null && typeof input === 'object' ? { ...(input as Record<string, unknown>) } : {};
    const path = op.path.replace(/\{([^}]+)\}/g, (_, name: string) => {
      const v = values[name];
      if (v === undefined || v === null) {
        throw new PikkuClientError(`${op.name}: the path parameter \`${name}\` is missing`);
      }
      delete values[name];
      return encodeURIComponent(String(v));
    });
    let query = '';
    let body: string | undefined;
    if (op.body) {
      body = JSON.stringify(values);
    } else {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(values)) {
        for (const item of Array.isArray(v) ? v : [v]) {
          if (item === undefined || item === null) continue;
          params.append(k, typeof item === 'object' ? JSON.stringify(item) : String(item));
        }
      }
      const qs = params.toString();
      if (qs) query = `?${qs}`;
    }
    const base = (this.config.baseUrl ?? this.defaultBaseUrl).replace(/\/+$/, '');
    const url = `${base}${path}${query}`;
    const here = (globalThis as { location?: { href?: string } }).location?.href;
    try {
      new URL(url, here);
    } catch (cause) {
      throw new PikkuClientError(
        `${op.name}: \`${url}\` is not a URL; set \`baseUrl\` in createClient (outside browsers it must be absolute)`,
        { cause },
      );
    }
    return { url, body };
  }

  /** Sends one request. */
  async send(
    op: PikkuOperation,
    input: unknown,
    options: PikkuCallOptions,
    signal: AbortSignal | undefined,
    extra: { accept: string; lastEventId?: string | undefined },
  ): Promise<Response> {
    const { url, body } = this.prepare(op, input);
    const configured =
      typeof this.config.headers === 'function' ? await this.config.headers() : this.config.headers;
    const headers: Record<string, string> = { accept: extra.accept };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (extra.lastEventId !== undefined) headers['last-event-id'] = extra.lastEventId;
    for (const [k, v] of Object.entries({ ...configured, ...options.headers })) {
      headers[k.toLowerCase()] = v;
    }
    const init: {
      method: string;
      headers: Record<string, string>;
      body?: string;
      signal?: AbortSignal;
      credentials?: 'omit' | 'same-origin' | 'include';
    } = { method: op.method, headers };
    if (body !== undefined) init.body = body;
    if (signal) init.signal = signal;
    if (this.config.credentials) init.credentials = this.config.credentials;
    const fetchFn = this.config.fetch ?? globalThis.fetch;
    return fetchFn(url, init);
  }

  /** A JSON call: resolves with the decoded answer, rejects with `PikkuHttpError` on errors. */
  async json<T>(op: PikkuOperation, input: unknown, options: PikkuCallOptions = {}): Promise<T> {
    const res = await this.send(op, input, options, options.signal, { accept: 'application/json' });
    if (!res.ok) throw new PikkuHttpError(res.status, await errorBody(res));
    if (isEventStream(res)) {
      await res.body?.cancel().catch(() => undefined);
      throw new PikkuClientError(
        `${op.name}: the server answered with a stream; use the operation's stream method`,
      );
    }
    const text = await res.text();
    return (text === '' ? undefined : JSON.parse(text)) as T;
  }

  /** A stream call: see `PikkuStream`. */
  stream<T>(op: PikkuOperation, input: unknown, options?: PikkuStreamOptions): PikkuStream<T> {
    return new PikkuStream<T>(this, op, input, options);
  }
}
