// The agent's side of reporting: events (phase, progress, log, result) go to
// `POST {server}/api/machines/<mac>/events` in batches, in the background.
//
// Promises to the caller (the deploy/capture data path must never wait on or fail because of the
// server): event() and the log sink never throw and never block; memory is bounded (a queue of at
// most `maxQueue` events, each log message cut to 8 KiB); while the server is slow or away,
// progress events are coalesced (only the newest is kept) and then the oldest log lines dropped,
// while phase and result events are kept; the number dropped is reported once the server answers.

import { Agent, request } from '../net/undici.ts';
import type { AgentEvent } from '../config/report.ts';
import type { Sink } from '../util/log.ts';
import { trustedConnect } from '../net/tls-pin.ts';
import { backoffDelay } from '../util/backoff.ts';

export interface ReporterOptions {
  /** booty server's base URL, e.g. http://10.0.0.1:3000 */
  server: string;
  /** this machine's MAC, any common notation */
  mac: string;
  /** bearer token when the server requires one */
  token?: string;
  /** where the reporter says that it has trouble (never re-enters the reporter) */
  log?: { warn(message: string): void };
  maxQueue?: number;
  maxBatch?: number;
  /** wait this long to gather a batch (phase and result events go at once) */
  batchDelayMs?: number;
  requestTimeoutMs?: number;
}

export interface ReporterStats {
  queued: number;
  sent: number;
  dropped: number;
  coalesced: number;
  failedRequests: number;
}

export interface Reporter {
  event(e: AgentEvent): void;
  /** a Logger sink: every log line becomes a `log` event */
  sink: Sink;
  /** resolves true once everything queued has been delivered, false at the timeout; never rejects */
  flush(timeoutMs?: number): Promise<boolean>;
  /** flush (bounded), then stop; later events are ignored */
  close(timeoutMs?: number): Promise<void>;
  stats(): ReporterStats;
}

const MAX_MESSAGE = 8192;
const MAX_BACKOFF_MS = 15_000;

function macForUrl(mac: string): string {
  const hex = mac.replace(/[^0-9a-fA-F]/g, '').toLowerCase();
  return hex.length === 12 ? hex.match(/../g)!.join('-') : mac.toLowerCase();
}

export function createReporter(opts: ReporterOptions): Reporter {
  const url = `${opts.server.replace(/\/+$/, '')}/api/machines/${encodeURIComponent(macForUrl(opts.mac))}/events`;
  const maxQueue = Math.max(10, opts.maxQueue ?? 1000);
  const maxBatch = Math.max(1, opts.maxBatch ?? 200);
  const batchDelay = opts.batchDelayMs ?? 250;
  const timeout = opts.requestTimeoutMs ?? 10_000;
  // trustedConnect: with booty.ca set, events (and the token) go only to the pinned server
  const dispatcher = new Agent({ keepAliveTimeout: 10_000, connect: trustedConnect({ timeout: Math.min(timeout, 5000) }) });
  const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'booty-agent' };
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;

  const queue: AgentEvent[] = [];
  const stats: ReporterStats = { queued: 0, sent: 0, dropped: 0, coalesced: 0, failedRequests: 0 };
  let droppedUnreported = 0;
  let inFlight = false;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let failures = 0;
  let warning = false;
  const lastWarned = new Set<string>();
  const waiters = new Set<() => void>();

  function warn(msg: string): void {
    // Only say each kind of trouble once per outage, and never feed our own warning back in.
    if (opts.log === undefined || lastWarned.has(msg) || warning) return;
    lastWarned.add(msg);
    warning = true;
    try { opts.log.warn(`report: ${msg}`); } catch { /* ignore */ } finally { warning = false; }
  }

  /** Keep the queue within bounds: first older progress, then the oldest logs, then anything. */
  function trim(): void {
    if (queue.length <= maxQueue) return;
    const before = queue.length;
    let lastProgress = -1;
    for (let i = queue.length - 1; i >= 0; i--) if (queue[i].type === 'progress') { lastProgress = i; break; }
    for (let i = queue.length - 1; i >= 0 && queue.length > maxQueue; i--) {
      if (queue[i].type === 'progress' && i !== lastProgress) queue.splice(i, 1);
    }
    for (let i = 0; i < queue.length && queue.length > maxQueue;) {
      if (queue[i].type === 'log') queue.splice(i, 1); else i++;
    }
    if (queue.length > maxQueue) queue.splice(0, queue.length - maxQueue);
    const n = before - queue.length;
    stats.dropped += n;
    droppedUnreported += n;
  }

  function push(e: AgentEvent): void {
    if (closed) return;
    const last = queue[queue.length - 1];
    if (e.type === 'progress' && last !== undefined && last.type === 'progress' && last.phase === e.phase) {
      queue[queue.length - 1] = e; // only the newest progress matters
      stats.coalesced++;
    } else {
      queue.push(e);
    }
    trim();
    schedule(e.type === 'phase' || e.type === 'result' ? 0 : batchDelay);
  }

  function schedule(delay: number): void {
    if (inFlight || closed && queue.length === 0) return;
    if (timer !== undefined) {
      if (delay > 0) return; // a send is already planned
      clearTimeout(timer);
    }
    timer = setTimeout(() => { timer = undefined; void send(); }, delay);
    timer.unref();
  }

  function settle(): void {
    if (queue.length === 0 && !inFlight) for (const w of [...waiters]) w();
  }

  async function send(): Promise<void> {
    if (inFlight || queue.length === 0) { settle(); return; }
    inFlight = true;
    const batch = queue.splice(0, maxBatch);
    let body: AgentEvent[] = batch;
    if (droppedUnreported > 0) {
      body = [{ type: 'log', time: new Date().toISOString(), level: 'warn', message: `reporter: ${droppedUnreported} events were dropped while the server was slow or unreachable` }, ...batch];
    }
    let retry = false;
    try {
      const res = await request(url, {
        method: 'POST', headers, body: JSON.stringify(body), dispatcher, headersTimeout: timeout, bodyTimeout: timeout,
      });
      const text = await res.body.text().catch(() => '');
      if (res.statusCode >= 200 && res.statusCode < 300) {
        stats.sent += batch.length;
        if (body !== batch) droppedUnreported = 0;
        failures = 0;
        lastWarned.clear();
      } else if (res.statusCode === 408 || res.statusCode === 429 || res.statusCode >= 500) {
        retry = true;
        warn(`server answered ${res.statusCode} to ${url}; will retry`);
      } else if (res.statusCode === 400 && refusedEventIndex(text, body.length) !== undefined) {
        // The server takes a batch whole or not at all and names the first event it cannot take
        // (e.g. a field an older server does not know): drop that one and send the others again,
        // so one odd event never costs the result or the log around it.
        const bad = refusedEventIndex(text, body.length)!;
        const inBatch = bad - (body.length - batch.length);
        if (inBatch < 0) droppedUnreported = 0; // the loss notice itself was refused: let it go
        else { batch.splice(inBatch, 1); stats.dropped += 1; }
        warn(`server refused an event (${refusalText(text)}); it is dropped, the other ${batch.length} are sent again`);
        queue.unshift(...batch);
      } else {
        // The server refuses these events (bad token, bad event): resending would not help.
        stats.dropped += batch.length;
        warn(`server refused events with ${res.statusCode} (${refusalText(text)}); they are dropped`);
      }
    } catch (e) {
      retry = true;
      warn(`cannot reach ${url} (${(e as { code?: string }).code ?? (e as Error).message}); will retry`);
    }
    inFlight = false;
    if (retry) {
      stats.failedRequests++;
      failures++;
      queue.unshift(...batch);
      trim();
      if (!closed) schedule(backoffDelay(failures - 1, { initialMs: 500, factor: 2, maxMs: MAX_BACKOFF_MS, jitter: 0 }));
    } else if (queue.length > 0) {
      schedule(0);
    }
    settle();
  }

  function flush(timeoutMs = 10_000): Promise<boolean> {
    if (queue.length === 0 && !inFlight) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      let done = false;
      const finish = (ok: boolean) => {
        if (done) return;
        done = true;
        waiters.delete(onSettle);
        clearTimeout(t);
        resolve(ok);
      };
      const onSettle = () => finish(true);
      const t = setTimeout(() => finish(false), timeoutMs);
      waiters.add(onSettle);
      // do not sit out a backoff or batching delay while someone waits
      if (!inFlight) { failures = 0; schedule(0); }
    });
  }

  return {
    event(e) {
      try { push(e); } catch { /* never into the caller */ }
    },
    sink(level, message, time) {
      if (warning) return;
      try {
        push({ type: 'log', time: time.toISOString(), level, message: message.length > MAX_MESSAGE ? message.slice(0, MAX_MESSAGE) + '…' : message });
      } catch { /* never into the caller */ }
    },
    flush,
    async close(timeoutMs = 10_000) {
      if (closed) return;
      const delivered = await flush(timeoutMs);
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      queue.length = 0;
      // a request still hanging on a stalled server must not hold the caller
      await (delivered ? dispatcher.close() : dispatcher.destroy()).catch(() => {});
    },
    stats: () => ({ ...stats, queued: queue.length }),
  };
}

/** The index of the event a 400 answer refuses (`{"error":"event 3: field ..."}`), if it names one in the batch. */
function refusedEventIndex(answer: string, sent: number): number | undefined {
  let error: unknown;
  try { error = (JSON.parse(answer) as { error?: unknown }).error; } catch { return undefined; }
  const m = typeof error === 'string' ? /^event (\d+):/.exec(error) : null;
  if (m === null) return undefined;
  const i = Number(m[1]);
  return i < sent ? i : undefined;
}

/** The server's sentence from its JSON error answer, else the answer's start. */
function refusalText(answer: string): string {
  try {
    const error = (JSON.parse(answer) as { error?: unknown }).error;
    if (typeof error === 'string') return error.slice(0, 200);
  } catch { /* not JSON: show it as it came */ }
  return answer.trim().slice(0, 200);
}
