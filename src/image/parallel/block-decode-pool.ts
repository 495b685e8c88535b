// Worker threads that decode whole xz blocks and bzip2 blocks (block-decode-worker-entry.ts), one
// block per task, for xz-block-decompress.ts and bzip2-block-decompress.ts. A block's compressed
// bytes move to the worker (transfer, not copy); its output comes back as 1 MiB parts, each either
// bytes (moved back) or a count of zeros (never allocated: zero-filled free space, the bulk of a
// disk image, costs no memory between the threads).
//
// Each worker runs one task at a time; tasks wait in a FIFO. Workers are unref'd while idle, so a
// pool that was not closed never keeps the process alive; close() ends them.
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { endWorker } from './worker-exit.ts';
import { startWorker } from './worker-start.ts';
import { LIBLZMA } from '../../sys/liblzma.ts';
import { LIBBZ2 } from '../../sys/libbz2.ts';
import type { NativeLibForWorkers } from '../../sys/native-codec-lib.ts';
import type { StreamDecodeError } from '../../sys/stream-decoder.ts';
import { mmapLargeAllocations } from '../../sys/malloc.ts';

/** What each worker is started with: the libraries it may load (the main thread checked them). */
export interface BlockWorkerData {
  liblzma: NativeLibForWorkers | undefined;
  libbz2: NativeLibForWorkers | undefined;
}

/** One block to decode. xz: the block from its header to its check, with what wrapBlock() needs.
 *  bzip2: the bytes holding bits [bit, bit + bits) (the block from its magic to the next magic),
 *  with the stream's level digit (its block size) and the block's CRC as stored after its magic. */
export type BlockTask =
  | { op: 'xz'; data: Uint8Array; flags: Uint8Array; unpadded: number; uncompressed: number }
  | { op: 'bz2'; data: Uint8Array; bit: number; bits: number; level: number; crc: number };

export type BlockRequest = BlockTask & { id: number };

/** A block's output in order: bytes, or a number of zero bytes. */
export type BlockPart = Uint8Array | number;

/** Worker -> main thread: one part of the block's output (more: true), then the end of the block
 *  (neither part nor error), or the library's refusal. */
export interface BlockReply { id: number; part?: BlockPart; more?: boolean; error?: StreamDecodeError }

/** A block the library refused, with its words (kind: corrupt, truncated or limits). */
export class BlockDecodeError extends Error {
  readonly kind: StreamDecodeError['kind'];
  constructor(e: StreamDecodeError) {
    super(e.message);
    this.name = 'BlockDecodeError';
    this.kind = e.kind;
  }
}

interface Pending { resolve: (parts: BlockPart[]) => void; reject: (e: Error) => void }

export class BlockDecodePool {
  readonly size: number;
  private readonly idle: Worker[] = [];
  private readonly all: Worker[] = [];
  private readonly queue: Array<{ msg: BlockRequest; transfer: ArrayBuffer[]; pending: Pending }> = [];
  private readonly running = new Map<Worker, { id: number; pending: Pending; parts: BlockPart[] }>();
  private nextId = 1;
  private broken: Error | undefined;
  private closed = false;

  constructor(size = availableParallelism()) {
    this.size = Math.max(1, size);
    mmapLargeAllocations();
    const workerData: BlockWorkerData = { liblzma: LIBLZMA.forWorkers(), libbz2: LIBBZ2.forWorkers() };
    for (let i = 0; i < this.size; i++) {
      // a worker keeps almost nothing alive: a small young generation keeps its heap small
      const w = startWorker(new URL('./block-decode-worker-entry.ts', import.meta.url), { name: `booty-block-${i}`, workerData, resourceLimits: { maxYoungGenerationSizeMb: 4 } });
      w.unref();
      w.on('message', (m: BlockReply) => this.done(w, m));
      w.on('error', (e: Error) => this.fail(w, e));
      w.on('exit', (code) => { if (!this.closed) this.fail(w, new Error(`block decode worker exited (${code})`)); });
      this.all.push(w);
      this.idle.push(w);
    }
  }

  /** Decodes one block; its `data` moves to the worker (the caller's view reads as empty after). */
  run(task: BlockTask): Promise<BlockPart[]> {
    if (this.broken) return Promise.reject(this.broken);
    if (this.closed) return Promise.reject(new Error('block decode pool is closed'));
    return new Promise((resolve, reject) => {
      const msg = { ...task, id: this.nextId++ } as BlockRequest;
      const ab = task.data.buffer as ArrayBuffer;
      const transfer = ab.byteLength > Buffer.poolSize ? [ab] : [];
      this.queue.push({ msg, transfer, pending: { resolve, reject } });
      this.pump();
    });
  }

  private pump(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const w = this.idle.pop()!;
      const q = this.queue.shift()!;
      this.running.set(w, { id: q.msg.id, pending: q.pending, parts: [] });
      w.ref();
      try { w.postMessage(q.msg, q.transfer); } catch { w.postMessage(q.msg); }
    }
  }

  private done(w: Worker, m: BlockReply): void {
    const r = this.running.get(w);
    if (r === undefined || r.id !== m.id) return;
    if (m.more === true) { r.parts.push(m.part!); return; }
    this.running.delete(w);
    w.unref();
    this.idle.push(w);
    if (m.error !== undefined) r.pending.reject(new BlockDecodeError(m.error));
    else r.pending.resolve(r.parts);
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
    const err = new Error('block decode pool closed');
    for (const q of this.queue.splice(0)) q.pending.reject(err);
    for (const r of this.running.values()) r.pending.reject(err);
    this.running.clear();
    // (never terminate(): a thread stopped inside koffi aborts the process; worker-exit.ts)
    await Promise.all(this.all.map((w) => endWorker(w)));
  }
}

/** Deploy's block workers for a multi-block xz or a bzip2 image when the operator did not say:
 *  one per core from 2 cores up (0: the single-stream decoder on the main thread). On one core
 *  the hand-offs would only cost; from two, the blocks decode side by side while the main thread
 *  only cuts them and writes. */
export function defaultBlockWorkers(cores = availableParallelism()): number {
  return cores >= 2 ? Math.min(cores, 16) : 0;
}
