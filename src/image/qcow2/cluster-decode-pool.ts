// Worker threads that decompress a qcow2's compressed clusters, a batch (about 1 MiB of input) per
// task, so decoding runs beside the download, the sha256 and the writes. Results come back in any
// order: each cluster goes to its own guest offset, so none waits for another.
import { availableParallelism } from 'node:os';
import { movable, TaskPool } from '../parallel/task-pool.ts';
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

export class ClusterDecodePool {
  readonly size: number;
  readonly inflate: 'libdeflate' | 'node:zlib';
  private readonly pool: TaskPool<ClusterBatchRequest, ClusterBatchReply, Buffer>;

  /** `libdeflate: false` keeps node:zlib (default: libdeflate where it loads, src/sys/libdeflate.ts) */
  constructor(size = Math.max(1, availableParallelism() - 1), o: { libdeflate?: boolean } = {}) {
    this.size = size;
    const libdeflate = o.libdeflate === false ? undefined : LIBDEFLATE.forWorkers();
    this.inflate = libdeflate !== undefined ? 'libdeflate' : 'node:zlib';
    const workerData: ClusterWorkerData = { libdeflate };
    this.pool = new TaskPool<ClusterBatchRequest, ClusterBatchReply, Buffer>({
      entry: new URL('./cluster-decode-worker-entry.ts', import.meta.url), what: 'qcow2 decode', size, workerData,
      settle: (m): Buffer | Error => m.error !== undefined
        ? new ClusterDecodeError(m.error.message, m.error.index)
        : Buffer.from(m.out!.buffer, m.out!.byteOffset, m.out!.byteLength),
    });
  }

  /** Tasks queued or running. */
  get busy(): number { return this.pool.busy; }

  /** Decodes a batch; `data` moves to the worker (the caller must own its memory whole). */
  decode(method: 'deflate' | 'zstd', clusterSize: number, data: Buffer, ranges: Uint32Array): Promise<Buffer> {
    return this.pool.run({ method, clusterSize, data, ranges }, movable(data));
  }

  /** Ends every worker; tasks still waiting are rejected. */
  close(): Promise<void> { return this.pool.close(); }
}
