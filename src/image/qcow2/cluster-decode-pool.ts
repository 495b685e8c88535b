// Worker threads that decompress a qcow2's compressed clusters, a batch (about 1 MiB of input) per
// task, so decoding runs beside the download, the sha256 and the writes. Results come back in any
// order: each cluster goes to its own guest offset, so none waits for another. A batch's input and
// output live in a ClusterSlot (shared memory the caller reuses for batch after batch): a fresh
// buffer per batch each way made garbage that lived long enough to need full collections, which
// cost the main thread as much time as everything else together (README, qcow2).
import { availableParallelism } from 'node:os';
import { TaskPool } from '../parallel/task-pool.ts';
import { LIBDEFLATE } from '../../sys/libdeflate.ts';
import type { NativeLibForWorkers } from '../../sys/native-codec-lib.ts';

export interface ClusterWorkerData { libdeflate: NativeLibForWorkers | undefined }

export interface ClusterBatchRequest {
  id: number;
  method: 'deflate' | 'zstd';
  clusterSize: number;
  /** the batch's compressed bytes: the first `inputLength` of it */
  input: SharedArrayBuffer;
  inputLength: number;
  /** where the batch's clusters go, clusterSize bytes each, in request order */
  output: SharedArrayBuffer;
  /** (start, length) in the input of each compressed cluster */
  ranges: Uint32Array;
}

export interface ClusterBatchReply {
  id: number;
  /** index: the cluster of the batch that failed (-1: not one cluster) */
  error?: { message: string; index: number };
}

/** Shared memory for one batch in flight: its compressed input and its decoded clusters. */
export class ClusterSlot {
  private inputMemory: SharedArrayBuffer;
  private outputMemory: SharedArrayBuffer;
  /** the input memory, to copy a batch's compressed bytes into */
  input: Buffer;
  constructor(inputBytes: number, outputBytes: number) {
    this.inputMemory = new SharedArrayBuffer(inputBytes);
    this.outputMemory = new SharedArrayBuffer(outputBytes);
    this.input = Buffer.from(this.inputMemory);
  }

  /** Room for a batch of `inputBytes` in and `outputBytes` out (the memory grows, never shrinks;
   *  grown input memory starts empty: fit before copying the batch in). */
  fit(inputBytes: number, outputBytes: number): void {
    if (inputBytes > this.inputMemory.byteLength) {
      this.inputMemory = new SharedArrayBuffer(inputBytes);
      this.input = Buffer.from(this.inputMemory);
    }
    if (outputBytes > this.outputMemory.byteLength) this.outputMemory = new SharedArrayBuffer(outputBytes);
  }

  get memory(): { input: SharedArrayBuffer; output: SharedArrayBuffer } { return { input: this.inputMemory, output: this.outputMemory }; }
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
  private readonly pool: TaskPool<ClusterBatchRequest, ClusterBatchReply, true>;

  /** `libdeflate: false` keeps node:zlib (default: libdeflate where it loads, src/sys/libdeflate.ts) */
  constructor(size = Math.max(1, availableParallelism() - 1), o: { libdeflate?: boolean } = {}) {
    this.size = size;
    const libdeflate = o.libdeflate === false ? undefined : LIBDEFLATE.forWorkers();
    this.inflate = libdeflate !== undefined ? 'libdeflate' : 'node:zlib';
    const workerData: ClusterWorkerData = { libdeflate };
    this.pool = new TaskPool<ClusterBatchRequest, ClusterBatchReply, true>({
      entry: new URL('./cluster-decode-worker-entry.ts', import.meta.url), what: 'qcow2 decode', size, workerData,
      settle: (m): true | Error => m.error !== undefined ? new ClusterDecodeError(m.error.message, m.error.index) : true,
    });
  }

  /** Tasks queued or running. */
  get busy(): number { return this.pool.busy; }

  /** Decodes the batch in `slot` (its first `inputLength` input bytes, clusters at `ranges`);
   *  resolves with a view of the slot's output: valid until the slot is given another batch. */
  async decode(method: 'deflate' | 'zstd', clusterSize: number, slot: ClusterSlot, inputLength: number, ranges: Uint32Array): Promise<Buffer> {
    const n = ranges.length / 2;
    // (the input is in the slot already: only the output may still need room)
    slot.fit(0, n * clusterSize);
    const { input, output } = slot.memory;
    if (inputLength > input.byteLength) throw new Error(`internal: a batch of ${inputLength} bytes in a slot of ${input.byteLength}`);
    await this.pool.run({ method, clusterSize, input, inputLength, output, ranges });
    return Buffer.from(output, 0, n * clusterSize);
  }

  /** Ends every worker; tasks still waiting are rejected. */
  close(): Promise<void> { return this.pool.close(); }
}
