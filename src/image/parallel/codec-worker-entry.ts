// A codec pool's worker thread (codec-pool.ts starts it, worker-start.ts says how): compresses or
// decompresses one whole frame per task with libdeflate, ISA-L's igzip (gzip level 1) or
// node:zlib, and moves the result back.
import { parentPort, workerData } from 'node:worker_threads';
import v8 from 'node:v8';
import vm from 'node:vm';
import zlib from 'node:zlib';
import { exitIfAsked } from './worker-exit.ts';
import { syncZlib, type SyncZlib } from '../../sys/zlib-handle.ts';
import { workerLibdeflate, type Libdeflate } from '../../sys/libdeflate-worker.ts';
import { ISAL_GZIP_LEVEL, workerIsal } from '../../sys/isal-worker.ts';
import type { CodecReply, CodecRequest, CodecWorkerData } from './codec-pool.ts';

if (parentPort === null) throw new Error('codec-worker-entry.ts runs as a worker thread (codec-pool.ts)');
const port = parentPort;
const data0 = workerData as CodecWorkerData;
const C = zlib.constants;
const MiB = 1 << 20;

// What a task leaves behind is its input (moved here from the main thread) and small result
// buffers (moved back); V8 would let ~64 MiB of such external memory pile up per thread before
// collecting. A scavenge after each task (about a millisecond, against tens of milliseconds of
// work) keeps every worker flat; a full collection per task cost a third of a worker's time on
// gzip -1 frames.
let collect: ((o: { type: 'minor' }) => void) | null = null;
try {
  v8.setFlagsFromString('--expose-gc');
  collect = vm.runInNewContext('gc') as (o: { type: 'minor' }) => void;
} catch { collect = null; }

/** Moves the result's memory when it can move; some of zlib's output buffers are marked
 *  untransferable (pooled): those are copied. */
function send(reply: CodecReply & { out: Uint8Array }): void {
  try { port.postMessage(reply, [reply.out.buffer as ArrayBuffer]); } catch { port.postMessage(reply); }
}

// One compressor per worker, reset between frames, instead of a new one per frame: a zstd
// context with its window and tables is megabytes of native memory that a per-frame context only
// gives back when V8 collects its wrapper (hundreds of MiB of RSS at capture's rates). The
// compressor's native handle is driven synchronously into one reusable output buffer
// (src/sys/zlib-handle.ts); reset() keeps the level and the pledged size, so every frame is
// byte-identical to the one-shot call's. Where this Node lacks those internals, the one-shot
// calls are used.
let enc: { key: string; z: SyncZlib } | null = null;
let scratch = Buffer.alloc(0);

function compressor(op: 'deflate' | 'zstd', level: number, size: number): SyncZlib | null {
  const key = `${op}:${level}:${size}`;
  if (enc !== null && enc.key === key) { enc.z.reset(); return enc.z; }
  enc?.z.close();
  enc = null;
  const z = syncZlib(op === 'deflate' ? zlib.createDeflateRaw({ level })
    : zlib.createZstdCompress({ pledgedSrcSize: size, params: { [C.ZSTD_c_compressionLevel]: level, [C.ZSTD_c_checksumFlag]: 1, [C.ZSTD_c_contentSizeFlag]: 1 } }));
  if (z === undefined) return null;
  enc = { key, z };
  return z;
}

/** Compresses data as one whole frame/stream; returns a right-sized copy of the result. */
function compressWhole(z: SyncZlib, data: Buffer): Buffer {
  const bound = data.length + (data.length >> 6) + 65536;
  if (scratch.length < bound) scratch = Buffer.allocUnsafeSlow(bound);
  let inOff = 0;
  let avail = data.length;
  let filled = 0;
  for (;;) {
    const room = scratch.length - filled;
    if (!z.write(z.finishFlag, data, inOff, avail, scratch, filled, room)) {
      const err = z.error!;
      z.close();
      enc = null;
      throw Object.assign(new Error(err.message), { code: err.code });
    }
    inOff += avail - z.inLeft;
    avail = z.inLeft;
    filled += room - z.outLeft;
    if (z.outLeft !== 0) break;
    const bigger = Buffer.allocUnsafeSlow(scratch.length * 2);
    scratch.copy(bigger, 0, 0, filled);
    scratch = bigger;
  }
  const out = Buffer.allocUnsafeSlow(filled);
  scratch.copy(out, 0, 0, filled);
  return out;
}

// libdeflate, where the main thread found it (src/sys/libdeflate.ts): DEFLATE faster than
// node:zlib, same format; null keeps node:zlib.
const libdeflateLib = workerLibdeflate(data0.libdeflate);
const crc32 = (buf: Buffer): number => libdeflateLib.get()?.crc32(buf) ?? zlib.crc32(buf);
// ISA-L's igzip for gzip level ISAL_GZIP_LEVEL (src/sys/isal.ts), where the main thread found it.
const isalLib = workerIsal(data0.isal);
let isalChecked = false;

/** One frame by igzip, or null (not loaded, refused, or did not fit): the caller then compresses
 *  with libdeflate / node:zlib. The worker's first igzip frame is inflated back and compared, so
 *  a library that disagrees with us is dropped before its output is used. */
function deflateIsal(data: Buffer): Buffer | null {
  const isal = isalLib.get();
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
    if (!same) { isalLib.drop(); return null; }
    isalChecked = true;
  }
  return out;
}

function deflateWith(libdeflate: Libdeflate, level: number, data: Buffer): Buffer {
  const bound = libdeflate.compressBound(level, data.length);
  if (scratch.length < bound) scratch = Buffer.allocUnsafeSlow(bound);
  const n = libdeflate.compress(level, data, scratch);
  if (n === 0) throw new Error('libdeflate_deflate_compress: output larger than its bound');
  const out = Buffer.allocUnsafeSlow(n);
  scratch.copy(out, 0, 0, n);
  return out;
}

/** One frame's raw DEFLATE into exactly its announced size: more output is an error (no more
 *  memory), as with zlib's maxOutputLength below; zlib's error codes, so callers word them alike. */
function inflateWith(libdeflate: Libdeflate, data: Buffer, size: number): { out: Buffer; consumed: number } {
  const out = Buffer.allocUnsafeSlow(size);
  const r = libdeflate.decompress(data, out);
  if (r.result === 3) throw Object.assign(new Error(`decodes to more than ${size} bytes`), { code: 'ERR_BUFFER_TOO_LARGE' });
  if (r.result !== 0) throw Object.assign(new Error('invalid deflate data, or it stops before its final block'), { code: 'Z_DATA_ERROR' });
  return { out: r.outUsed === size ? out : out.subarray(0, r.outUsed), consumed: r.inUsed };
}

function runTask(t: CodecRequest): CodecReply & { out: Uint8Array } {
  const data = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  switch (t.op) {
    case 'deflate': {
      let out = t.level === ISAL_GZIP_LEVEL ? deflateIsal(data) : null;
      if (out === null) {
        const libdeflate = libdeflateLib.get();
        const z = libdeflate !== null ? null : compressor('deflate', t.level, data.length);
        out = libdeflate !== null ? deflateWith(libdeflate, t.level, data) : z !== null ? compressWhole(z, data) : zlib.deflateRawSync(data, { level: t.level, chunkSize: MiB });
      }
      return { id: t.id, out, crc: crc32(data) };
    }
    case 'zstd': {
      const z = compressor('zstd', t.level, data.length);
      const out = z !== null ? compressWhole(z, data) : zlib.zstdCompressSync(data, {
        chunkSize: MiB, pledgedSrcSize: data.length,
        params: { [C.ZSTD_c_compressionLevel]: t.level, [C.ZSTD_c_checksumFlag]: 1, [C.ZSTD_c_contentSizeFlag]: 1 },
      });
      return { id: t.id, out };
    }
    case 'inflate': {
      const libdeflate = libdeflateLib.get();
      if (libdeflate !== null) {
        const r = inflateWith(libdeflate, data, t.size);
        return { id: t.id, out: r.out, crc: crc32(r.out), consumed: r.consumed };
      }
      // one output chunk of the announced size; more than that is an error, not more memory
      const r = zlib.inflateRawSync(data, { info: true, chunkSize: t.size + 64, maxOutputLength: t.size + 1 }) as unknown as { buffer: Buffer; engine: { bytesWritten: number } };
      return { id: t.id, out: r.buffer, crc: crc32(r.buffer), consumed: r.engine.bytesWritten };
    }
    case 'unzstd': {
      const out = zlib.zstdDecompressSync(data, { chunkSize: t.size + 64, maxOutputLength: t.size + 1 });
      return { id: t.id, out };
    }
    default: throw new Error(`unknown codec op ${(t as { op: string }).op}`);
  }
}

port.on('message', (m: CodecRequest | null) => {
  exitIfAsked(m);
  // neither the message nor the task outlives the task: its input is garbage for the scavenge below
  let t = m;
  m = null;
  const id = t!.id;
  try {
    send(runTask(t!));
  } catch (e) {
    const err = e as { message?: unknown; code?: unknown };
    port.postMessage({ id, error: { message: String(err?.message ?? e), code: typeof err?.code === 'string' ? err.code : undefined } } satisfies CodecReply);
  }
  t = null;
  collect?.({ type: 'minor' });
});
