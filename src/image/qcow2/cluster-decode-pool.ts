// Worker threads that decompress a qcow2's compressed clusters, a batch (about 1 MiB of input) per
// task, so decoding runs beside the download, the sha256 and the writes. Results come back in any
// order: each cluster goes to its own guest offset, so none waits for another.
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { startWorker } from '../parallel/worker-start.ts';
import { endWorker } from '../parallel/worker-exit.ts';
import { LIBDEFLATE } from '../../sys/libdeflate.ts';
import type { NativeLibForWorkers } from '../../sys/native-codec-lib.ts';

export interface ClusterWorkerData { libdeflate: NativeLibForWorkers | undefined }

export interface ClusterBatchRequest {
  id: number;
  method: 'deflate' | 'zstd';
  clusterSize: number;
  data: Uint8Array;
  /** (start, length) in `data` of each compressed cluster */
  ranges: Uint32Array;
}

export interface ClusterBatchReply {
  id: number;
  /** the batch's clusters, clusterSize bytes each, in request order */
  out?: Uint8Array;
  /** index: the cluster of the batch that failed (-1: not one cluster) */
  error?: { message: string; index: number };
}

/** A cluster that does not decompress to exactly one cluster. */
export class ClusterDecodeError extends Error {
  readonly index: number;
  constructor(message: string, index: number) {
    super(message);
    this.name = 'ClusterDecodeError';
    this.index = index;
  }
}

interface Pending { resolve: (b: Buffer) => void; reject: (e: Error) => void }

export class ClusterDecodePool {
  readonly size: number;
  readonly inflate: 'libdeflate' | 'node:zlib';
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly queue: Array<{ msg: ClusterBatchRequest; pending: Pending }> = [];
  private readonly running = new Map<Worker, { id: number; pending: Pending }>();
  private nextId = 1;
  private broken: Error | undefined;
  private closed = false;

  /** `libdeflate: false` keeps node:zlib (default: libdeflate where it loads, src/sys/libdeflate.ts) */
  constructor(size = Math.max(1, availableParallelism() - 1), o: { libdeflate?: boolean } = {}) {
    this.size = size;
    const libdeflate = o.libdeflate === false ? undefined : LIBDEFLATE.forWorkers();
    this.inflate = libdeflate !== undefined ? 'libdeflate' : 'node:zlib';
    for (let i = 0; i < size; i++) {
      const workerData: ClusterWorkerData = { libdeflate };
      const w = startWorker(new URL('./cluster-decode-worker-entry.ts', import.meta.url), { name: `booty-qcow2-${i}`, workerData, resourceLimits: { maxYoungGenerationSizeMb: 4 } });
      w.unref();
      w.on('message', (m: ClusterBatchReply) => this.done(w, m));
      w.on('error', (e: Error) => this.fail(w, e));
      w.on('exit', (code) => { if (!this.closed) this.fail(w, new Error(`qcow2 decode worker exited (${code})`)); });
      this.workers.push(w);
      this.idle.push(w);
    }
  }

  /** Tasks queued or running. */
  get busy(): number { return this.queue.length + this.running.size; }

  /** Decodes a batch; `data` moves to the worker (the caller must own its memory whole). */
  decode(method: 'deflate' | 'zstd', clusterSize: number, data: Buffer, ranges: Uint32Array): Promise<Buffer> {
    if (this.broken) return Promise.reject(this.broken);
    return new Promise((resolve, reject) => {
      this.queue.push({ msg: { id: this.nextId++, method, clusterSize, data, ranges }, pending: { resolve, reject } });
      this.pump();
    });
  }

  private pump(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const w = this.idle.pop()!;
      const q = this.queue.shift()!;
      this.running.set(w, { id: q.msg.id, pending: q.pending });
      w.ref();
      try { w.postMessage(q.msg, [q.msg.data.buffer as ArrayBuffer]); } catch { w.postMessage(q.msg); }
    }
  }

  private done(w: Worker, m: ClusterBatchReply): void {
    const r = this.running.get(w);
    if (r === undefined || r.id !== m.id) return;
    this.running.delete(w);
    w.unref();
    this.idle.push(w);
    if (m.error !== undefined) r.pending.reject(new ClusterDecodeError(m.error.message, m.error.index));
    else r.pending.resolve(Buffer.from(m.out!.buffer, m.out!.byteOffset, m.out!.byteLength));
    this.pump();
  }

  private fail(w: Worker, e: Error): void {
    this.broken ??= e;
    const r = this.running.get(w);
    this.running.delete(w);
    r?.pending.reject(e);
    for (const q of this.queue.splice(0)) q.pending.reject(e);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = new Error('qcow2 decode pool closed');
    for (const q of this.queue.splice(0)) q.pending.reject(err);
    for (const r of this.running.values()) r.pending.reject(err);
    this.running.clear();
    await Promise.all(this.workers.map((w) => endWorker(w)));
  }
}
