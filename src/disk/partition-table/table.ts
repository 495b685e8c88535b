// Which partition table a disk holds, and the one entry point for reading and planning a grow.
import { planGptGrow, readGpt, hasGptSignature } from './gpt.ts';
import { hasBootSignature, isProtectiveMbr, looksLikeMbr, planMbrGrow, readMbr } from './mbr.ts';
import { growError, type GrowOptions, type GrowPlan, type PartitionTable, type SectorSource } from './types.ts';

export type TableKind = 'gpt' | 'mbr' | 'none';

/** GPT when sector 0 is a protective MBR or LBA 1 carries "EFI PART"; else MBR if it looks like one. */
export function detectTable(src: SectorSource): TableKind {
  if (src.sectors < 2) return 'none';
  const sector0 = src.read(0, 1);
  if (isProtectiveMbr(sector0)) return 'gpt';
  if (hasGptSignature(src.read(1, 1))) return 'gpt';
  if (looksLikeMbr(sector0)) return 'mbr';
  return 'none';
}

function unknownTable(src: SectorSource): never {
  const sig = hasBootSignature(src.read(0, 1)) ? 'a boot signature but no partition entries' : 'no partition table signature';
  throw growError('unknown-partition-table',
    `the disk holds no MBR or GPT partition table (sector 0 has ${sig}); cannot grow a partition`,
    'the image was written as is; check that it is a whole-disk image, not a single filesystem');
}

export function readPartitionTable(src: SectorSource): PartitionTable {
  switch (detectTable(src)) {
    case 'gpt': return readGpt(src).table;
    case 'mbr': return readMbr(src);
    case 'none': return unknownTable(src);
  }
}

/** What to write so that the chosen partition ends at the end of the disk (or at the MBR limit). */
export function planGrow(src: SectorSource, opts: GrowOptions): GrowPlan {
  switch (detectTable(src)) {
    case 'gpt': return planGptGrow(src, opts);
    case 'mbr': return planMbrGrow(src, opts);
    case 'none': return unknownTable(src);
  }
}
