// Zero-run planning: OS images are mostly zeros (free space of a filesystem, the gap before the
// first partition). Writing those zeros costs as much as writing data; asking the device to zero
// a range (BLKZEROOUT: write-zeroes offload, or the kernel's zero pages without a copy through
// user space) or punching a hole in a file costs almost nothing. The planner turns each block of
// decompressed bytes into write operations: data runs (views into the block) and zero runs
// (offset + length, no memory). Applying every operation in any order leaves the target holding
// exactly the input bytes, whatever it held before: zero runs are written as zeros too, never
// skipped.

export type WriteOp =
  | { kind: 'data'; offset: number; buf: Buffer }
  | { kind: 'zero'; offset: number; length: number };

export interface ZeroRunOptions {
  /** false: every block becomes one data op (no scanning) */
  enabled?: boolean;
  /** bytes per scanned segment; zero runs are multiples of it (keep it a multiple of 4096) */
  granularity?: number;
  /** zero runs shorter than this inside a block stay part of the surrounding data write */
  minRun?: number;
}

export const DEFAULT_GRANULARITY = 64 * 1024;
export const DEFAULT_MIN_RUN = 1024 * 1024;

/** Zero maps a decoder made while it had the bytes at hand (segment-inflate.ts): one byte per
 *  granule of the block, 1 = all zeros. The planner uses them instead of scanning the block. */
const zeroGrains = new WeakMap<Uint8Array, Uint8Array>();

/** Records which `DEFAULT_GRANULARITY` granules of `block` are all zeros. */
export function markZeroGrains(block: Uint8Array, map: Uint8Array): void {
  zeroGrains.set(block, map);
}

/** The zero map of `block`, if its producer made one (removing it). */
export function takeZeroGrains(block: Uint8Array): Uint8Array | undefined {
  const m = zeroGrains.get(block);
  if (m !== undefined) zeroGrains.delete(block);
  return m;
}

let zeroSegment = Buffer.alloc(DEFAULT_GRANULARITY);
function isZero(seg: Buffer): boolean {
  if (seg.length > zeroSegment.length) zeroSegment = Buffer.alloc(seg.length);
  return seg.equals(zeroSegment.subarray(0, seg.length));
}

export class ZeroRunPlanner {
  readonly enabled: boolean;
  readonly granularity: number;
  readonly minRun: number;
  /** a zero run that reached the end of the last block: it may continue in the next one */
  private pending: { offset: number; length: number } | undefined;
  private next = 0;

  constructor(opts: ZeroRunOptions = {}) {
    this.enabled = opts.enabled ?? true;
    this.granularity = opts.granularity ?? DEFAULT_GRANULARITY;
    this.minRun = opts.minRun ?? DEFAULT_MIN_RUN;
  }

  /** Plans `block` (its full length counts) placed at absolute `offset`. Blocks must be given in
   *  order and back to back. Data ops reference `block`: keep it alive until they are done. */
  plan(offset: number, block: Buffer, zeroMap?: Uint8Array): WriteOp[] {
    if (offset !== this.next) throw new Error(`ZeroRunPlanner: block at ${offset}, expected ${this.next}`);
    this.next = offset + block.length;
    if (block.length === 0) return [];
    if (!this.enabled) return [{ kind: 'data', offset, buf: block }];

    // 1. runs of whole segments: [start, end) within the block, zero or not
    const runs: Array<{ zero: boolean; start: number; end: number }> = [];
    // a producer's map (for DEFAULT_GRANULARITY granules) stands in for the scan
    const map = zeroMap !== undefined && this.granularity === DEFAULT_GRANULARITY && zeroMap.length * this.granularity >= block.length ? zeroMap : undefined;
    for (let pos = 0, g = 0; pos < block.length; pos += this.granularity, g++) {
      const end = Math.min(pos + this.granularity, block.length);
      const zero = map !== undefined ? map[g] === 1 : isZero(block.subarray(pos, end));
      const last = runs[runs.length - 1];
      if (last !== undefined && last.zero === zero) last.end = end;
      else runs.push({ zero, start: pos, end });
    }

    // 2. short zero runs between data runs become data: one write beats write + ioctl + write
    const merged: typeof runs = [];
    for (let i = 0; i < runs.length; i++) {
      const r = runs[i];
      const inner = i > 0 && i < runs.length - 1;
      if (r.zero && inner && r.end - r.start < this.minRun) r.zero = false;
      const last = merged[merged.length - 1];
      if (last !== undefined && last.zero === r.zero) last.end = r.end;
      else merged.push({ ...r });
    }

    // 3. ops: a pending zero run from the previous block joins a leading zero run; a trailing
    //    zero run stays pending (the next block may extend it)
    const ops: WriteOp[] = [];
    for (let i = 0; i < merged.length; i++) {
      const r = merged[i];
      const abs = offset + r.start;
      const len = r.end - r.start;
      if (r.zero) {
        if (this.pending !== undefined && this.pending.offset + this.pending.length === abs) {
          this.pending.length += len;
        } else {
          this.flushPending(ops);
          this.pending = { offset: abs, length: len };
        }
        if (i < merged.length - 1) this.flushPending(ops);
      } else {
        this.flushPending(ops);
        ops.push({ kind: 'data', offset: abs, buf: block.subarray(r.start, r.end) });
      }
    }
    return ops;
  }

  /** The zero run still pending at the end of the stream, if any. */
  finish(): WriteOp[] {
    const ops: WriteOp[] = [];
    this.flushPending(ops);
    return ops;
  }

  private flushPending(ops: WriteOp[]): void {
    if (this.pending === undefined) return;
    ops.push({ kind: 'zero', offset: this.pending.offset, length: this.pending.length });
    this.pending = undefined;
  }
}
