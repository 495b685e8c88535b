// The image as one unbroken byte stream, whatever the network does underneath. A Readable that
// yields the bytes of the image as served, from the first to the last, exactly once: when the
// connection drops, is reset, or stalls (no byte for `stallTimeoutMs` while we are waiting for
// one), it reconnects with backoff and asks for the rest with `Range: bytes=<received>-` and
// `If-Range: <ETag>`, then goes on pushing from where it stopped. Downstream (the sha256, the
// decompressor, the writer) never sees the fault, so nothing already received is fetched, hashed,
// decoded or written again: this is the resumable layer, below decompression.
//
// A resume is only accepted when it provably continues the same file: a 206 whose Content-Range
// starts at the byte we need and has the same total, with the same ETag (and X-Image-Sha256, when
// the server sends one). A 200 means the If-Range validator no longer matches: the image changed
// on the server. That ends the stream with ImageChangedError; whether to start over from zero is
// the caller's decision (deploy's restartOnChange), never this layer's. A server that ignores
// Range but still serves the same ETag gets its first `received` bytes skipped (fetched again,
// never written again). Without progress for `retryForMs` the stream fails with ResumeGaveUpError.
import { Readable } from 'node:stream';
import type { Logger } from '../../util/log.ts';
import { silentLogger } from '../../util/log.ts';
import { backoffDelay, sleep, type BackoffOptions } from '../../util/backoff.ts';
import { FetchError, openImage, type ImageResponse } from './fetch.ts';

export interface ResumeOptions {
  headers?: Record<string, string>;
  /** the caller's cancellation: ends everything, never retried */
  signal?: AbortSignal;
  /** a connection with no byte for this long, while we wait for one, is given up (default 30 s) */
  stallTimeoutMs?: number;
  /** give up once no byte arrived for this long, reconnecting meanwhile (default 10 min) */
  retryForMs?: number;
  /** first delay before reconnecting (default 500 ms); doubles per failed try */
  backoffInitialMs?: number;
  /** longest delay between tries (default 15 s) */
  backoffMaxMs?: number;
  log?: Logger;
  /** called after each successful resume */
  onResume?: (e: ResumeEvent) => void;
  /** random source for backoff jitter (tests pass a seeded one) */
  random?: () => number;
  /** start at this byte of the file instead of 0 (peer to peer's fallback: the bytes before came
   *  from peers); the first answer must be a 206 from exactly there, valid for `startIfRange` */
  startAt?: number;
  /** validator (the image's ETag as its metainfo was served with) for the first request's If-Range */
  startIfRange?: string;
}

export interface ResumeEvent {
  /** resumes so far, this one included */
  resumes: number;
  /** byte of the served file the new connection starts at */
  at: number;
  /** what broke the previous connection */
  reason: string;
  /** failed connection attempts between the fault and this resume */
  failedTries: number;
}

/** The server's copy of the image is not the one we started: resuming would mix two images. */
export class ImageChangedError extends Error {
  readonly received: number;
  constructor(message: string, received: number) {
    super(message);
    this.name = 'ImageChangedError';
    this.received = received;
  }
}

/** No progress for retryForMs: the stream ends with this. */
export class ResumeGaveUpError extends Error {
  readonly received: number;
  readonly total: number | undefined;
  readonly tries: number;
  readonly lastError: string;
  readonly retryForMs: number;
  constructor(o: { received: number; total?: number; tries: number; lastError: string; retryForMs: number }) {
    const of = o.total !== undefined ? ` of ${o.total}` : '';
    super(`no progress for ${Math.round(o.retryForMs / 1000)} s after ${o.received}${of} bytes received (${o.tries} tries; last error: ${o.lastError})`);
    this.name = 'ResumeGaveUpError';
    this.received = o.received;
    this.total = o.total;
    this.tries = o.tries;
    this.lastError = o.lastError;
    this.retryForMs = o.retryForMs;
  }
}

class StallError extends Error {
  constructor(ms: number) {
    super(`no data for ${ms / 1000} s (stalled)`);
    this.name = 'StallError';
  }
}

export const DEFAULT_STALL_TIMEOUT_MS = 30_000;
export const DEFAULT_RETRY_FOR_MS = 10 * 60_000;

/** The validator for If-Range: a strong ETag, else Last-Modified (RFC 9110 13.1.5). */
function validatorOf(r: ImageResponse): string | undefined {
  if (r.etag !== undefined && !r.etag.startsWith('W/')) return r.etag;
  return r.lastModified;
}

/** What the deploy pipeline reads the image from: this HTTP source, or peer to peer's in-order
 *  swarm source (src/p2p/swarm-source.ts), which keeps the same promises. */
export interface ImageByteStream extends Readable {
  readonly first: ImageResponse;
  readonly total: number | undefined;
  received: number;
  resumes: number;
}

export class ResumableSource extends Readable implements ImageByteStream {
  /** bytes of the served file pushed downstream so far */
  received = 0;
  /** connections that continued the stream after a fault */
  resumes = 0;
  /** faults seen (each one led to a resume, or to the end of the stream) */
  faults = 0;
  /** the first response: format, sizes and checksums come from here */
  readonly first: ImageResponse;
  /** total bytes of the file as served, when the server said */
  readonly total: number | undefined;

  private readonly source: string;
  private readonly o: Required<Pick<ResumeOptions, 'stallTimeoutMs' | 'retryForMs' | 'backoffInitialMs' | 'backoffMaxMs'>> & ResumeOptions;
  private readonly log: Logger;
  private readonly validator: string | undefined;
  private body: Readable | undefined;
  private attempt: AbortController | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private wanting = false;
  private reconnecting = false;
  private lastProgress = performance.now();
  /** bytes at the start of the current body to drop (a server that ignored Range) */
  private skip = 0;
  private wake: (() => void) | undefined;

  private constructor(source: string, first: ImageResponse, attempt: AbortController, o: ResumableSource['o']) {
    super({ highWaterMark: 1 << 20 });
    this.source = source;
    this.first = first;
    this.o = o;
    this.log = o.log ?? silentLogger;
    this.total = first.servedSize;
    this.validator = validatorOf(first) ?? o.startIfRange;
    this.received = o.startAt ?? 0;
    this.attempt = attempt;
    this.attach(first.body);
  }

  /** Opens the first connection (retrying transient failures like any later one) and resolves
   *  once its headers are in. Permanent failures (404, a bad URL) are thrown as they are. */
  static async open(source: string, opts: ResumeOptions = {}): Promise<ResumableSource> {
    const o = {
      ...opts,
      stallTimeoutMs: opts.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS,
      retryForMs: opts.retryForMs ?? DEFAULT_RETRY_FOR_MS,
      backoffInitialMs: opts.backoffInitialMs ?? 500,
      backoffMaxMs: opts.backoffMaxMs ?? 15_000,
    };
    const log = o.log ?? silentLogger;
    const started = performance.now();
    for (let tries = 1; ; tries++) {
      const attempt = new AbortController();
      const timer = setTimeout(() => attempt.abort(new StallError(o.stallTimeoutMs)), o.stallTimeoutMs);
      try {
        const startAt = o.startAt ?? 0;
        const res = await openImage(source, attemptOptions(o, attempt, startAt, startAt > 0 ? o.startIfRange : undefined));
        clearTimeout(timer);
        if (startAt > 0 && (res.status !== 206 || res.rangeStart !== startAt)) {
          res.body.on('error', () => {});
          res.body.destroy();
          throw new ImageChangedError(`the image on the server is not the one whose first ${startAt} bytes were received (asked for byte ${startAt}${o.startIfRange !== undefined ? ` if ${o.startIfRange}` : ''}, the server answered ${res.status} from byte ${res.rangeStart})`, startAt);
        }
        return new ResumableSource(source, res, attempt, o);
      } catch (e) {
        clearTimeout(timer);
        if (!(e instanceof FetchError) || !e.transient || o.signal?.aborted) throw e;
        const left = o.retryForMs - (performance.now() - started);
        if (left <= 0) {
          throw new FetchError(source, `${e.message.replace(/ \([^()]*\)$/, '')}; gave up after ${tries} tries in ${Math.round((performance.now() - started) / 1000)} s`,
            'check that the server is up and reachable from this machine, then deploy again', { transient: false, status: e.status, cause: e });
        }
        const delay = Math.min(backoffDelay(tries - 1, backoffOf(o), o.random), left);
        log.warn(`deploy: ${e.message}; trying again in ${(delay / 1000).toFixed(1)} s`);
        await sleep(delay, o.signal);
      }
    }
  }

  override _read(): void {
    this.wanting = true;
    if (this.body !== undefined && this.body.isPaused()) this.body.resume();
    this.arm();
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.disarm();
    this.wake?.();
    const attempt = this.attempt;
    this.detach();
    attempt?.abort(new Error('the image stream was closed'));
    cb(err);
  }

  /** Starts the stall clock: only while we wait for bytes (never while downstream is full). */
  private arm(): void {
    if (this.destroyed || this.reconnecting) { this.disarm(); return; }
    // re-armed for every chunk: moving the one timer is cheaper than a new one each time
    if (this.watchdog !== undefined) { this.watchdog.refresh(); return; }
    this.watchdog = setTimeout(() => {
      this.watchdog = undefined;
      const err = new StallError(this.o.stallTimeoutMs);
      if (this.body !== undefined) this.body.destroy(err);
      else this.attempt?.abort(err);
    }, this.o.stallTimeoutMs);
  }

  private disarm(): void {
    if (this.watchdog !== undefined) clearTimeout(this.watchdog);
    this.watchdog = undefined;
  }

  private attach(body: Readable): void {
    this.body = body;
    body.on('data', (chunk: Buffer) => {
      if (this.body !== body) return;
      this.lastProgress = performance.now();
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length);
        this.skip -= n;
        chunk = chunk.subarray(n);
        if (chunk.length === 0) { this.arm(); return; }
      }
      this.received += chunk.length;
      this.wanting = this.push(chunk);
      if (this.wanting) this.arm();
      else { body.pause(); this.disarm(); }
    });
    body.once('end', () => {
      if (this.body !== body) return;
      if (this.total === undefined || this.received >= this.total) {
        this.disarm();
        this.detach();
        this.push(null);
        return;
      }
      this.fault(`the connection closed after ${this.received} of ${this.total} bytes`);
    });
    body.on('error', (e: Error) => {
      if (this.body !== body) return;
      this.fault(e.message);
    });
    if (!this.wanting) body.pause();
    this.arm();
  }

  private detach(): void {
    const b = this.body;
    this.body = undefined;
    if (b !== undefined) {
      b.removeAllListeners('data');
      b.on('error', () => { /* already handled or no longer ours */ });
      if (!b.destroyed) b.destroy();
    }
    this.attempt = undefined;
  }

  private fault(reason: string): void {
    this.disarm();
    this.detach();
    if (this.destroyed) return;
    if (this.o.signal?.aborted) {
      this.destroy(this.o.signal.reason instanceof Error ? this.o.signal.reason : new Error('aborted'));
      return;
    }
    this.faults++;
    this.log.warn(`deploy: connection lost after ${this.received}${this.total !== undefined ? ` of ${this.total}` : ''} bytes received (${reason}); resuming`);
    this.reconnecting = true;
    this.reconnect(reason).then(
      () => { this.reconnecting = false; },
      (e: Error) => { this.reconnecting = false; if (!this.destroyed) this.destroy(e); },
    );
  }

  /** Tries until a connection continues the stream, the image turns out changed, or time runs out. */
  private async reconnect(reason: string): Promise<void> {
    let lastError = reason;
    for (let tries = 1; ; tries++) {
      // the last try lands at the deadline rather than giving up early
      const left = this.o.retryForMs - (performance.now() - this.lastProgress);
      if (left <= 0) {
        throw new ResumeGaveUpError({ received: this.received, total: this.total, tries: tries - 1, lastError, retryForMs: this.o.retryForMs });
      }
      await this.backoff(Math.min(backoffDelay(tries - 1, backoffOf(this.o), this.o.random), left));
      if (this.destroyed) return;
      const attempt = new AbortController();
      this.attempt = attempt;
      const timer = setTimeout(() => attempt.abort(new StallError(this.o.stallTimeoutMs)), this.o.stallTimeoutMs);
      let res: ImageResponse;
      try {
        res = await openImage(this.source, attemptOptions(this.o, attempt, this.received, this.validator));
      } catch (e) {
        if (this.destroyed) return;
        if (this.o.signal?.aborted) throw e;
        if (e instanceof FetchError && e.status === 416) {
          throw new ImageChangedError(`the image changed on the server: it no longer has byte ${this.received} (416 Range Not Satisfiable)`, this.received);
        }
        if (!(e instanceof FetchError) || !e.transient) throw e;
        lastError = e.message;
        this.log.warn(`deploy: reconnect failed (${e.message}); trying again`);
        continue;
      } finally {
        clearTimeout(timer);
      }
      if (this.destroyed) { res.body.destroy(); return; }
      try {
        this.skip = this.continuation(res);
      } catch (e) {
        res.body.on('error', () => {});
        res.body.destroy();
        throw e;
      }
      this.resumes++;
      this.log.info(`deploy: resumed at byte ${this.received}${this.total !== undefined ? ` of ${this.total}` : ''} (resume ${this.resumes}${tries > 1 ? `, after ${tries - 1} failed tries` : ''}${this.skip > 0 ? `; the server ignored Range, skipping ${this.skip} bytes already received` : ''})`);
      this.o.onResume?.({ resumes: this.resumes, at: this.received, reason, failedTries: tries - 1 });
      this.reconnecting = false;
      this.attempt = attempt;
      this.attach(res.body);
      return;
    }
  }

  /** Checks a reconnect's response continues our bytes; returns how many of its bytes to skip. */
  private continuation(res: ImageResponse): number {
    const changed = (why: string) => new ImageChangedError(`the image changed on the server during the download (${why}) after ${this.received} bytes received`, this.received);
    if (this.first.sha256 !== undefined && res.sha256 !== undefined && res.sha256 !== this.first.sha256) {
      throw changed(`X-Image-Sha256 ${this.first.sha256.slice(0, 12)}… -> ${res.sha256.slice(0, 12)}…`);
    }
    const etagNow = res.etag;
    if (this.first.etag !== undefined && etagNow !== undefined && etagNow !== this.first.etag) {
      throw changed(`ETag ${this.first.etag} -> ${etagNow}`);
    }
    if (res.servedSize !== undefined && this.total !== undefined && res.servedSize !== this.total) {
      throw changed(`size ${this.total} -> ${res.servedSize} bytes`);
    }
    if (this.received === 0) return 0;
    if (res.status === 206) {
      if (res.rangeStart !== this.received) throw changed(`asked for byte ${this.received}, the server sent from byte ${res.rangeStart}`);
      return 0;
    }
    // 200: If-Range did not match (changed), or the server does not do ranges at all
    if (this.validator === undefined || etagNow === undefined || etagNow !== this.first.etag || etagNow.startsWith('W/')) {
      throw changed(`the server answered 200 instead of 206 to If-Range ${this.validator ?? '(none: it sends no ETag)'}`);
    }
    return this.received;
  }

  /** Backoff that the caller's abort and destroy() cut short. */
  private backoff(ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const signal = this.o.signal;
      const done = () => { clearTimeout(t); signal?.removeEventListener('abort', onAbort); this.wake = undefined; resolve(); };
      const onAbort = () => { clearTimeout(t); this.wake = undefined; reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted')); };
      const t = setTimeout(done, ms);
      this.wake = done;
      if (signal?.aborted) onAbort(); else signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}

function attemptOptions(o: ResumeOptions & { stallTimeoutMs: number }, attempt: AbortController, start: number, ifRange: string | undefined) {
  const signal = o.signal !== undefined ? AbortSignal.any([o.signal, attempt.signal]) : attempt.signal;
  // undici's body timeout is off: the source's own watchdog measures stalls, and only while it
  // waits for bytes (a full disk queue pausing the socket is not a stall)
  return { headers: o.headers, signal, start, ifRange, headersTimeoutMs: o.stallTimeoutMs, stallTimeoutMs: 0 };
}

/** Reconnect delays: from backoffInitialMs, doubling to backoffMaxMs, up to 20 % shorter at random
 *  (a rack of machines that lost the server together does not come back in step). */
function backoffOf(o: { backoffInitialMs: number; backoffMaxMs: number }): BackoffOptions {
  return { initialMs: o.backoffInitialMs, factor: 2, maxMs: o.backoffMaxMs, jitter: 0.2 };
}
