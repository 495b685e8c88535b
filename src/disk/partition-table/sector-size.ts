// Which sector size an image's partition table was made for, and the refusal of an image whose
// table does not fit the disk's logical sector size (a 512-byte-sector image on a 4Kn disk, or
// the reverse): every LBA in a GPT or MBR counts in the disk's logical sectors, so such an image
// would leave partitions at the wrong offsets (a GPT made for 512 is not even found on a 4Kn disk:
// its header sits at byte 512, the firmware looks at byte 4096). Checked on the first decoded
// bytes of the image, before anything is written. booty refuses rather than converts.
//   GPT: the header's position says it: "EFI PART" at byte 512 (512) or at byte 4096 (4096).
//   MBR without GPT: the table does not say; the first partition's start tells in practice:
//        63 or a multiple of 2048 (1 MiB) is a 512-byte layout, a multiple of 256 below 2048 is
//        1 MiB in 4096-byte sectors. Anything else on a 4Kn disk is refused as unknown.
import { BootyError } from '../../util/errors.ts';
import { hasGptSignature } from './gpt.ts';
import { isProtectiveMbr, looksLikeMbr, parseEntries } from './mbr.ts';

export interface TableSectorSize {
  kind: 'gpt' | 'mbr';
  /** 512 or 4096; undefined: an MBR whose layout does not tell */
  sectorSize?: number;
  why: string;
}

/** What `head` (the image's first bytes: at least 4104 for a 4096-sector GPT) holds; undefined: no partition table. */
export function tableSectorSize(head: Buffer): TableSectorSize | undefined {
  if (head.length >= 520 && hasGptSignature(head.subarray(512))) return { kind: 'gpt', sectorSize: 512, why: 'its GPT header is at byte 512 (LBA 1 of 512-byte sectors)' };
  if (head.length >= 4104 && hasGptSignature(head.subarray(4096))) return { kind: 'gpt', sectorSize: 4096, why: 'its GPT header is at byte 4096 (LBA 1 of 4096-byte sectors)' };
  if (head.length < 512 || !looksLikeMbr(head) || isProtectiveMbr(head)) return undefined;
  const used = parseEntries(head).filter((e) => e.type !== 0 && e.sectors > 0);
  const first = Math.min(...used.map((e) => e.lba));
  if (first === 63 || first % 2048 === 0) return { kind: 'mbr', sectorSize: 512, why: `its MBR's first partition starts at sector ${first} (a 512-byte-sector layout)` };
  if (first % 256 === 0) return { kind: 'mbr', sectorSize: 4096, why: `its MBR's first partition starts at sector ${first} (1 MiB alignment in 4096-byte sectors)` };
  return { kind: 'mbr', why: `its MBR's first partition starts at sector ${first}, which does not say the sector size` };
}

/** The refusal of an image whose partition table was made for another sector size than the disk's. */
export function sectorSizeProblem(head: Buffer, diskSectorSize: number, disk: string): BootyError | undefined {
  const t = tableSectorSize(head);
  if (t === undefined) return undefined;
  if (t.sectorSize === diskSectorSize || (t.sectorSize === undefined && diskSectorSize === 512)) return undefined;
  const diskWords = diskSectorSize === 4096 ? `${disk} has 4096-byte logical sectors (a 4Kn disk)` : `${disk} has ${diskSectorSize}-byte logical sectors`;
  const made = t.sectorSize === undefined ? 'booty cannot tell which sector size its partition table was made for' : `its partition table was made for ${t.sectorSize}-byte sectors`;
  return new BootyError({
    stage: 'preflight', code: 'sector-size-mismatch', diskState: 'untouched',
    message: `the image does not fit this disk's sector size: ${made} (${t.why}), but ${diskWords}; every partition offset would be read in ${diskSectorSize}-byte units, so the partitions would be wrong`,
    hint: diskSectorSize === 4096
      ? 'use an image built for 4096-byte sectors (e.g. sfdisk --sector-size 4096 on the image, or make it on a losetup --sector-size 4096 device), or deploy to a disk with 512-byte sectors'
      : `use an image built for ${diskSectorSize}-byte sectors, or deploy to a disk with ${t.sectorSize ?? 4096}-byte sectors`,
  });
}
