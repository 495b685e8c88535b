// GPT (UEFI spec, chapter 5): a header at LBA 1 pointing at an array of partition entries, and a
// backup copy of both at the very end of the disk. An image written onto a larger disk keeps its
// backup in the middle of the new disk, so growing moves the backup to the new end, updates the
// header fields that describe the disk's extent (AlternateLBA, LastUsableLBA), the grown entry's
// last LBA, both CRCs, and the protective MBR's size.
import { crc32 } from 'node:zlib';
import { chsBytes, hasBootSignature, parseEntries, PROTECTIVE_TYPE } from './mbr.ts';
import {
  alignedEnd, chooseTarget, defaultAlignment, growError,
  type GrowOptions, type GrowPlan, type Partition, type PartitionTable, type SectorSource, type Write,
} from './types.ts';

const SIGNATURE = 'EFI PART';
const H = {
  signature: 0, revision: 8, headerSize: 12, headerCrc: 16, myLba: 24, alternateLba: 32,
  firstUsable: 40, lastUsable: 48, diskGuid: 56, entriesLba: 72, entryCount: 80, entrySize: 84,
  entriesCrc: 88,
} as const;
const E = { typeGuid: 0, uniqueGuid: 16, firstLba: 32, lastLba: 40 } as const;
/** No real table has more than a few hundred KiB of entries; more means a corrupt header. */
const MAX_ENTRIES_BYTES = 4 * 1024 * 1024;

export interface GptHeader {
  /** the header's sector as read (its bytes past headerSize are kept when it is rewritten) */
  sector: Buffer;
  headerSize: number;
  myLba: number;
  alternateLba: number;
  firstUsable: number;
  lastUsable: number;
  entriesLba: number;
  entryCount: number;
  entrySize: number;
  entriesCrc: number;
}

export interface Gpt {
  header: GptHeader;
  /** the raw entry array (entryCount * entrySize bytes) */
  entries: Buffer;
  table: PartitionTable;
}

export function hasGptSignature(sector: Buffer): boolean {
  return sector.toString('latin1', 0, 8) === SIGNATURE;
}

function u64(buf: Buffer, off: number): number {
  const v = buf.readBigUInt64LE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw growError('gpt-corrupt', `GPT field at byte ${off} is out of range (${v})`);
  return Number(v);
}

function headerCrc(sector: Buffer, headerSize: number): number {
  const h = Buffer.from(sector.subarray(0, headerSize));
  h.writeUInt32LE(0, H.headerCrc);
  return crc32(h);
}

/** Parse and check a GPT header sector; returns the reason it is not valid instead of throwing. */
export function parseGptHeader(sector: Buffer): GptHeader | string {
  if (!hasGptSignature(sector)) return 'no "EFI PART" signature';
  const headerSize = sector.readUInt32LE(H.headerSize);
  if (headerSize < 92 || headerSize > sector.length) return `header size ${headerSize} is invalid`;
  const stored = sector.readUInt32LE(H.headerCrc);
  const actual = headerCrc(sector, headerSize);
  if (stored !== actual) return `header CRC mismatch (stored ${hex32(stored)}, computed ${hex32(actual)})`;
  const entrySize = sector.readUInt32LE(H.entrySize);
  const entryCount = sector.readUInt32LE(H.entryCount);
  if (entrySize < 128 || entrySize % 8 !== 0) return `partition entry size ${entrySize} is invalid`;
  if (entrySize * entryCount > MAX_ENTRIES_BYTES) return `partition entry array of ${entryCount} x ${entrySize} bytes is implausible`;
  return {
    sector,
    headerSize,
    myLba: u64(sector, H.myLba),
    alternateLba: u64(sector, H.alternateLba),
    firstUsable: u64(sector, H.firstUsable),
    lastUsable: u64(sector, H.lastUsable),
    entriesLba: u64(sector, H.entriesLba),
    entryCount,
    entrySize,
    entriesCrc: sector.readUInt32LE(H.entriesCrc),
  };
}

/** A GUID as text (its first three fields are stored little-endian). */
export function guidString(b: Buffer): string {
  const h = (s: Buffer) => s.toString('hex');
  const le = (s: Buffer) => h(Buffer.from(s).reverse());
  return [le(b.subarray(0, 4)), le(b.subarray(4, 6)), le(b.subarray(6, 8)), h(b.subarray(8, 10)), h(b.subarray(10, 16))]
    .join('-').toUpperCase();
}

export function readGpt(src: SectorSource): Gpt {
  const ss = src.sectorSize;
  const parsed = parseGptHeader(src.read(1, 1));
  if (typeof parsed === 'string') {
    throw growError('gpt-corrupt', `the primary GPT header is not valid: ${parsed}`,
      'the image was not written completely or is not a GPT disk; the disk is NOT known to be bootable');
  }
  const header = parsed;
  if (header.myLba !== 1) throw growError('gpt-corrupt', `the primary GPT header claims to sit at LBA ${header.myLba}, not 1`);
  const entryBytes = header.entryCount * header.entrySize;
  const entrySectors = Math.ceil(entryBytes / ss);
  if (header.entriesLba + entrySectors > src.sectors) throw growError('gpt-corrupt', `the GPT entry array at LBA ${header.entriesLba} lies past the end of the disk`);
  const entries = src.read(header.entriesLba, entrySectors).subarray(0, entryBytes);
  const crc = crc32(entries);
  if (crc !== header.entriesCrc) {
    throw growError('gpt-corrupt', `the GPT partition entry array CRC does not match (stored ${hex32(header.entriesCrc)}, computed ${hex32(crc)})`);
  }
  const partitions: Partition[] = [];
  for (let i = 0; i < header.entryCount; i++) {
    const e = entries.subarray(i * header.entrySize, (i + 1) * header.entrySize);
    const type = e.subarray(E.typeGuid, E.typeGuid + 16);
    if (type.every((b) => b === 0)) continue;
    partitions.push({ number: i + 1, start: u64(e, E.firstLba), end: u64(e, E.lastLba), type: guidString(type), kind: 'gpt' });
  }
  return { header, entries: Buffer.from(entries), table: { kind: 'gpt', sectorSize: ss, partitions } };
}

/** A header sector with the given fields changed and its CRC recomputed. */
function rewriteHeader(h: GptHeader, fields: { myLba: number; alternateLba: number; lastUsable: number; entriesLba: number; entriesCrc: number }): Buffer {
  const s = Buffer.from(h.sector);
  s.writeBigUInt64LE(BigInt(fields.myLba), H.myLba);
  s.writeBigUInt64LE(BigInt(fields.alternateLba), H.alternateLba);
  s.writeBigUInt64LE(BigInt(fields.lastUsable), H.lastUsable);
  s.writeBigUInt64LE(BigInt(fields.entriesLba), H.entriesLba);
  s.writeUInt32LE(fields.entriesCrc, H.entriesCrc);
  s.writeUInt32LE(headerCrc(s, h.headerSize), H.headerCrc);
  return s;
}

export function planGptGrow(src: SectorSource, opts: GrowOptions): GrowPlan {
  const ss = src.sectorSize;
  const gpt = readGpt(src);
  const { header, table } = gpt;
  const target = chooseTarget(table.partitions, opts.partition, 'GPT');

  const entrySectors = Math.ceil((header.entryCount * header.entrySize) / ss);
  const alternateLba = src.sectors - 1;
  const backupEntriesLba = alternateLba - entrySectors;
  const lastUsable = backupEntriesLba - 1;
  const maxEnd = Math.max(...table.partitions.map((p) => p.end));
  if (maxEnd > lastUsable) {
    throw growError('partition-past-end',
      `the GPT describes sectors up to ${maxEnd} but the disk's last usable sector is ${lastUsable}: the image is larger than the disk`,
      'deploy onto a disk at least as large as the image');
  }
  let newEnd = alignedEnd(lastUsable, opts.alignSectors ?? defaultAlignment(ss));
  if (newEnd < target.end) newEnd = target.end;

  const after: PartitionTable = {
    ...table, partitions: table.partitions.map((p) => (p.number === target.number ? { ...p, end: newEnd } : p)),
  };
  const notes: string[] = [];
  const tableMoves = header.alternateLba !== alternateLba || header.lastUsable !== lastUsable;
  const plan: GrowPlan = {
    table: 'gpt', sectorSize: ss, partition: target.number, start: target.start, oldEnd: target.end, newEnd,
    changed: newEnd !== target.end || tableMoves, writes: [], after, notes,
  };
  if (!plan.changed) return plan;

  const entries = Buffer.from(gpt.entries);
  entries.writeBigUInt64LE(BigInt(newEnd), (target.number - 1) * header.entrySize + E.lastLba);
  const entriesCrc = crc32(entries);
  const entriesSectorsBuf = Buffer.alloc(entrySectors * ss);
  entries.copy(entriesSectorsBuf);
  const primary = rewriteHeader(header, { myLba: 1, alternateLba, lastUsable, entriesLba: header.entriesLba, entriesCrc });
  const backup = rewriteHeader(header, { myLba: alternateLba, alternateLba: 1, lastUsable, entriesLba: backupEntriesLba, entriesCrc });

  const writes: Write[] = [];
  // Backup first: if power fails half-way, the primary (what firmware and the kernel read first)
  // is still the old, consistent table.
  writes.push({ offset: backupEntriesLba * ss, data: entriesSectorsBuf, what: 'GPT backup partition entries' });
  writes.push({ offset: alternateLba * ss, data: backup, what: 'GPT backup header' });
  writes.push({ offset: header.entriesLba * ss, data: entriesSectorsBuf, what: 'GPT primary partition entries' });
  writes.push({ offset: ss, data: primary, what: 'GPT primary header' });

  // The old backup header now sits in free space inside the grown partition: wipe its signature
  // so no tool mistakes it for a table later.
  if (header.alternateLba !== alternateLba && header.alternateLba > maxEnd && header.alternateLba < src.sectors) {
    writes.push({ offset: header.alternateLba * ss, data: Buffer.alloc(ss), what: 'old GPT backup header (wiped)' });
  }

  const pmbr = protectiveMbrUpdate(src.read(0, 1), src.sectors);
  if (pmbr !== undefined) writes.push({ offset: 0, data: pmbr, what: 'protective MBR' });
  else if (!isProtectiveCovering(src.read(0, 1))) notes.push('the disk has no protective MBR entry to update (hybrid or missing MBR); left as is');
  plan.writes = writes;
  return plan;
}

function isProtectiveCovering(sector0: Buffer): boolean {
  return hasBootSignature(sector0) && parseEntries(sector0).some((e) => e.type === PROTECTIVE_TYPE && e.lba === 1);
}

/** Sector 0 with the protective entry covering the whole disk, or undefined if nothing changes. */
function protectiveMbrUpdate(sector0: Buffer, sectors: number): Buffer | undefined {
  if (!hasBootSignature(sector0)) return undefined;
  const entry = parseEntries(sector0).find((e) => e.type === PROTECTIVE_TYPE && e.lba === 1);
  if (entry === undefined) return undefined;
  const size = Math.min(sectors - 1, 0xffffffff);
  if (entry.sectors === size) return undefined;
  const out = Buffer.from(sector0);
  const o = 446 + entry.slot * 16;
  out.writeUInt32LE(size, o + 12);
  const chs = chsBytes(sectors - 1);
  out[o + 5] = chs[0];
  out[o + 6] = chs[1];
  out[o + 7] = chs[2];
  return out;
}

function hex32(n: number): string {
  return '0x' + n.toString(16).padStart(8, '0');
}
