// Shapes shared by the MBR and GPT codecs. The codecs are pure: they read sectors through a
// SectorSource (a Buffer in tests, a block device's fd in the agent) and return the bytes to write
// as a list of Writes; they never write themselves. That keeps every decision about a partition
// table testable on a sparse file, and the one place that touches the disk small.
import { BootyError } from '../../util/errors.ts';

export interface SectorSource {
  /** logical sector size in bytes (512 or 4096) */
  readonly sectorSize: number;
  /** whole sectors on the device */
  readonly sectors: number;
  /** `count` sectors starting at `lba` (synchronous: tables are a few KiB) */
  read(lba: number, count: number): Buffer;
}

/** One write to apply to the device: `data` at byte `offset`. `what` names it for the log. */
export interface Write {
  offset: number;
  data: Buffer;
  what: string;
}

export type PartitionKind = 'primary' | 'extended' | 'logical' | 'gpt';

export interface Partition {
  /** the kernel's partition number (sda<number>): 1-4 primary, 5+ logical, GPT entry index + 1 */
  number: number;
  /** first sector (LBA) */
  start: number;
  /** last sector (LBA), inclusive */
  end: number;
  /** MBR type as two hex digits ("83", "8e"), GPT type GUID in upper case */
  type: string;
  kind: PartitionKind;
}

export interface PartitionTable {
  kind: 'mbr' | 'gpt';
  sectorSize: number;
  /** data partitions and MBR extended containers, in partition-number order */
  partitions: Partition[];
}

export interface GrowPlan {
  table: 'mbr' | 'gpt';
  sectorSize: number;
  /** the partition that grows */
  partition: number;
  start: number;
  oldEnd: number;
  newEnd: number;
  /** false when the partition already fills the disk and the table needs no change */
  changed: boolean;
  /** in the order to apply them (GPT: backup first, primary last) */
  writes: Write[];
  /** the table as it reads after the writes (the kernel is told about these partitions) */
  after: PartitionTable;
  /** things an operator should know (e.g. MBR capped at 2 TiB) */
  notes: string[];
}

export interface GrowOptions {
  /** partition number, or the physically last data partition */
  partition: number | 'last';
  /** the new end is aligned down to a multiple of this many sectors; default 1 MiB worth */
  alignSectors?: number;
}

export function growError(code: string, message: string, hint?: string): BootyError {
  return new BootyError({
    stage: 'grow', code, message,
    hint: hint ?? 'the image itself is written; only growing it to the disk size was skipped',
  });
}

/** Last sector of a partition ending on an alignment boundary, at or before `lastUsable`. */
export function alignedEnd(lastUsable: number, alignSectors: number): number {
  if (alignSectors <= 1) return lastUsable;
  return Math.floor((lastUsable + 1) / alignSectors) * alignSectors - 1;
}

export function defaultAlignment(sectorSize: number): number {
  return Math.max(1, Math.floor((1024 * 1024) / sectorSize));
}

/** A SectorSource over an in-memory image (tests, and planning on a buffer read from a disk). */
export function bufferSource(buf: Buffer, sectorSize = 512): SectorSource {
  return {
    sectorSize,
    sectors: Math.floor(buf.length / sectorSize),
    read(lba, count) {
      const out = Buffer.alloc(count * sectorSize);
      buf.copy(out, 0, lba * sectorSize, Math.min(buf.length, (lba + count) * sectorSize));
      return out;
    },
  };
}

/** Apply writes to an in-memory image (tests). */
export function applyWrites(buf: Buffer, writes: Write[]): void {
  for (const w of writes) w.data.copy(buf, w.offset);
}

/**
 * Choose the partition to grow and check that nothing lies behind it on the disk, so growing it
 * to the end cannot swallow another partition. `candidates` are the partitions that may grow
 * (data partitions); `all` includes MBR extended containers.
 */
export function chooseTarget(
  partitions: Partition[], wanted: number | 'last', describeTable: string,
): Partition {
  const data = partitions.filter((p) => p.kind !== 'extended');
  if (data.length === 0) throw growError('no-partitions', `the ${describeTable} holds no partitions`);
  let target: Partition | undefined;
  if (wanted === 'last') {
    target = data.reduce((a, b) => (b.end > a.end ? b : a));
  } else {
    target = partitions.find((p) => p.number === wanted);
    if (target === undefined) {
      const have = data.map((p) => p.number).join(', ');
      throw growError('no-such-partition',
        `partition ${wanted} does not exist in the ${describeTable} (it has ${have})`,
        'set the partition to grow to one of those numbers, or to "last"');
    }
    if (target.kind === 'extended') {
      const logicals = partitions.filter((p) => p.kind === 'logical');
      const lastLogical = logicals.reduce<Partition | undefined>((a, b) => (a === undefined || b.end > a.end ? b : a), undefined);
      throw growError('extended-partition',
        `partition ${wanted} is an MBR extended container, not a filesystem`,
        lastLogical === undefined ? undefined : `grow the logical partition ${lastLogical.number} instead (it grows its container too)`);
    }
  }
  for (const p of partitions) {
    if (p === target) continue;
    // A logical partition lives inside its extended container: the container does not "follow" it.
    if (target.kind === 'logical' && p.kind === 'extended') continue;
    if (p.start > target.start) {
      throw growError('partition-not-last',
        `partition ${target.number} (sectors ${target.start}-${target.end}) cannot grow to the end of the disk: ` +
        `partition ${p.number} (sectors ${p.start}-${p.end}) lies behind it`,
        'grow the physically last partition instead, or deploy an image whose root is last');
    }
  }
  return target;
}
