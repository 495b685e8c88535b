// A qcow2 decode worker's thread (cluster-decode-pool.ts starts it, worker-start.ts says how):
// decompresses a batch of compressed clusters from its slot's input into its slot's output (shared
// memory the main thread reuses: nothing is allocated or moved per batch).
// DEFLATE by libdeflate where the main thread found it (else node:zlib); zstd by node:zlib, given
// exactly one frame (the bytes QEMU names for a compressed cluster run to the end of a sector, so
// what follows the frame is the next cluster's data, which a zstd decoder would take for a frame).
import { parentPort, workerData } from 'node:worker_threads';
import zlib from 'node:zlib';
import { exitIfAsked } from '../parallel/worker-exit.ts';
import { workerLibdeflate } from '../../sys/libdeflate-worker.ts';
import { syncZlib, type SyncZlib } from '../../sys/zlib-handle.ts';
import { parseZstdFrameStart, ZstdFrameWalker } from '../format/frame-format.ts';
import type { ClusterBatchReply, ClusterBatchRequest, ClusterWorkerData } from './cluster-decode-pool.ts';

if (parentPort === null) throw new Error('cluster-decode-worker-entry.ts runs as a worker thread (cluster-decode-pool.ts)');
const port = parentPort;
const libdeflate = workerLibdeflate((workerData as ClusterWorkerData).libdeflate);


class ClusterCorrupt extends Error {
  readonly index: number;
  constructor(index: number, message: string) { super(message); this.index = index; }
}

// Without libdeflate: one inflater and one zstd decoder per worker, reset between clusters and
// decoding straight into the batch's output. A one-shot call per cluster makes a native zlib/zstd
// context each time, which only goes when V8 collects its wrapper: tens of MiB of RSS at this rate.
let inflater: SyncZlib | null | undefined;
let unzstder: SyncZlib | null | undefined;

/** One cluster through a reused native decoder; undefined when done, else why not. */
function decodeWith(z: SyncZlib, input: Buffer, out: Buffer, what: string): string | undefined {
  z.reset();
  if (!z.write(z.finishFlag, input, 0, input.length, out, 0, out.length)) {
    const e = z.error;
    z.reset();
    return `invalid ${what} data (${e?.message ?? 'error'})`;
  }
  return z.outLeft === 0 ? undefined : `decodes to ${out.length - z.outLeft} bytes, not ${out.length}`;
}

function inflateCluster(input: Buffer, out: Buffer): string | undefined {
  const lib = libdeflate.get();
  if (lib !== null) {
    const r = lib.decompress(input, out);
    if (r.result === 3) return `decodes to more than ${out.length} bytes`;
    if (r.result !== 0) return 'invalid deflate data';
    return r.outUsed === out.length ? undefined : `decodes to ${r.outUsed} bytes, not ${out.length}`;
  }
  inflater ??= syncZlib(zlib.createInflateRaw()) ?? null;
  if (inflater !== null) return decodeWith(inflater, input, out, 'deflate');
  let got: Buffer;
  try {
    got = zlib.inflateRawSync(input, { finishFlush: zlib.constants.Z_SYNC_FLUSH, maxOutputLength: out.length, chunkSize: out.length });
  } catch (e) {
    return (e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE' ? `decodes to more than ${out.length} bytes` : `invalid deflate data (${(e as Error).message})`;
  }
  if (got.length !== out.length) return `decodes to ${got.length} bytes, not ${out.length}`;
  got.copy(out);
  return undefined;
}

function unzstdCluster(input: Buffer, out: Buffer): string | undefined {
  const start = parseZstdFrameStart(input);
  if (start.kind !== 'frame') return 'no zstd frame where the cluster starts';
  const walker = new ZstdFrameWalker(start.header);
  const len = walker.walk(input.length, (at) => input[at] | (input[at + 1] << 8) | (input[at + 2] << 16));
  if (len === 'bad') return 'a zstd block of a reserved type';
  if (len === undefined || len > input.length) return 'the zstd frame runs past the compressed cluster';
  unzstder ??= syncZlib(zlib.createZstdDecompress()) ?? null;
  if (unzstder !== null) return decodeWith(unzstder, input.subarray(0, len), out, 'zstd');
  let got: Buffer;
  try {
    got = zlib.zstdDecompressSync(input.subarray(0, len), { maxOutputLength: out.length, chunkSize: out.length });
  } catch (e) {
    return (e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE' ? `decodes to more than ${out.length} bytes` : `invalid zstd data (${(e as Error).message})`;
  }
  if (got.length !== out.length) return `decodes to ${got.length} bytes, not ${out.length}`;
  got.copy(out);
  return undefined;
}

function run(m: ClusterBatchRequest): void {
  const data = Buffer.from(m.input, 0, m.inputLength);
  const n = m.ranges.length / 2;
  const out = Buffer.from(m.output, 0, n * m.clusterSize);
  for (let i = 0; i < n; i++) {
    const input = data.subarray(m.ranges[2 * i], m.ranges[2 * i] + m.ranges[2 * i + 1]);
    const dst = out.subarray(i * m.clusterSize, (i + 1) * m.clusterSize);
    const why = m.method === 'zstd' ? unzstdCluster(input, dst) : inflateCluster(input, dst);
    if (why !== undefined) throw new ClusterCorrupt(i, why);
  }
}

port.on('message', (m: ClusterBatchRequest) => {
  exitIfAsked(m);
  try {
    run(m);
    port.postMessage({ id: m.id } satisfies ClusterBatchReply);
  } catch (e) {
    const index = e instanceof ClusterCorrupt ? e.index : -1;
    port.postMessage({ id: m.id, error: { message: (e as Error).message, index } } satisfies ClusterBatchReply);
  }
});
