// qcow2 images as operators download them, made by the real qemu-img in the test (plain, deflate
// and zstd compressed clusters, version 2, 4 KiB and 2 MiB clusters): deployed over HTTP onto loop
// devices that held random bytes, bit-exact against `qemu-img convert -O raw` (zero runs must
// really read zero); from an origin without Range support; through a fault proxy that cuts, resets
// and stalls (resumed below the cluster stream, each byte hashed once). Refused before the first
// write with the disk untouched: a backing file, LUKS encryption, an external data file, a disk
// too small, damaged tables; a damaged compressed cluster or data fails mid-stream with its stage,
// code and disk state, never success.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { deploy } from '../../src/image/deploy.ts';
import { BootyError } from '../../src/util/errors.ts';
import { startFaultProxy } from '../helpers/fault-proxy.ts';
import { startStaticOrigin, type StaticOrigin } from '../helpers/static-origin.ts';
import { seededRandom } from '../helpers/seeded-random.ts';
import { attachLoop, detachAllLoops } from '../helpers/loop-device.ts';
import { skipUnlessPresent } from '../helpers/prerequisite.ts';
import { startBootyServer } from '../helpers/booty-server-process.ts';
import { runBooty } from '../helpers/booty-cli.ts';

const hasQemuImg = (() => { try { execFileSync('qemu-img', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; } })();
const skip = process.getuid?.() !== 0 ? 'needs root (loop devices)' : skipUnlessPresent(hasQemuImg, 'needs qemu-img (qemu-utils, scripts/host-deps.sh)');
const MiB = 1 << 20;
const DISK = 64 * MiB;
const RAW = 40 * MiB;

let dir: string;
let origin: StaticOrigin;
let noRange: StaticOrigin;
let raw: Buffer;
let garbage: Buffer;

const sh = (cmd: string) => execFileSync('bash', ['-euo', 'pipefail', '-c', cmd], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 256 * MiB });
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const fileSha = (f: string) => sha(fs.readFileSync(path.join(dir, f)));

const images: Array<{ file: string; make: string }> = [
  { file: 'plain.qcow2', make: 'qemu-img convert -O qcow2 disk.raw plain.qcow2' },
  { file: 'deflate.qcow2', make: 'qemu-img convert -c -O qcow2 disk.raw deflate.qcow2' },
  { file: 'zstd.qcow2', make: 'qemu-img convert -c -O qcow2 -o compression_type=zstd disk.raw zstd.qcow2' },
  { file: 'v2.qcow2', make: 'qemu-img convert -O qcow2 -o compat=0.10 disk.raw v2.qcow2' },
  { file: 'v2c.qcow2', make: 'qemu-img convert -c -O qcow2 -o compat=0.10 disk.raw v2c.qcow2' },
  { file: 'c4k.qcow2', make: 'qemu-img convert -O qcow2 -o cluster_size=4k disk.raw c4k.qcow2' },
  { file: 'c4kz.qcow2', make: 'qemu-img convert -c -O qcow2 -o cluster_size=4k,compression_type=zstd disk.raw c4kz.qcow2' },
  { file: 'c2m.qcow2', make: 'qemu-img convert -O qcow2 -o cluster_size=2M disk.raw c2m.qcow2' },
];

before(async () => {
  if (skip) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-qcow2-'));
  const rand = seededRandom(17);
  // an OS-like mix: noise (dense, stored uncompressed even with -c), text (compresses), zero runs
  // (unallocated clusters), and a non-zero byte just past a cluster boundary
  raw = Buffer.alloc(RAW);
  for (let i = 0; i < 5 * MiB; i++) raw[i] = Math.floor(rand() * 256);
  raw.write('booty streams qcow2 images as operators download them\n'.repeat(120_000), 9 * MiB, 'latin1');
  for (let i = 30 * MiB; i < 31 * MiB; i++) raw[i] = Math.floor(rand() * 256);
  raw[36 * MiB + 65536 + 7] = 0x42;
  raw[510] = 0x55; raw[511] = 0xaa;
  fs.writeFileSync(path.join(dir, 'disk.raw'), raw);
  garbage = Buffer.alloc(DISK);
  for (let i = 0; i < garbage.length; i += 4) garbage.writeUInt32LE(Math.floor(rand() * 2 ** 32), i);
  for (const i of images) {
    sh(i.make);
    // the judge: what QEMU itself reads from the file
    sh(`qemu-img convert -O raw ${i.file} judge.raw`);
    assert.ok(fs.readFileSync(path.join(dir, 'judge.raw')).equals(raw), `qemu-img reads ${i.file} back as the raw image`);
  }
  origin = await startStaticOrigin(dir);
  noRange = await startStaticOrigin(dir, { ranges: false });
});

after(async () => {
  detachAllLoops();
  origin?.close();
  noRange?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** A command run without blocking this process's event loop; its status and output. */
function run(cmd: string, args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    c.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    c.on('error', reject);
    c.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** A loop device over a file of random bytes. */
function freshLoop(name: string): { dev: string; file: string } {
  const file = path.join(dir, `${name}.disk`);
  fs.writeFileSync(file, garbage);
  return { dev: attachLoop(file), file };
}

function readDisk(dev: string, length: number): Buffer {
  const fd = fs.openSync(dev, 'r');
  try {
    const b = Buffer.alloc(length);
    let done = 0;
    while (done < length) { const n = fs.readSync(fd, b, done, length - done, done); if (n <= 0) break; done += n; }
    return b;
  } finally { fs.closeSync(fd); }
}

test('the CLI: --format qcow2 deploys a qcow2 image; --format gzip on it is refused before the first write', { skip }, async () => {
  const { dev } = freshLoop('cli');
  const before = readDisk(dev, DISK);
  const wrong = await runBooty(['deploy', '-q', '--image', `${origin.url}/deflate.qcow2`, '--disk', dev, '--format', 'gzip']);
  assert.notEqual(wrong.status, 0);
  assert.match(wrong.err, /--format gzip was given but the image is qcow2/);
  assert.ok(readDisk(dev, DISK).equals(before), 'not a byte written');
  const r = await runBooty(['deploy', '-q', '--image', `${origin.url}/deflate.qcow2`, '--disk', dev, '--format', 'qcow2', '--sha256', fileSha('deflate.qcow2')]);
  assert.equal(r.status, 0, r.err);
  assert.ok(readDisk(dev, DISK).subarray(0, RAW).equals(raw), 'the disk reads as qemu-img reads the image');
});

for (const i of images) {
  test(`${i.file}: bit-exact with qemu-img convert -O raw onto a loop device that held random bytes`, { skip }, async () => {
    const { dev } = freshLoop(i.file);
    const r = await deploy({ image: `${origin.url}/${i.file}`, disk: dev, sha256: fileSha(i.file) });
    assert.equal(r.format, 'qcow2');
    assert.equal(r.bytesWritten, RAW);
    assert.equal(r.wireBytes, fs.statSync(path.join(dir, i.file)).size, 'every byte served hashed once');
    assert.ok((r.zeroBytes ?? 0) > 10 * MiB, 'the holes went out as zero runs');
    const got = readDisk(dev, DISK);
    assert.ok(got.subarray(0, RAW).equals(raw), 'the disk reads as qemu-img reads the image');
    assert.ok(got.subarray(DISK - MiB).equals(Buffer.alloc(MiB)), 'an old backup GPT in the last MiB is gone');
  });
}

test('no Range support: the tables are read from the one download (qemu-img layout), bit-exact', { skip }, async () => {
  for (const file of ['plain.qcow2', 'zstd.qcow2', 'c4k.qcow2']) {
    const { dev } = freshLoop(`norange-${file}`);
    const r = await deploy({ image: `${noRange.url}/${file}`, disk: dev, sha256: fileSha(file) });
    assert.equal(r.bytesWritten, RAW);
    assert.ok(readDisk(dev, RAW).equals(raw), file);
  }
});

test('no Range support and the L1 table after the data it maps (a grown image): refused, saying what to do', { skip }, async () => {
  sh('qemu-img create -q -f qcow2 grown.qcow2 64M && qemu-io -c "write -P 0x11 0 1M" grown.qcow2 >/dev/null && qemu-img resize -q grown.qcow2 1G');
  const disk = path.join(dir, 'grown.disk');
  fs.writeFileSync(disk, garbage.subarray(0, 4 * MiB));
  fs.truncateSync(disk, 1100 * MiB);
  await assert.rejects(deploy({ image: `${noRange.url}/grown.qcow2`, disk }), (e: BootyError) => {
    assert.equal(e.code, 'QCOW2_NEEDS_RANGE', e.message);
    assert.match(e.message, /does not support Range requests/);
    assert.match(e.hint ?? '', /Range requests.*qemu-img convert -O raw/);
    assert.equal(e.diskState, 'untouched');
    return true;
  });
  assert.ok(fs.readFileSync(disk).subarray(0, 4 * MiB).equals(garbage.subarray(0, 4 * MiB)), 'nothing written');
  // with Range the same file deploys
  const r = await deploy({ image: `${origin.url}/grown.qcow2`, disk });
  assert.equal(r.bytesWritten, 1024 * MiB);
  const head = fs.readFileSync(disk).subarray(0, 2 * MiB);
  assert.ok(head.subarray(0, MiB).equals(Buffer.alloc(MiB, 0x11)) && head.subarray(MiB).equals(Buffer.alloc(MiB)));
});

/** A refusal before the first write: the loop device still holds every random byte. */
async function refusedUntouched(file: string, check: (e: BootyError) => void): Promise<void> {
  const { dev } = freshLoop(`refused-${file}`);
  await assert.rejects(deploy({ image: `${origin.url}/${file}`, disk: dev }), (e: unknown) => {
    assert.ok(e instanceof Error, `${file}: ${String(e)}`);
    assert.ok(e instanceof BootyError, String(e));
    assert.equal(e.diskState, 'untouched', e.message);
    assert.ok(e.exitCode !== 0);
    check(e);
    return true;
  }, `${file} must be refused`);
  assert.ok(readDisk(dev, DISK).equals(garbage), `${file}: the disk was not written`);
}

test('refused before the first write: backing file, LUKS encryption, external data file, too large', { skip }, async () => {
  sh('qemu-img create -q -f qcow2 -b plain.qcow2 -F qcow2 overlay.qcow2');
  // qemu-img times its LUKS key derivation by CPU usage and gave up once on a loaded host
  // ("Unable to get accurate CPU usage"): try again before calling the set-up broken
  sh('for i in 1 2 3 4 5; do qemu-img create -q -f qcow2 --object secret,id=s0,data=booty -o encrypt.format=luks,encrypt.key-secret=s0 luks.qcow2 16M && exit 0; sleep 1; done; exit 1');
  sh('qemu-img create -q -f qcow2 -o data_file=ext.data ext.qcow2 16M');
  sh('qemu-img convert -O qcow2 disk.raw big.qcow2 && qemu-img resize -q big.qcow2 128M');
  await refusedUntouched('overlay.qcow2', (e) => {
    assert.match(e.message, /qcow2 \(version 3\) disk image, with a backing file "plain\.qcow2".*not a whole disk/);
    assert.match(e.hint ?? '', /backing chain/);
  });
  await refusedUntouched('luks.qcow2', (e) => {
    assert.match(e.message, /encrypted \(LUKS\).*cannot decrypt/);
    assert.match(e.hint ?? '', /encrypt\.key-secret/);
  });
  await refusedUntouched('ext.qcow2', (e) => assert.match(e.message, /external data file/));
  await refusedUntouched('big.qcow2', (e) => { assert.equal(e.code, 'DISK_TOO_SMALL'); assert.match(e.message, /qcow2 header/); });
});

/** Offsets in a qcow2 file, read with its own header. */
function layout(file: string): { cs: number; l1: number; l2: number; firstData: number; compressed: number | undefined } {
  const b = fs.readFileSync(path.join(dir, file));
  const cs = 2 ** b.readUInt32BE(20);
  const l1 = Number(b.readBigUInt64BE(40));
  const l2 = Number(b.readBigUInt64BE(l1) & 0x00fffffffffffe00n);
  let firstData = 0;
  let compressed: number | undefined;
  for (let j = 0; j < cs / 8; j++) {
    const e = b.readBigUInt64BE(l2 + j * 8);
    if (e === 0n) continue;
    if ((e & (1n << 62n)) !== 0n) {
      // the text region compresses: take one from its middle
      if (compressed === undefined && j * cs >= 10 * MiB) compressed = Number(e & ((1n << BigInt(62 - (Math.log2(cs) - 8))) - 1n));
    } else if (firstData === 0) firstData = Number(e & 0x00fffffffffffe00n);
  }
  return { cs, l1, l2, firstData, compressed };
}

function damaged(from: string, to: string, edit: (b: Buffer) => Buffer): void {
  fs.writeFileSync(path.join(dir, to), edit(Buffer.from(fs.readFileSync(path.join(dir, from)))));
}

test('damaged tables and header: refused before the first write, disk untouched', { skip }, async () => {
  const L = layout('deflate.qcow2');
  damaged('deflate.qcow2', 'bad-bits.qcow2', (b) => { b.writeUInt32BE(40, 20); return b; });
  damaged('deflate.qcow2', 'bad-version.qcow2', (b) => { b.writeUInt32BE(4, 4); return b; });
  damaged('deflate.qcow2', 'bad-l1.qcow2', (b) => { b.writeBigUInt64BE(0x8000000000000000n | BigInt(b.length + L.cs * 4), L.l1); return b; });
  damaged('deflate.qcow2', 'l1-header.qcow2', (b) => { b.writeBigUInt64BE(0x8000000000000200n, L.l1); return b; });
  damaged('plain.qcow2', 'l2-refcount.qcow2', (b) => { const P = layout('plain.qcow2'); b.writeBigUInt64BE(0x8000000000000000n | BigInt(Number(b.readBigUInt64BE(48))), P.l2 + 8); return b; });
  damaged('plain.qcow2', 'l2-table.qcow2', (b) => { const P = layout('plain.qcow2'); b.writeBigUInt64BE(0x8000000000000000n | BigInt(P.l2), P.l2 + 8); return b; });
  damaged('plain.qcow2', 'l2-overlap.qcow2', (b) => { const P = layout('plain.qcow2'); b.writeBigUInt64BE(0x8000000000000000n | BigInt(P.firstData + 512), P.l2 + 16); return b; });
  damaged('plain.qcow2', 'truncated.qcow2', (b) => b.subarray(0, Math.floor(b.length * 0.6)));
  const cases: Array<[string, string, RegExp]> = [
    ['bad-bits.qcow2', 'QCOW2_BAD_HEADER', /cluster_bits 40/],
    ['bad-version.qcow2', 'IMAGE_FORMAT_UNSUPPORTED', /qcow disk image of version 4/],
    ['bad-l1.qcow2', 'QCOW2_BAD_L1', /L1 entry 0 .*past the end of the file/],
    ['l1-header.qcow2', 'QCOW2_BAD_L1', /L1 entry 0 .*not a cluster boundary|into the header/],
    ['l2-refcount.qcow2', 'QCOW2_OVERLAP', /overlaps the image's tables/],
    ['l2-table.qcow2', 'QCOW2_OVERLAP', /overlaps the image's tables/],
    ['l2-overlap.qcow2', 'QCOW2_BAD_L2', /not a cluster boundary/],
    ['truncated.qcow2', 'QCOW2_BAD_L2', /past the end of the file/],
  ];
  for (const [file, code, message] of cases) {
    await refusedUntouched(file, (e) => { assert.equal(e.code, code, `${file}: ${e.message}`); assert.match(e.message, message, file); });
  }
  // the decode workers start while the tables are read: a refused image leaves none running
  assert.deepEqual(await decodeThreadsGone(), [], 'no qcow2 decode thread left after the refusals');
});

/** This process's qcow2 decode threads (named by the pool, cut to 15 bytes by the kernel), once
 *  those still exiting are gone (up to 3 s). */
async function decodeThreadsGone(): Promise<string[]> {
  const names = () => fs.readdirSync('/proc/self/task').flatMap((t) => {
    try { return [fs.readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim()]; } catch { return []; }
  }).filter((n) => n.startsWith('booty-qcow2'));
  for (let i = 0; i < 30 && names().length > 0; i++) await new Promise((r) => setTimeout(r, 100));
  return names();
}

test('an image without compressed clusters: the decode workers started with the table reads are closed unused', { skip }, async () => {
  const { dev } = freshLoop('plain-workers');
  const r = await deploy({ image: `${origin.url}/plain.qcow2`, disk: dev, sha256: fileSha('plain.qcow2') });
  assert.equal(r.workers, 0, 'no decode worker reported');
  assert.deepEqual(await decodeThreadsGone(), []);
  const c = await deploy({ image: `${origin.url}/deflate.qcow2`, disk: dev, sha256: fileSha('deflate.qcow2') });
  assert.ok((c.workers ?? 0) >= 1, 'compressed clusters decoded on a worker');
  assert.ok(readDisk(dev, DISK).subarray(0, RAW).equals(raw));
  assert.deepEqual(await decodeThreadsGone(), [], 'closed after the deploy');
});

test('damaged compressed cluster and data cluster: fail mid-stream with stage, offset and disk state, never success', { skip }, async () => {
  for (const file of ['deflate.qcow2', 'zstd.qcow2']) {
    const L = layout(file);
    assert.ok(L.compressed !== undefined, `${file} has compressed clusters`);
    damaged(file, `bad-c-${file}`, (b) => { for (let k = 8; k < 40; k++) b[L.compressed! + k] ^= 0x5a; return b; });
    const { dev } = freshLoop(`bad-c-${file}`);
    await assert.rejects(deploy({ image: `${origin.url}/bad-c-${file}`, disk: dev }), (e: BootyError) => {
      assert.equal(e.stage, 'decompress', e.message);
      assert.equal(e.code, 'QCOW2_BAD_CLUSTER');
      assert.match(e.message, new RegExp(`compressed cluster at byte ${L.compressed} .*damaged`));
      assert.equal(e.offset, L.compressed);
      assert.equal(e.diskState, 'partially-written');
      return true;
    });
    assert.ok(readDisk(dev, MiB).equals(Buffer.alloc(MiB)), 'the boot area stays zeroed: the disk does not boot');
  }
  // a flipped data byte: only the checksum can tell
  const P = layout('plain.qcow2');
  damaged('plain.qcow2', 'bad-data.qcow2', (b) => { b[P.firstData + 4000] ^= 1; return b; });
  const { dev } = freshLoop('bad-data');
  await assert.rejects(deploy({ image: `${origin.url}/bad-data.qcow2`, disk: dev, sha256: fileSha('plain.qcow2') }), (e: BootyError) => {
    assert.equal(e.stage, 'verify');
    assert.equal(e.code, 'CHECKSUM_MISMATCH');
    assert.equal(e.diskState, 'written-unverified');
    return true;
  });
  assert.ok(readDisk(dev, MiB).equals(Buffer.alloc(MiB)), 'the boot sector was never written');
});

test('network faults: resumed with Range below the cluster stream, bit-exact, each byte hashed once', { skip }, async () => {
  const base = new URL(origin.url);
  for (const file of ['plain.qcow2', 'deflate.qcow2', 'zstd.qcow2']) {
    const served = fs.statSync(path.join(dir, file)).size;
    for (let seed = 1; seed <= 2; seed++) {
      const proxy = await startFaultProxy({
        target: { host: base.hostname, port: Number(base.port) }, seed: seed * 7 + file.length,
        faults: { probability: { cut: 0.35, reset: 0.35, stall: 0.3 }, offset: { min: 1000, max: served }, stallMs: { min: 100, max: 600 }, maxFaults: 3 },
        cutGraceMs: 200,
      });
      const { dev } = freshLoop(`fault-${file}-${seed}`);
      try {
        const r = await deploy({ image: `${proxy.url}/${file}`, disk: dev, sha256: fileSha(file), stallTimeoutMs: 400, retryForMs: 30_000, backoffInitialMs: 20, backoffMaxMs: 200 });
        assert.equal(r.bytesWritten, RAW);
        assert.equal(r.wireBytes, served, 'each served byte hashed exactly once');
        assert.ok(readDisk(dev, RAW).equals(raw), `${file} seed ${seed}`);
        const st = proxy.stats();
        // re-fetched bytes are bounded: the download once, the tables (under 1 MiB here), and what
        // was in flight when each fault hit (never the image again from byte 0)
        assert.ok(st.bytes.download <= served + MiB + st.faultsTotal * 4 * MiB, `${st.bytes.download} bytes through the proxy for a ${served}-byte file (${st.faultsTotal} faults)`);
      } finally {
        await proxy.close();
      }
    }
  }
});

test('8 GiB qcow2 with deflate clusters: peak RSS < 150 MiB (the bundle the initramfs runs), bit-exact with qemu-img', { skip: skip || (fs.existsSync('/usr/bin/time') ? false : 'needs /usr/bin/time') }, async () => {
  const GiB = 1 << 30;
  const size = 8 * GiB;
  const src = path.join(dir, 'big.raw');
  const fd = fs.openSync(src, 'w');
  fs.writeSync(fd, raw, 0, raw.length, 0);
  fs.writeSync(fd, garbage, 0, 48 * MiB, 3 * GiB);
  const text = Buffer.alloc(64 * MiB, 'qcow2 clusters stream past in constant memory\n', 'latin1');
  for (let k = 0; k < 4; k++) fs.writeSync(fd, text, 0, text.length, 5 * GiB + k * text.length);
  fs.ftruncateSync(fd, size);
  fs.closeSync(fd);
  sh('qemu-img convert -c -O qcow2 big.raw big.qcow2 && qemu-img convert -O raw big.qcow2 big.judge');
  const target = path.join(dir, 'big.target');
  execFileSync('truncate', ['-s', String(size), target]);
  const tfd = fs.openSync(target, 'r+');
  for (const at of [2 * GiB, 6 * GiB, size - 2 * MiB]) fs.writeSync(tfd, garbage, 0, MiB, at);
  fs.closeSync(tfd);
  const root = path.resolve(import.meta.dirname, '..', '..');
  const bundle = path.join(root, 'dist', `test-qcow2-rss-${process.pid}.mjs`);
  execFileSync(process.execPath, [path.join(root, 'scripts/bundle.mjs'), bundle]);
  let r: { status: number | null; stdout: string; stderr: string };
  try {
    // asynchronously: the origin serving the image runs in this process
    r = await run('/usr/bin/time', ['-f', 'MAXRSS_KB %M', process.execPath, bundle, 'deploy',
      '--image', `${origin.url}/big.qcow2`, '--disk', target, '--sha256', fileSha('big.qcow2')]);
  } finally { fs.rmSync(bundle, { force: true }); }
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`OK: ${size} bytes .*qcow2`));
  const rssKiB = Number(/MAXRSS_KB (\d+)/.exec(r.stderr)![1]);
  const line = r.stderr.split('\n').find((l) => l.includes('decompressed')) ?? '';
  process.stderr.write(`# 8 GiB qcow2 deploy (bundle): peak RSS ${(rssKiB / 1024).toFixed(1)} MiB; ${line}\n`);
  assert.ok(rssKiB < 150 * 1024, `peak RSS ${rssKiB} KiB`);
  assert.match(line, /[1-9]\d* decompressed on \d+ worker/);
  // cmp reads both whole: the target must read exactly as qemu-img reads the image
  sh('cmp big.target big.judge');
  for (const f of ['big.raw', 'big.judge', 'big.target', 'big.qcow2']) fs.rmSync(path.join(dir, f), { force: true });
});

test('from booty server: tables by Range, verified by X-Image-Sha256; a sidecar from when qcow2 was refused is re-detected', { skip }, async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-qcow2-server-'));
  const images = path.join(dataDir, 'images');
  fs.mkdirSync(path.join(images, '.meta'), { recursive: true });
  fs.copyFileSync(path.join(dir, 'zstd.qcow2'), path.join(images, 'old.qcow2'));
  const st = fs.statSync(path.join(images, 'old.qcow2'));
  // what a server of the previous format table wrote for it
  fs.writeFileSync(path.join(images, '.meta', 'old.qcow2.json'), JSON.stringify({
    name: 'old.qcow2', size: st.size, sha256: fileSha('zstd.qcow2'), format: 'unsupported: qcow2', ino: st.ino, storedAt: st.mtime.toISOString(), via: 'import', formats: 2,
  }));
  const server = await startBootyServer({ dataDir });
  try {
    const catalog = (await (await fetch(`${server.url}/api/images`)).json() as { images: Array<{ name: string; format?: string }> }).images;
    assert.equal(catalog.find((e) => e.name === 'old.qcow2')?.format, 'qcow2');
    const { dev } = freshLoop('from-server');
    const lines: string[] = [];
    const log = { info: (m: string) => lines.push(m), warn: (m: string) => lines.push(m), error: (m: string) => lines.push(m), debug: () => {} };
    const r = await deploy({ image: `${server.url}/images/old.qcow2`, disk: dev, log: log as never });
    assert.equal(r.bytesWritten, RAW);
    assert.ok(readDisk(dev, RAW).equals(raw));
    assert.ok(lines.some((l) => /tables read by Range in \d+ parts/.test(l)), lines.join('\n'));
    assert.ok(lines.some((l) => /sha256 [0-9a-f]{64} \(verified\)/.test(l)), 'checked against the server\'s X-Image-Sha256');
    assert.match(server.stderr(), /"status":206,"bytes":8,.*"range":"\d+-\d+"/, "the L1 table came as a 206 answer to its byte range");
  } finally {
    await server.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});
