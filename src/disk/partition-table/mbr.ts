// MBR (DOS) partition tables: four primary entries in sector 0, and for an extended container a
// chain of EBRs, each holding one logical partition and a link to the next. Growing rewrites the
// entry's size (and the container's, for a logical partition) and its CHS end, nothing else.
import {
  alignedEnd, chooseTarget, defaultAlignment, growError,
  type GrowOptions, type GrowPlan, type Partition, type PartitionTable, type SectorSource, type Write,
} from './types.ts';

const ENTRY_OFFSET = 446;
const ENTRY_SIZE = 16;
export const PROTECTIVE_TYPE = 0xee;
const EXTENDED_TYPES = new Set([0x05, 0x0f, 0x85]);
/** An MBR entry stores LBA and size in 32 bits: nothing past this sector can be addressed. */
export const MBR_MAX_LBA = 0xffffffff;

export interface MbrEntry {
  /** 0-3 within its sector */
  slot: number;
  status: number;
  type: number;
  /** as stored: absolute for primaries, relative for EBR entries */
  lba: number;
  sectors: number;
}

export function hasBootSignature(sector0: Buffer): boolean {
  return sector0.length >= 512 && sector0[510] === 0x55 && sector0[511] === 0xaa;
}

/** The four entries of an MBR or EBR sector (empty ones included). */
export function parseEntries(sector: Buffer): MbrEntry[] {
  const out: MbrEntry[] = [];
  for (let slot = 0; slot < 4; slot++) {
    const o = ENTRY_OFFSET + slot * ENTRY_SIZE;
    out.push({
      slot,
      status: sector[o],
      type: sector[o + 4],
      lba: sector.readUInt32LE(o + 8),
      sectors: sector.readUInt32LE(o + 12),
    });
  }
  return out;
}

/** True when sector 0 is a protective (or hybrid) MBR in front of a GPT. */
export function isProtectiveMbr(sector0: Buffer): boolean {
  return hasBootSignature(sector0) && parseEntries(sector0).some((e) => e.type === PROTECTIVE_TYPE);
}

/** True when sector 0 looks like a partition table (not, say, a FAT boot sector). */
export function looksLikeMbr(sector0: Buffer): boolean {
  if (!hasBootSignature(sector0)) return false;
  const entries = parseEntries(sector0);
  if (entries.some((e) => e.status !== 0x00 && e.status !== 0x80)) return false;
  return entries.some((e) => e.type !== 0 && e.sectors > 0);
}

/** CHS address of an LBA with the 255-head, 63-sector geometry every tool assumes today. */
export function chsBytes(lba: number): [number, number, number] {
  const heads = 255;
  const perTrack = 63;
  const c = Math.floor(lba / (heads * perTrack));
  if (c > 1023) return [0xfe, 0xff, 0xff];
  const h = Math.floor(lba / perTrack) % heads;
  const s = (lba % perTrack) + 1;
  return [h, (s & 0x3f) | ((c >> 2) & 0xc0), c & 0xff];
}

/** Set an entry's size (and its CHS end) in a copy of the sector. `absEnd` is the absolute last LBA. */
function withEntrySize(sector: Buffer, slot: number, sectors: number, absEnd: number): Buffer {
  const out = Buffer.from(sector);
  const o = ENTRY_OFFSET + slot * ENTRY_SIZE;
  out.writeUInt32LE(sectors, o + 12);
  const chs = chsBytes(absEnd);
  out[o + 5] = chs[0];
  out[o + 6] = chs[1];
  out[o + 7] = chs[2];
  return out;
}

interface MbrLayout {
  sector0: Buffer;
  table: PartitionTable;
  /** for each logical partition number: the LBA of its EBR */
  ebrOf: Map<number, number>;
  /** the primary slot holding the extended container, if any */
  extendedSlot: number | undefined;
}

function readLayout(src: SectorSource): MbrLayout {
  const sector0 = src.read(0, 1);
  if (!looksLikeMbr(sector0)) throw growError('unknown-partition-table', 'the disk holds no MBR or GPT partition table');
  const partitions: Partition[] = [];
  const ebrOf = new Map<number, number>();
  let extendedSlot: number | undefined;
  for (const e of parseEntries(sector0)) {
    if (e.type === 0 || e.sectors === 0) continue;
    const extended = EXTENDED_TYPES.has(e.type);
    partitions.push({
      number: e.slot + 1, start: e.lba, end: e.lba + e.sectors - 1,
      type: hex(e.type), kind: extended ? 'extended' : 'primary',
    });
    if (extended) {
      if (extendedSlot !== undefined) throw growError('mbr-corrupt', 'the MBR holds two extended partitions');
      extendedSlot = e.slot;
      readLogicals(src, e.lba, e.lba + e.sectors - 1, partitions, ebrOf);
    }
  }
  return { sector0, table: { kind: 'mbr', sectorSize: src.sectorSize, partitions }, ebrOf, extendedSlot };
}

function readLogicals(
  src: SectorSource, extStart: number, extEnd: number, partitions: Partition[], ebrOf: Map<number, number>,
): void {
  const seen = new Set<number>();
  let ebr = extStart;
  let number = 5;
  while (true) {
    if (seen.has(ebr) || seen.size > 128 || ebr > extEnd || ebr >= src.sectors) {
      throw growError('mbr-corrupt', `the chain of logical partitions is broken at sector ${ebr}`);
    }
    seen.add(ebr);
    const sector = src.read(ebr, 1);
    if (!hasBootSignature(sector)) throw growError('mbr-corrupt', `the extended boot record at sector ${ebr} has no signature`);
    const [own, next] = parseEntries(sector);
    if (own.type !== 0 && own.sectors > 0) {
      const start = ebr + own.lba;
      partitions.push({ number, start, end: start + own.sectors - 1, type: hex(own.type), kind: 'logical' });
      ebrOf.set(number, ebr);
      number++;
    }
    if (next.type === 0 || next.sectors === 0) return;
    ebr = extStart + next.lba;
  }
}

export function readMbr(src: SectorSource): PartitionTable {
  return readLayout(src).table;
}

export function planMbrGrow(src: SectorSource, opts: GrowOptions): GrowPlan {
  const layout = readLayout(src);
  const { table } = layout;
  const target = chooseTarget(table.partitions, opts.partition, 'MBR partition table');
  const notes: string[] = [];
  let lastUsable = src.sectors - 1;
  if (lastUsable > MBR_MAX_LBA) {
    lastUsable = MBR_MAX_LBA;
    notes.push('an MBR partition table cannot address past 2 TiB (with 512-byte sectors): the partition grows to that limit; use a GPT image to use the whole disk');
  }
  const maxEnd = Math.max(...table.partitions.map((p) => p.end));
  if (maxEnd > src.sectors - 1) {
    throw growError('partition-past-end',
      `partition table describes sectors up to ${maxEnd} but the disk has only ${src.sectors}: the image is larger than the disk`,
      'deploy onto a disk at least as large as the image');
  }
  let newEnd = alignedEnd(lastUsable, opts.alignSectors ?? defaultAlignment(src.sectorSize));
  if (newEnd < target.end) newEnd = target.end;
  const after: PartitionTable = {
    ...table,
    partitions: table.partitions.map((p) => {
      if (p.number === target.number) return { ...p, end: newEnd };
      if (target.kind === 'logical' && p.kind === 'extended') return { ...p, end: Math.max(p.end, newEnd) };
      return p;
    }),
  };
  const plan: GrowPlan = {
    table: 'mbr', sectorSize: src.sectorSize, partition: target.number, start: target.start,
    oldEnd: target.end, newEnd, changed: newEnd !== target.end, writes: [], after, notes,
  };
  if (!plan.changed) return plan;

  const ss = src.sectorSize;
  const writes: Write[] = [];
  if (target.kind === 'primary') {
    const sector0 = withEntrySize(layout.sector0, target.number - 1, newEnd - target.start + 1, newEnd);
    writes.push({ offset: 0, data: sector0, what: `MBR entry ${target.number}` });
  } else {
    // A logical partition: its EBR entry, then the extended container around it.
    const ebr = layout.ebrOf.get(target.number);
    const slot = layout.extendedSlot;
    if (ebr === undefined || slot === undefined) throw growError('mbr-corrupt', `logical partition ${target.number} has no extended boot record`);
    const ext = table.partitions.find((p) => p.kind === 'extended');
    if (ext === undefined) throw growError('mbr-corrupt', 'logical partition without an extended container');
    const ebrSector = withEntrySize(src.read(ebr, 1), 0, newEnd - target.start + 1, newEnd);
    writes.push({ offset: ebr * ss, data: ebrSector, what: `EBR of logical partition ${target.number}` });
    if (newEnd > ext.end) {
      const sector0 = withEntrySize(layout.sector0, slot, newEnd - ext.start + 1, newEnd);
      writes.push({ offset: 0, data: sector0, what: `MBR extended partition ${ext.number}` });
    }
  }
  plan.writes = writes;
  return plan;
}

function hex(n: number): string {
  return n.toString(16).padStart(2, '0');
}
