// What a deployed disk file holds, read on the host without booting it: its partition table
// (sfdisk --json on the file), an ext4 superblock at a byte offset (dumpe2fs through a read-only
// loop device over just that range: the host kernel has no partition parser here and no
// device-mapper), and where an LVM logical volume lies inside its PV (from the PV's text
// metadata, which is what LVM itself reads).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

export interface FilePartition { start: number; size: number; type: string }

/** The partitions of a disk file, in 512-byte sectors. */
export function partitionsOfFile(file: string): FilePartition[] {
  const j = JSON.parse(execFileSync('sfdisk', ['--json', file], { encoding: 'utf8' })) as { partitiontable: { partitions: FilePartition[] } };
  return j.partitiontable.partitions;
}

export interface Ext4Facts { blockCount: number; blockSize: number; bytes: number; state: string }

/** dumpe2fs -h of the ext4 filesystem at [offset, offset + size) of `file`. */
export function ext4AtOffset(file: string, offset: number, size: number): Ext4Facts {
  const dev = execFileSync('losetup', ['-f', '--show', '-r', '-o', String(offset), '--sizelimit', String(size), file], { encoding: 'utf8' }).trim();
  try {
    const out = execFileSync('dumpe2fs', ['-h', dev], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const blockCount = Number(/^Block count:\s+(\d+)/m.exec(out)?.[1]);
    const blockSize = Number(/^Block size:\s+(\d+)/m.exec(out)?.[1]);
    const state = /^Filesystem state:\s+(.+)$/m.exec(out)?.[1].trim() ?? '?';
    return { blockCount, blockSize, bytes: blockCount * blockSize, state };
  } finally {
    execFileSync('losetup', ['-d', dev]);
  }
}

/** The content of `inside` (a path in the filesystem) of the ext4 at [offset, offset + size) of `file`, read with debugfs. */
export function ext4FileAtOffset(file: string, offset: number, size: number, inside: string): string {
  const dev = execFileSync('losetup', ['-f', '--show', '-r', '-o', String(offset), '--sizelimit', String(size), file], { encoding: 'utf8' }).trim();
  try {
    return execFileSync('debugfs', ['-R', `cat ${inside}`, dev], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } finally {
    execFileSync('losetup', ['-d', dev]);
  }
}

export interface LvLocation {
  /** byte offset of the LV's first extent from the start of the PV */
  offset: number;
  bytes: number;
  /** metadata sequence number (each change writes a higher one) */
  seqno: number;
  /** extents the VG has left */
  freeExtents: number;
}

/**
 * Where LV `lv` of the PV at [pvOffset, ...) of `file` lies, from the newest copy of the VG's text
 * metadata in the PV's first metadata area. Handles the simple case the tests make: one PV, the
 * LV's segments contiguous (a linear LV extended at its end, as lvextend does on one PV).
 */
export function lvInPv(file: string, pvOffset: number, vg: string, lv: string): LvLocation {
  const fd = fs.openSync(file, 'r');
  const head = Buffer.alloc(2 << 20);
  try { fs.readSync(fd, head, 0, head.length, pvOffset); } finally { fs.closeSync(fd); }
  // The metadata area is a ring of text copies; the live one has the highest seqno.
  const text = head.toString('latin1');
  let best: { seqno: number; body: string } | undefined;
  const re = new RegExp(`${vg} \\{\\n`, 'g');
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const end = text.indexOf('\0', m.index);
    const body = text.slice(m.index, end < 0 ? undefined : end);
    const seqno = Number(/seqno = (\d+)/.exec(body)?.[1]);
    if (Number.isFinite(seqno) && (best === undefined || seqno > best.seqno)) best = { seqno, body };
  }
  if (best === undefined) throw new Error(`no LVM metadata for volume group ${vg} in the PV at byte ${pvOffset}`);
  const body = best.body;
  const extentSectors = Number(/extent_size = (\d+)/.exec(body)?.[1]);
  const peStart = Number(/pe_start = (\d+)/.exec(body)?.[1]);
  const peCount = Number(/pe_count = (\d+)/.exec(body)?.[1]);
  const lvStart = body.indexOf(`\n${lv} {`) >= 0 ? body.indexOf(`\n${lv} {`) : body.search(new RegExp(`\\s${lv} \\{`));
  if (lvStart < 0) throw new Error(`volume group ${vg} has no LV ${lv} in its metadata (seqno ${best.seqno})`);
  const lvText = body.slice(lvStart);
  const segs = [...lvText.matchAll(/start_extent = (\d+)\s+extent_count = (\d+)[\s\S]*?stripes = \[\s*"pv\d+", (\d+)\s*\]/g)];
  // only this LV's segments: stop at the next LV (segment_count says how many)
  const count = Number(/segment_count = (\d+)/.exec(lvText)?.[1]);
  const mine = segs.slice(0, count).map((s) => ({ le: Number(s[1]), n: Number(s[2]), pe: Number(s[3]) }));
  if (mine.length === 0) throw new Error(`LV ${lv} has no segments in the metadata`);
  mine.sort((a, b) => a.le - b.le);
  for (let i = 1; i < mine.length; i++) {
    if (mine[i].pe !== mine[i - 1].pe + mine[i - 1].n) throw new Error(`LV ${lv} is not contiguous on its PV`);
  }
  // every segment of every LV holds extent_count extents of the (single) PV
  const used = [...body.matchAll(/extent_count = (\d+)/g)].reduce((a, m) => a + Number(m[1]), 0);
  const extent = extentSectors * 512;
  return {
    offset: peStart * 512 + mine[0].pe * extent,
    bytes: mine.reduce((a, s) => a + s.n, 0) * extent,
    seqno: best.seqno,
    freeExtents: peCount - used,
  };
}
