// Bad images and bad disks, on real loop devices through the real CLI: each fails with the right
// stage, message and exit code, and leaves the disk in the state it reports (untouched, or with
// its first MiB zeroed so that it cannot boot a half-written or unverified image). Run as root.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { startBootyServer, type BootyServerProcess } from '../helpers/booty-server-process.ts';
import { makeExt4DiskImage, fillWithGarbage, sameBytes, isZeroRange } from '../helpers/ext4-disk-image.ts';
import { attachLoop, detachAllLoops, detachLoop } from '../helpers/loop-device.ts';
import { runBooty } from '../helpers/booty-cli.ts';

const root = path.resolve(import.meta.dirname, '..', '..');
const MiB = 1 << 20;
const skip = process.getuid?.() !== 0 ? 'needs root (loop devices)' : false;

function booty(args: string[]) {
  const r = spawnSync(path.join(root, 'bin/booty'), args, { encoding: 'utf8', timeout: 300_000 });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

const bootyAsync = runBooty;

let dir: string;
let server: BootyServerProcess;
let disk: string;        // a 160 MiB loop device
let small: string;       // a 64 MiB loop device
let image: string;       // the raw 128 MiB source image
let gz: Buffer;
let firstMiB: Buffer;    // what the disk's first MiB holds before each test

function put(name: string, data: Buffer | string): string {
  const file = path.join(server.dataDir, 'images', name);
  if (typeof data === 'string') fs.copyFileSync(data, file); else fs.writeFileSync(file, data);
  return `${server.url}/images/${name}`;
}

function readHead(dev: string): Buffer {
  const fd = fs.openSync(dev, 'r');
  try { const b = Buffer.alloc(MiB); fs.readSync(fd, b, 0, MiB, 0); return b; } finally { fs.closeSync(fd); }
}

function dirty(dev: string, size: number): void {
  fillWithGarbage(dev, size);
  firstMiB = readHead(dev);
}

before(async () => {
  if (skip) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-deploy-fail-'));
  image = path.join(dir, 'source.img');
  makeExt4DiskImage(image, { sizeMiB: 128 });
  gz = zlib.gzipSync(fs.readFileSync(image), { level: 1 });
  for (const [name, size] of [['disk.img', 160], ['small.img', 64]] as const) execFileSync('truncate', ['-s', `${size}M`, path.join(dir, name)]);
  disk = attachLoop(path.join(dir, 'disk.img'));
  small = attachLoop(path.join(dir, 'small.img'));
  server = await startBootyServer();
  fs.mkdirSync(path.join(server.dataDir, 'images'), { recursive: true });
});

after(async () => {
  detachAllLoops();
  await server?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('a bit-flipped gzip image fails in decompress (5); disk not bootable', { skip }, () => {
  const bad = Buffer.from(gz);
  bad[Math.floor(bad.length / 2)] ^= 0x04;
  dirty(disk, 160 * MiB);
  const r = booty(['deploy', '-q', '--image', put('flipped.img.gz', bad), '--disk', disk]);
  assert.equal(r.status, 5, r.err);
  assert.match(r.err, /booty: decompress: the gzip data is corrupt .*at byte \d+; disk left partially written and NOT bootable/);
  assert.ok(isZeroRange(disk, 0, MiB), 'boot sector and partition table never written');
});

test('a truncated gzip image fails in decompress (5) naming the truncation', { skip }, () => {
  dirty(disk, 160 * MiB);
  const r = booty(['deploy', '-q', '--image', put('truncated.img.gz', gz.subarray(0, Math.floor(gz.length * 0.7))), '--disk', disk]);
  assert.equal(r.status, 5, r.err);
  assert.match(r.err, /decompress: the gzip stream ends early: the image is truncated/);
  assert.ok(isZeroRange(disk, 0, MiB));
});

test('a wrong checksum fails in verify (6) after writing; the disk cannot boot it', { skip }, () => {
  dirty(disk, 160 * MiB);
  const wrong = createHash('sha256').update('not the image').digest('hex');
  const r = booty(['deploy', '-q', '--image', put('good.img.gz', gz), '--disk', disk, '--sha256', wrong]);
  assert.equal(r.status, 6, r.err);
  assert.match(r.err, new RegExp(`verify: image checksum mismatch \\(expected ${wrong.slice(0, 12)}…, got [0-9a-f]{12}…`));
  assert.match(r.err, /at byte 134217728; image written but NOT verified: disk NOT bootable/);
  assert.ok(isZeroRange(disk, 0, MiB), 'first MiB zero');
  // everything after the first MiB was written: the held-back head is the only difference
  const fd = fs.openSync(disk, 'r');
  const a = Buffer.alloc(4 * MiB);
  fs.readSync(fd, a, 0, a.length, 64 * MiB);
  fs.closeSync(fd);
  const b = Buffer.alloc(4 * MiB);
  const fi = fs.openSync(image, 'r');
  fs.readSync(fi, b, 0, b.length, 64 * MiB);
  fs.closeSync(fi);
  assert.ok(a.equals(b));
  // and with the right checksum the same image deploys
  const ok = booty(['deploy', '-q', '--image', `${server.url}/images/good.img.gz`, '--disk', disk, '--sha256', createHash('sha256').update(gz).digest('hex')]);
  assert.equal(ok.status, 0, ok.err);
  assert.ok(sameBytes(image, disk, 128 * MiB));
});

test('too large, size known (raw Content-Length): refused in preflight (3), disk untouched', { skip }, () => {
  dirty(small, 64 * MiB);
  const r = booty(['deploy', '-q', '--image', put('big.img', image), '--disk', small]);
  assert.equal(r.status, 3, r.err);
  assert.match(r.err, /preflight: the image is 134217728 bytes \(.*\) but .* holds only 67108864 bytes.*the disk was not written/);
  assert.ok(readHead(small).equals(firstMiB), 'untouched');
});

test('too large, size unknown (gzip): stops at the end of the disk (7), never truncates silently', { skip }, () => {
  dirty(small, 64 * MiB);
  const r = booty(['deploy', '-q', '--image', put('big.img.gz', gz), '--disk', small]);
  assert.equal(r.status, 7, r.err);
  assert.match(r.err, /write: the image is larger than the disk \(67108864 bytes\)/);
  assert.ok(isZeroRange(small, 0, MiB));
});

test('garbage after the gzip data fails (5); so do zero bytes appended', { skip }, () => {
  const r1 = booty(['deploy', '-q', '--image', put('garbage.img.gz', Buffer.concat([gz, Buffer.from('this is not gzip')])), '--disk', disk]);
  assert.equal(r1.status, 5, r1.err);
  assert.match(r1.err, /garbage/);
  const r2 = booty(['deploy', '-q', '--image', put('padded.img.gz', Buffer.concat([gz, Buffer.alloc(1000)])), '--disk', disk]);
  assert.equal(r2.status, 5, r2.err);
  assert.match(r2.err, /1000 bytes after the end of the gzip data/);
});

test('an HTML error page served with 200 is not written as a raw image (4)', { skip }, async () => {
  const page = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!DOCTYPE html><html><body><h1>Bad Gateway</h1></body></html>');
  });
  await new Promise<void>((ok) => page.listen(0, '127.0.0.1', ok));
  try {
    dirty(disk, 160 * MiB);
    const port = (page.address() as { port: number }).port;
    const r = await bootyAsync(['deploy', '-q', '--image', `http://127.0.0.1:${port}/ubuntu.img`, '--disk', disk]);
    assert.equal(r.status, 4, r.err);
    assert.match(r.err, /fetch: the server sent a web page, not a disk image/);
    assert.ok(readHead(disk).equals(firstMiB), 'untouched');
  } finally { page.close(); }
});

test('a 404 fails in fetch (4) with the server reason; disk untouched', { skip }, () => {
  dirty(disk, 160 * MiB);
  const r = booty(['deploy', '-q', '--image', `${server.url}/images/nope.img`, '--disk', disk]);
  assert.equal(r.status, 4, r.err);
  assert.match(r.err, /fetch: server answered 404/);
  assert.ok(readHead(disk).equals(firstMiB));
});

test('a mounted disk is refused before any byte is written (3)', { skip }, () => {
  execFileSync('mkfs.ext4', ['-q', '-F', small], { stdio: 'ignore' });
  const mnt = fs.mkdtempSync(path.join(dir, 'mnt-'));
  // read-only: a read-write ext4 is written by the kernel itself while mounted (lazy inode-table
  // init, superblock commits), which made the before/after compare below flaky (seen once in CI);
  // booty refuses a mounted disk either way
  execFileSync('mount', ['-o', 'ro', small, mnt]);
  try {
    const before = readHead(small);
    const r = booty(['deploy', '-q', '--image', `${server.url}/images/good.img.gz`, '--disk', small]);
    assert.equal(r.status, 3, r.err);
    assert.match(r.err, new RegExp(`preflight: ${small} is mounted on ${mnt}; at byte 0; the disk was not written; unmount it first`));
    assert.ok(readHead(small).equals(before));
  } finally { execFileSync('umount', [mnt]); fs.rmdirSync(mnt); }
});

test('a partition is refused as the target unless forced (3)', { skip }, () => {
  const f = path.join(dir, 'parted.img');
  fs.copyFileSync(image, f);
  const dev = attachLoop(f);
  try {
    execFileSync('partx', ['-a', dev]);
    const r = booty(['deploy', '-q', '--image', `${server.url}/images/good.img.gz`, '--disk', `${dev}p2`]);
    assert.equal(r.status, 3, r.err);
    assert.match(r.err, new RegExp(`preflight: ${dev}p2 is a partition of ${dev}, not a whole disk`));
  } finally { detachLoop(dev); }
});

test('bad arguments are config errors (2)', { skip }, () => {
  assert.equal(booty(['deploy', '--disk', disk]).status, 2);
  const r = booty(['deploy', '--image', 'x', '--disk', disk, '--sha256', 'abc']);
  assert.equal(r.status, 2);
  assert.match(r.err, /--sha256 must be 64 hex digits/);
});
