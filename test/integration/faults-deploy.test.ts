// 200 deploys through the fault proxy: a real `booty server` on loopback, the TCP fault proxy in
// front of it cutting (FIN), resetting (RST), stalling and throttling the download at random byte
// offsets (one proxy per deploy, seeded by the deploy's number, so a failing deploy replays), and
// deploy() called in-process onto regular files (and every 40th onto a loop device, as root).
// Every deploy must end bit-exact, with 0 restarts from byte 0 and exactly the served file's
// bytes hashed (nothing received twice). Prints the figures: deploys, faults injected, resumes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { startBootyServer, waitForGzipIndex, type BootyServerProcess } from '../helpers/booty-server-process.ts';
import { startFaultProxy, type FaultKind } from '../helpers/fault-proxy.ts';
import { attachLoop, detachAllLoops } from '../helpers/loop-device.ts';
import { seededRandom, randomInt } from '../helpers/seeded-random.ts';
import { deploy, type DeployResult } from '../../src/image/deploy.ts';
import { createLogger } from '../../src/util/log.ts';

const MiB = 1 << 20;
const DEPLOYS = Number(process.env.BOOTY_FAULT_DEPLOYS ?? 200);
const CONCURRENCY = 4;
const LOOP_EVERY = 40;
const isRoot = process.getuid?.() === 0;

interface TestImage { name: string; format: 'gzip' | 'zstd' | 'raw' | 'pigz'; raw: Buffer; served: Buffer; sha256: string }

/** An OS-like image: random blocks (incompressible), text (compressible) and zero runs of
 *  1-2 MiB (skipped as holes by the writer), so neither compression nor zero skipping hides the
 *  content from the comparison. */
function makeImage(seed: number, size: number): Buffer {
  const rand = seededRandom(seed);
  const out = Buffer.alloc(size);
  let at = 0;
  while (at < size) {
    const kind = rand();
    const n = Math.min(size - at, kind < 0.2 ? randomInt(rand, MiB, 2 * MiB) : randomInt(rand, 4096, 256 * 1024));
    if (kind < 0.2) { /* zeros */ } else if (kind < 0.6) {
      for (let i = 0; i < n; i++) out[at + i] = Math.floor(rand() * 256);
    } else {
      out.write(`line ${at} of a booty fault test image, seed ${seed}\n`.repeat(Math.ceil(n / 40)).slice(0, n), at, 'latin1');
    }
    at += n;
  }
  return out;
}

let dir: string;
let server: BootyServerProcess;
const images: TestImage[] = [];
const loops: string[] = [];

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-faults-deploy-'));
  server = await startBootyServer();
  fs.mkdirSync(path.join(server.dataDir, 'images'), { recursive: true });
  const formats = ['gzip', 'zstd', 'raw'] as const;
  for (let i = 0; i < 12; i++) {
    const format = formats[i % 3];
    const raw = makeImage(9000 + i, (1 + (i % 4)) * MiB + 4096 * i);
    const served = format === 'gzip' ? zlib.gzipSync(raw, { level: 1 })
      : format === 'zstd' ? zlib.zstdCompressSync(raw, { params: { [zlib.constants.ZSTD_c_checksumFlag]: 1 } })
        : raw;
    const name = `fault-${i}.img${format === 'raw' ? '' : format === 'gzip' ? '.gz' : '.zst'}`;
    fs.writeFileSync(path.join(server.dataDir, 'images', name), served);
    images.push({ name, format, raw, served, sha256: createHash('sha256').update(served).digest('hex') });
  }
  // two pigz images the server indexes: their deploys fetch the gzip index through the same
  // faulty proxy and inflate segments on workers (gzip-index.ts), resumed like the image
  for (let i = 0; i < 2; i++) {
    const raw = makeImage(9100 + i, (9 + 4 * i) * MiB + 4096 * i);
    const served = execFileSync('pigz', ['-6', '-c'], { input: raw, maxBuffer: 1 << 30 });
    const name = `fault-pigz-${i}.img.gz`;
    fs.writeFileSync(path.join(server.dataDir, 'images', name), served);
    images.push({ name, format: 'pigz', raw, served, sha256: createHash('sha256').update(served).digest('hex') });
  }
  for (let i = 0; i < 2; i++) assert.equal(await waitForGzipIndex(server.url, `fault-pigz-${i}.img.gz`), 'ready');
  if (isRoot) {
    for (let i = 0; i < CONCURRENCY; i++) {
      const f = path.join(dir, `loop-${i}.img`);
      execFileSync('truncate', ['-s', '16M', f]);
      loops.push(attachLoop(f));
    }
  }
});

after(async () => {
  detachAllLoops();
  await server?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function readRange(file: string, length: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try { const b = Buffer.alloc(length); fs.readSync(fd, b, 0, length, 0); return b; } finally { fs.closeSync(fd); }
}

test(`${DEPLOYS} deploys through cuts, resets, stalls and throttling: all bit-exact, 0 restarts from zero`, { timeout: 600_000 }, async () => {
  const target = new URL(server.url);
  const totals = { faults: 0, resumes: 0, restarts: 0, byKind: { cut: 0, reset: 0, stall: 0, throttle: 0 } as Record<FaultKind, number>, loop: 0 };
  const byFormat = { gzip: 0, zstd: 0, raw: 0, pigz: 0 };
  const started = performance.now();
  const freeLoops = [...loops];

  async function one(d: number): Promise<void> {
    const img = images[d % images.length];
    const seed = 1000 + d;
    const proxy = await startFaultProxy({
      target: { host: target.hostname, port: Number(target.port) }, seed,
      faults: {
        probability: { cut: 0.25, reset: 0.2, stall: 0.25, throttle: 0.05 },
        // anywhere in the response: headers, first bytes, the middle, the last bytes
        offset: { min: 0, max: img.served.length + 400 },
        stallMs: { min: 100, max: 1500 },
        throttleBytesPerSecond: { min: 2 * MiB, max: 8 * MiB },
        maxFaults: 6,
      },
      cutGraceMs: 200,
    });
    const loop = d % LOOP_EVERY === LOOP_EVERY - 1 ? freeLoops.pop() : undefined;
    const disk = loop ?? path.join(dir, `target-${d}.img`);
    if (loop === undefined) fs.writeFileSync(disk, '');
    const lines: string[] = [];
    const log = createLogger({ level: 'debug', sinks: [(level, m) => lines.push(`${level}: ${m}`)] });
    let r: DeployResult;
    try {
      r = await deploy({
        image: `${proxy.url}/images/${img.name}`, disk, sha256: img.sha256, log,
        stallTimeoutMs: 400, retryForMs: 30_000, backoffInitialMs: 20, backoffMaxMs: 200,
        // the index path on any machine (by default 2 cores take it only for mostly-zero images:
        // decode-plan.ts)
        ...(img.format === 'pigz' ? { workers: 2 } : {}),
      });
    } catch (e) {
      const st = proxy.stats();
      throw new Error(`deploy ${d} (seed ${seed}, ${img.name}) failed: ${(e as Error).message}\nfaults: ${JSON.stringify(st.fired)}\n${lines.join('\n')}`);
    } finally {
      await proxy.close();
      if (loop !== undefined) freeLoops.push(loop);
    }
    const st = proxy.stats();
    const what = `deploy ${d} (seed ${seed}, ${img.name})`;
    assert.equal(r.restarts, 0, `${what}: restarted from byte 0`);
    assert.equal(r.wireBytes, img.served.length, `${what}: hashed ${r.wireBytes} bytes of a ${img.served.length}-byte file (received something twice?)`);
    assert.equal(r.sha256, img.sha256, what);
    assert.equal(r.bytesWritten, img.raw.length, what);
    if (img.format === 'pigz') assert.equal(r.decodedOn, 'segments', `${what}: inflated in segments with the gzip index\n${lines.join('\n')}`);
    const got = readRange(disk, img.raw.length);
    assert.ok(got.equals(img.raw), `${what}: the target differs from the image\n${lines.join('\n')}`);
    if (loop === undefined) {
      assert.equal(fs.statSync(disk).size, img.raw.length, `${what}: target file size`);
      fs.rmSync(disk);
    } else totals.loop++;
    totals.faults += st.faultsTotal;
    for (const k of Object.keys(st.faults) as FaultKind[]) totals.byKind[k] += st.faults[k];
    totals.resumes += r.resumes;
    totals.restarts += r.restarts;
    byFormat[img.format]++;
  }

  let next = 0;
  const workers = Array.from({ length: CONCURRENCY }, async () => {
    while (next < DEPLOYS) await one(next++);
  });
  await Promise.all(workers);

  const seconds = (performance.now() - started) / 1000;
  const k = totals.byKind;
  process.stdout.write(`faults-deploy: ${DEPLOYS} deploys (${byFormat.gzip} gzip, ${byFormat.pigz} pigz with the gzip index, ${byFormat.zstd} zstd, ${byFormat.raw} raw; ${totals.loop} onto loop devices), all bit-exact; restarts from zero: ${totals.restarts}; faults injected: ${totals.faults} (cut ${k.cut}, reset ${k.reset}, stall ${k.stall}, throttle ${k.throttle}); resumes: ${totals.resumes}; ${seconds.toFixed(1)} s\n`);
  assert.equal(totals.restarts, 0);
  assert.ok(totals.faults >= DEPLOYS / 2, `too few faults fired (${totals.faults}) for the test to mean anything`);
  assert.ok(totals.resumes >= DEPLOYS / 4, `too few resumes (${totals.resumes})`);
});
