// The decode worker thread (decode-worker.ts starts it, worker-start.ts says how): decodes one
// gzip or zstd stream into the blocks the main thread lends it, synchronously, with igzip or
// node:zlib's native handle (zlib-handle.ts) for gzip, whichever measured faster on this CPU
// (gunzip-engine-choice.ts), and node:zlib's for zstd.
import { parentPort, workerData } from 'node:worker_threads';
import zlib from 'node:zlib';
import { exitIfAsked } from './worker-exit.ts';
import { syncZlib, type ZlibError } from '../../sys/zlib-handle.ts';
import { workerIsal } from '../../sys/isal-worker.ts';
import type { GunzipEngine, GunzipEngineChoice, GunzipEngineTrial } from './gunzip-engine-choice.ts';
import { gunzipEngineTrial } from './gunzip-engines.ts';
import type { DecodeReply, DecodeRequest, DecodeWorkerData } from './decode-worker.ts';

if (parentPort === null) throw new Error('decode-worker-entry.ts runs as a worker thread (decode-worker.ts)');
const port = parentPort;
const { format: startFormat, isal: isalCfg, measure } = workerData as DecodeWorkerData;
const isalLib = workerIsal(isalCfg);

let isalGunzip: ReturnType<NonNullable<ReturnType<typeof isalLib.get>>['gunzip']> | null = null;
let dec: ReturnType<typeof syncZlib>;

/** gzip's engine: node:zlib without ISA-L (the main thread said why), igzip when asked for, else
 *  the faster of the two on this CPU (gunzip-engine-choice.ts), measured once. */
let chosen: GunzipEngineChoice | undefined;
let trial: GunzipEngineTrial | undefined;
function gunzipEngine(): GunzipEngineChoice {
  if (chosen !== undefined) return chosen;
  const lib = isalLib.get();
  if (lib === null) chosen = { engine: 'node:zlib', reason: isalCfg === undefined ? '' : 'libisal.so.2 did not load in the worker thread' };
  else if (!measure) chosen = { engine: 'ISA-L igzip', reason: 'asked for' };
  else chosen = engineTrial(lib).choice();
  trial = undefined;
  return chosen;
}

function engineTrial(lib: NonNullable<ReturnType<typeof isalLib.get>>): GunzipEngineTrial {
  // (isalCfg is set: the library loaded from it)
  trial ??= gunzipEngineTrial(isalCfg!, lib)!;
  return trial;
}

/** Prestarted: the trial's rounds while the worker waits for its format, one every ROUND_GAP_MS
 *  (spread out: see GunzipEngineTrial); an 'init' that comes first ends them (gunzipEngine runs
 *  what is missing). */
const IDLE_ROUNDS = 1 + 5;
const ROUND_GAP_MS = 150;
function idleRounds(): void {
  // (ISA-L is loaded while idle either way)
  const lib = isalLib.get();
  if (lib === null || !measure || chosen !== undefined) return;
  const t = engineTrial(lib);
  t.round();
  if (t.timedRounds + 1 < IDLE_ROUNDS) setTimeout(() => { if (chosen === undefined) idleRounds(); }, ROUND_GAP_MS).unref();
}

/** `engine`: chosen by the main thread (it ran the trial while this worker started) */
function setup(format: 'gzip' | 'zstd', engine?: GunzipEngine): void {
  isalGunzip = null;
  if (format === 'gzip') {
    let use = engine;
    if (use === undefined) {
      const c = gunzipEngine();
      post({ op: 'engine', choice: c });
      use = c.engine;
    }
    if (use === 'ISA-L igzip') isalGunzip = isalLib.get()?.gunzip() ?? null;
  }
  // (only its native handle is used: the stream's chunkSize and output buffers never come into play)
  dec = syncZlib(format === 'gzip' ? zlib.createGunzip() : zlib.createZstdDecompress());
  // the main thread asked decodeWorkerSupported() before starting this worker
  if (dec === undefined) throw new Error("this Node's zlib lacks what the decode worker drives (src/sys/zlib-handle.ts)");
}

let zerr: ZlibError | null = null;
/** One decoding step: as much of the input as fits into out; { inLeft, outLeft } or null after an
 *  error (zerr says which). */
function step(last: boolean, buf: Buffer, off: number, avail: number, out: Buffer, outOff: number, outLen: number): { inLeft: number; outLeft: number } | null {
  if (isalGunzip !== null) {
    const r = isalGunzip.write(last, buf, off, avail, out, outOff, outLen);
    if (r.error !== null) { zerr = r.error; return null; }
    return r;
  }
  if (!dec!.write(last ? dec!.finishFlag : dec!.flushFlag, buf, off, avail, out, outOff, outLen)) { zerr = dec!.error; return null; }
  return { outLeft: dec!.outLeft, inLeft: dec!.inLeft };
}

interface Block { ab: ArrayBuffer; off: number; len: number }
interface Input { buf: Buffer; off: number; avail: number; ack: number; last: boolean }

let consumed = 0;
const free: Block[] = [];   // blocks to fill
let cur: Buffer | null = null; // the block being filled, as a Buffer view
let curBlock: Block | null = null;
let filled = 0;
const inputs: Input[] = [];
let stopped = false;

function post(m: DecodeReply, transfer: ArrayBuffer[] = []): void {
  port.postMessage(m, transfer);
}

// Started with a format: ready now. Prestarted (decode-worker.ts prestartDecodeWorker, before any
// image is known): load ISA-L and time the gzip engines while idle, then wait for the 'init' that
// names the format.
if (startFormat !== undefined) setup(startFormat);
else idleRounds();

function take(): boolean {
  if (cur !== null) return true;
  const b = free.pop();
  if (b === undefined) return false;
  curBlock = b;
  cur = Buffer.from(b.ab, b.off, b.len);
  filled = 0;
  return true;
}

function ship(): void {
  const b = curBlock!;
  cur = null;
  curBlock = null;
  const n = filled;
  filled = 0;
  post({ op: 'block', ab: b.ab, off: b.off, len: n }, [b.ab]);
}

function fail(e: ZlibError | null): void {
  stopped = true;
  post({ op: 'error', message: e?.message ?? 'decoder failed', code: e?.code, errno: e?.errno });
}

/** Decodes queued input into blocks until the input runs out or no block is free. */
function run(): void {
  while (!stopped && inputs.length > 0) {
    const x = inputs[0];
    for (;;) {
      if (!take()) return;
      const before = cur!.length - filled;
      const r = step(x.last, x.buf, x.off, x.avail, cur!, filled, before);
      if (r === null) { fail(zerr); return; }
      consumed += x.avail - r.inLeft;
      x.off += x.avail - r.inLeft;
      x.avail = r.inLeft;
      filled += before - r.outLeft;
      if (filled === cur!.length) ship();
      // output space left over: the decoder took all it could of this input
      if (r.outLeft !== 0) break;
    }
    inputs.shift();
    // the input buffer goes back to the main thread for its next chunk (no allocation churn)
    if (x.ack > 0) post({ op: 'ack', n: x.ack, ab: x.buf.buffer as ArrayBuffer }, [x.buf.buffer as ArrayBuffer]);
    if (x.last) {
      if (cur !== null && filled > 0) ship();
      stopped = true;
      post({ op: 'done', bytesWritten: consumed });
    }
  }
}

port.on('message', (m: DecodeRequest) => {
  exitIfAsked(m);
  switch (m.op) {
    case 'block': free.push({ ab: m.ab, off: m.off, len: m.len }); break;
    case 'in': inputs.push({ buf: Buffer.from(m.ab, 0, m.len), off: 0, avail: m.len, ack: m.len, last: false }); break;
    case 'end': inputs.push({ buf: Buffer.alloc(0), off: 0, avail: 0, ack: 0, last: true }); break;
    case 'init': setup(m.format, m.engine); break;
  }
  run();
});
