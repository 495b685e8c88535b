// Deploy's side of the gzip access-point index (gzip-index.ts): fetching it beside the image and
// deciding whether it may be used. An index is an accelerator, never a requirement: one that is
// missing, unreadable or not this image's is reported as a warning and deploy decodes the image as
// one stream, exactly as without it. Only what cannot be known before the data arrives (a segment
// that does not decode as the index says) fails the deploy, and the image's own checks (CRC-32,
// sha256) stay in force either way.
import type { Logger } from '../../util/log.ts';
import type { ImageResponse } from './fetch.ts';
import type { Readable } from 'node:stream';
import { ByteQueue } from '../byte-queue.ts';
import { FLAG_ZEROS, HEADER_BYTES, RECORD_BYTES, decodeHeader, decodeRecord, gzipHeaderLength, type GzipIndexHeader, type GzipIndexRecord } from '../format/gzip-index.ts';
import { ResumableSource } from './resumable-source.ts';
import { formatBytes } from '../progress.ts';
import type { GzipIndexSummary } from '../decode-plan.ts';

/** Reads an index front to back: the header first, then one record (and its prefix) at a time. */
export class GzipIndexReader {
  header!: GzipIndexHeader;
  private readonly q = new ByteQueue();
  private readonly it: AsyncIterator<Buffer>;
  private ended = false;
  /** records read so far */
  read = 0;

  constructor(body: Readable) {
    this.it = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  private async fill(n: number): Promise<void> {
    while (this.q.length < n) {
      if (this.ended) throw new Error(`the gzip index ends early (${this.q.length} of ${n} bytes of a record)`);
      const r = await this.it.next();
      if (r.done === true) this.ended = true;
      else this.q.push(r.value);
    }
  }

  async readHeader(): Promise<GzipIndexHeader> {
    await this.fill(HEADER_BYTES);
    this.header = decodeHeader(this.q.take(HEADER_BYTES));
    return this.header;
  }

  /** The next record and its prefix; throws once all `count` records were read. */
  async next(): Promise<{ rec: GzipIndexRecord; prefix: Buffer }> {
    if (this.read >= this.header.count) throw new Error('internal: read past the last index record');
    await this.fill(RECORD_BYTES);
    const rec = decodeRecord(this.q.take(RECORD_BYTES));
    if (rec.prefixLength > 1 << 20) throw new Error(`gzip index record ${this.read} has a ${rec.prefixLength}-byte window prefix`);
    await this.fill(rec.prefixLength);
    const prefix = rec.prefixLength > 0 ? this.q.take(rec.prefixLength) : Buffer.alloc(0);
    this.read++;
    return { rec, prefix };
  }

  /** Stops reading (ends the index download); never throws. */
  close(): void {
    Promise.resolve().then(() => this.it.return?.()).catch(() => {});
  }
}

/** A failure of the index (unreadable, damaged, not this image's): not a verdict on the image. */
export class GzipIndexError extends Error {
  constructor(message: string) { super(message); this.name = 'GzipIndexError'; }
}

export interface OpenIndexOptions {
  headers?: Record<string, string>;
  signal?: AbortSignal;
  log: Logger;
  /** the image's first response and first bytes, to check the index belongs to it */
  image: ImageResponse;
  head: Buffer;
  /** how long to keep retrying a broken index download (default: the image's own) */
  retryForMs?: number;
  stallTimeoutMs?: number;
}

/** Why `h` is not an index of the image served as `res` starting with `head`, or undefined. */
export function indexMismatch(h: GzipIndexHeader, res: ImageResponse, head: Buffer): string | undefined {
  if (res.servedSize === undefined) return 'the server did not say how large the image is (no Content-Length), so the index cannot be matched to it';
  if (h.fileSize !== res.servedSize) return `the index is for a ${h.fileSize}-byte file, the image is ${res.servedSize} bytes`;
  if (h.etag !== '' && res.etag !== undefined && h.etag !== res.etag) return `the index is for ETag ${h.etag}, the image is served as ${res.etag}`;
  if (res.sha256 !== undefined && h.sha256 !== res.sha256) return `the index records sha256 ${h.sha256.slice(0, 12)}…, the server's X-Image-Sha256 is ${res.sha256.slice(0, 12)}…`;
  const n = gzipHeaderLength(head);
  if (n !== h.deflateStart) return `the index says the gzip header is ${h.deflateStart} bytes, the image's is ${typeof n === 'number' ? n : 'unreadable'}`;
  return undefined;
}

/** Opens the index at `url` and reads its header; undefined (after a warning) when it cannot be used. */
export async function openGzipIndex(url: string, o: OpenIndexOptions): Promise<GzipIndexReader | undefined> {
  let source: ResumableSource | undefined;
  try {
    source = await ResumableSource.open(url, {
      headers: o.headers, signal: o.signal, log: o.log,
      // a broken index download is retried like the image's, but an absent one is given up at once
      retryForMs: o.retryForMs, stallTimeoutMs: o.stallTimeoutMs,
    });
    const reader = new GzipIndexReader(source);
    const h = await reader.readHeader();
    const wrong = indexMismatch(h, o.image, o.head);
    if (wrong !== undefined) {
      reader.close();
      source.destroy();
      o.log.warn(`deploy: not using the gzip index ${url}: ${wrong}; decoding the image as one stream`);
      return undefined;
    }
    o.log.info(`deploy: gzip index ${url}: ${h.count} segments of ${formatBytes(h.spacing)}, ${formatBytes(h.totalSize)} uncompressed`);
    return reader;
  } catch (e) {
    source?.destroy();
    if (o.signal?.aborted === true) throw e;
    o.log.warn(`deploy: not using the gzip index ${url}: ${(e as Error).message}; decoding the image as one stream`);
    return undefined;
  }
}

/**
 * Reads the index at `url` through once more, for what its records say (decode-plan.ts decides
 * from it): a second download of the index (about 0.15 % of the image), nothing kept but counts.
 * Undefined (after a note in the log) when it cannot be read or is not the index `header` came
 * from.
 */
export async function summarizeGzipIndex(url: string, header: GzipIndexHeader, o: Pick<OpenIndexOptions, 'headers' | 'signal' | 'log' | 'retryForMs' | 'stallTimeoutMs'>): Promise<GzipIndexSummary | undefined> {
  let source: ResumableSource | undefined;
  try {
    source = await ResumableSource.open(url, { headers: o.headers, signal: o.signal, log: o.log, retryForMs: o.retryForMs, stallTimeoutMs: o.stallTimeoutMs });
    const reader = new GzipIndexReader(source);
    const h = await reader.readHeader();
    if (h.sha256 !== header.sha256 || h.count !== header.count || h.totalSize !== header.totalSize) throw new Error('it changed since it was opened');
    const s: GzipIndexSummary = { segments: h.count, zeroSegments: 0, totalBytes: h.totalSize, zeroBytes: 0 };
    for (let i = 0; i < h.count; i++) {
      const { rec } = await reader.next();
      // (the last segment is always inflated: it ends the stream; segment-inflate.ts)
      if ((rec.flags & FLAG_ZEROS) !== 0 && i < h.count - 1) { s.zeroSegments++; s.zeroBytes += rec.uLen; }
    }
    reader.close();
    return s;
  } catch (e) {
    if (o.signal?.aborted === true) throw e;
    o.log.info(`deploy: reading the gzip index's records ahead failed (${(e as Error).message})`);
    return undefined;
  } finally {
    source?.destroy();
  }
}
