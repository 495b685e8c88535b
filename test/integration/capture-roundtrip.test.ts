// capture -> booty server -> deploy round trips on real loop devices, bit-exact, for gzip, zstd
// and raw (booty's PUT + commit) and gzip over BOOTy's multipart protocol. The target loop device
// is larger than the image and pre-filled with garbage, so zero runs that were skipped instead of
// zeroed would show up in the compare. Run as root.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { BootyServerProcess } from '../helpers/booty-server-process.ts';
import { startCaptureRig, type CaptureRig } from '../helpers/capture-rig.ts';
import { fillWithGarbage, sameBytes, isZeroRange } from '../helpers/ext4-disk-image.ts';
import { addPartitions } from '../helpers/loop-device.ts';

const root = path.resolve(import.meta.dirname, '..', '..');
const MiB = 1 << 20;
const IMAGE = 128 * MiB;
const skip = process.getuid?.() !== 0 ? 'needs root (loop devices)' : false;

function booty(args: string[]) {
  const r = spawnSync(path.join(root, 'bin/booty'), args, { encoding: 'utf8', timeout: 300_000 });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

let dir: string;
let server: BootyServerProcess;
let source: string;
let target: string;
let targetFile: string;

let rig: CaptureRig | undefined;
before(async () => {
  if (skip) return;
  rig = await startCaptureRig('capture-rt', { sourceMiB: 128, targetMiB: 192 });
  ({ dir, source, target, targetFile, server } = rig);
});

after(() => rig?.close());

for (const format of ['gzip', 'zstd', 'raw'] as const) {
  test(`capture (${format}, PUT + commit) then deploy onto a larger, dirty disk: bit-exact`, { skip }, () => {
    const url = `${server.url}/images/rt-${format}.img`;
    const cap = booty(['capture', '--disk', source, '--upload', url, '--format', format]);
    assert.equal(cap.status, 0, cap.err);
    assert.match(cap.out, /booty capture: OK: 134217728 bytes/);
    const stored = path.join(server.dataDir, 'images', `rt-${format}.img`);
    const sha = /sha256 ([0-9a-f]{64})/.exec(cap.out)![1];
    assert.equal(execFileSync('sha256sum', [stored], { encoding: 'utf8' }).slice(0, 64), sha, 'server stored what we sent');
    if (format !== 'raw') assert.ok(fs.statSync(stored).size < IMAGE / 4, 'compressed');

    fillWithGarbage(target, 192 * MiB);
    const dep = booty(['deploy', '--image', url, '--disk', target, '--sha256', sha]);
    assert.equal(dep.status, 0, dep.err);
    assert.match(dep.out, new RegExp(`OK: 134217728 bytes .*${format}`));
    assert.ok(sameBytes(source, target, IMAGE), 'deployed bytes equal the source disk');
    // past the image, only the disk's last MiB was touched (old backup GPT cleared)
    assert.ok(isZeroRange(target, 192 * MiB - MiB, MiB));
    const rate = /\(([\d.]+) MB\/s\)/.exec(dep.out)?.[1];
    process.stderr.write(`# deploy ${format}: ${rate} MB/s; capture ${/\(([\d.]+) MB\/s\)/.exec(cap.out)?.[1]} MB/s\n`);
  });
}

test('the deployed disk holds a clean ext4 with the files', { skip }, () => {
  addPartitions(target);
  execFileSync('e2fsck', ['-fn', `${target}p1`], { stdio: 'pipe' });
  const hello = execFileSync('debugfs', ['-R', 'cat /hello.txt', `${target}p1`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  assert.equal(hello, 'hello from a booty test image\n');
  execFileSync('partx', ['-d', target]);
});

test("BOOTy's multipart capture (gzip, <mac>.zmg) deploys back bit-exact", { skip }, () => {
  const cap = booty(['capture', '--disk', source, '--upload', `${server.url}/image`, '--protocol', 'multipart', '--mac', '52:54:00:ab:cd:ef']);
  assert.equal(cap.status, 0, cap.err);
  const names = fs.readdirSync(path.join(server.dataDir, 'images')).filter((n) => n.includes('52'));
  assert.equal(names.length, 1, names.join(','));
  assert.match(names[0], /\.zmg$/);
  fillWithGarbage(target, 192 * MiB);
  const dep = booty(['deploy', '--image', `${server.url}/images/${names[0]}`, '--disk', target]);
  assert.equal(dep.status, 0, dep.err);
  assert.ok(sameBytes(source, target, IMAGE));
});

test('capture refuses to overwrite an existing image unless asked', { skip }, () => {
  const url = `${server.url}/images/rt-gzip.img`;
  const again = booty(['capture', '-q', '--disk', source, '--upload', url]);
  assert.equal(again.status, 10, again.err);
  assert.match(again.err, /upload: server refused .*409.*already exists/);
  const forced = booty(['capture', '-q', '--disk', source, '--upload', url, '--overwrite', '--format', 'gzip', '--level', '1']);
  assert.equal(forced.status, 0, forced.err);
});
