// A pool of worker threads that compress and decompress whole frames (one frame per task, a few
// MiB each), so capture and deploy use every core. Buffers move between threads by transfer,
// never by copy. The workers run codec-worker-entry.ts (started by worker-start.ts, which says how
// in the sources and in the bundle).
//
// Each worker runs one task at a time; tasks wait in a FIFO (task-pool.ts).
import { availableParallelism } from 'node:os';
import { movable, TaskPool } from './task-pool.ts';
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

export class CodecPool {
  readonly size: number;
  private readonly pool: TaskPool<CodecRequest, CodecReply, CodecResult>;

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
    const libdeflate = o.libdeflate === undefined ? LIBDEFLATE.forWorkers() : o.libdeflate ?? undefined;
    const isal = o.isal === undefined ? ISAL.forWorkers() : o.isal ?? undefined;
    const workerData: CodecWorkerData = { libdeflate, isal };
    this.pool = new TaskPool<CodecRequest, CodecReply, CodecResult>({
      entry: new URL('./codec-worker-entry.ts', import.meta.url), what: 'codec', size, workerData,
      settle: (m): CodecResult | Error => m.error !== undefined
        ? new CodecError(m.error.message, m.error.code)
        : { out: Buffer.from(m.out!.buffer, m.out!.byteOffset, m.out!.byteLength), crc: m.crc, consumed: m.consumed },
    });
    this.size = size;
    this.deflate = libdeflate !== undefined ? 'libdeflate' : 'node:zlib';
    this.isal = isal !== undefined;
    this.isalWhyNot = this.isal ? '' : o.isal === null ? 'ISA-L not used' : ISAL.whyNot();
    this.deflateNote = libdeflate !== undefined ? 'libdeflate' : o.libdeflate === null ? 'node:zlib' : LIBDEFLATE.status();
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
    return this.pool.run(task as Omit<CodecRequest, 'id'>, transfer ? movable(task.data) : []);
  }

  /** Ends every worker; tasks still waiting are rejected. */
  close(): Promise<void> { return this.pool.close(); }
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
