// Resumable capture upload to booty server (README "Server API", /api/uploads):
//   POST /api/uploads {name, overwrite, partSize}       -> {id, partSize}
//   PUT  /api/uploads/<id>/parts/<n>  X-Booty-Sha256     -> part n stored and synced
//   POST /api/uploads/<id>/commit {size, sha256, parts}  -> the image, made visible atomically
// The compressed stream is cut into parts of partSize bytes; exactly one part is held in memory
// (backpressure stops the disk reader meanwhile), so a dropped, reset or stalled connection costs
// at most that part: it is sent again (after asking the server whether it already has it) with
// backoff, until `retryForMs` pass without progress. A server without /api/uploads (404/405/501,
// an older booty server or a BOOTy receiver) gets the two-step PUT + commit of upload.ts instead.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { Agent, request, type Dispatcher } from '../../net/undici.ts';
import { pooledDispatcher, trustedConnect, trustErrorOf } from '../../net/tls-pin.ts';
import { silentLogger, type Logger } from '../../util/log.ts';
import { backoffDelay, sleep } from '../../util/backoff.ts';
import { UploadRejected, uploadPut, type UploadOutcome } from './upload.ts';

export interface ResumableTuning {
  /** part size to ask the server for (it clamps to 64 KiB..64 MiB); default 16 MiB */
  partSize?: number;
  /** give up after this long without a part stored; default 10 min */
  retryForMs?: number;
  /** abort a request that moves no byte (sending or awaiting the answer) for this long; default 60 s */
  stallTimeoutMs?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** a part is being sent again (after a fault) */
  onResend?: (part: number, why: string) => void;
  /** the server has no resumable uploads: the old PUT + commit is used */
  onFallback?: (status: number) => void;
}

export interface ResumableUploadOptions extends ResumableTuning {
  /** http(s)://server[/prefix]/images/<name>[?overwrite=1] */
  url: string;
  body: Readable;
  headers?: Record<string, string>;
  /** uncompressed size, recorded by the server (X-Image-Size of later downloads) */
  imageSize?: number;
  signal?: AbortSignal;
  log?: Logger;
  /** the size and sha256 of everything read from `body` (the caller hashes it anyway) */
  sent: () => { size: number; sha256: string };
}

export interface ResumableOutcome extends UploadOutcome {
  protocol: 'parts' | 'put';
  parts: number;
  /** parts sent more than once */
  resends: number;
}

const SLICE = 256 * 1024;

function dispatcher(): Dispatcher {
  return pooledDispatcher('upload-parts', () => new Agent({ connect: trustedConnect({ timeout: 30_000 }), headersTimeout: 0, bodyTimeout: 0, keepAliveTimeout: 10_000 }));
}

class NotSupported extends Error {
  readonly status: number;
  constructor(status: number) { super(`no resumable uploads (${status})`); this.status = status; }
}

/** A failure worth another try: the network, a stall, or 408/422/429/5xx other than 507. */
class Transient extends Error {}

function reason(text: string): string {
  try {
    const j = JSON.parse(text) as { error?: unknown };
    if (typeof j.error === 'string') return j.error.slice(0, 300);
  } catch { /* not JSON */ }
  return text.replace(/\s+/g, ' ').trim().slice(0, 300);
}

function retryable(status: number): boolean {
  return status === 408 || status === 422 || status === 429 || (status >= 500 && status !== 501 && status !== 507);
}

/** Where the API lives and what the image is called, from .../images/<name>. */
function locate(url: string): { api: string; name: string; overwrite: boolean; location: string } | undefined {
  const u = new URL(url);
  const m = /^(.*)\/images\/([^/]+)$/.exec(u.pathname);
  if (m === null) return undefined;
  let name: string;
  try { name = decodeURIComponent(m[2]); } catch { return undefined; }
  const ov = u.searchParams.get('overwrite');
  const location = new URL(url);
  location.search = '';
  return { api: `${u.origin}${m[1]}/api/uploads`, name, overwrite: ov !== null && ov !== '0' && ov !== 'false', location: location.href };
}

interface Call { status: number; text: string; headers: Record<string, string | string[] | undefined> }

/**
 * One request with a watchdog: aborted when no body slice is taken and no answer arrives for
 * `stallMs`. Network trouble and stalls become Transient; the caller's abort passes through.
 */
async function call(url: string, init: { method: string; headers: Record<string, string>; body?: Buffer | string; stallMs: number; signal?: AbortSignal }): Promise<Call> {
  const ac = new AbortController();
  let last = performance.now();
  const onOuter = () => ac.abort(init.signal!.reason);
  init.signal?.addEventListener('abort', onOuter, { once: true });
  const watchdog = setInterval(() => {
    if (performance.now() - last > init.stallMs) ac.abort(new Transient(`no progress for ${Math.round(init.stallMs / 1000)} s`));
  }, Math.max(50, Math.min(1000, init.stallMs / 4)));
  let body: Readable | string | undefined;
  const headers = { ...init.headers };
  if (Buffer.isBuffer(init.body)) {
    // handed over in slices, so the watchdog sees the send progress
    const data = init.body;
    headers['content-length'] = String(data.length);
    body = Readable.from((function* () {
      for (let at = 0; at < data.length; at += SLICE) { last = performance.now(); yield data.subarray(at, at + SLICE); }
      last = performance.now();
    })(), { objectMode: false });
  } else body = init.body;
  try {
    const res = await request(url, { method: init.method, headers, body, signal: ac.signal, dispatcher: dispatcher() });
    last = performance.now();
    const text = await res.body.text();
    return { status: res.statusCode, text, headers: res.headers };
  } catch (e) {
    if (init.signal?.aborted === true) throw init.signal.reason ?? e;
    const trust = trustErrorOf(e);
    if (trust !== undefined) throw trust;
    const why = ac.signal.aborted && ac.signal.reason instanceof Transient ? ac.signal.reason.message
      : (e as { code?: string }).code ?? (e as Error).message;
    throw new Transient(why);
  } finally {
    clearInterval(watchdog);
    init.signal?.removeEventListener('abort', onOuter);
  }
}

/** booty capture's upload to booty server: resumable parts, else the two-step PUT + commit. */
export async function uploadToBootyServer(o: ResumableUploadOptions): Promise<ResumableOutcome> {
  try {
    return await uploadResumable(o);
  } catch (e) {
    // the capture pipeline feeding `body` must not wait for a reader that is gone
    if (!(e instanceof NotSupported)) { o.body.destroy(); throw e; }
    o.onFallback?.(e.status);
    (o.log ?? silentLogger).info(`upload: the server has no resumable uploads (${e.status}); using PUT + commit`);
    const r = await uploadPut({ url: o.url, body: o.body, headers: o.headers, imageSize: o.imageSize, signal: o.signal, sent: o.sent });
    return { ...r, protocol: 'put', parts: 1, resends: 0 };
  }
}

async function uploadResumable(o: ResumableUploadOptions): Promise<ResumableOutcome> {
  const log = o.log ?? silentLogger;
  const where = locate(o.url);
  if (where === undefined) throw new NotSupported(404);
  const stallMs = o.stallTimeoutMs ?? 60_000;
  const retryForMs = o.retryForMs ?? 10 * 60_000;
  const backoff0 = o.backoffInitialMs ?? 250;
  const backoffMax = o.backoffMaxMs ?? 5000;
  const base = { 'user-agent': 'booty', ...o.headers };
  const json = { ...base, 'content-type': 'application/json' };
  let lastProgress = performance.now();
  let resends = 0;

  /** Run `attempt` until it succeeds, fails for good, or retryForMs pass without progress. */
  async function persist<T>(what: string, attempt: (tries: number) => Promise<T>): Promise<T> {
    for (let tries = 0; ; tries++) {
      try {
        const r = await attempt(tries);
        lastProgress = performance.now();
        return r;
      } catch (e) {
        if (!(e instanceof Transient)) throw e;
        const waited = performance.now() - lastProgress;
        if (waited > retryForMs) {
          throw new Error(`${what} failed for ${Math.round(waited / 1000)} s (last: ${e.message}); giving up (retry time ${Math.round(retryForMs / 1000)} s)`);
        }
        const delay = backoffDelay(tries, { initialMs: backoff0, factor: 2, maxMs: backoffMax, jitter: 0 });
        log.debug(`upload: ${what}: ${e.message}; again in ${delay} ms`);
        await sleep(delay, o.signal);
      }
    }
  }

  const created = await persist('starting the upload', async () => {
    const r = await call(where.api, {
      method: 'POST', headers: json, stallMs, signal: o.signal,
      body: JSON.stringify({ name: where.name, overwrite: where.overwrite, ...(o.partSize !== undefined ? { partSize: o.partSize } : {}) }),
    });
    if (r.status === 404 || r.status === 405 || r.status === 501) throw new NotSupported(r.status);
    if (retryable(r.status)) throw new Transient(`server answered ${r.status}`);
    if (r.status !== 201 && r.status !== 200) throw new UploadRejected(r.status, `server refused the upload with ${r.status}: ${reason(r.text)}`);
    const j = JSON.parse(r.text) as { id?: unknown; partSize?: unknown };
    if (typeof j.id !== 'string' || typeof j.partSize !== 'number' || !(j.partSize > 0)) throw new UploadRejected(r.status, 'server answered the upload start without an id and part size');
    return { id: j.id, partSize: j.partSize };
  });
  const session = `${where.api}/${encodeURIComponent(created.id)}`;
  log.debug(`upload: session ${created.id}, parts of ${created.partSize} bytes`);

  /** Does the server already hold part n as we sent it (our answer was lost)? */
  async function serverHas(n: number, size: number, sha256: string): Promise<boolean> {
    try {
      const r = await call(session, { method: 'GET', headers: base, stallMs, signal: o.signal });
      if (r.status !== 200) return false;
      const parts = (JSON.parse(r.text) as { parts?: { n: number; size: number; sha256: string }[] }).parts ?? [];
      return parts.some((p) => p.n === n && p.size === size && p.sha256 === sha256);
    } catch (e) {
      if (e instanceof Transient) return false;
      throw e;
    }
  }

  async function sendPart(n: number, data: Buffer): Promise<void> {
    const sha256 = createHash('sha256').update(data).digest('hex');
    await persist(`part ${n}`, async (tries) => {
      if (tries > 0) {
        if (await serverHas(n, data.length, sha256)) return;
        resends++;
        o.onResend?.(n, `try ${tries + 1}`);
      }
      const r = await call(`${session}/parts/${n}`, {
        method: 'PUT', headers: { ...base, 'content-type': 'application/octet-stream', 'x-booty-sha256': sha256 }, body: data, stallMs, signal: o.signal,
      });
      if (retryable(r.status)) throw new Transient(`server answered ${r.status} to part ${n}: ${reason(r.text)}`);
      if (r.status !== 200 && r.status !== 201) throw new UploadRejected(r.status, `server refused part ${n} with ${r.status}: ${reason(r.text)}`);
    });
  }

  // Cut the stream into parts; one part buffer, reused.
  const part = Buffer.allocUnsafe(created.partSize);
  let filled = 0;
  let n = 0;
  for await (const c of o.body) {
    let chunk = c as Buffer;
    while (chunk.length > 0) {
      const take = Math.min(chunk.length, part.length - filled);
      chunk.copy(part, filled, 0, take);
      filled += take;
      chunk = chunk.subarray(take);
      if (filled === part.length) { await sendPart(n++, part); filled = 0; }
    }
  }
  if (filled > 0) await sendPart(n++, part.subarray(0, filled));

  const mine = o.sent();
  let committed = false;
  const reply = await persist('the commit', async (tries) => {
    const r = await call(`${session}/commit`, {
      method: 'POST', headers: json, stallMs, signal: o.signal,
      body: JSON.stringify({ size: mine.size, sha256: mine.sha256, parts: n, ...(o.imageSize !== undefined ? { uncompressedSize: o.imageSize } : {}) }),
    });
    if (r.status === 200 || r.status === 201) { committed = true; return r.text; }
    // a commit whose answer was lost: the session is gone; the image tells whether it went in
    if (r.status === 404 && tries > 0) {
      const head = await call(where.location, { method: 'HEAD', headers: base, stallMs, signal: o.signal });
      if (head.status === 200 && head.headers['x-image-sha256'] === mine.sha256 && Number(head.headers['content-length']) === mine.size) {
        committed = true;
        return '{}';
      }
    }
    if (retryable(r.status)) throw new Transient(`server answered ${r.status} to the commit`);
    throw new UploadRejected(r.status, `server refused the commit with ${r.status}: ${reason(r.text)}`);
  });
  if (!committed) throw new UploadRejected(0, 'the commit was not confirmed');
  let parsed: unknown;
  try { parsed = JSON.parse(reply); } catch { parsed = undefined; }
  return { reply: parsed, location: where.location, protocol: 'parts', parts: n, resends };
}
