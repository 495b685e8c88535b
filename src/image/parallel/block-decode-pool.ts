// Worker threads that decode whole xz blocks and bzip2 blocks (block-decode-worker-entry.ts), one
// block per task, for xz-block-decompress.ts and bzip2-block-decompress.ts. A block's compressed
// bytes move to the worker (transfer, not copy); its output comes back as 1 MiB parts, each either
// bytes (moved back) or a count of zeros (never allocated: zero-filled free space, the bulk of a
// disk image, costs no memory between the threads).
//
// Each worker runs one task at a time; tasks wait in a FIFO (task-pool.ts).
import { availableParallelism } from 'node:os';
import { MORE, movable, TaskPool } from './task-pool.ts';
import { LIBLZMA } from '../../sys/liblzma.ts';
import { LIBBZ2 } from '../../sys/libbz2.ts';
import type { NativeLibForWorkers } from '../../sys/native-codec-lib.ts';
import type { StreamDecodeError } from '../../sys/stream-decoder.ts';
import { mmapLargeAllocations } from '../../sys/malloc.ts';
import type { RingShared } from './block-input-ring.ts';

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
  | { op: 'bz2'; data: Uint8Array; bit: number; bits: number; level: number; crc: number }
  | XzPlaceTask;

/** An xz block whose output the worker writes itself at `offset` on the disk (xz-placed-writer.ts):
 *  its `length` compressed bytes (header to check) come through `ring` as they arrive; `fd` is
 *  the target's descriptor (O_DIRECT on a block device), `gate` a shared Int32Array the worker
 *  waits on before its first write (0: wait, 1: write, 2: stop). What the worker must not
 *  write itself comes back as parts: bytes below `holdBack` (the boot area, written last), the
 *  partial pages at the block's two ends (shared with the neighbouring blocks), and zero runs. */
export interface XzPlaceTask {
  op: 'xz-place'; key: number; ring: RingShared; length: number; flags: Uint8Array; unpadded: number; uncompressed: number;
  offset: number; fd: number; gate: Int32Array; holdBack: number; zeroRuns: boolean;
}

/** A placed block's part for the main thread: bytes at `at` (head or edge), or a zero run. */
export type PlacedPart = { kind: 'head' | 'edge'; at: number; bytes: Uint8Array } | { kind: 'zero'; at: number; length: number };

export type BlockRequest = BlockTask & { id: number };

/** A block's output in order: bytes, or a number of zero bytes. */
export type BlockPart = Uint8Array | number;

/** Worker -> main thread: one part of the block's output (more: true), then the end of the block
 *  (neither part nor error), or the library's refusal. */
export interface BlockReply {
  id: number; part?: BlockPart; more?: boolean; error?: StreamDecodeError;
  /** xz-place: the task's key, a part for the main thread, or a failed write (the disk's words) */
  key?: number; placed?: PlacedPart; writeError?: string;
}

/** A block the library refused, with its words (kind: corrupt, truncated or limits). */
export class BlockDecodeError extends Error {
  readonly kind: StreamDecodeError['kind'];
  constructor(e: StreamDecodeError) {
    super(e.message);
    this.name = 'BlockDecodeError';
    this.kind = e.kind;
  }
}

/** A placed block's write to the disk failed (xz-place). */
export class BlockWriteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BlockWriteError';
  }
}

export class BlockDecodePool {
  readonly size: number;
  private readonly pool: TaskPool<BlockRequest, BlockReply, BlockPart[]>;
  /** xz-place tasks running: their key -> what takes their parts as they come */
  private readonly placing = new Map<number, (p: PlacedPart) => void>();

  constructor(size = availableParallelism()) {
    this.size = Math.max(1, size);
    mmapLargeAllocations();
    const workerData: BlockWorkerData = { liblzma: LIBLZMA.forWorkers(), libbz2: LIBBZ2.forWorkers() };
    this.pool = new TaskPool<BlockRequest, BlockReply, BlockPart[]>({
      entry: new URL('./block-decode-worker-entry.ts', import.meta.url), what: 'block decode', size: this.size, workerData,
      settle: (m, parts): BlockPart[] | Error | typeof MORE => {
        if (m.placed !== undefined) { this.placing.get(m.key!)?.(m.placed); return MORE; }
        if (m.more === true) { parts.push(m.part!); return MORE; }
        if (m.key !== undefined) this.placing.delete(m.key);
        if (m.writeError !== undefined) return new BlockWriteError(m.writeError);
        return m.error !== undefined ? new BlockDecodeError(m.error) : parts as BlockPart[];
      },
    });
  }

  /** Decodes one block; its `data` moves to the worker (the caller's view reads as empty after). */
  run(task: Exclude<BlockTask, XzPlaceTask>): Promise<BlockPart[]> {
    return this.pool.run(task as Omit<BlockRequest, 'id'>, movable(task.data));
  }

  /** Decodes one xz block and writes it where it belongs (XzPlaceTask); `onPart` takes what the
   *  worker hands back while it runs. Resolves once the block's own writes are done. */
  place(task: XzPlaceTask, onPart: (p: PlacedPart) => void): Promise<void> {
    this.placing.set(task.key, onPart);
    return this.pool.run(task as Omit<BlockRequest, 'id'>).then(() => undefined, (e: Error) => {
      this.placing.delete(task.key);
      throw e;
    });
  }

  /** Ends every worker; tasks still waiting are rejected. */
  close(): Promise<void> { return this.pool.close(); }
}

/** Deploy's block workers for a multi-block xz or a bzip2 image when the operator did not say:
 *  one per core from 2 cores up (0: the single-stream decoder on the main thread). On one core
 *  the hand-offs would only cost; from two, the blocks decode side by side while the main thread
 *  only cuts them and writes. */
export function defaultBlockWorkers(cores = availableParallelism()): number {
  return cores >= 2 ? Math.min(cores, 16) : 0;
}
