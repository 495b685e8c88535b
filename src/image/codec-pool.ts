// A pool of worker threads that compress and decompress whole frames (one frame per task, a few
// MiB each) with node:zlib's one-shot calls, so capture and deploy use every core. Buffers move
// between threads by transfer, never by copy. The worker's code is a string evaluated in the
// worker (not a file next to this one): the agent ships as one esbuild bundle, where a worker
// file would not exist.
//
// Each worker runs one task at a time; tasks wait in a FIFO. Workers are unref'd while idle, so a
// pool that was not closed never keeps the process alive; close() ends them.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { EXIT_ON_MESSAGE, endWorker } from './worker-exit.ts';
import { LIBDEFLATE, LIBDEFLATE_WORKER_SOURCE } from '../sys/libdeflate.ts';
import { ISAL, ISAL_GZIP_LEVEL, ISAL_WORKER_SOURCE } from '../sys/isal.ts';
import type { NativeLibForWorkers } from '../sys/native-codec-lib.ts';

const WORKER_SOURCE = String.raw`
const { parentPort, workerData } = require('node:worker_threads');
const zlib = require('node:zlib');
const C = zlib.constants;
const MiB = 1 << 20;
const asBuffer = (u8) => Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
// What a task leaves behind is its input (moved here from the main thread) and small result
// buffers (moved back); V8 would let ~64 MiB of such external memory pile up per thread before
// collecting. A scavenge after each task (about a millisecond, against tens of milliseconds of
// work) keeps every worker flat. (A full collection per task cost 3-5 ms each: a third of a
// worker's time on gzip -1 frames.)
let collect = null;
try {
  require('node:v8').setFlagsFromString('--expose-gc');
  collect = require('node:vm').runInNewContext('gc');
} catch { collect = null; }
// Move the result's memory when it can move; some of zlib's output buffers are marked
// untransferable (pooled): those are copied.
const send = (reply) => {
  try { parentPort.postMessage(reply, [reply.out.buffer]); } catch { parentPort.postMessage(reply); }
};
// One compressor per worker, reset between frames, instead of a new one per frame: a zstd
// context with its window and tables is megabytes of native memory that a per-frame context only
// gives back when V8 collects its wrapper (hundreds of MiB of RSS at GB/s). The compressor's
// native handle is driven synchronously into one reusable output buffer, as node:zlib's own *Sync
// functions drive it; reset() keeps the level and the pledged size, so every frame is
// byte-identical to the one-shot call's. Where this Node lacks those internals, the one-shot
// calls are used.
let enc = null;   // { key, stream, handle, state, finish, error }: the compressor in use
let scratch = Buffer.alloc(0);
const reusable = (s) => s._handle && typeof s._handle.writeSync === 'function' && s._writeState instanceof Uint32Array;
const compressor = (op, level, size) => {
  const key = op + ':' + level + ':' + size;
  if (enc !== null && enc.key === key) { enc.stream.reset(); return enc; }
  if (enc !== null) enc.stream.close();
  enc = null;
  const stream = op === 'deflate' ? zlib.createDeflateRaw({ level })
    : zlib.createZstdCompress({ pledgedSrcSize: size, params: { [C.ZSTD_c_compressionLevel]: level, [C.ZSTD_c_checksumFlag]: 1, [C.ZSTD_c_contentSizeFlag]: 1 } });
  if (!reusable(stream)) { stream.close(); return null; }
  let error = null;
  stream._handle.onerror = (message, errno, code) => { error = { message, errno, code }; };
  enc = { key, stream, handle: stream._handle, state: stream._writeState, finish: op === 'deflate' ? C.Z_FINISH : C.ZSTD_e_end, error: () => error };
  return enc;
};
// Compresses data as one whole frame/stream; returns a right-sized copy of the result.
const compressWhole = (e, data) => {
  const bound = data.length + (data.length >> 6) + 65536;
  if (scratch.length < bound) scratch = Buffer.allocUnsafeSlow(bound);
  let inOff = 0, avail = data.length, filled = 0;
  for (;;) {
    const room = scratch.length - filled;
    e.handle.writeSync(e.finish, data, inOff, avail, scratch, filled, room);
    const err = e.error();
    if (err !== null) { e.stream.close(); enc = null; const x = new Error(err.message); x.code = err.code; throw x; }
    const outAfter = e.state[0], inAfter = e.state[1];
    inOff += avail - inAfter; avail = inAfter;
    filled += room - outAfter;
    if (outAfter !== 0) break;
    const bigger = Buffer.allocUnsafeSlow(scratch.length * 2);
    scratch.copy(bigger, 0, 0, filled);
    scratch = bigger;
  }
  const out = Buffer.allocUnsafeSlow(filled);
  scratch.copy(out, 0, 0, filled);
  return out;
};
// libdeflate, where the main thread found it (src/sys/libdeflate.ts): DEFLATE at about twice
// node:zlib's speed, same format; null keeps node:zlib.
${LIBDEFLATE_WORKER_SOURCE}
const crc32 = (buf) => { const l = loadLibdeflate(); return l !== null ? l.crc32(buf) : zlib.crc32(buf); };
// ISA-L's igzip for gzip level ${ISAL_GZIP_LEVEL} (src/sys/isal.ts), where the main thread found it.
${ISAL_WORKER_SOURCE}
let isalChecked = false;
// One frame by igzip, or null (not loaded, refused, or did not fit): the caller then compresses
// with libdeflate / node:zlib. The worker's first igzip frame is inflated back and compared, so
// a library whose struct layout disagreed with ours is dropped before its output is used.
const deflateIsal = (data) => {
  const isal = loadIsal();
  if (isal === null) return null;
  const bound = isal.bound(data.length);
  if (scratch.length < bound) scratch = Buffer.allocUnsafeSlow(bound);
  const n = isal.deflate(data, scratch);
  if (n === 0) return null;
  const out = Buffer.allocUnsafeSlow(n);
  scratch.copy(out, 0, 0, n);
  if (!isalChecked) {
    let same = false;
    try { same = zlib.inflateRawSync(out, { maxOutputLength: data.length + 1 }).equals(data); } catch { same = false; }
    if (!same) { isalLoaded = null; return null; }
    isalChecked = true;
  }
  return out;
};
const deflateWith = (libdeflate, level, data) => {
  const bound = libdeflate.compressBound(level, data.length);
  if (scratch.length < bound) scratch = Buffer.allocUnsafeSlow(bound);
  const n = libdeflate.compress(level, data, scratch);
  if (n === 0) throw new Error('libdeflate_deflate_compress: output larger than its bound');
  const out = Buffer.allocUnsafeSlow(n);
  scratch.copy(out, 0, 0, n);
  return out;
};
// One frame's raw DEFLATE into exactly its announced size: more output is an error (no more
// memory), as with zlib's maxOutputLength below; zlib's error codes, so callers word them alike.
const inflateWith = (libdeflate, data, size) => {
  const out = Buffer.allocUnsafeSlow(size);
  const r = libdeflate.decompress(data, out);
  if (r.result === 3) { const e = new Error('decodes to more than ' + size + ' bytes'); e.code = 'ERR_BUFFER_TOO_LARGE'; throw e; }
  if (r.result !== 0) { const e = new Error('invalid deflate data, or it stops before its final block'); e.code = 'Z_DATA_ERROR'; throw e; }
  return { out: r.outUsed === size ? out : out.subarray(0, r.outUsed), consumed: r.inUsed };
};
parentPort.on('message', (m) => {
  ${EXIT_ON_MESSAGE}
  let t = m;
  m = null;
  try {
    const data = asBuffer(t.data);
    let reply;
    switch (t.op) {
      case 'deflate': {
        let out = t.level === ${ISAL_GZIP_LEVEL} ? deflateIsal(data) : null;
        if (out === null) {
          const libdeflate = loadLibdeflate();
          const e = libdeflate !== null ? null : compressor('deflate', t.level, data.length);
          out = libdeflate !== null ? deflateWith(libdeflate, t.level, data) : e !== null ? compressWhole(e, data) : zlib.deflateRawSync(data, { level: t.level, chunkSize: MiB });
        }
        reply = { id: t.id, out, crc: crc32(data) };
        break;
      }
      case 'zstd': {
        const e = compressor('zstd', t.level, data.length);
        const out = e !== null ? compressWhole(e, data) : zlib.zstdCompressSync(data, {
          chunkSize: MiB, pledgedSrcSize: data.length,
          params: { [C.ZSTD_c_compressionLevel]: t.level, [C.ZSTD_c_checksumFlag]: 1, [C.ZSTD_c_contentSizeFlag]: 1 },
        });
        reply = { id: t.id, out };
        break;
      }
      case 'inflate': {
        const libdeflate = loadLibdeflate();
        if (libdeflate !== null) {
          const r = inflateWith(libdeflate, data, t.size);
          reply = { id: t.id, out: r.out, crc: crc32(r.out), consumed: r.consumed };
          break;
        }
        // one output chunk of the announced size; more than that is an error, not more memory
        const r = zlib.inflateRawSync(data, { info: true, chunkSize: t.size + 64, maxOutputLength: t.size + 1 });
        reply = { id: t.id, out: r.buffer, crc: crc32(r.buffer), consumed: r.engine.bytesWritten };
        break;
      }
      case 'unzstd': {
        const out = zlib.zstdDecompressSync(data, { chunkSize: t.size + 64, maxOutputLength: t.size + 1 });
        reply = { id: t.id, out };
        break;
      }
      default: throw new Error('unknown codec op ' + t.op);
    }
    send(reply);
  } catch (e) {
    parentPort.postMessage({ id: t.id, error: { message: String(e && e.message || e), code: e && e.code } });
  }
  t = null;
  if (collect !== null) collect({ type: 'minor' });
});
`;

export type CodecTask =
  | { op: 'deflate' | 'zstd'; data: Buffer; level: number }
  | { op: 'inflate' | 'unzstd'; data: Buffer; size: number };

export interface CodecResult {
  out: Buffer;
  /** CRC-32 of the uncompressed bytes (deflate: of the input; inflate: of the output) */
  crc?: number;
  /** inflate: input bytes the deflate stream took (less than given = data after its end) */
  consumed?: number;
}

/** A worker's error, with zlib's code when it had one. */
export class CodecError extends Error {
  readonly code: string | undefined;
  constructor(message: string, code: string | undefined) {
    super(message);
    this.name = 'CodecError';
    this.code = code;
  }
}

interface Pending { resolve: (r: CodecResult) => void; reject: (e: Error) => void }
interface Queued { msg: Record<string, unknown>; transfer: ArrayBuffer[]; pending: Pending }

export class CodecPool {
  readonly size: number;
  private readonly idle: Worker[] = [];
  private readonly all: Worker[] = [];
  private readonly queue: Queued[] = [];
  private readonly running = new Map<Worker, { id: number; pending: Pending }>();
  private nextId = 1;
  private broken: Error | undefined;
  private closed = false;

  /** the workers' DEFLATE: 'libdeflate' or 'node:zlib' */
  readonly deflate: 'libdeflate' | 'node:zlib';
  /** whether the workers were given ISA-L for gzip level ISAL_GZIP_LEVEL */
  readonly isal: boolean;
  private readonly isalWhyNot: string;
  private readonly deflateNote: string;

  /**
   * `libdeflate`: null keeps node:zlib (default: libdeflate where it loads, src/sys/libdeflate.ts);
   * `isal`: null keeps gzip level 1 off ISA-L (default: ISA-L where it loads, src/sys/isal.ts)
   */
  constructor(size: number, o: { libdeflate?: NativeLibForWorkers | null; isal?: NativeLibForWorkers | null } = {}) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`worker count must be a positive integer, not ${size}`);
    this.size = size;
    const libdeflate = o.libdeflate === undefined ? LIBDEFLATE.forWorkers() : o.libdeflate ?? undefined;
    const isal = o.isal === undefined ? ISAL.forWorkers() : o.isal ?? undefined;
    this.deflate = libdeflate !== undefined ? 'libdeflate' : 'node:zlib';
    this.isal = isal !== undefined;
    this.isalWhyNot = this.isal ? '' : o.isal === null ? 'ISA-L not used' : ISAL.whyNot();
    this.deflateNote = libdeflate !== undefined ? 'libdeflate' : o.libdeflate === null ? 'node:zlib' : LIBDEFLATE.status();
    for (let i = 0; i < size; i++) {
      // (a worker keeps almost nothing alive: a small young generation keeps its heap small)
      const w = new Worker(WORKER_SOURCE, { eval: true, name: `booty-codec-${i}`, workerData: { libdeflate, isal }, resourceLimits: { maxYoungGenerationSizeMb: 4 } });
      w.unref();
      w.on('message', (m: { id: number; out?: Uint8Array; crc?: number; consumed?: number; error?: { message: string; code?: string } }) => this.done(w, m));
      w.on('error', (e: Error) => this.fail(w, e));
      w.on('exit', (code) => { if (!this.closed) this.fail(w, new Error(`codec worker exited (${code})`)); });
      this.all.push(w);
      this.idle.push(w);
    }
  }

  /** For logs: what compresses gzip frames at `level` (and why not the faster libraries). */
  deflateAt(level: number): string {
    if (level !== ISAL_GZIP_LEVEL) return this.deflateNote;
    return this.isal ? 'ISA-L igzip' : `${this.deflateNote}; ${this.isalWhyNot}`;
  }

  /**
   * Runs one task. With `transfer`, the input's memory moves to the worker (the caller's Buffer
   * reads as empty afterwards): only for buffers the caller owns whole (allocUnsafeSlow).
   */
  run(task: CodecTask, transfer = false): Promise<CodecResult> {
    if (this.broken) return Promise.reject(this.broken);
    if (this.closed) return Promise.reject(new Error('codec pool is closed'));
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      const { data, ...rest } = task;
      const msg = { ...rest, id, data };
      const transferList = transfer && data.buffer.byteLength > Buffer.poolSize ? [data.buffer as ArrayBuffer] : [];
      this.queue.push({ msg, transfer: transferList, pending: { resolve, reject } });
      this.pump();
    });
  }

  private pump(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const w = this.idle.pop()!;
      const q = this.queue.shift()!;
      this.running.set(w, { id: q.msg.id as number, pending: q.pending });
      w.ref();
      try { w.postMessage(q.msg, q.transfer); } catch {
        // memory that cannot move (pooled, untransferable) is copied instead
        w.postMessage(q.msg);
      }
    }
  }

  private done(w: Worker, m: { id: number; out?: Uint8Array; crc?: number; consumed?: number; error?: { message: string; code?: string } }): void {
    const r = this.running.get(w);
    if (r === undefined || r.id !== m.id) return;
    this.running.delete(w);
    w.unref();
    this.idle.push(w);
    if (m.error !== undefined) r.pending.reject(new CodecError(m.error.message, m.error.code));
    else {
      const out = Buffer.from(m.out!.buffer, m.out!.byteOffset, m.out!.byteLength);
      r.pending.resolve({ out, crc: m.crc, consumed: m.consumed });
    }
    this.pump();
  }

  private fail(w: Worker, e: Error): void {
    this.broken ??= e;
    const r = this.running.get(w);
    this.running.delete(w);
    r?.pending.reject(e);
    for (const q of this.queue.splice(0)) q.pending.reject(e);
  }

  /** Ends every worker; tasks still waiting are rejected. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = new Error('codec pool closed');
    for (const q of this.queue.splice(0)) q.pending.reject(err);
    for (const r of this.running.values()) r.pending.reject(err);
    this.running.clear();
    // (never terminate(): a thread stopped inside koffi aborts the process; worker-exit.ts)
    await Promise.all(this.all.map((w) => endWorker(w)));
  }
}

/** Capture's worker threads when the operator did not say: one per core the process may use. */
export { availableParallelism as defaultWorkers } from 'node:os';

/** Deploy's worker threads when the operator did not say. Deploy's main thread is busy with the
 *  network, the sha256 and the writes, and one stream of inflate/zstd in node:zlib is already fast
 *  on a mostly-zero image: measured on 2 shared vCPUs, 2 decode workers were slower than one
 *  stream. Parallel decoding pays from 4 cores up: one per core, leaving one to the main thread. */
export function defaultDeployWorkers(cores = availableParallelism()): number {
  return cores >= 4 ? cores - 1 : 0;
}

/** Whether deploy decodes a single-stream image (pigz, gzip, zstd without frame sizes) on its own
 *  worker thread when the operator did not say: from 2 cores up, where decoding and the main
 *  thread's work (network, sha256, zero runs, writes) then overlap instead of taking turns
 *  (decode-worker.ts). On one core the hand-offs would only cost. */
export function decodeOnWorkerByDefault(cores = availableParallelism()): boolean {
  return cores >= 2;
}

/** Deploy's segment workers for a gzip image with an access-point index (segment-inflate.ts) when
 *  the operator did not say: one per core from 2 cores up. The main thread's share (network,
 *  sha256, zero runs, writes) is small next to inflate: measured on 2 vCPUs, 2 workers inflate a
 *  4 GiB image 1.6x as fast as one decode worker; with fewer than 2 the index gains nothing. */
export function defaultSegmentWorkers(cores = availableParallelism()): number {
  return cores >= 2 ? Math.min(cores, 32) : 0;
}
