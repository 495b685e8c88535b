// A pool of worker threads that compress and decompress whole frames (one frame per task, a few
// MiB each), so capture and deploy use every core. Buffers move between threads by transfer,
// never by copy. The workers run codec-worker-entry.ts (started by worker-start.ts, which says how
// in the sources and in the bundle).
//
// Each worker runs one task at a time; tasks wait in a FIFO. Workers are unref'd while idle, so a
// pool that was not closed never keeps the process alive; close() ends them.
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { endWorker } from './worker-exit.ts';
import { startWorker } from './worker-start.ts';
import { LIBDEFLATE } from '../../sys/libdeflate.ts';
import { ISAL, ISAL_GZIP_LEVEL } from '../../sys/isal.ts';
import type { NativeLibForWorkers } from '../../sys/native-codec-lib.ts';

/** What each worker (codec-worker-entry.ts) is started with: the libraries it may load. */
export interface CodecWorkerData {
  libdeflate: NativeLibForWorkers | undefined;
  isal: NativeLibForWorkers | undefined;
}

/** Main thread -> worker: one task, its input moved when the caller allowed it (a Buffer arrives
 *  as a Uint8Array). */
export type CodecRequest = { id: number } & (
  | { op: 'deflate' | 'zstd'; data: Uint8Array; level: number }
  | { op: 'inflate' | 'unzstd'; data: Uint8Array; size: number });

/** Worker -> main thread: a task's result, or its error (with zlib's code when it had one). */
export interface CodecReply {
  id: number;
  out?: Uint8Array;
  crc?: number;
  consumed?: number;
  error?: { message: string; code?: string };
}

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
interface Queued { msg: CodecRequest; transfer: ArrayBuffer[]; pending: Pending }

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
      const workerData: CodecWorkerData = { libdeflate, isal };
      const w = startWorker(new URL('./codec-worker-entry.ts', import.meta.url), { name: `booty-codec-${i}`, workerData, resourceLimits: { maxYoungGenerationSizeMb: 4 } });
      w.unref();
      w.on('message', (m: CodecReply) => this.done(w, m));
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
      const msg: CodecRequest = { ...task, id };
      const data = task.data;
      const transferList = transfer && data.buffer.byteLength > Buffer.poolSize ? [data.buffer as ArrayBuffer] : [];
      this.queue.push({ msg, transfer: transferList, pending: { resolve, reject } });
      this.pump();
    });
  }

  private pump(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const w = this.idle.pop()!;
      const q = this.queue.shift()!;
      this.running.set(w, { id: q.msg.id, pending: q.pending });
      w.ref();
      try { w.postMessage(q.msg, q.transfer); } catch {
        // memory that cannot move (pooled, untransferable) is copied instead
        w.postMessage(q.msg);
      }
    }
  }

  private done(w: Worker, m: CodecReply): void {
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
 *  sha256, zero runs, writes) is small next to inflate: measured on 2 vCPUs, 2 workers beat one
 *  decode worker (README, Performance); with fewer than 2 the index gains nothing. */
export function defaultSegmentWorkers(cores = availableParallelism()): number {
  return cores >= 2 ? Math.min(cores, 32) : 0;
}
