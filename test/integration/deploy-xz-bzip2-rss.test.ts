// Memory of the block decoders: a 512 MiB image (128 MiB of dense data that compresses, zeros
// elsewhere) as xz -T2 with 4 MiB blocks (the largest booty decodes in order on its workers), as
// `xz -T0 -6` (what distributions ship: 24 MiB blocks, each written at its offset by its worker)
// and as lbzip2 -9, deployed by the bundle (what ships) onto a sparse
// file, from the real booty server. Peak RSS of the booty process (GNU time's maximum resident
// set) must stay under the bound below, and the target must hold the image bit-exact (xz -dc /
// bzip2 -dc are the judges).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startBootyServer, type BootyServerProcess } from '../helpers/booty-server-process.ts';
import { seededRandom } from '../helpers/seeded-random.ts';
import { skipUnlessPresent } from '../helpers/prerequisite.ts';

const root = path.resolve(import.meta.dirname, '..', '..');
const MiB = 1 << 20;
const SIZE = 512 * MiB;
const skip = process.getuid?.() !== 0 ? 'needs root (xz, lbzip2 from scripts/host-deps.sh)' : skipUnlessPresent(fs.existsSync('/usr/bin/time'), 'needs /usr/bin/time (package time)');

let dir: string;
let server: BootyServerProcess;
let bundle: string;
let rawSha: string;

before(async () => {
  if (skip) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-xzbz-rss-'));
  server = await startBootyServer();
  fs.mkdirSync(path.join(server.dataDir, 'images'), { recursive: true });
  // dense but compressible (bytes from a small alphabet): every decoded part is real bytes
  const rand = seededRandom(150);
  const dense = Buffer.alloc(64 * MiB);
  for (let i = 0; i < dense.length; i++) dense[i] = 0x40 + Math.floor(rand() * 16);
  const raw = path.join(dir, 'raw.img');
  const fd = fs.openSync(raw, 'w');
  for (const at of [0, 320]) fs.writeSync(fd, dense, 0, dense.length, at * MiB);
  fs.ftruncateSync(fd, SIZE);
  fs.closeSync(fd);
  rawSha = createHash('sha256').update(fs.readFileSync(raw)).digest('hex');
  execFileSync('bash', ['-euo', 'pipefail', '-c', `xz -T2 -0 --block-size=4MiB -c raw.img > ${server.dataDir}/images/r.img.xz && xz -T0 -6 -c raw.img > ${server.dataDir}/images/r6.img.xz && lbzip2 -9 -n 2 -c raw.img > ${server.dataDir}/images/r.img.bz2`], { cwd: dir });
  bundle = path.join(root, 'dist', `test-rss-xzbz-${process.pid}.mjs`);
  execFileSync(process.execPath, [path.join(root, 'scripts/bundle.mjs'), bundle]);
});

after(async () => {
  if (bundle) fs.rmSync(bundle, { force: true });
  await server?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const RSS_BOUND_MIB = 170;

// The target is 150 MiB. Measured on main after the merges of 2026-12-06: xz 150-161 MiB,
// bzip2 148-155 (the branch alone measured 147.5 and 143.9): the bound is the measured ceiling
// with a margin, so the test catches growth; README (Performance) says the target is not met yet.
// xz -T0 -6's 24 MiB blocks, written at their offsets, measured 155-162 MiB on the bench's images
// (2026-12-06; the in-order path had measured 200-240 MiB with such blocks): the same bound.
for (const [file, judge, bound] of [['r.img.xz', 'xz', RSS_BOUND_MIB], ['r6.img.xz', 'xz', RSS_BOUND_MIB], ['r.img.bz2', 'bzip2', RSS_BOUND_MIB]] as const) {
  test(`${judge} (${file}): 512 MiB image decoded block by block on 2 workers, peak RSS < ${bound} MiB, bit-exact`, { skip }, () => {
    const target = path.join(dir, `${file}.target`);
    fs.writeFileSync(target, '');
    fs.truncateSync(target, SIZE);
    const r = spawnSync('/usr/bin/time', ['-f', 'MAXRSS_KB %M', process.execPath, bundle, 'deploy', '-q', '--workers', '2',
      '--image', `${server.url}/images/${file}`, '--disk', target], { encoding: 'utf8', timeout: 900_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /block by block on 2 worker threads/);
    if (file === 'r6.img.xz') assert.match(r.stderr, /each block written at its offset by its worker \(25\.2 MB blocks\)/);
    else assert.doesNotMatch(r.stderr, /written at its offset/);
    const rssKiB = Number(/MAXRSS_KB (\d+)/.exec(r.stderr)![1]);
    process.stderr.write(`# ${file} (bundle, 2 block workers): peak RSS ${(rssKiB / 1024).toFixed(1)} MiB; ${r.stdout.trim()}\n`);
    const got = createHash('sha256').update(fs.readFileSync(target)).digest('hex');
    assert.equal(got, rawSha, 'the target holds the image');
    const judged = createHash('sha256').update(execFileSync('bash', ['-c', `${judge} -dc ${server.dataDir}/images/${file}`], { maxBuffer: SIZE + MiB })).digest('hex');
    assert.equal(judged, rawSha, `${judge} -dc agrees`);
    assert.ok(rssKiB < bound * 1024, `peak RSS ${rssKiB} KiB`);
  });
}
