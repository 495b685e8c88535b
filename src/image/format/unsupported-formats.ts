// Formats booty recognizes by their first bytes but does not decode: compressors, virtual-disk
// containers, archives and filesystem images that operators download and hand to a deploy. Each is
// refused before the first write with a sentence naming it and the command that turns it into
// something booty writes, instead of being taken for a raw disk (writing an xz stream onto a disk
// and reporting success is the worst outcome an imaging tool can have).
//
// Only magic numbers and header fields decide, never file names. Each test is as strict as its
// format allows, so a real raw disk (MBR boot code, a GPT, a zeroed first sector) is never
// refused: where a magic is short (zlib's two bytes, lzma-alone's none at all) the header is
// checked field by field, or a few bytes are trial-decoded. When a later change teaches booty to
// decode one of these, its entry leaves this table.
import zlib from 'node:zlib';

export type UnsupportedKind = 'compressed' | 'disk-image' | 'archive' | 'filesystem';

export interface UnsupportedFormat {
  /** short stable name: the catalog shows `unsupported: <id>` */
  id: string;
  kind: UnsupportedKind;
  /** what the image is, as the object of "the image is ...", with details read from its header */
  what: string;
  /** the operator's next step */
  advice: string;
  /** why booty stops, when not what the kind says (refusalReason) */
  reason?: string;
}

/** Head bytes the table needs: ISO 9660's volume descriptor starts at 32 KiB. */
export const UNSUPPORTED_HEAD_BYTES = 0x8000 + 2048;

const SERVE = 'or serve a gzip, zstd or raw image';

interface Entry {
  id: string;
  kind: UnsupportedKind;
  /** undefined: not this format; else the description (with header details) */
  match(h: Buffer): string | undefined;
  advice(h: Buffer): string;
  reason?(h: Buffer): string | undefined;
}

function at(h: Buffer, offset: number, bytes: number[] | string): boolean {
  const want = typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : Buffer.from(bytes);
  if (h.length < offset + want.length) return false;
  return h.subarray(offset, offset + want.length).equals(want);
}

const qemuImg = (what: string) => `convert it on the server: qemu-img convert -O raw ${what} IMAGE.raw (then gzip or zstd it), ${SERVE}`;

const ENTRIES: Entry[] = [
  // ---- compressors
  { id: 'lz4', kind: 'compressed', match: (h) => at(h, 0, [0x04, 0x22, 0x4d, 0x18]) ? 'lz4-compressed (lz4 frame format)'
    : at(h, 0, [0x02, 0x21, 0x4c, 0x18]) ? 'lz4-compressed (legacy lz4 format)' : undefined,
    advice: () => `decompress it on the server (lz4 -d), ${SERVE}` },
  { id: 'lzip', kind: 'compressed', match: (h) => at(h, 0, 'LZIP') && h.length > 4 && h[4] <= 1 ? 'lzip-compressed' : undefined,
    advice: () => `decompress it on the server (lzip -d), ${SERVE}` },
  { id: 'lzma', kind: 'compressed', match: (h) => isLzmaAlone(h) ? 'lzma-compressed (the legacy .lzma format)' : undefined,
    advice: () => `decompress it on the server (xz --format=lzma -d, or unlzma), ${SERVE}` },
  { id: 'lzop', kind: 'compressed', match: (h) => at(h, 0, [0x89, 0x4c, 0x5a, 0x4f, 0x00, 0x0d, 0x0a, 0x1a, 0x0a]) ? 'lzop-compressed' : undefined,
    advice: () => `decompress it on the server (lzop -d), ${SERVE}` },
  { id: 'compress', kind: 'compressed', match: (h) => isCompressZ(h) ? 'compressed with compress(1) (.Z, LZW)' : undefined,
    advice: () => `decompress it on the server (gzip -d reads .Z files), ${SERVE}` },
  { id: 'zlib', kind: 'compressed', match: (h) => isZlib(h) ? 'a zlib stream (deflate in the RFC 1950 wrapper, not gzip)' : undefined,
    advice: () => `decompress it on the server (pigz -dz), or recompress it as gzip, ${SERVE}` },
  { id: 'skippable-frame', kind: 'compressed', match: matchSkippable,
    advice: () => `decompress it on the server (zstd -d or lz4 -d, whichever wrote it), ${SERVE}` },
  // ---- virtual disk containers
  // qcow2 v2/v3 standing alone is decoded (src/image/qcow2/); only what needs other files or a key stays here
  { id: 'qcow2', kind: 'disk-image', match: matchQcow, advice: (h) => qcowAdvice(h), reason: qcowReason },
  { id: 'qed', kind: 'disk-image', match: (h) => at(h, 0, 'QED\0') ? 'a QED disk image' : undefined, advice: () => qemuImg('-f qed IMAGE') },
  { id: 'vmdk', kind: 'disk-image', match: matchVmdk,
    advice: (h) => at(h, 0, '# Disk DescriptorFile') ? `convert the whole disk (descriptor and extents) on the server: qemu-img convert -O raw DISK.vmdk IMAGE.raw, ${SERVE}` : qemuImg('-f vmdk IMAGE.vmdk') },
  { id: 'vhd', kind: 'disk-image', match: (h) => at(h, 0, 'conectix') ? 'a VHD disk image (dynamic or differencing: its footer copy leads the file)' : undefined,
    advice: () => qemuImg('-f vpc IMAGE.vhd') },
  { id: 'vhdx', kind: 'disk-image', match: (h) => at(h, 0, 'vhdxfile') ? 'a VHDX disk image' : undefined, advice: () => qemuImg('-f vhdx IMAGE.vhdx') },
  { id: 'vdi', kind: 'disk-image', match: (h) => h.length >= 0x44 && h.readUInt32LE(0x40) === 0xbeda107f ? 'a VirtualBox VDI disk image' : undefined,
    advice: () => qemuImg('-f vdi IMAGE.vdi') },
  { id: 'parallels', kind: 'disk-image', match: (h) => at(h, 0, 'WithoutFreeSpace') || at(h, 0, 'WithouFreSpacExt') ? 'a Parallels disk image' : undefined,
    advice: () => qemuImg('-f parallels IMAGE.hdd') },
  { id: 'android-sparse', kind: 'disk-image', match: (h) => h.length >= 4 && h.readUInt32LE(0) === 0xed26ff3a ? 'an Android sparse image' : undefined,
    advice: () => `expand it on the server (simg2img IMAGE IMAGE.raw), ${SERVE}` },
  // ---- archives
  { id: 'zip', kind: 'archive', match: (h) => at(h, 0, 'PK\x03\x04') || at(h, 0, 'PK\x05\x06') || at(h, 0, 'PK\x07\x08') ? 'a zip archive' : undefined,
    advice: () => `extract the disk image from it on the server (unzip) and serve that` },
  { id: '7z', kind: 'archive', match: (h) => at(h, 0, [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c]) ? 'a 7-Zip archive' : undefined,
    advice: () => `extract the disk image from it on the server (7z x) and serve that` },
  { id: 'rar', kind: 'archive', match: (h) => at(h, 0, 'Rar!\x1a\x07\x00') || at(h, 0, 'Rar!\x1a\x07\x01\x00') ? 'a RAR archive' : undefined,
    advice: () => `extract the disk image from it on the server (unrar x) and serve that` },
  { id: 'tar', kind: 'archive', match: matchTar,
    advice: () => `booty writes disk images, not file trees: extract the disk image from the archive on the server (tar -x), or build a disk image from the tree, and serve that` },
  { id: 'cpio', kind: 'archive', match: matchCpio,
    advice: () => `booty writes disk images: extract the disk image from the archive (cpio -i), ${SERVE}` },
  { id: 'wim', kind: 'archive', match: (h) => at(h, 0, 'MSWIM\0\0\0') ? 'a Windows Imaging (WIM) archive' : undefined,
    advice: () => `apply it to a partition with wimlib (wimapply), capture that disk, and serve the disk image` },
  // ---- filesystem images without a partition table
  { id: 'squashfs', kind: 'filesystem', match: (h) => at(h, 0, 'hsqs') || at(h, 0, 'sqsh') ? 'a squashfs filesystem image (one filesystem, no partition table)' : undefined,
    advice: () => `booty writes whole-disk images: build a disk image with a partition table around it, ${SERVE}` },
  { id: 'iso9660', kind: 'filesystem', match: matchIso, advice: isoAdvice },
];

/** The format booty refuses that `head` starts with, or undefined. */
export function unsupportedFormat(head: Uint8Array): UnsupportedFormat | undefined {
  const h = Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  for (const e of ENTRIES) {
    const what = e.match(h);
    if (what === undefined) continue;
    const reason = e.reason?.(h);
    return { id: e.id, kind: e.kind, what, advice: e.advice(h), ...(reason !== undefined ? { reason } : {}) };
  }
  return undefined;
}

/** Every id in the table (README and tests list them). */
export const UNSUPPORTED_IDS: readonly string[] = ENTRIES.map((e) => e.id);

// ---- the tests that need more than a fixed magic

/** zstd and lz4 share skippable frames (magic 0x184D2A5?); what follows decides. Frames booty
 *  decodes (pzstd's leading skippable frame before a zstd frame) are not refused here. */
function matchSkippable(h: Buffer): string | undefined {
  if (h.length < 8 || (h.readUInt32LE(0) & 0xfffffff0) >>> 0 !== 0x184d2a50) return undefined;
  const next = 8 + h.readUInt32LE(4);
  if (h.length >= next + 4) {
    const magic = h.readUInt32LE(next);
    if (magic === 0xfd2fb528) return undefined;
    if (magic === 0x184d2204) return 'lz4-compressed (lz4 frame format after a skippable frame)';
  }
  return 'a skippable frame (zstd/lz4 metadata) with no zstd frame after it in the first bytes';
}

/** The legacy .lzma header has no magic: properties byte, dictionary size, uncompressed size.
 *  Checked as xz's own auto-detection does (its "picky" mode). */
function isLzmaAlone(h: Buffer): boolean {
  if (h.length < 13) return false;
  const props = h[0];
  if (props > 224) return false;
  const lc = props % 9;
  const lp = Math.floor(props / 9) % 5;
  if (lc + lp > 4) return false;
  const dict = h.readUInt32LE(1);
  if (dict !== 0xffffffff) {
    if (dict < 4096) return false;
    // 2^n or 2^n + 2^(n-1)
    let d = dict - 1;
    d |= d >>> 2; d |= d >>> 3; d |= d >>> 4; d |= d >>> 8; d |= d >>> 16;
    if (((d >>> 0) + 1) >>> 0 !== dict) return false;
  }
  const size = h.readBigUInt64LE(5);
  return size === 0xffffffffffffffffn || size < 1n << 38n;
}

/** Two header bytes (method 8, window <= 32 KiB, FCHECK, no preset dictionary) and then a
 *  trial inflate of the first bytes: two bytes alone would match one raw disk in a few thousand. */
function isZlib(h: Buffer): boolean {
  if (h.length < 3) return false;
  const cmf = h[0];
  const flg = h[1];
  if ((cmf & 0x0f) !== 8 || cmf >> 4 > 7 || ((cmf << 8) | flg) % 31 !== 0 || (flg & 0x20) !== 0) return false;
  try {
    zlib.inflateSync(h.subarray(0, Math.min(h.length, 256)), { finishFlush: zlib.constants.Z_SYNC_FLUSH, maxOutputLength: 1 << 20 });
    return true;
  } catch (e) {
    // more output than the cap: a valid stream of something very compressible
    return (e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
  }
}

function matchQcow(h: Buffer): string | undefined {
  if (!at(h, 0, 'QFI\xfb') || h.length < 8) return undefined;
  const version = h.readUInt32BE(4);
  if (version === 1) return 'a qcow (version 1) disk image';
  if (version !== 2 && version !== 3) return `a qcow disk image of version ${version}`;
  if (qcowReason(h) === undefined) return undefined;
  const details: string[] = [];
  if (h.length >= 20) {
    const backingOffset = Number(h.readBigUInt64BE(8));
    const backingSize = h.readUInt32BE(16);
    if (backingOffset !== 0) {
      const name = backingOffset + backingSize <= h.length && backingSize <= 1023
        ? ` "${h.subarray(backingOffset, backingOffset + backingSize).toString('utf8')}"` : '';
      details.push(`with a backing file${name} (it holds only the changes to that file)`);
    }
  }
  if (h.length >= 36) {
    const crypt = h.readUInt32BE(32);
    if (crypt !== 0) details.push(`encrypted (${crypt === 1 ? 'AES' : crypt === 2 ? 'LUKS' : `method ${crypt}`})`);
  }
  if (h.length >= 64 && h.readUInt32BE(60) > 0) details.push(`with ${h.readUInt32BE(60)} internal snapshot${h.readUInt32BE(60) === 1 ? '' : 's'}`);
  if (version >= 3 && h.length >= 80 && (h.readBigUInt64BE(72) & 4n) !== 0n) details.push('with an external data file');
  return `a qcow2 (version ${version}) disk image${details.length > 0 ? `, ${details.join(', ')}` : ''}`;
}

/** Why a qcow2 that needs another file or a key is refused; undefined when it stands alone. */
function qcowReason(h: Buffer): string | undefined {
  if (h.length < 8 || h.readUInt32BE(4) < 2 || h.readUInt32BE(4) > 3) return undefined;
  if (h.length >= 16 && h.readBigUInt64BE(8) !== 0n) return 'which booty does not deploy: it is not a whole disk without that file';
  if (h.length >= 36 && h.readUInt32BE(32) !== 0) return 'which booty cannot decrypt (it has no key)';
  if (h.readUInt32BE(4) >= 3 && h.length >= 80 && (h.readBigUInt64BE(72) & 4n) !== 0n) return 'which booty does not deploy: its clusters live in that other file';
  return undefined;
}

function qcowAdvice(h: Buffer): string {
  if (h.length >= 36 && h.readUInt32BE(32) !== 0 && h.readBigUInt64BE(8) === 0n) {
    return `decrypt it on the server (qemu-img convert --object secret,id=s,file=KEYFILE --image-opts driver=qcow2,file.filename=IMAGE.qcow2,encrypt.key-secret=s -O qcow2 PLAIN.qcow2) and serve that, ${SERVE}`;
  }
  const backing = h.length >= 16 && h.readBigUInt64BE(8) !== 0n && h.length >= 8 && h.readUInt32BE(4) >= 2;
  return backing
    ? `convert it on the server with its backing chain present (qemu-img convert -O raw IMAGE.qcow2 IMAGE.raw reads the chain into one raw image), ${SERVE}`
    : qemuImg('-f qcow2 IMAGE.qcow2');
}

function matchVmdk(h: Buffer): string | undefined {
  if (at(h, 0, 'KDMV')) {
    const flags = h.length >= 12 ? h.readUInt32LE(8) : 0;
    return (flags & 0x10000) !== 0 ? 'a VMDK disk image (stream-optimized, compressed grains)' : 'a VMDK disk image (sparse extent)';
  }
  if (at(h, 0, 'COWD')) return 'a VMDK disk image (ESX COWD sparse extent)';
  if (at(h, 0, '# Disk DescriptorFile')) return 'a VMDK descriptor file (text; the disk data lives in the extent files it names)';
  return undefined;
}

/** ustar/GNU/PAX archives carry "ustar" at 257; v7 archives only a valid header checksum. */
function matchTar(h: Buffer): string | undefined {
  if (h.length < 512) return undefined;
  if (at(h, 257, 'ustar\x0000')) return 'a tar archive (POSIX ustar/pax)';
  if (at(h, 257, 'ustar  \x00')) return 'a tar archive (GNU)';
  const field = h.subarray(148, 156).toString('latin1').replace(/[\0 ]+$/, '').trim();
  if (!/^[0-7]{1,7}$/.test(field) || h[0] === 0) return undefined;
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i];
  return sum === parseInt(field, 8) ? 'a tar archive (v7)' : undefined;
}

function matchCpio(h: Buffer): string | undefined {
  if (at(h, 0, '070701') || at(h, 0, '070702')) return 'a cpio archive (newc format, e.g. an initramfs)';
  if (at(h, 0, '070707')) return 'a cpio archive (odc format)';
  if (isBinaryCpio(h)) return 'a cpio archive (binary format)';
  return undefined;
}

/** Binary cpio's magic is two bytes: the header's file type and NUL-terminated name must agree. */
function isBinaryCpio(h: Buffer): boolean {
  if (h.length < 28) return false;
  const le = at(h, 0, [0xc7, 0x71]);
  if (!le && !at(h, 0, [0x71, 0xc7])) return false;
  const u16 = (o: number) => (le ? h.readUInt16LE(o) : h.readUInt16BE(o));
  const type = u16(6) & 0xf000;
  const nameSize = u16(20);
  if (![0x8000, 0x4000, 0xa000, 0x2000, 0x6000, 0x1000, 0xc000].includes(type) || nameSize < 1 || 26 + nameSize > h.length) return false;
  return h[26 + nameSize - 1] === 0 && !h.subarray(26, 26 + nameSize - 1).includes(0);
}

/** .Z: two magic bytes, then flags: 9-16 bits per code, the two reserved bits clear. */
function isCompressZ(h: Buffer): boolean {
  if (h.length < 3 || !at(h, 0, [0x1f, 0x9d])) return false;
  const bits = h[2] & 0x1f;
  return (h[2] & 0x60) === 0 && bits >= 9 && bits <= 16;
}

/** ISO 9660 (or UDF) volume descriptors start at 32 KiB; a hybrid image also has an MBR or GPT. */
function matchIso(h: Buffer): string | undefined {
  const iso = at(h, 0x8001, 'CD001') && h[0x8006] === 1;
  const udf = at(h, 0x8001, 'BEA01');
  if (!iso && !udf) return undefined;
  return `${iso ? 'an ISO 9660' : 'a UDF'} image (an installer or live medium)${isHybrid(h) ? ', hybrid: it also carries a partition table' : ''}`;
}

function isHybrid(h: Buffer): boolean {
  return (h.length >= 512 && h[510] === 0x55 && h[511] === 0xaa) || at(h, 512, 'EFI PART');
}

function isoAdvice(h: Buffer): string {
  return isHybrid(h)
    ? 'to write it as a bootable disk as-is (the way a USB stick is made), deploy with --format raw (action "format": "raw"); to install an OS, deploy the disk image the installer produces'
    : `booty writes whole-disk images: deploy the disk image an installer produces, ${SERVE}`;
}

/** Why booty stops: the clause after "the image is <what>, ". */
export function refusalReason(u: UnsupportedFormat): string {
  if (u.reason !== undefined) return u.reason;
  switch (u.kind) {
    case 'compressed':
    case 'disk-image': return 'which booty does not decode yet';
    case 'archive': return 'which booty does not deploy onto a disk';
    case 'filesystem': return 'which is not a whole-disk image booty writes as it is';
  }
}
