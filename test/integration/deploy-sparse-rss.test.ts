// Constant memory: an 8 GiB, mostly-zero raw image, gzip-compressed (a real ext4 disk image at
// the front, random data in the middle, zeros elsewhere, as a multi-member gzip like pigz
// writes), deployed onto a sparse 8 GiB file that holds garbage at several places. Peak RSS of
// the booty process (GNU time's maximum resident set) must stay under 150 MiB, and the target
// must hold the image: the garbage zeroed, the data in place, the zeros as holes. The image is
// fetched over HTTP from the real booty server. The bound is asserted for what ships (the
// esbuild bundle that runs in the initramfs); the run from TypeScript sources, which also carries
// Node's type stripper (~25 MiB), is printed for comparison. Run as root (the ext4 image is built
// on a loop device).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { makeExt4DiskImage, isZeroRange } from '../helpers/ext4-disk-image.ts';
import { detachAllLoops } from '../helpers/loop-device.ts';
import { startBootyServer, waitForGzipIndex, type BootyServerProcess } from '../helpers/booty-server-process.ts';
import { skipUnlessPresent } from '../helpers/prerequisite.ts';

const root = path.resolve(import.meta.dirname, '..', '..');
const MiB = 1 << 20;
const GiB = 1 << 30;
const SIZE = 8 * GiB;
const BLOCK = 64 * MiB;
const RANDOM_AT = 4 * GiB;
const skip = process.getuid?.() !== 0 ? 'needs root (loop devices)' : skipUnlessPresent(fs.existsSync('/usr/bin/time'), 'needs /usr/bin/time (package time)');

let dir: string;
let ext4: Buffer;
let random: Buffer;
let server: BootyServerProcess;

before(async () => {
  if (skip) return;
  server = await startBootyServer();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-sparse-'));
  makeExt4DiskImage(path.join(dir, 'head.img'), { sizeMiB: 128 });
  ext4 = fs.readFileSync(path.join(dir, 'head.img'));
  random = randomBytes(MiB);
});

after(async () => {
  detachAllLoops();
  await server?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('8 GiB mostly-zero gzip image deploys with peak RSS < 150 MiB, bit-exact where it matters', { skip }, () => {
  // 128 members of 64 MiB: [ext4 image][zeros...][1 MiB random + zeros at 4 GiB][zeros...]
  const zeros = zlib.gzipSync(Buffer.alloc(BLOCK), { level: 1 });
  const withRandom = zlib.gzipSync(Buffer.concat([random, Buffer.alloc(BLOCK - MiB)]), { level: 1 });
  fs.mkdirSync(path.join(server.dataDir, 'images'), { recursive: true });
  const gzFile = path.join(server.dataDir, 'images', 'sparse8g.img.gz');
  const fd = fs.openSync(gzFile, 'w');
  fs.writeSync(fd, zlib.gzipSync(ext4, { level: 1 }));
  for (let off = ext4.length; off < SIZE; off += BLOCK) fs.writeSync(fd, off === RANDOM_AT ? withRandom : zeros);
  fs.closeSync(fd);
  const sha = createHash('sha256').update(fs.readFileSync(gzFile)).digest('hex');

  const target = path.join(dir, 'target.img');
  execFileSync('truncate', ['-s', String(SIZE), target]);
  const garbage = [2 * GiB + 12345 * 4096, 6 * GiB, SIZE - 2 * MiB, RANDOM_AT + 2 * MiB];
  const tfd = fs.openSync(target, 'r+');
  for (const at of garbage) fs.writeSync(tfd, randomBytes(MiB), 0, MiB, at);
  fs.closeSync(tfd);

  const deployWith = (cmd: string[], what: string): number => {
    const r = spawnSync('/usr/bin/time', ['-f', 'MAXRSS_KB %M', ...cmd, 'deploy', '-q',
      '--image', `${server.url}/images/sparse8g.img.gz`, '--disk', target, '--sha256', sha], { encoding: 'utf8', timeout: 600_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /OK: 8589934592 bytes/);
    const rssKiB = Number(/MAXRSS_KB (\d+)/.exec(r.stderr)![1]);
    const seconds = Number(/in ([\d.]+) s/.exec(r.stdout)![1]);
    process.stderr.write(`# 8 GiB sparse deploy (${what}): peak RSS ${(rssKiB / 1024).toFixed(1)} MiB, ${seconds} s, ${(SIZE / seconds / 1e6).toFixed(0)} MB/s; ${r.stderr.split('\n').find((l) => l.includes('zero runs')) ?? ''}\n`);
    return rssKiB;
  };
  // from sources first (informational), then the bundle, whose result the checks below read
  deployWith([path.join(root, 'bin/booty')], 'TypeScript sources');
  const tfd2 = fs.openSync(target, 'r+');
  for (const at of garbage) fs.writeSync(tfd2, randomBytes(MiB), 0, MiB, at);
  fs.closeSync(tfd2);
  const bundle = path.join(root, 'dist', `test-rss-${process.pid}.mjs`);
  execFileSync(process.execPath, [path.join(root, 'scripts/bundle.mjs'), bundle]);
  let rssKiB: number;
  try { rssKiB = deployWith([process.execPath, bundle], 'bundle'); } finally { fs.rmSync(bundle, { force: true }); }
  assert.ok(rssKiB < 150 * 1024, `peak RSS ${rssKiB} KiB`);

  assert.equal(fs.statSync(target).size, SIZE);
  const head = Buffer.alloc(ext4.length);
  const rfd = fs.openSync(target, 'r');
  fs.readSync(rfd, head, 0, head.length, 0);
  const mid = Buffer.alloc(MiB);
  fs.readSync(rfd, mid, 0, MiB, RANDOM_AT);
  fs.closeSync(rfd);
  assert.ok(head.equals(ext4), 'ext4 image at the front');
  assert.ok(mid.equals(random), 'random MiB at 4 GiB');
  for (const at of garbage) assert.ok(isZeroRange(target, at, MiB), `garbage at ${at} zeroed`);
  // zeros became holes: the file uses about what the data needs, not 8 GiB
  const usedBytes = fs.statSync(target).blocks * 512;
  assert.ok(usedBytes < 512 * MiB, `target uses ${usedBytes} bytes on disk`);
});

test('2 GiB mostly-zero pigz image with the server\'s gzip index: segments in parallel, peak RSS < 150 MiB', { skip }, async () => {
  const size = 2 * GiB;
  const raw = path.join(dir, 'pigz-source.img');
  const rfd0 = fs.openSync(raw, 'w');
  fs.writeSync(rfd0, ext4, 0, ext4.length, 0);
  fs.writeSync(rfd0, random, 0, random.length, GiB);
  fs.ftruncateSync(rfd0, size);
  fs.closeSync(rfd0);
  const gzFile = path.join(server.dataDir, 'images', 'sparse2g.img.gz');
  execFileSync('sh', ['-c', `pigz -1 -p 2 -c '${raw}' > '${gzFile}'`]);
  // the server indexes it in the background
  assert.equal(await waitForGzipIndex(server.url, 'sparse2g.img.gz'), 'ready');

  const target = path.join(dir, 'target2.img');
  execFileSync('truncate', ['-s', String(size), target]);
  const bundle = path.join(root, 'dist', `test-rss-index-${process.pid}.mjs`);
  execFileSync(process.execPath, [path.join(root, 'scripts/bundle.mjs'), bundle]);
  let r;
  try {
    r = spawnSync('/usr/bin/time', ['-f', 'MAXRSS_KB %M', process.execPath, bundle, 'deploy', '-q', '--workers', '2',
      '--image', `${server.url}/images/sparse2g.img.gz`, '--disk', target], { encoding: 'utf8', timeout: 600_000 });
  } finally { fs.rmSync(bundle, { force: true }); }
  assert.equal(r.status, 0, r.stderr);
  const rssKiB = Number(/MAXRSS_KB (\d+)/.exec(r.stderr)![1]);
  const line = r.stderr.split('\n').find((l) => l.includes('gzip segments')) ?? '';
  process.stderr.write(`# 2 GiB sparse pigz deploy with the gzip index (bundle): peak RSS ${(rssKiB / 1024).toFixed(1)} MiB; ${line}\n`);
  assert.match(line, /512 gzip segments \(\d+ all zeros/);
  assert.ok(rssKiB < 150 * 1024, `peak RSS ${rssKiB} KiB`);
  const head = Buffer.alloc(ext4.length);
  const mid = Buffer.alloc(MiB);
  const tfd = fs.openSync(target, 'r');
  fs.readSync(tfd, head, 0, head.length, 0);
  fs.readSync(tfd, mid, 0, MiB, GiB);
  fs.closeSync(tfd);
  assert.ok(head.equals(ext4), 'ext4 image at the front');
  assert.ok(mid.equals(random), 'random MiB at 1 GiB');
});
