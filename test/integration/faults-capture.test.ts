// 50 captures through the fault proxy: a real `booty server` on loopback, the TCP fault proxy in
// front of it cutting (FIN), resetting (RST), stalling and throttling at random byte offsets in
// both directions (the part bodies going up and the answers coming back; one proxy per capture,
// seeded by the capture's number, so a failing one replays), and capture() called in-process on
// regular files with random content, as gzip, zstd (single- and multi-frame) and raw, over the
// resumable upload protocol with small parts. Meanwhile the images directory is polled: an image
// must appear under its final name complete (same inode and size as at the end), never partial.
// Every stored image is decompressed and compared with its source. Prints the figures.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { startBootyServer, type BootyServerProcess } from '../helpers/booty-server-process.ts';
import { startFaultProxy, type FaultKind } from '../helpers/fault-proxy.ts';
import { seededRandom, randomInt } from '../helpers/seeded-random.ts';
import { capture, type CaptureResult } from '../../src/image/capture.ts';
import { createLogger } from '../../src/util/log.ts';

const KiB = 1024;
const MiB = 1 << 20;
const CAPTURES = Number(process.env.BOOTY_FAULT_CAPTURES ?? 50);
const CONCURRENCY = 3;
const PART = 256 * KiB;

/** Disk content: random (incompressible), text (compressible) and zero runs. */
function makeDisk(seed: number, size: number): Buffer {
  const rand = seededRandom(seed);
  const out = Buffer.alloc(size);
  let at = 0;
  while (at < size) {
    const kind = rand();
    const n = Math.min(size - at, randomInt(rand, 4 * KiB, 512 * KiB));
    if (kind < 0.2) { /* zeros */ } else if (kind < 0.65) {
      for (let i = 0; i < n; i++) out[at + i] = Math.floor(rand() * 256);
    } else {
      out.write(`sector ${at} of booty capture fault disk ${seed}\n`.repeat(Math.ceil(n / 40)).slice(0, n), at, 'latin1');
    }
    at += n;
  }
  return out;
}

function decompress(format: 'gzip' | 'zstd' | 'raw', stored: Buffer): Buffer {
  if (format === 'gzip') return zlib.gunzipSync(stored);
  if (format === 'zstd') return zlib.zstdDecompressSync(stored);
  return stored;
}

let dir: string;
let server: BootyServerProcess;
let imagesDir: string;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-faults-capture-'));
  server = await startBootyServer();
  imagesDir = path.join(server.dataDir, 'images');
});

after(async () => {
  await server?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test(`${CAPTURES} captures through cuts, resets, stalls and throttling: every stored image bit-exact, never a partial file under a final name`, { timeout: 600_000 }, async () => {
  const target = new URL(server.url);
  const totals = { faults: 0, resends: 0, parts: 0, byKind: { cut: 0, reset: 0, stall: 0, throttle: 0 } as Record<FaultKind, number>, wire: 0, read: 0, multiFrame: 0 };
  const byFormat = { gzip: 0, zstd: 0, raw: 0 };
  const started = performance.now();

  // The watcher: the first inode and size every final name is seen with.
  const seen = new Map<string, { ino: number; size: number }>();
  let polls = 0;
  let polling = true;
  const watcher = (async () => {
    while (polling) {
      for (const f of fs.readdirSync(imagesDir)) {
        if (f.startsWith('.') || seen.has(f)) continue;
        try { const st = fs.statSync(path.join(imagesDir, f)); seen.set(f, { ino: st.ino, size: st.size }); } catch { /* raced */ }
      }
      polls++;
      await new Promise((ok) => setTimeout(ok, 15));
    }
  })();

  async function one(c: number): Promise<void> {
    const format = (['gzip', 'zstd', 'raw'] as const)[c % 3];
    const seed = 5000 + c;
    const rand = seededRandom(seed);
    const size = randomInt(rand, 300 * KiB, 6 * MiB);
    const disk = makeDisk(seed, size);
    const diskFile = path.join(dir, `disk-${c}.img`);
    fs.writeFileSync(diskFile, disk);
    // every 4th compressed capture in parallel blocks: a multi-frame zstd / multi-member gzip
    const workers = format !== 'raw' && c % 4 === 1 ? 2 : 0;
    const name = `cap-${c}.img${format === 'gzip' ? '.gz' : format === 'zstd' ? '.zst' : ''}`;
    const wireGuess = format === 'raw' ? size : Math.ceil(size * 0.7);
    const proxy = await startFaultProxy({
      target: { host: target.hostname, port: Number(target.port) }, seed,
      faults: {
        probability: { cut: 0.22, reset: 0.22, stall: 0.22, throttle: 0.04 },
        directions: ['upload', 'upload', 'download'],
        // part bodies go up: anywhere in a part, its headers, or the answers coming back
        offset: { min: 0, max: Math.min(wireGuess, 2 * PART) },
        stallMs: { min: 200, max: 2500 },
        throttleBytesPerSecond: { min: 2 * MiB, max: 8 * MiB },
        maxFaults: 8,
      },
      cutGraceMs: 200,
    });
    const lines: string[] = [];
    const log = createLogger({ level: 'debug', sinks: [(level, m) => lines.push(`${level}: ${m}`)] });
    let resends = 0;
    let fellBack = false;
    let r: CaptureResult;
    try {
      r = await capture({
        disk: diskFile, upload: `${proxy.url}/images/${name}`, format, level: format === 'raw' ? undefined : 1, workers, log, progressIntervalMs: 60_000,
        resumable: {
          partSize: PART, stallTimeoutMs: 1000, retryForMs: 60_000, backoffInitialMs: 20, backoffMaxMs: 300,
          onResend: () => { resends++; }, onFallback: () => { fellBack = true; },
        },
      });
    } catch (e) {
      throw new Error(`capture ${c} (seed ${seed}, ${name}, ${size} bytes) failed: ${(e as Error).message}\nfaults: ${JSON.stringify(proxy.stats().fired)}\n${lines.join('\n')}`);
    } finally {
      await proxy.close();
    }
    const st = proxy.stats();
    const what = `capture ${c} (seed ${seed}, ${name})`;
    assert.equal(fellBack, false, `${what}: fell back to PUT + commit`);
    const storedPath = path.join(imagesDir, name);
    const stored = fs.readFileSync(storedPath);
    assert.equal(r.wireBytes, stored.length, `${what}: stored size`);
    assert.equal(createHash('sha256').update(stored).digest('hex'), r.sha256, `${what}: stored sha256`);
    assert.ok(decompress(format, stored).equals(disk), `${what}: the stored image does not decompress to the disk`);
    const first = seen.get(name);
    const now = fs.statSync(storedPath);
    if (first !== undefined) {
      assert.equal(first.ino, now.ino, `${what}: the name pointed at another file before`);
      assert.equal(first.size, now.size, `${what}: seen with ${first.size} bytes, final ${now.size}: a partial file under the final name`);
    }
    // the server's own record of it
    const meta = JSON.parse(fs.readFileSync(path.join(imagesDir, '.meta', `${name}.json`), 'utf8')) as { sha256: string; uncompressedSize?: number; via: string };
    assert.equal(meta.sha256, r.sha256);
    assert.equal(meta.uncompressedSize, size);
    assert.equal(meta.via, 'parts');
    if ((r.frames ?? 0) > 1) totals.multiFrame++;
    fs.rmSync(diskFile);
    totals.faults += st.faultsTotal;
    for (const k of Object.keys(st.faults) as FaultKind[]) totals.byKind[k] += st.faults[k];
    totals.resends += resends;
    totals.parts += Math.max(1, Math.ceil(stored.length / PART));
    totals.wire += stored.length;
    totals.read += size;
    byFormat[format]++;
  }

  let next = 0;
  try {
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => { while (next < CAPTURES) await one(next++); }));
  } finally {
    polling = false;
    await watcher;
  }

  // every final name was seen complete; nothing but committed images and the server's dot-dirs
  const finals = fs.readdirSync(imagesDir).filter((f) => !f.startsWith('.'));
  assert.equal(finals.length, CAPTURES);
  const temps = fs.readdirSync(imagesDir).filter((f) => f.startsWith('.') && f !== '.meta' && f !== '.uploads');
  assert.deepEqual(temps, [], 'temp files left in the images directory');
  // sessions left: only ones whose start answer was lost (nothing stored in them; they expire)
  const orphans = fs.readdirSync(path.join(imagesDir, '.uploads'));
  for (const o of orphans) {
    const files = fs.readdirSync(path.join(imagesDir, '.uploads', o));
    assert.ok(!files.some((f) => f.startsWith('part-')), `upload session ${o} holds parts but was never committed: ${files.join(', ')}`);
  }
  const seconds = (performance.now() - started) / 1000;
  const k = totals.byKind;
  process.stdout.write(`faults-capture: ${CAPTURES} captures (${byFormat.gzip} gzip, ${byFormat.zstd} zstd, ${byFormat.raw} raw; ${totals.multiFrame} multi-frame/member), ` +
    `${(totals.read / MiB).toFixed(1)} MiB read, ${(totals.wire / MiB).toFixed(1)} MiB stored in ${totals.parts} parts of ${PART / KiB} KiB; all bit-exact; ` +
    `faults injected: ${totals.faults} (cut ${k.cut}, reset ${k.reset}, stall ${k.stall}, throttle ${k.throttle}); part re-sends: ${totals.resends}; ` +
    `final names polled ${polls} times, never partial; orphaned empty sessions: ${orphans.length}; ${seconds.toFixed(1)} s\n`);
  assert.ok(totals.faults >= CAPTURES / 2, `too few faults fired (${totals.faults}) for the test to mean anything`);
  assert.ok(totals.resends >= CAPTURES / 5, `too few part re-sends (${totals.resends})`);
  assert.ok(totals.resends <= totals.faults, `more re-sends (${totals.resends}) than faults (${totals.faults}): a fault must cost at most one part`);
});
