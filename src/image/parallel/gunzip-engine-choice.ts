// Which engine inflates a gzip stream on the decode worker, decided by measuring both on the CPU
// the deploy runs on. ISA-L's igzip is the faster on real x86-64 CPUs, but it is hand-written
// SIMD: under an emulator (QEMU's TCG, where CI builds VM images and where booty's own e2e tests
// boot) every vector instruction is translated in software and node:zlib's C inflate is far the
// faster (README, "Which inflate, measured"). Nothing at run time says reliably which CPU this
// is (a hypervisor bit covers KVM guests too, where igzip wins), so both engines are timed on one
// small deterministic sample, of text, machine code and a zero run, by a thread that would wait
// anyway (gunzip-engines.ts says which), and the faster is kept. The rule, the sample and the
// trial are pure, so the unit tests drive them with fake clocks and fake engines.
import { performance } from 'node:perf_hooks';
import zlib from 'node:zlib';

export type GunzipEngine = 'ISA-L igzip' | 'node:zlib';

/** What the worker tells the main thread about the engine it inflates with. */
export interface GunzipEngineChoice {
  engine: GunzipEngine;
  /** why, in words for the deploy's log line */
  reason: string;
  /** output MB/s of each engine on the sample, where both were measured */
  rates?: { isal: number; zlib: number };
}

/** igzip is kept unless node:zlib measures this much faster: the sample is not the image, and on
 *  the CPUs where igzip wins it wins on every image (README), so a near tie keeps it. */
export const ZLIB_MARGIN = 1.1;

/** The rule: the faster engine on the sample, igzip on a near tie. */
export function chooseGunzipEngine(rates: { isal: number; zlib: number }, sampleBytes: number, clock: string): GunzipEngineChoice {
  const r = { isal: round(rates.isal), zlib: round(rates.zlib) };
  const said = `igzip ${r.isal} MB/s, node:zlib ${r.zlib} MB/s on a ${(sampleBytes / (1 << 20)).toFixed(1)} MiB sample on this CPU, ${clock}`;
  if (rates.zlib > rates.isal * ZLIB_MARGIN) return { engine: 'node:zlib', reason: `measured faster: ${said}`, rates: r };
  return { engine: 'ISA-L igzip', reason: `measured ${rates.zlib > rates.isal ? `within ${Math.round((ZLIB_MARGIN - 1) * 100)} % of node:zlib, kept` : 'faster'}: ${said}`, rates: r };
}

function round(x: number): number {
  return x >= 100 ? Math.round(x) : Math.round(x * 10) / 10;
}

// The sample: 256 KiB of text-like words, 192 KiB of code-like bytes (few distinct values, some
// repeats), 1 MiB of zeros (a disk image's free space), gzip level 6 (gzip's default, what
// operators' images are). Deterministic: the same bytes on every machine.
const TEXT = 256 << 10;
const CODE = 192 << 10;
const ZEROS = 1 << 20;

/** The decoded sample (deterministic) and its gzip member. */
export function gunzipSample(): { plain: Buffer; gz: Buffer } {
  let s = 0x2545f491;
  // xorshift32: fixed seed, so every machine times the same bytes
  const next = () => { s ^= s << 13; s ^= s >>> 17; s ^= s << 5; return s >>> 0; };
  const words = Array.from({ length: 512 }, () => {
    const w = Buffer.alloc(3 + (next() % 9));
    for (let i = 0; i < w.length - 1; i++) w[i] = 97 + (next() % 26);
    w[w.length - 1] = 0x20;
    return w;
  });
  const plain = Buffer.alloc(TEXT + CODE + ZEROS);
  let at = 0;
  while (at < TEXT) {
    // a skewed choice of word, as in prose: short common words come back often
    const r = next();
    const w = words[(r & 0xffff) % (((r >>> 16) & 3) === 0 ? 512 : 32)];
    at += w.copy(plain, at, 0, Math.min(w.length, TEXT - at));
    if (r % 13 === 0) plain[at - 1] = 0x0a;
  }
  const codeEnd = TEXT + CODE;
  const opcodes = Array.from({ length: 48 }, () => next() & 0xff);
  while (at < codeEnd) {
    const r = next();
    if ((r & 7) === 0 && at > TEXT + 64) {
      // a repeat of a recent sequence (prologues, relocations)
      const from = at - 8 - ((r >>> 8) & 63);
      at += plain.copy(plain, at, from, from + Math.min(4 + ((r >>> 3) & 15), codeEnd - at));
    } else {
      plain[at++] = (r & 0x30) === 0 ? (r >>> 24) : opcodes[(r >>> 8) % opcodes.length];
    }
  }
  return { plain, gz: zlib.gzipSync(plain, { level: 6 }) };
}

/** Decodes the whole member `gz` into `out` once (an engine under test); false when it failed. */
export type SampleDecode = (gz: Buffer, out: Buffer) => boolean;

/** The clock the measurement reads, in milliseconds, and what it is. */
export interface Clock {
  now: () => number;
  name: string;
}

/**
 * The clock for the trial: the calling thread's CPU time (`cpu`, src/sys/thread-cpu-clock.ts),
 * what a decode costs whatever else the CPU runs meanwhile (on one vCPU the agent's main thread
 * preempts the worker during its start-up, and wall time would charge that to the engine being
 * timed); checked to be precise first (a 1.5 ms spin must read between 1.2 and 1.8 ms, where a
 * clock that moves by whole ticks reads 0, 1, 2 or 4), else wall time.
 */
export function decodeClock(cpu: (() => number) | undefined): Clock {
  const wall: Clock = { now: () => performance.now(), name: 'wall time' };
  if (cpu === undefined) return wall;
  try {
    for (let i = 0; i < 3; i++) {
      const c0 = cpu();
      const w0 = performance.now();
      while (performance.now() - w0 < 1.5) { /* spin */ }
      const d = cpu() - c0;
      if (d >= 1.2 && d <= 1.8) return { now: cpu, name: 'thread CPU time' };
    }
  } catch { /* a clock that fails: wall time */ }
  return wall;
}

/** Timed rounds a choice waits for at least (the worker runs what is missing at once). */
export const MIN_TIMED_ROUNDS = 3;

/**
 * Both engines timed on the sample, one round at a time: each round runs igzip then node:zlib
 * (a burst of load on a shared machine falls on both); the first round is untimed (first-call
 * costs: tables, koffi's call path); each engine's best round counts. Rounds can be spread out
 * in time (the prestarted worker runs one every so often while it waits): on one CPU the main
 * thread's own start-up work preempts some of them, and the best of rounds far apart is the
 * one that ran alone. An engine that fails or decodes other bytes is never kept.
 */
export class GunzipEngineTrial {
  /** timed rounds so far */
  timedRounds = 0;
  private rounds = 0;
  private readonly best = { isal: Infinity, zlib: Infinity };
  private readonly broken = { isal: false, zlib: false };
  private readonly decoders: { isal: SampleDecode; zlib: SampleDecode };
  private readonly clock: Clock;
  // the decoded sample is known by its length and CRC-32 only: its bytes are not kept
  private readonly size: number;
  private readonly crc: number;
  /** the member and the output room, in ArrayBuffers of their own: choice() frees them at once
   *  (a worker that allocates next to nothing would keep them to the end of the deploy, waiting
   *  for a major collection) */
  private gz: Buffer | undefined;
  private out: Buffer | undefined;
  private chosen: GunzipEngineChoice | undefined;

  constructor(decoders: { isal: SampleDecode; zlib: SampleDecode }, clock: Clock, sample: { plain: Buffer; gz: Buffer } = gunzipSample()) {
    this.decoders = decoders;
    this.clock = clock;
    this.size = sample.plain.length;
    this.crc = zlib.crc32(sample.plain);
    this.gz = Buffer.allocUnsafeSlow(sample.gz.length);
    sample.gz.copy(this.gz);
    this.out = Buffer.allocUnsafeSlow(this.size + 1);
  }

  round(): void {
    const { gz, out } = this;
    if (gz === undefined || out === undefined) return;
    const timed = this.rounds++ > 0;
    for (const which of ['isal', 'zlib'] as const) {
      if (this.broken[which]) continue;
      out.fill(0xa5, 0, 64);
      const t0 = this.clock.now();
      const ok = this.decoders[which](gz, out);
      const ms = this.clock.now() - t0;
      if (!ok || zlib.crc32(out.subarray(0, this.size)) !== this.crc) { this.broken[which] = true; continue; }
      if (timed) this.best[which] = Math.min(this.best[which], ms);
    }
    if (timed) this.timedRounds++;
  }

  /** The choice: rounds run first until MIN_TIMED_ROUNDS were timed; then the trial's buffers are freed. */
  choice(): GunzipEngineChoice {
    if (this.chosen !== undefined) return this.chosen;
    while (this.timedRounds < MIN_TIMED_ROUNDS) this.round();
    for (const b of [this.gz, this.out]) (b?.buffer as ArrayBuffer | undefined)?.transfer(0);
    this.gz = undefined;
    this.out = undefined;
    this.chosen = this.decide();
    return this.chosen;
  }

  private decide(): GunzipEngineChoice {
    const { isal, zlib: z } = this.broken;
    if (isal && z) return { engine: 'node:zlib', reason: 'neither engine decoded the calibration sample right: node:zlib, whose errors the deploy reports' };
    if (isal) return { engine: 'node:zlib', reason: 'igzip decoded the calibration sample wrong' };
    if (z) return { engine: 'ISA-L igzip', reason: 'node:zlib decoded the calibration sample wrong' };
    const mb = this.size / 1e6;
    // a clock too coarse to see a run (a 0 ms reading) counts as a 1 µs run
    const rate = (ms: number) => mb / (Math.max(ms, 0.001) / 1000);
    return chooseGunzipEngine({ isal: rate(this.best.isal), zlib: rate(this.best.zlib) }, this.size, this.clock.name);
  }
}
