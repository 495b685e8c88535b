// Small stream pieces of the data path, each with one job, each testable on its own:
// HashTap (sha256 and a byte count of what passes, unchanged), SizeLimit (fail instead of
// passing more than N bytes), ChunkAligner (re-cut arbitrary chunks into fixed-size blocks in
// caller-provided, aligned buffers) and peekHead (look at a stream's first bytes, then put them
// back).
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { streamSha256, type StreamSha256 } from '../sys/sha256-thread.ts';
import { HashPlacer } from './hash-placement.ts';

/** bytes the hash may fall behind the stream before the stream waits for it */
const HASH_LAG = 4 << 20;

/** Passes chunks through unchanged while computing their sha256 and counting them. The hash runs
 *  on the main thread, or on libuv's pool while the main thread is the busy one
 *  (hash-placement.ts, sha256-thread.ts). */
export class HashTap extends Transform {
  bytes = 0;
  private readonly hash: StreamSha256;
  private readonly placer: HashPlacer | undefined;
  private digestHex: string | undefined;
  private readonly onChunk: ((n: number) => void) | undefined;

  constructor(opts: { onChunk?: (n: number) => void; placer?: HashPlacer } = {}) {
    super();
    this.hash = streamSha256();
    this.placer = !this.hash.canOffload ? undefined : opts.placer ?? (HashPlacer.useful() ? new HashPlacer() : undefined);
    this.onChunk = opts.onChunk;
  }

  /** bytes hashed on the pool rather than the main thread */
  get offloaded(): number {
    return this.hash.offloaded;
  }

  /** false: node:crypto on the main thread only (sha256-thread.ts hashThreadWhyNot says why) */
  get canOffload(): boolean {
    return this.hash.canOffload;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const move = this.placer?.tick(this.hash.offload);
    if (move !== undefined) this.hash.offload = move;
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.onChunk?.(chunk.length);
    this.push(chunk);
    if (this.hash.queued <= HASH_LAG) cb();
    else this.hash.below(HASH_LAG / 2).then(() => cb(), cb);
  }

  override _flush(cb: TransformCallback): void {
    this.hash.digest().then((d) => { this.digestHex = d; cb(); }, cb);
  }

  /** hex digest of everything that passed; valid once the stream ended */
  digest(): string {
    if (this.digestHex === undefined) throw new Error('HashTap: the digest is known once the stream ended');
    return this.digestHex;
  }
}

export class SizeLimitExceeded extends Error {
  readonly limit: number;
  constructor(limit: number) {
    super(`stream is larger than the limit of ${limit} bytes`);
    this.name = 'SizeLimitExceeded';
    this.limit = limit;
  }
}

/**
 * Passes at most `limit` bytes. A chunk that would cross the limit is not passed at all (not
 * even its first part): the stream fails with SizeLimitExceeded, so nothing beyond the limit is
 * ever written and no truncated image can look complete.
 */
export class SizeLimit extends Transform {
  bytes = 0;
  readonly limit: number;
  constructor(limit: number) {
    super();
    this.limit = limit;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.bytes + chunk.length > this.limit) {
      cb(new SizeLimitExceeded(this.limit));
      return;
    }
    this.bytes += chunk.length;
    cb(null, chunk);
  }
}

/**
 * Re-cuts a stream of arbitrary chunks into blocks of exactly `blockSize` bytes, copied into
 * buffers the caller provides (aligned for O_DIRECT, taken from a pool). Usage:
 *   while (pos < chunk.length) { if (a.needsBlock()) a.setBlock(await pool.get());
 *     pos = a.fill(chunk, pos); if (a.full()) submit(a.take()); }
 *   at the end: const tail = a.take(); (may be shorter than blockSize, or undefined)
 */
export class ChunkAligner {
  readonly blockSize: number;
  private block: Buffer | undefined;
  private filled = 0;

  constructor(blockSize: number) {
    if (!(blockSize > 0)) throw new RangeError('blockSize must be positive');
    this.blockSize = blockSize;
  }

  needsBlock(): boolean { return this.block === undefined; }

  setBlock(buf: Buffer): void {
    if (this.block !== undefined) throw new Error('ChunkAligner: a block is already being filled');
    if (buf.length < this.blockSize) throw new RangeError('ChunkAligner: block buffer too small');
    this.block = buf;
    this.filled = 0;
  }

  /** Copies from chunk[pos..] into the current block; returns the new pos. */
  fill(chunk: Uint8Array, pos = 0): number {
    if (this.block === undefined) throw new Error('ChunkAligner: no block to fill');
    const n = Math.min(this.blockSize - this.filled, chunk.length - pos);
    this.block.set(chunk.subarray(pos, pos + n), this.filled);
    this.filled += n;
    return pos + n;
  }

  full(): boolean { return this.block !== undefined && this.filled === this.blockSize; }

  /** bytes in the current block */
  get length(): number { return this.filled; }

  /** Detaches the current block: the buffer and how many bytes of it are filled. */
  take(): { buf: Buffer; length: number } | undefined {
    if (this.block === undefined) return undefined;
    const out = { buf: this.block, length: this.filled };
    this.block = undefined;
    this.filled = 0;
    return out;
  }
}

/**
 * Reads the first `n` bytes of a paused readable (fewer if it ends sooner) and returns them with
 * a stream that yields every byte from the first: the same stream with the head put back
 * (unshift), or, when it already ended, a new one holding just the head.
 */
export function peekHead(stream: Readable, n: number): Promise<{ head: Buffer; rest: Readable }> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let got = 0;
    const cleanup = () => {
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      stream.off('error', onError);
    };
    const finish = (ended: boolean) => {
      cleanup();
      const all = Buffer.concat(parts);
      const head = Buffer.from(all.subarray(0, n));
      if (ended) {
        resolve({ head, rest: Readable.from(all.length > 0 ? [all] : []) });
        return;
      }
      if (all.length > 0) stream.unshift(all);
      resolve({ head, rest: stream });
    };
    const onReadable = () => {
      let chunk: Buffer | null;
      while (got < n && (chunk = stream.read() as Buffer | null) !== null) {
        parts.push(chunk);
        got += chunk.length;
      }
      if (got >= n) finish(false);
    };
    const onEnd = () => finish(true);
    const onError = (e: Error) => { cleanup(); reject(e); };
    stream.on('readable', onReadable);
    stream.on('end', onEnd);
    stream.on('error', onError);
  });
}
