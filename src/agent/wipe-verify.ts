// The verification every wipe method ends with: reads of the head, the tail and a spread of random
// blocks of the disk (or of the ranges a method promised to clear), each of which must read back
// as zeros. Reads use O_DIRECT with aligned buffers, so they come from the device and not from a
// page cache that an erase done by the device itself (NVMe Format) would not have invalidated;
// files and devices that refuse O_DIRECT are read buffered.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { bufferAddress } from '../sys/blockdev.ts';

/** bytes read at the start and at the end */
export const VERIFY_EDGE_BYTES = 1 << 20;
/** random blocks read in between, and their size (at least the logical sector size) */
export const VERIFY_RANDOM_BLOCKS = 64;
export const VERIFY_BLOCK_BYTES = 4096;

export interface VerifyPlan { offset: number; length: number; what: 'head' | 'tail' | 'random' }

export interface Verification {
  /** every sample read zero */
  zero: boolean;
  samples: number;
  bytesRead: number;
  /** the first samples that were not zero: offset of the first non-zero byte */
  nonZeroAt: number[];
  /** for the report: "head 1 MiB, tail 1 MiB and 64 random 4 KiB blocks read back as zeros" */
  summary: string;
}

/**
 * Where to read on a disk of `size` bytes: head and tail of `edge` bytes, then `count` random
 * blocks of `block` bytes, aligned to `block`, inside `within` (default: the whole disk).
 */
export function verifyPlan(size: number, opts: { edge?: number; block?: number; count?: number; within?: [number, number][]; random?: (max: number) => number } = {}): VerifyPlan[] {
  const block = opts.block ?? VERIFY_BLOCK_BYTES;
  const edge = Math.min(opts.edge ?? VERIFY_EDGE_BYTES, Math.floor(size / block) * block);
  const random = opts.random ?? ((max: number) => crypto.randomInt(max));
  const within = (opts.within ?? [[0, size]]).map(([o, l]) => [o, Math.floor(l / block) * block] as [number, number]).filter(([, l]) => l > 0);
  const plan: VerifyPlan[] = [];
  if (edge > 0) {
    const [hOff, hLen] = within[0];
    plan.push({ offset: hOff, length: Math.min(edge, hLen), what: 'head' });
    const [tOff, tLen] = within[within.length - 1];
    const tailStart = Math.max(tOff, Math.floor((tOff + tLen - Math.min(edge, tLen)) / block) * block);
    plan.push({ offset: tailStart, length: tOff + tLen - tailStart, what: 'tail' });
  }
  const blocks = within.reduce((n, [, l]) => n + l / block, 0);
  for (let i = 0; i < (opts.count ?? VERIFY_RANDOM_BLOCKS) && blocks > 0; i++) {
    let k = random(blocks);
    for (const [o, l] of within) {
      if (k < l / block) { plan.push({ offset: o + k * block, length: block, what: 'random' }); break; }
      k -= l / block;
    }
  }
  return plan;
}

function alignedBuffer(length: number, align: number): Buffer {
  const raw = Buffer.allocUnsafeSlow(length + align);
  const mis = Number(bufferAddress(raw) % BigInt(align));
  return raw.subarray(mis === 0 ? 0 : align - mis, (mis === 0 ? 0 : align - mis) + length);
}

function openForVerify(disk: string): { fd: number; direct: boolean } {
  try { return { fd: fs.openSync(disk, fs.constants.O_RDONLY | fs.constants.O_DIRECT), direct: true }; } catch {
    return { fd: fs.openSync(disk, fs.constants.O_RDONLY), direct: false };
  }
}

/** Read the plan's ranges from `disk`; every byte must be zero. */
export function verifyZero(disk: string, plan: VerifyPlan[], opts: { edgeLabel?: string } = {}): Verification {
  let { fd, direct } = openForVerify(disk);
  const nonZeroAt: number[] = [];
  let bytesRead = 0;
  try {
    const chunk = 1 << 20;
    const buf = alignedBuffer(chunk, 4096);
    for (const p of plan) {
      for (let done = 0; done < p.length;) {
        const want = Math.min(chunk, p.length - done);
        let n: number;
        try { n = fs.readSync(fd, buf, 0, want, p.offset + done); } catch (e) {
          // a file system without O_DIRECT (tmpfs) says so at the first read
          if (!direct || (e as NodeJS.ErrnoException).code !== 'EINVAL') throw e;
          fs.closeSync(fd);
          fd = fs.openSync(disk, fs.constants.O_RDONLY);
          direct = false;
          continue;
        }
        if (n <= 0) break;
        bytesRead += n;
        const view = buf.subarray(0, n);
        const i = view.findIndex((b) => b !== 0);
        // sampled blocks may overlap the head, the tail or each other: each place is named once
        if (i >= 0) { const at = p.offset + done + i; if (nonZeroAt.length < 8 && !nonZeroAt.includes(at)) nonZeroAt.push(at); break; }
        done += n;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  const head = plan.find((p) => p.what === 'head');
  const tail = plan.find((p) => p.what === 'tail');
  const randoms = plan.filter((p) => p.what === 'random');
  const kib = (b: number) => (b >= 1 << 20 && b % (1 << 20) === 0 ? `${b >> 20} MiB` : `${Math.round(b / 1024)} KiB`);
  const read = [
    head === undefined ? undefined : `head ${kib(head.length)}`,
    tail === undefined ? undefined : `tail ${kib(tail.length)}`,
    randoms.length === 0 ? undefined : `${randoms.length} random ${kib(randoms[0].length)} blocks`,
  ].filter((x) => x !== undefined).join(', ');
  const where = opts.edgeLabel === undefined ? '' : ` of ${opts.edgeLabel}`;
  const summary = nonZeroAt.length === 0
    ? `${read}${where} read back as zeros${direct ? ' (O_DIRECT)' : ''}`
    : `${read}${where} read: NOT all zero (first non-zero bytes at ${nonZeroAt.map((o) => `byte ${o}`).join(', ')})`;
  return { zero: nonZeroAt.length === 0, samples: plan.length, bytesRead, nonZeroAt, summary };
}
