// Bad input, table-driven, through the real CLI onto real loop devices (root): bit flips and
// truncations at the header, the middle and the trailer of gzip and zstd images, wrong checksums
// (the operator's and the one the server recorded at upload), the wrong format, garbage after
// the data, decompression bombs, empty files and error pages served with 200. Each must exit
// with its stage's status and a message naming what is wrong, print no success, report a failed
// result to the server (--report), and leave the disk either untouched (when the problem shows
// before the first write) or unbootable: first and last MiB zero, so the firmware skips it.
// qcow2 rows: an image made by qemu-img, damaged in its header, L1, L2, a compressed cluster, a
// data cluster, and truncated (deploy-qcow2.test.ts has the rest of qcow2's refusals).
// (deploy-failures.test.ts has the gzip middle bit flip, the gzip middle truncation, a wrong
// --sha256 on gzip, gzip trailing garbage, a text/html page and a 404; they are not repeated.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { startBootyServer, type BootyServerProcess } from '../helpers/booty-server-process.ts';
import { fillWithGarbage, isZeroRange } from '../helpers/ext4-disk-image.ts';
import { attachLoop, detachAllLoops } from '../helpers/loop-device.ts';
import { seededRandom } from '../helpers/seeded-random.ts';
import { runBooty } from '../helpers/booty-cli.ts';

const root = path.resolve(import.meta.dirname, '..', '..');
const MiB = 1 << 20;
const skip = process.getuid?.() !== 0 ? 'needs root (loop devices)' : false;

let dir: string;
let server: BootyServerProcess;
let pages: http.Server;
let pagesUrl: string;
let disk: string;   // 16 MiB
let small: string;  // 8 MiB
let img: Buffer;    // 12 MiB, starts with an MBR signature: "bootable"
let gz: Buffer;
let zst: Buffer;
let qc: Buffer;     // img as `qemu-img convert -c -O qcow2` writes it
/** where qc keeps things: its L1 table, its first L2 table, a data cluster's and a compressed
 *  cluster's L2 entries (offsets in the file) and where that compressed cluster's bytes are */
let q: { l1: number; l2: number; dataEntry: number; compressedEntry: number; compressedAt: number };

function flip(b: Buffer, at: number, bit: number): Buffer {
  const c = Buffer.from(b);
  c[at] ^= bit;
  return c;
}

before(async () => {
  if (skip) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-bad-input-'));
  const rand = seededRandom(5);
  img = Buffer.alloc(12 * MiB);
  for (let i = 0; i < 4 * MiB; i++) img[i] = Math.floor(rand() * 256);
  img.write('booty bad input test image\n'.repeat(100_000), 6 * MiB, 'latin1');
  img[510] = 0x55;
  img[511] = 0xaa;
  gz = zlib.gzipSync(img, { level: 1 });
  zst = zlib.zstdCompressSync(img, { params: { [zlib.constants.ZSTD_c_checksumFlag]: 1 } });
  fs.writeFileSync(path.join(dir, 'q.raw'), img);
  execFileSync('qemu-img', ['convert', '-c', '-O', 'qcow2', path.join(dir, 'q.raw'), path.join(dir, 'q.qcow2')]);
  qc = fs.readFileSync(path.join(dir, 'q.qcow2'));
  const l1 = Number(qc.readBigUInt64BE(40));
  const l2 = Number(qc.readBigUInt64BE(l1) & 0x00fffffffffffe00n);
  let dataEntry = 0;
  let compressedEntry = 0;
  for (let j = 0; j < 8192 && (dataEntry === 0 || compressedEntry === 0); j++) {
    const e = qc.readBigUInt64BE(l2 + j * 8);
    if (e === 0n) continue;
    if ((e & (1n << 62n)) !== 0n) { if (compressedEntry === 0 && j * 65536 >= 6 * MiB) compressedEntry = l2 + j * 8; } else if (dataEntry === 0) dataEntry = l2 + j * 8;
  }
  q = { l1, l2, dataEntry, compressedEntry, compressedAt: Number(qc.readBigUInt64BE(compressedEntry) & ((1n << 54n) - 1n)) };
  for (const [name, size] of [['disk.img', 16], ['small.img', 8]] as const) execFileSync('truncate', ['-s', `${size}M`, path.join(dir, name)]);
  disk = attachLoop(path.join(dir, 'disk.img'));
  small = attachLoop(path.join(dir, 'small.img'));
  server = await startBootyServer();
  fs.mkdirSync(path.join(server.dataDir, 'images'), { recursive: true });
  // error answers with status 200, as captive portals and misconfigured proxies send them
  pages = http.createServer((req, res) => {
    if (req.url === '/error.json') res.writeHead(200, { 'content-type': 'application/json' }).end(`{"error":"image not found","code":404,"detail":"${'x'.repeat(600)}"}`);
    else res.writeHead(200, { 'content-type': 'application/octet-stream' }).end('<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>\n');
  });
  await new Promise<void>((ok) => pages.listen(0, '127.0.0.1', ok));
  pagesUrl = `http://127.0.0.1:${(pages.address() as net.AddressInfo).port}`;
});

after(async () => {
  detachAllLoops();
  await server?.close();
  pages?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function put(name: string, data: Buffer): string {
  fs.writeFileSync(path.join(server.dataDir, 'images', name), data);
  return `${server.url}/images/${name}`;
}

/** A decompression bomb: `members` gzip members (or zstd frames) of `each` zeros, a few kB apiece. */
function bomb(format: 'gzip' | 'zstd' | 'zstd-unsized', each: number, members: number): Buffer {
  // 'zstd-unsized': frames without Frame_Content_Size (as a streaming compressor writes them), so
  // neither the server nor the frame header can tell the size: only the write guard stops it.
  const one = format === 'gzip' ? zlib.gzipSync(Buffer.alloc(each), { level: 9 })
    : zlib.zstdCompressSync(Buffer.alloc(each), format === 'zstd' ? {} : { params: { [zlib.constants.ZSTD_c_contentSizeFlag]: 0 } });
  return Buffer.concat(Array.from({ length: members }, () => one));
}

function readAt(dev: string, offset: number, length: number): Buffer {
  const fd = fs.openSync(dev, 'r');
  try { const b = Buffer.alloc(length); fs.readSync(fd, b, 0, length, offset); return b; } finally { fs.closeSync(fd); }
}

const booty = runBooty;

interface Case {
  name: string;
  /** the image URL (after storing whatever it serves) */
  url: () => string | Promise<string>;
  /** a function when it depends on data made in before() */
  args?: string[] | (() => string[]);
  target?: 'disk' | 'small';
  exit: number;
  code: string;
  /** a function when it depends on data made in before() */
  message: RegExp | (() => RegExp);
  /** untouched: not a byte written; unbootable: first and last MiB zeroed, image head never written;
   *  either: a decode error in this 12 MiB image (three 4 MiB blocks) may come before or after
   *  the first write (decoding runs ahead of the writes on its own thread): the report must say
   *  which, and the disk must match it (deploy-failures.test.ts has decode errors deep into a
   *  128 MiB image, always after writes began) */
  disk: 'untouched' | 'unbootable' | 'either';
  /** what the disk's last MiB holds after the failure, when the image itself reached it (else zeros) */
  lastMiB?: () => Buffer;
}

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

const cases: Case[] = [
  { name: 'gzip: bit flip in the header (reserved flag)', url: () => put('g-hdr-flip.gz', flip(gz, 3, 0x20)), exit: 5, code: 'IMAGE_CORRUPT',
    message: /decompress: the gzip data is corrupt \(unknown header flags set\)/, disk: 'untouched' },
  { name: 'gzip: bit flip in the trailer (CRC-32)', url: () => put('g-crc-flip.gz', flip(gz, gz.length - 6, 0x01)), exit: 5, code: 'IMAGE_CORRUPT',
    message: /decompress: the gzip data is corrupt \(its CRC-32 does not match: incorrect data check\)/, disk: 'either' },
  { name: 'gzip: bit flip in the trailer (length)', url: () => put('g-isize-flip.gz', flip(gz, gz.length - 2, 0x01)), exit: 5, code: 'IMAGE_CORRUPT',
    message: /decompress: the gzip data is corrupt \(incorrect length check\)/, disk: 'either' },
  { name: 'gzip: truncated in the header', url: () => put('g-hdr-trunc.gz', gz.subarray(0, 8)), exit: 5, code: 'IMAGE_TRUNCATED',
    message: /decompress: the gzip stream ends early: the image is truncated/, disk: 'untouched' },
  { name: 'gzip: truncated in the trailer', url: () => put('g-tail-trunc.gz', gz.subarray(0, gz.length - 3)), exit: 5, code: 'IMAGE_TRUNCATED',
    message: /decompress: the gzip stream ends early: the image is truncated/, disk: 'either' },
  { name: 'zstd: bit flip in the frame header', url: () => put('z-hdr-flip.zst', flip(zst, 4, 0x08)), exit: 5, code: 'IMAGE_CORRUPT',
    message: /decompress: the zstd data is corrupt/, disk: 'untouched' },
  { name: 'zstd: bit flip in the middle', url: () => put('z-mid-flip.zst', flip(zst, zst.length >> 1, 0x10)), exit: 5, code: 'IMAGE_CORRUPT',
    message: /decompress: the zstd data is corrupt/, disk: 'either' },
  { name: 'zstd: bit flip in the trailer (content checksum)', url: () => put('z-sum-flip.zst', flip(zst, zst.length - 1, 0x01)), exit: 5, code: 'IMAGE_CORRUPT',
    message: /decompress: the zstd data is corrupt \(its checksum does not match/, disk: 'either' },
  { name: 'zstd: truncated inside the magic', url: () => put('z-magic-trunc.zst', zst.subarray(0, 3)), exit: 6, code: 'IMAGE_TOO_SMALL',
    message: /verify: the image is only 3 bytes and has no gzip\/zstd magic: too small to be a disk image/, disk: 'untouched' },
  { name: 'zstd: truncated in the frame header', url: () => put('z-hdr-trunc.zst', zst.subarray(0, 6)), exit: 5, code: 'IMAGE_TRUNCATED',
    message: /decompress: the zstd stream ends early: the image is truncated/, disk: 'untouched' },
  { name: 'zstd: truncated in the middle', url: () => put('z-mid-trunc.zst', zst.subarray(0, zst.length >> 1)), exit: 5, code: 'IMAGE_TRUNCATED',
    message: /decompress: the zstd stream ends early/, disk: 'either' },
  { name: 'zstd: truncated in the trailer', url: () => put('z-tail-trunc.zst', zst.subarray(0, zst.length - 2)), exit: 5, code: 'IMAGE_TRUNCATED',
    message: /decompress: the zstd stream ends early/, disk: 'either' },
  { name: 'zstd: wrong --sha256', url: () => put('z-ok.zst', zst), args: ['--sha256', sha('another image')], exit: 6, code: 'CHECKSUM_MISMATCH',
    message: () => new RegExp(`verify: image checksum mismatch \\(expected ${sha('another image').slice(0, 12)}…, got ${sha(zst).slice(0, 12)}…`), disk: 'unbootable' },
  { name: "raw: bit rot on the server after upload (the server's X-Image-Sha256)", url: async () => {
    const res = await fetch(`${server.url}/images/rot.img`, { method: 'PUT', body: img, headers: { 'x-booty-sha256': sha(img) } });
    assert.equal(res.status, 201, await res.text());
    const fd = fs.openSync(path.join(server.dataDir, 'images', 'rot.img'), 'r+');
    fs.writeSync(fd, Buffer.from([img[5 * MiB] ^ 0x40]), 0, 1, 5 * MiB);
    fs.closeSync(fd);
    return `${server.url}/images/rot.img`;
  }, exit: 6, code: 'CHECKSUM_MISMATCH', message: /verify: image checksum mismatch \(server's X-Image-Sha256 [0-9a-f]{12}…/, disk: 'unbootable' },
  { name: 'wrong format: --format gzip on a zstd image', url: () => put('z-fmt.zst', zst), args: ['--format', 'gzip'], exit: 5, code: 'FORMAT_MISMATCH',
    message: /decompress: --format gzip was given but the image is zstd/, disk: 'untouched' },
  { name: 'wrong format: --format zstd on a raw image', url: () => put('r-fmt.img', img), args: ['--format', 'zstd'], exit: 5, code: 'FORMAT_MISMATCH',
    message: /decompress: --format zstd was given but the image has no zstd magic/, disk: 'untouched' },
  { name: 'zstd: garbage concatenated after the frame', url: () => put('z-garbage.zst', Buffer.concat([zst, Buffer.from('GARBAGE: not a zstd frame\n')])), exit: 5,
    code: 'IMAGE_TRAILING_GARBAGE', message: /decompress: 26 bytes after the end of the zstd data/, disk: 'unbootable' },
  { name: 'gzip: a second image concatenated (another gzip member) makes it larger than the disk', url: () => put('g-twice.gz', Buffer.concat([gz, gz])), target: 'small',
    exit: 7, code: 'IMAGE_LARGER_THAN_DISK', message: /write: the image is larger than the disk \(8388608 bytes\)/, disk: 'unbootable',
    // the image's own bytes 7-8 MiB legitimately reached the end of the disk (not an old GPT)
    lastMiB: () => img.subarray(7 * MiB, 8 * MiB) },
  { name: 'zip bomb: 4 GiB of zeros in a tiny gzip onto an 8 MiB disk', url: () => put('bomb.gz', bomb('gzip', 16 * MiB, 256)), target: 'small',
    exit: 7, code: 'IMAGE_LARGER_THAN_DISK', message: /write: the image is larger than the disk \(8388608 bytes\): stopped before writing past its end/, disk: 'unbootable' },
  { name: 'zstd bomb: 4 GiB of zeros in 4 MiB frames that declare their sizes onto an 8 MiB disk (refused before writing)', url: () => put('bomb.zst', bomb('zstd', 4 * MiB, 1024)), target: 'small',
    exit: 3, code: 'DISK_TOO_SMALL', message: /preflight: the image is 4294967296 bytes \(the server's X-Image-Size\) but \S+ holds only 8388608 bytes/, disk: 'untouched' },
  { name: 'zstd bomb: 4 GiB of zeros in 4 MiB frames without content sizes onto an 8 MiB disk', url: () => put('bomb-unsized.zst', bomb('zstd-unsized', 4 * MiB, 1024)), target: 'small',
    exit: 7, code: 'IMAGE_LARGER_THAN_DISK', message: /write: the image is larger than the disk \(8388608 bytes\)/, disk: 'unbootable' },
  { name: 'qcow2: bit flip in the header (cluster_bits)', url: () => put('q-hdr-flip.qcow2', flip(qc, 23, 0x20)), exit: 5, code: 'QCOW2_BAD_HEADER',
    message: /decompress: the qcow2 header is damaged: cluster_bits 48/, disk: 'untouched' },
  { name: 'qcow2: bit flip in the L1 table (an L2 table past the end)', url: () => put('q-l1-flip.qcow2', flip(qc, q.l1 + 2, 0x10)), exit: 5, code: 'QCOW2_BAD_L1',
    message: /decompress: the qcow2's tables are damaged: L1 entry 0 .*past the end of the file/, disk: 'untouched' },
  { name: 'qcow2: bit flip in an L2 entry (a data cluster off its boundary)', url: () => put('q-l2-flip.qcow2', flip(qc, q.dataEntry + 6, 0x02)), exit: 5, code: 'QCOW2_BAD_L2',
    message: /decompress: the qcow2's tables are damaged: L2 entry \d+ of the table at byte \d+ .*not a cluster boundary/, disk: 'untouched' },
  { name: 'qcow2: bit flip in a compressed cluster', url: () => put('q-c-flip.qcow2', flip(qc, q.compressedAt + 20, 0x40)), exit: 5, code: 'QCOW2_BAD_CLUSTER',
    message: () => new RegExp(`decompress: the compressed cluster at byte ${q.compressedAt} \\(guest byte \\d+\\) is damaged: deflate`), disk: 'either' },
  { name: 'qcow2: bit flip in a data cluster (only the checksum tells)', url: () => put('q-data-flip.qcow2', flip(qc, Number(qc.readBigUInt64BE(q.dataEntry) & 0x00fffffffffffe00n) + 100, 0x01)),
    args: () => ['--sha256', sha(qc)], exit: 6, code: 'CHECKSUM_MISMATCH', message: /verify: image checksum mismatch \(expected/, disk: 'unbootable' },
  { name: 'qcow2: truncated in the middle (clusters mapped past the end)', url: () => put('q-trunc.qcow2', qc.subarray(0, qc.length >> 1)), exit: 5, code: 'QCOW2_BAD_L2',
    message: /decompress: the qcow2's tables are damaged: .*past the end of the file/, disk: 'untouched' },
  { name: 'qcow2: truncated in the header', url: () => put('q-hdr-trunc.qcow2', qc.subarray(0, 40)), exit: 5, code: 'QCOW2_BAD_HEADER',
    message: /decompress: the qcow2 header is damaged: the file is only 40 bytes long/, disk: 'untouched' },
  { name: 'an empty file', url: () => put('empty.img', Buffer.alloc(0)), exit: 4, code: 'IMAGE_EMPTY',
    message: /fetch: the image is empty \(0 bytes served\)/, disk: 'untouched' },
  { name: 'a gzip file of nothing', url: () => put('empty.gz', zlib.gzipSync(Buffer.alloc(0))), exit: 6, code: 'IMAGE_EMPTY',
    message: /verify: the image decompresses to 0 bytes/, disk: 'untouched' },
  { name: 'an HTML error page stored as the image (octet-stream)', url: () => `${pagesUrl}/ubuntu.img`, exit: 4, code: 'IMAGE_NOT_AN_IMAGE',
    message: /fetch: the server sent a web page, not a disk image \(it begins "<!DOCTYPE html>.<html><head><title>502/, disk: 'untouched' },
  { name: 'a JSON error served with 200', url: () => `${pagesUrl}/error.json`, exit: 4, code: 'IMAGE_NOT_AN_IMAGE',
    message: /fetch: the server labels the response application\/json and it has no gzip\/zstd magic: probably an error page/, disk: 'untouched' },
  { name: 'an HTML error page with --format gzip', url: () => `${pagesUrl}/ubuntu.img.gz`, args: ['--format', 'gzip'], exit: 5, code: 'FORMAT_MISMATCH',
    message: /decompress: --format gzip was given but the image has no gzip magic/, disk: 'untouched' },
];

cases.forEach((c, i) => {
  test(`bad input: ${c.name} -> exit ${c.exit} ${c.code}, disk ${c.disk}`, { skip }, async () => {
    const dev = c.target === 'small' ? small : disk;
    const size = c.target === 'small' ? 8 * MiB : 16 * MiB;
    fillWithGarbage(dev, size);
    // an old, bootable OS on the disk: what "untouched" must preserve
    const oldHead = readAt(dev, 0, MiB);
    oldHead[510] = 0x55;
    oldHead[511] = 0xaa;
    fs.writeFileSync(dev, oldHead, { flag: 'r+' });
    const mac = `02:00:00:00:0b:${i.toString(16).padStart(2, '0')}`;
    const r = await booty(['deploy', '-q', '--image', await c.url(), '--disk', dev, '--report', server.url, '--mac', mac, ...(typeof c.args === 'function' ? c.args() : c.args ?? [])]);

    assert.equal(r.status, c.exit, r.err);
    assert.doesNotMatch(r.out, /OK/, 'no success printed');
    assert.match(r.err, typeof c.message === 'function' ? c.message() : c.message);
    const state = c.disk !== 'either' ? c.disk : /the disk was not written/.test(r.err) ? 'untouched' : 'unbootable';
    if (state === 'untouched') {
      assert.match(r.err, /the disk was not written/);
      assert.ok(readAt(dev, 0, MiB).equals(oldHead), 'not a byte written');
    } else {
      assert.match(r.err, /NOT bootable/);
      assert.ok(isZeroRange(dev, 0, MiB), 'first MiB (MBR/GPT, boot loader) zero: the firmware will not boot it');
      if (c.lastMiB === undefined) assert.ok(isZeroRange(dev, size - MiB, MiB), 'last MiB (old backup GPT) zero');
      else assert.ok(readAt(dev, size - MiB, MiB).equals(c.lastMiB()), 'last MiB holds the image, not what was there');
    }
    // the server was told: a failed result with the code, never ok
    const m = await (await fetch(`${server.url}/api/machines/${mac.replaceAll(':', '-')}`)).json() as { result?: { ok: boolean; code?: string; diskState?: string } };
    assert.equal(m.result?.ok, false, JSON.stringify(m.result));
    assert.equal(m.result?.code, c.code);
  });
});
