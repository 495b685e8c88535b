// What a partition or LV holds, from the magic numbers at its start (the same ones blkid reads),
// so the agent needs no blkid and unit tests need no devices. Sizes come from the superblocks so
// the log can say "ext4 2.0 GiB -> 4.0 GiB".

export type Content =
  | { kind: 'lvm2-pv' }
  | { kind: 'ext'; sizeBytes: number; blockSize: number }
  | { kind: 'xfs'; sizeBytes: number; blockSize: number }
  | { kind: 'btrfs' }
  | { kind: 'swap' }
  | { kind: 'unknown' };

/** Bytes to read from the start of a device to recognise everything above (btrfs sits at 64 KiB). */
export const DETECT_BYTES = 128 * 1024;

export function detectContent(head: Buffer): Content {
  // LVM2 physical volume: "LABELONE" at the start of one of the first four 512-byte sectors,
  // with the label type "LVM2 001" 24 bytes further.
  for (let s = 0; s < 4; s++) {
    const o = s * 512;
    if (head.length >= o + 32 && head.toString('latin1', o, o + 8) === 'LABELONE' && head.toString('latin1', o + 24, o + 32) === 'LVM2 001') {
      return { kind: 'lvm2-pv' };
    }
  }
  // ext2/3/4: superblock at 1024, s_magic 0xEF53 at +56.
  if (head.length >= 2048 && head.readUInt16LE(1024 + 56) === 0xef53) {
    const sb = 1024;
    const blockSize = 1024 << head.readUInt32LE(sb + 24);
    const incompat = head.readUInt32LE(sb + 0x60);
    const is64 = (incompat & 0x80) !== 0;
    const lo = head.readUInt32LE(sb + 4);
    const hi = is64 ? head.readUInt32LE(sb + 0x150) : 0;
    return { kind: 'ext', blockSize, sizeBytes: (hi * 2 ** 32 + lo) * blockSize };
  }
  // XFS: "XFSB" at 0, sb_blocksize (BE u32) at 4, sb_dblocks (BE u64) at 8.
  if (head.length >= 16 && head.toString('latin1', 0, 4) === 'XFSB') {
    const blockSize = head.readUInt32BE(4);
    return { kind: 'xfs', blockSize, sizeBytes: Number(head.readBigUInt64BE(8)) * blockSize };
  }
  if (head.length >= 65536 + 72 && head.toString('latin1', 65536 + 64, 65536 + 72) === '_BHRfS_M') return { kind: 'btrfs' };
  for (const page of [4096, 8192, 16384, 65536]) {
    if (head.length >= page && /^SWAP(SPACE2|-SPACE)$/.test(head.toString('latin1', page - 10, page))) return { kind: 'swap' };
  }
  return { kind: 'unknown' };
}

export function describeContent(c: Content): string {
  switch (c.kind) {
    case 'lvm2-pv': return 'an LVM2 physical volume';
    case 'ext': return `an ext2/3/4 filesystem of ${formatBytes(c.sizeBytes)}`;
    case 'xfs': return `an XFS filesystem of ${formatBytes(c.sizeBytes)}`;
    case 'btrfs': return 'a btrfs filesystem';
    case 'swap': return 'swap space';
    case 'unknown': return 'nothing booty recognises';
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}
