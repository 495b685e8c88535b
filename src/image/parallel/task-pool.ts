// The scaffolding every worker pool of booty shares (codec-pool.ts, block-decode-pool.ts,
// qcow2/cluster-decode-pool.ts): N worker threads running one entry module, one task per worker
// at a time, tasks waiting in a FIFO, input memory moved to the worker when the caller allows it.
// Workers are unref'd while idle, so a pool that was not closed never keeps the process alive;
// close() ends them (never terminate(): a thread stopped inside koffi aborts the process,
// worker-exit.ts). A worker that errors or exits breaks the pool: every task running or waiting
// is rejected with that error, and so is every later one.
//
// What a reply means is the pool's own business: `settle` turns a worker's reply into the task's
// result, its error, or MORE (a part of a result that has more replies to come).
import type { Worker } from 'node:worker_threads';
import { endWorker } from './worker-exit.ts';
import { startWorker } from './worker-start.ts';

/** settle()'s answer for a reply that is one part of the task's result, more to come. */
export const MORE = Symbol('more replies to come');

export interface TaskPoolOptions<Reply extends { id: number }, Result> {
  /** the worker's entry module (started by worker-start.ts, in the sources and in the bundle) */
  entry: URL;
  /** what the pool is, in thread names and messages: 'codec', 'block decode', 'qcow2 decode' */
  what: string;
  size: number;
  /** each worker's workerData */
  workerData: unknown;
  /** the task's result, its error, or MORE; `parts` holds what this task's earlier replies kept */
  settle(reply: Reply, parts: unknown[]): Result | Error | typeof MORE;
}

interface Pending<Result> { resolve: (r: Result) => void; reject: (e: Error) => void }

export class TaskPool<Request extends { id: number }, Reply extends { id: number }, Result> {
  readonly size: number;
  private readonly o: TaskPoolOptions<Reply, Result>;
  private readonly idle: Worker[] = [];
  private readonly all: Worker[] = [];
  private readonly queue: Array<{ msg: Request; transfer: ArrayBuffer[]; pending: Pending<Result> }> = [];
  private readonly running = new Map<Worker, { id: number; pending: Pending<Result>; parts: unknown[] }>();
  private nextId = 1;
  private broken: Error | undefined;
  private closed = false;

  constructor(o: TaskPoolOptions<Reply, Result>) {
    if (!Number.isInteger(o.size) || o.size < 1) throw new RangeError(`worker count must be a positive integer, not ${o.size}`);
    this.o = o;
    this.size = o.size;
    const threadName = o.what.replace(/\s+/g, '-');
    for (let i = 0; i < o.size; i++) {
      // a worker keeps almost nothing alive: a small young generation keeps its heap small
      const w = startWorker(o.entry, { name: `booty-${threadName}-${i}`, workerData: o.workerData, resourceLimits: { maxYoungGenerationSizeMb: 4 } });
      w.on('message', (m: Reply) => this.done(w, m));
      w.on('error', (e: Error) => this.fail(w, e));
      w.on('exit', (code) => { if (!this.closed) this.fail(w, new Error(`${o.what} worker exited (${code})`)); });
      // after the listeners: a 'message' listener refs the worker's port again
      w.unref();
      this.all.push(w);
      this.idle.push(w);
    }
  }

  /** Tasks queued or running. */
  get busy(): number { return this.queue.length + this.running.size; }

  /**
   * Runs one task. The memory of the buffers in TRANSFER moves to the worker (the caller's views
   * read as empty afterwards): only for buffers the caller owns whole. Memory that cannot move
   * (pooled, untransferable) is copied instead.
   */
  run(task: Omit<Request, 'id'>, transfer: ArrayBuffer[] = []): Promise<Result> {
    if (this.broken) return Promise.reject(this.broken);
    if (this.closed) return Promise.reject(new Error(`${this.o.what} pool is closed`));
    return new Promise((resolve, reject) => {
      const msg = { ...task, id: this.nextId++ } as Request;
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

  private done(w: Worker, m: Reply): void {
    const r = this.running.get(w);
    if (r === undefined || r.id !== m.id) return;
    const settled = this.o.settle(m, r.parts);
    if (settled === MORE) return;
    this.running.delete(w);
    w.unref();
    this.idle.push(w);
    if (settled instanceof Error) r.pending.reject(settled);
    else r.pending.resolve(settled);
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
    const err = new Error(`${this.o.what} pool closed`);
    for (const q of this.queue.splice(0)) q.pending.reject(err);
    for (const r of this.running.values()) r.pending.reject(err);
    this.running.clear();
    await Promise.all(this.all.map((w) => endWorker(w)));
  }
}

/** The buffer of VIEW as a transfer list when it may move: only a buffer larger than Node's pool
 *  (a pooled slab holds other Buffers' bytes too). */
export function movable(view: Uint8Array): ArrayBuffer[] {
  const ab = view.buffer as ArrayBuffer;
  return ab.byteLength > Buffer.poolSize ? [ab] : [];
}
