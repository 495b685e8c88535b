// The bench images, each with its gzip -6 (pigz) and zstd -3 forms and their sha256:
//   sparse: an ext4 filesystem holding real files (a slice of this machine's /usr), the rest of
//           it zeros as fresh OS images are (about two thirds zero blocks);
//   dense:  the same filled to 80 % (under a quarter zero blocks), like a used system's disk;
//   debian: the Debian 12 test image the end-to-end tests deploy (scripts/build-test-image.sh).
// Made once per size and cached under .cache/bench/<size>[-dense]/, since building costs minutes.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, openSync, readSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { must, q } from './shell.ts';

export type Manifest = {
  version: 2;
  /** which image this is, for the block titles: 'sparse', 'dense', 'debian' (absent: sparse) */
  kind?: ImageKind;
  /** where its manifest.json (and the forms the bench makes) live, when not imageDir() */
  dir?: string;
  sizeBytes: number;
  fillPercent: number; // filesystem blocks in use, as df reports them
  zeroBlockPercent: number; // 4 KiB blocks of the raw image that are all zeros
  raw: { file: string; sha256: string };
  gzip: { file: string; bytes: number; sha256: string };
  zstd: { file: string; bytes: number; sha256: string };
  /** made on demand, for the xz and bzip2 rows: `xz -T2 -6` (24 MiB blocks), `lbzip2 -9` */
  xz?: { file: string; bytes: number; sha256: string };
  /** `qemu-img convert -c -O qcow2` (deflate clusters, as cloud images ship), for the qcow2 rows */
  qcow2?: { file: string; bytes: number; sha256: string };
  bzip2?: { file: string; bytes: number; sha256: string };
};

export type ImageKind = 'sparse' | 'dense' | 'debian';

// tar bytes per image byte; df then reports a little more in use (small files take whole blocks)
const FILL_FRACTION: Record<'sparse' | 'dense', number> = { sparse: 0.3, dense: 0.8 };

/** Parses sizes like 4G, 512M, 1073741824 (binary units). */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?$/i.exec(text.trim());
  if (m === null) throw new Error(`bench: cannot read size '${text}' (use e.g. 4G or 512M)`);
  const mult = { '': 1, K: 1 << 10, M: 1 << 20, G: 1 << 30, T: 2 ** 40 }[m[2]!.toUpperCase()] ?? 1;
  const bytes = Math.round(Number(m[1]) * mult);
  const unit = 4 << 20;
  if (bytes < 64 << 20 || bytes % unit !== 0) throw new Error(`bench: image size must be a multiple of 4 MiB and at least 64 MiB, got ${text}`);
  return bytes;
}

export function sizeLabel(bytes: number): string {
  return bytes % (1 << 30) === 0 ? `${bytes / (1 << 30)}G` : `${bytes / (1 << 20)}M`;
}

async function sha256(file: string): Promise<string> {
  return (await must(`sha256sum ${q(file)}`)).split(' ')[0]!;
}

function zeroBlockPercent(file: string, bytes: number): number {
  const fd = openSync(file, 'r');
  const buf = Buffer.alloc(4 << 20);
  const zero = Buffer.alloc(4096);
  let zeros = 0;
  try {
    for (let off = 0; off < bytes; off += buf.length) {
      const n = readSync(fd, buf, 0, buf.length, off);
      for (let i = 0; i + 4096 <= n; i += 4096) if (buf.compare(zero, 0, 4096, i, i + 4096) === 0) zeros++;
    }
  } finally {
    closeSync(fd);
  }
  return (100 * zeros * 4096) / bytes;
}

/**
 * Fills a fresh ext4 with the first files of /usr (in tar's walk order), 30% of its size. tar of
 * a truncated archive stops with an error on the last file, which is expected here: what was
 * extracted before is kept.
 */
async function fillFilesystem(raw: string, bytes: number, fraction: number, log: (s: string) => void): Promise<number> {
  await must(`mkfs.ext4 -q -F -L booty-bench ${q(raw)}`);
  const mnt = (await must('mktemp -d /tmp/booty-bench-mnt.XXXXXX')).trim();
  const dev = (await must(`losetup -f --show ${q(raw)}`)).trim();
  let mounted = false;
  try {
    await must(`mount ${q(dev)} ${q(mnt)}`);
    mounted = true;
    // 30% of the image size in tar bytes; df then reports a little more in use (small files
    // take whole blocks), and about two thirds of the image's blocks stay zero.
    const target = Math.floor(bytes * fraction);
    log(`bench: filling the image with ${Math.round(target / 2 ** 20)} MiB of files from /usr`);
    await must(`(tar -C / -cf - --numeric-owner usr 2>/dev/null || true) | head -c ${target} | (tar -C ${q(mnt)} -xf - 2>/dev/null || true)`);
    await must('sync');
    const used = (await must(`df --output=pcent ${q(mnt)} | tail -1`)).trim().replace('%', '');
    return Number(used);
  } finally {
    if (mounted) await must(`umount ${q(mnt)}`);
    await must(`losetup -d ${q(dev)}`);
    rmSync(mnt, { recursive: true, force: true });
  }
}

/** The image also as xz (xz -T2 -6: multi-block, as xz -T0 writes) or bzip2 (lbzip2 -9), once. */
export async function ensureCompressed(cacheDir: string, m: Manifest, kind: 'xz' | 'bzip2' | 'qcow2', log: (s: string) => void): Promise<Manifest> {
  if (m[kind] !== undefined && existsSync(m[kind].file)) return m;
  const ext = kind === 'xz' ? 'xz' : kind === 'qcow2' ? 'qcow2' : 'bz2';
  // the Debian image lives in the test image cache: its other forms go into the bench's own
  const file = m.dir !== undefined ? join(m.dir, `image.${ext}`) : `${m.raw.file}.${ext}`;
  log(`bench: compressing the image with ${kind === 'xz' ? 'xz -T2 -6' : kind === 'qcow2' ? 'qemu-img convert -c -O qcow2' : 'lbzip2 -9'} (once; cached)`);
  if (kind === 'qcow2') await must(`qemu-img convert -c -O qcow2 ${q(m.raw.file)} ${q(file)}.tmp && mv ${q(file)}.tmp ${q(file)}`);
  else await must(`${kind === 'xz' ? 'xz -T2 -6' : 'lbzip2 -9 -n 2'} -c ${q(m.raw.file)} > ${q(file)}.tmp && mv ${q(file)}.tmp ${q(file)}`);
  const next: Manifest = { ...m, [kind]: { file, bytes: Number((await must(`stat -c %s ${q(file)}`)).trim()), sha256: await sha256(file) } };
  writeFileSync(join(m.dir ?? imageDir(cacheDir, m.sizeBytes, m.kind ?? 'sparse'), 'manifest.json'), JSON.stringify(next, null, 2) + '\n');
  return next;
}

export function imageDir(cacheDir: string, bytes: number, kind: ImageKind): string {
  return join(cacheDir, kind === 'sparse' ? sizeLabel(bytes) : `${sizeLabel(bytes)}-${kind}`);
}

export async function ensureImage(cacheDir: string, bytes: number, log: (s: string) => void, kind: 'sparse' | 'dense' = 'sparse'): Promise<Manifest> {
  const dir = imageDir(cacheDir, bytes, kind);
  const manifestFile = join(dir, 'manifest.json');
  if (existsSync(manifestFile)) {
    const m = JSON.parse(readFileSync(manifestFile, 'utf8')) as Manifest;
    if (m.version === 2 && m.sizeBytes === bytes && [m.raw.file, m.gzip.file, m.zstd.file].every((f) => existsSync(f))) return m;
  }
  mkdirSync(dir, { recursive: true });
  const raw = join(dir, 'image.raw');
  const gz = `${raw}.gz`;
  const zst = `${raw}.zst`;
  const tmp = `${raw}.building`;
  rmSync(tmp, { force: true });
  log(`bench: building the ${sizeLabel(bytes)} ${kind} bench image in ${dir} (once; cached)`);
  await must(`truncate -s ${bytes} ${q(tmp)}`);
  const fillPercent = await fillFilesystem(tmp, bytes, FILL_FRACTION[kind], log);
  renameSync(tmp, raw);
  log('bench: compressing it with pigz -6 and zstd -3');
  await must(`pigz -6 -c ${q(raw)} > ${q(gz)}.tmp && mv ${q(gz)}.tmp ${q(gz)}`);
  await must(`zstd -3 -T0 -q -c ${q(raw)} > ${q(zst)}.tmp && mv ${q(zst)}.tmp ${q(zst)}`);
  const size = async (f: string) => Number((await must(`stat -c %s ${q(f)}`)).trim());
  const m: Manifest = {
    version: 2,
    kind,
    sizeBytes: bytes,
    fillPercent,
    zeroBlockPercent: zeroBlockPercent(raw, bytes),
    raw: { file: raw, sha256: await sha256(raw) },
    gzip: { file: gz, bytes: await size(gz), sha256: await sha256(gz) },
    zstd: { file: zst, bytes: await size(zst), sha256: await sha256(zst) },
  };
  writeFileSync(manifestFile, JSON.stringify(m, null, 2) + '\n');
  return m;
}

/**
 * The Debian test image of the end-to-end tests (its raw, .gz and .zst, built by
 * scripts/build-test-image.sh into $BOOTY_CACHE/test-images) as a bench image. Its zero-block
 * share (counted once) and any xz/bzip2 forms the bench makes are kept in cacheDir/debian-<sha>/.
 */
export async function debianImage(cacheDir: string, image: { raw: string; gz: string; zst: string; size: number; sha256: { raw: string; gz: string; zst: string }; bytes: { gz: number; zst: number } }): Promise<Manifest> {
  const dir = join(cacheDir, `debian-${image.sha256.raw.slice(0, 16)}`);
  const manifestFile = join(dir, 'manifest.json');
  if (existsSync(manifestFile)) {
    const m = JSON.parse(readFileSync(manifestFile, 'utf8')) as Manifest;
    if (m.raw.sha256 === image.sha256.raw && m.gzip.sha256 === image.sha256.gz && m.zstd.sha256 === image.sha256.zst) {
      if (m.xz !== undefined && !existsSync(m.xz.file)) delete m.xz;
      if (m.bzip2 !== undefined && !existsSync(m.bzip2.file)) delete m.bzip2;
      return m;
    }
  }
  mkdirSync(dir, { recursive: true });
  const m: Manifest = {
    version: 2,
    kind: 'debian',
    dir,
    sizeBytes: image.size,
    fillPercent: Number.NaN,
    zeroBlockPercent: zeroBlockPercent(image.raw, image.size),
    raw: { file: image.raw, sha256: image.sha256.raw },
    gzip: { file: image.gz, bytes: image.bytes.gz, sha256: image.sha256.gz },
    zstd: { file: image.zst, bytes: image.bytes.zst, sha256: image.sha256.zst },
  };
  writeFileSync(manifestFile, JSON.stringify(m, null, 2) + '\n');
  return m;
}
