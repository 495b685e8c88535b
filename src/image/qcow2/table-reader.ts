// Reading a qcow2's tables (L1, L2) before the download: HTTP Range requests for byte ranges of the
// same file (the first response's ETag must match: the tables and the data must be one image).
// Adjacent tables are fetched in one request. A server that answers a Range request with the
// whole file (200) does not do ranges: the caller then reads the tables from the stream itself.
import type { Readable } from 'node:stream';
import { FetchError, openImage, type ImageResponse } from '../source/fetch.ts';
import { sleep } from '../../util/backoff.ts';

export interface RangeReadOptions {
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** the first response: its ETag must not change */
  first: ImageResponse;
}

export class RangeUnsupported extends Error {
  constructor(why: string) { super(why); this.name = 'RangeUnsupported'; }
}

async function readAll(body: Readable, length: number): Promise<Buffer> {
  const out = Buffer.allocUnsafe(length);
  let got = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    if (got + chunk.length > length) { body.destroy(); throw new Error(`the server sent more than the ${length} bytes asked for`); }
    chunk.copy(out, got);
    got += chunk.length;
  }
  if (got !== length) throw new Error(`the server sent ${got} of ${length} bytes`);
  return out;
}

/** Tries per table read: a dropped connection or a 503 is tried again, like the download. */
const TRIES = 6;

/** [start, start+length) of the image; throws RangeUnsupported when the server ignores Range. */
export async function readRange(url: string, start: number, length: number, o: RangeReadOptions): Promise<Buffer> {
  for (let tries = 1; ; tries++) {
    try {
      return await readRangeOnce(url, start, length, o);
    } catch (e) {
      const permanent = e instanceof RangeUnsupported || (e instanceof FetchError && !e.transient) || o.signal?.aborted === true || ETAG_CHANGED.test((e as Error).message);
      if (permanent || tries >= TRIES) throw e;
      await sleep(Math.min(100 * 2 ** tries, 3000), o.signal);
    }
  }
}

const ETAG_CHANGED = /the image changed on the server/;

async function readRangeOnce(url: string, start: number, length: number, o: RangeReadOptions): Promise<Buffer> {
  const res = await openImage(url, { start, end: start + length - 1, headers: o.headers, signal: o.signal, stallTimeoutMs: 60_000 });
  if (res.status !== 206 || res.rangeStart !== start) {
    res.body.on('error', () => {});
    res.body.destroy();
    throw new RangeUnsupported(`the server answered a Range request with ${res.status}${res.status === 206 ? ` from byte ${res.rangeStart}` : ''}`);
  }
  if (o.first.etag !== undefined && res.etag !== undefined && res.etag !== o.first.etag) {
    res.body.destroy();
    throw new Error(`the image changed on the server while its tables were read (ETag ${o.first.etag} -> ${res.etag})`);
  }
  return readAll(res.body, length);
}

/** Groups ranges (sorted by start) into requests: neighbours less than `gap` apart share one. */
export function coalesce(ranges: Array<{ start: number; length: number }>, gap = 256 << 10, max = 16 << 20): Array<{ start: number; end: number; members: number[] }> {
  const out: Array<{ start: number; end: number; members: number[] }> = [];
  ranges.forEach((r, i) => {
    const last = out[out.length - 1];
    if (last !== undefined && r.start - last.end <= gap && r.start + r.length - last.start <= max) {
      last.end = Math.max(last.end, r.start + r.length);
      last.members.push(i);
    } else out.push({ start: r.start, end: r.start + r.length, members: [i] });
  });
  return out;
}
