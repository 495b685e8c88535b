// Deploy's single-stream decoder, moved off the main thread. With node:zlib's streaming decoder on
// the main thread, decompression and everything else (undici, sha256, copying into aligned write
// blocks, zlib's JS glue, the garbage of a fresh 1 MiB buffer per output chunk) take turns: the
// next inflate/zstd step is only queued once the main thread has handled the last output chunk,
// so a deploy ran at 1 / (decode time + main-thread time) per byte. Here a worker thread
// (decode-worker-entry.ts, started by worker-start.ts) drives the decoder's native handle
// synchronously (as node:zlib's own *Sync functions do; src/sys/zlib-handle.ts) with its output
// pointed straight into O_DIRECT-aligned write blocks: no copy, no allocation, no thread-pool hop.
// The main thread receives whole blocks (moved, not copied) and plans zero runs and issues writes
// while the worker goes on decoding: on 2 cores the two halves overlap instead of adding up, and
// on one the decode costs less CPU than the stream on the main thread (batches, no thread-pool
// hop per chunk; igzip for gzip).
//
// Memory is fixed: a set of blocks (default 4 x 4 MiB) travels between the threads (the worker
// fills a free block, the main thread lends it to the ImageWriter (block-loan.ts), the writer gives
// it back once the disk has its bytes), and so do the 1 MiB staging buffers of compressed input
// (at most `maxInput` bytes posted and not yet decoded). Same decoder, same native checks, same
// error codes and messages as decompress.ts's streams (errors come from the same handle); except
// that gzip may be inflated by ISA-L's igzip where it loads (src/sys/isal.ts), whose decoder is
// made to check and answer as zlib's gunzip does (the tests compare the two engines on the same
// inputs): by default both are timed on this CPU (gunzip-engine-choice.ts; by a prestarted worker
// while it waits, else by the main thread while the worker starts) and the faster is kept: igzip
// on real x86-64 CPUs, node:zlib under an emulator.
import { Transform, type TransformCallback } from 'node:stream';
import type { Worker } from 'node:worker_threads';
import { alignedBuffer } from '../sink/target.ts';
import { lendBlock } from '../sink/block-loan.ts';
import { createGcPacer } from '../sink/gc-pacer.ts';
import { endWorker } from './worker-exit.ts';
import { startWorker } from './worker-start.ts';
import { ISAL } from '../../sys/isal.ts';
import type { NativeLibForWorkers } from '../../sys/native-codec-lib.ts';
import type { GunzipEngine, GunzipEngineChoice } from './gunzip-engine-choice.ts';
import { gunzipEngineTrial } from './gunzip-engines.ts';

/** What the worker (decode-worker-entry.ts) is started with. */
export interface DecodeWorkerData {
  /** undefined: a prestarted worker, told its format by an 'init' request */
  format?: 'gzip' | 'zstd';
  /** gzip: ISA-L for the worker to load, or undefined (node:zlib) */
  isal: NativeLibForWorkers | undefined;
  /** gzip with ISA-L: time both engines and keep the faster (false: igzip) */
  measure: boolean;
}

/** Main thread -> worker: a free block to fill (moved), 1 MiB of input (moved), the end of input. */
export type DecodeRequest =
  | { op: 'init'; format: 'gzip' | 'zstd'; engine?: GunzipEngine }
  | { op: 'block'; ab: ArrayBuffer; off: number; len: number }
  | { op: 'in'; ab: ArrayBuffer; len: number }
  | { op: 'end' };

/** Worker -> main thread: a filled block (len bytes at off), an input buffer given back, the
 *  end of the stream (compressed bytes consumed), or the decoder's error. */
export type DecodeReply =
  | { op: 'block'; ab: ArrayBuffer; off: number; len: number }
  | { op: 'ack'; n: number; ab: ArrayBuffer }
  | { op: 'done'; bytesWritten: number }
  | { op: 'engine'; choice: GunzipEngineChoice }
  | { op: 'error'; message: string; code?: string; errno?: number };

export interface DecodeWorkerOptions {
  format: 'gzip' | 'zstd';
  /** bytes per output block (the writer's block size; multiple of 4 KiB); default 4 MiB */
  blockSize?: number;
  /** blocks travelling between the threads; default 4 */
  blocks?: number;
  /** compressed bytes posted to the worker and not yet taken by its decoder; default 4 MiB */
  maxInput?: number;
  /** true: emit the blocks themselves, lent to the consumer (an ImageWriter gives each back
   *  once written); false (default): emit copies, for consumers that keep what they get */
  lend?: boolean;
  /** gzip's engine: 'fastest' (default) measures igzip (where ISA-L loads, src/sys/isal.ts)
   *  against node:zlib on this CPU and keeps the faster; or the one named (igzip only where it
   *  loads) */
  gunzip?: 'fastest' | GunzipEngine;
}

const STAGING = 1 << 20;
/** before the first block: input posted in pieces this big, up to EAGER_INPUT in all (a disk
 *  image's first 4 MiB usually decode from far less: its partition table, boot loader gap and
 *  first sectors; the Debian test image's from under 64 KiB of gzip) */
const EAGER_STEP = 64 << 10;
const EAGER_INPUT = 256 << 10;
/** The worker allocates next to nothing (its input and output buffers travel back and forth). */
const YOUNG_MB = 4;

export class DecodeWorker extends Transform {
  /** compressed bytes the decoder consumed (as node:zlib's bytesWritten), once it finished */
  bytesWritten = 0;
  readonly format: 'gzip' | 'zstd';
  /** gzip: the engine that inflates and why, known before the first block; zstd: undefined */
  readonly engineChoice: Promise<GunzipEngineChoice | undefined>;
  /** true when this took over a worker started ahead of time (prestartDecodeWorker) */
  readonly prestarted: boolean;
  private readonly blockSize: number;
  private readonly worker: Worker;
  private readonly maxInput: number;
  private readonly lend: boolean;
  private inflight = 0;
  private staging: Buffer;
  /** staging buffers the worker gave back */
  private readonly spare: Buffer[] = [];
  private staged = 0;
  /** the worker shipped its first block: from then on input goes in 1 MiB batches */
  private firstBlockSeen = false;
  /** input posted in EAGER_STEP pieces so far */
  private eagerPosted = 0;
  private onAck: (() => void) | undefined;
  private onDone: ((err?: Error) => void) | undefined;
  private failure: Error | undefined;
  private finished = false;
  /** non-lending mode: blocks to give back once the consumer asks for more */
  private held: Array<{ ab: ArrayBuffer; off: number; len: number }> = [];
  /** the network's chunks are copied into the staging buffer and die young: collect them early */
  private readonly pace = createGcPacer();
  private onEngine: ((c: GunzipEngineChoice) => void) | undefined;

  constructor(opts: DecodeWorkerOptions) {
    super({ readableHighWaterMark: 1 << 20 });
    this.format = opts.format;
    const blockSize = opts.blockSize ?? 4 << 20;
    if (blockSize % 4096 !== 0 || blockSize <= 0) throw new RangeError(`block size must be a positive multiple of 4 KiB, not ${blockSize}`);
    this.blockSize = blockSize;
    this.maxInput = opts.maxInput ?? 4 << 20;
    this.lend = opts.lend ?? false;
    this.staging = Buffer.allocUnsafeSlow(STAGING);
    const gunzip = opts.gunzip ?? 'fastest';
    // a prestarted worker measures the engines with the default library (ISA-L where it loads):
    // taken only when that is what this stream asks for
    const prestarted = gunzip === 'fastest' ? takePrestarted() : undefined;
    this.prestarted = prestarted !== undefined;
    const isal = opts.format !== 'gzip' || gunzip === 'node:zlib' ? undefined : prestarted !== undefined ? prestarted.isal : ISAL.forWorkers();
    // gzip without ISA-L: known now; with it, once timed (below, or by the prestarted worker) or
    // said by the worker (igzip asked for by name)
    this.engineChoice = opts.format !== 'gzip' ? Promise.resolve(undefined)
      : isal === undefined ? Promise.resolve({ engine: 'node:zlib', reason: gunzip === 'node:zlib' ? 'asked for' : ISAL.whyNot() })
        : new Promise((resolve) => { this.onEngine = resolve; });
    if (prestarted !== undefined) {
      this.worker = prestarted.worker;
      this.worker.ref();
      this.send({ op: 'init', format: opts.format });
    } else if (isal !== undefined && gunzip === 'fastest') {
      // no worker waited ahead of time (booty deploy, not the agent): the trial runs here while
      // the worker starts on another CPU (its start takes longer), and the worker is told
      this.worker = startDecodeThread({ isal, measure: false });
      const trial = gunzipEngineTrial(isal);
      const choice: GunzipEngineChoice = trial?.choice() ?? { engine: 'ISA-L igzip', reason: 'the main thread could not load ISA-L to time it' };
      const f = this.onEngine; this.onEngine = undefined;
      f?.(choice);
      this.send({ op: 'init', format: 'gzip', engine: choice.engine });
    } else {
      this.worker = startDecodeThread({ format: opts.format, isal, measure: false });
    }
    this.worker.on('message', (m: DecodeReply) => this.onMessage(m));
    this.worker.on('error', (e: Error) => this.fail(e));
    this.worker.on('exit', (code) => { if (!this.finished) this.fail(new Error(`decode worker exited (${code}) before the stream ended`)); });
    const blocks = opts.blocks ?? 4;
    for (let i = 0; i < blocks; i++) {
      const b = alignedBuffer(blockSize);
      // the block's whole ArrayBuffer moves; its aligned window is (off, len) within it
      this.send({ op: 'block', ab: b.buffer as ArrayBuffer, off: b.byteOffset, len: b.length }, [b.buffer as ArrayBuffer]);
    }
  }

  private send(m: DecodeRequest, transfer: ArrayBuffer[] = []): void {
    this.worker.postMessage(m, transfer);
  }

  private onMessage(m: DecodeReply): void {
    switch (m.op) {
      case 'block': {
        this.firstBlockSeen = true;
        const view = Buffer.from(m.ab, m.off, m.len);
        const block = { ab: m.ab, off: m.off, len: this.blockSize };
        if (this.lend) {
          this.push(lendBlock(view, () => this.giveBack(block)));
        } else {
          const more = this.push(Buffer.from(view));
          if (more) this.giveBack(block); else this.held.push(block);
        }
        break;
      }
      case 'ack':
        this.inflight -= m.n;
        if (m.ab.byteLength === STAGING) this.spare.push(Buffer.from(m.ab));
        if (this.inflight < this.maxInput) { const f = this.onAck; this.onAck = undefined; f?.(); }
        break;
      case 'engine': {
        // without ISA-L the main thread knew why already: keep that reason (the worker's is '')
        const f = this.onEngine; this.onEngine = undefined;
        f?.(m.choice);
        break;
      }
      case 'done':
        this.bytesWritten = m.bytesWritten;
        this.finished = true;
        void endWorker(this.worker);
        { const f = this.onDone; this.onDone = undefined; f?.(); }
        break;
      case 'error': {
        const e = new Error(m.message) as Error & { code?: string; errno?: number };
        if (m.code !== undefined) e.code = m.code;
        if (m.errno !== undefined) e.errno = m.errno;
        this.fail(e);
        break;
      }
    }
  }

  private giveBack(b: { ab: ArrayBuffer; off: number; len: number }): void {
    if (this.finished || this.failure !== undefined) return;
    this.send({ op: 'block', ab: b.ab, off: b.off, len: b.len }, [b.ab]);
  }

  private fail(e: Error): void {
    if (this.failure !== undefined || this.finished) return;
    this.failure = e;
    const ack = this.onAck; this.onAck = undefined;
    const done = this.onDone; this.onDone = undefined;
    void endWorker(this.worker);
    if (done) done(e);
    else if (ack) ack();
    else this.destroy(e);
  }

  override _read(size: number): void {
    for (const b of this.held.splice(0)) this.giveBack(b);
    super._read(size);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.failure) { cb(this.failure); return; }
    this.pace(chunk.length);
    let pos = 0;
    while (pos < chunk.length) {
      // Until the first block comes back, the first EAGER_INPUT bytes go to the worker in
      // EAGER_STEP pieces instead of 1 MiB batches: the first block (and with it the writer's
      // head check, the zeroing of the disk's ends and the first write) waits only for about the
      // input it decodes from, while the rest of the first MiB is still on the network. Not
      // chunk by chunk: each post is a message both threads handle, and many small ones keep
      // the main thread from taking the first block.
      const batch = !this.firstBlockSeen && this.eagerPosted < EAGER_INPUT ? EAGER_STEP : STAGING;
      const n = Math.min(batch - this.staged, chunk.length - pos);
      chunk.copy(this.staging, this.staged, pos, pos + n);
      this.staged += n;
      pos += n;
      if (this.staged >= batch) {
        if (batch === EAGER_STEP) this.eagerPosted += this.staged;
        this.post();
      }
    }
    if (this.inflight < this.maxInput) { cb(); return; }
    this.onAck = () => cb(this.failure);
  }

  /** Sends the staged input to the worker (moved: the staging buffer is replaced). */
  private post(): void {
    if (this.staged === 0) return;
    const ab = this.staging.buffer as ArrayBuffer;
    this.send({ op: 'in', ab, len: this.staged }, [ab]);
    this.inflight += this.staged;
    this.staging = this.spare.pop() ?? Buffer.allocUnsafeSlow(STAGING);
    this.staged = 0;
  }

  override _flush(cb: TransformCallback): void {
    if (this.failure) { cb(this.failure); return; }
    this.post();
    this.onDone = (err) => cb(err);
    this.send({ op: 'end' });
  }

  override _destroy(err: Error | null, cb: (error: Error | null) => void): void {
    this.finished = true;
    void endWorker(this.worker);
    cb(err);
  }
}

function startDecodeThread(workerData: DecodeWorkerData): Worker {
  return startWorker(new URL('./decode-worker-entry.ts', import.meta.url), {
    name: 'booty-decode', workerData,
    // the worker keeps almost nothing alive: a small young generation keeps its heap (and the
    // process's RSS) small; V8's default would let it grow much larger
    resourceLimits: { maxYoungGenerationSizeMb: YOUNG_MB },
  });
}

// One decode worker started ahead of time. Starting a worker thread (Node's bootstrap of a new
// isolate, the worker's code, koffi and ISA-L) is the largest cost between the action arriving
// and the first byte written when the CPU is slow (an emulator, README "Performance"); the agent
// starts it while it waits for a DHCP offer, and the deploy's DecodeWorker takes it over.
let prestarted: { worker: Worker; isal: NativeLibForWorkers | undefined; forget: () => void } | undefined;

/** Starts a decode worker now, before any image is known, for the next DecodeWorker to take over
 *  (a second call while one waits does nothing). It holds no event loop open while it waits. */
export function prestartDecodeWorker(): void {
  if (prestarted !== undefined) return;
  const isal = ISAL.forWorkers();
  const worker = startDecodeThread({ isal, measure: true });
  worker.unref();
  // a prestarted worker that broke is simply not used: the deploy starts its own and says why if that fails too
  const forget = () => { if (prestarted?.worker === worker) prestarted = undefined; };
  worker.on('error', forget);
  worker.on('exit', forget);
  prestarted = { worker, isal, forget };
}

/** Ends the prestarted decode worker if nothing took it (the deploy decodes another way, or there is no deploy). */
export function dropPrestartedDecodeWorker(): void {
  const p = takePrestarted();
  if (p !== undefined) void endWorker(p.worker);
}

function takePrestarted(): { worker: Worker; isal: NativeLibForWorkers | undefined } | undefined {
  const p = prestarted;
  prestarted = undefined;
  if (p === undefined) return undefined;
  p.worker.off('error', p.forget);
  p.worker.off('exit', p.forget);
  return p;
}

/** Whether this Node's zlib exposes what the worker drives (src/sys/zlib-handle.ts). The pinned
 *  runtime does; elsewhere deploy decodes on the main thread instead. */
export { syncZlibSupported as decodeWorkerSupported } from '../../sys/zlib-handle.ts';
