// The gzip engine the decode worker keeps (gunzip-engine-choice.ts): the rule on given rates, the
// measurement on a fake clock with fake engines (alternated, best run of each, a broken or wrong
// engine never kept), and the sample on the real engines: node:zlib and `gzip -dc` both decode it
// to the same bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import zlib from 'node:zlib';
import { performance } from 'node:perf_hooks';
import { createRequire } from 'node:module';
import { threadCpuClock } from '../../src/sys/thread-cpu-clock.ts';
import { chooseGunzipEngine, decodeClock, gunzipSample, GunzipEngineTrial, MIN_TIMED_ROUNDS, ZLIB_MARGIN, type SampleDecode } from '../../src/image/parallel/gunzip-engine-choice.ts';

const MiB = 1 << 20;

test('the rule: node:zlib only when it measures more than the margin faster; igzip on a tie or a near tie', () => {
  assert.equal(chooseGunzipEngine({ isal: 1200, zlib: 800 }, MiB, 'wall time').engine, 'ISA-L igzip');
  assert.equal(chooseGunzipEngine({ isal: 100, zlib: 100 }, MiB, 'wall time').engine, 'ISA-L igzip');
  assert.equal(chooseGunzipEngine({ isal: 100, zlib: 100 * ZLIB_MARGIN }, MiB, 'wall time').engine, 'ISA-L igzip');
  const near = chooseGunzipEngine({ isal: 100, zlib: 105 }, MiB, 'wall time');
  assert.equal(near.engine, 'ISA-L igzip');
  assert.match(near.reason, /within 10 % of node:zlib, kept/);
  const tcg = chooseGunzipEngine({ isal: 61.23, zlib: 148.7 }, 1.5 * MiB, 'wall time');
  assert.equal(tcg.engine, 'node:zlib');
  assert.equal(tcg.reason, 'measured faster: igzip 61.2 MB/s, node:zlib 149 MB/s on a 1.5 MiB sample on this CPU, wall time');
  assert.deepEqual(tcg.rates, { isal: 61.2, zlib: 149 });
});

/** A fake engine that decodes right (copies the plain sample) and takes `ms[i]` on its i-th call. */
function fake(plain: Buffer, ms: number[], clock: { now: number }, calls: string[], name: string, wrong = false): SampleDecode {
  let i = 0;
  return (_gz, out) => {
    calls.push(name);
    clock.now += ms[Math.min(i++, ms.length - 1)];
    plain.copy(out);
    if (wrong) out[plain.length >> 1] ^= 1;
    return true;
  };
}

test('the trial: engines alternate, an untimed first round, each engine\'s best timed round kept; a choice runs the rounds still missing', () => {
  const sample = { plain: Buffer.alloc(2 * MiB, 7), gz: Buffer.alloc(0) };
  const clock = { now: 0 };
  const calls: string[] = [];
  // igzip: a slow first call (not counted), then 40 / 20 / 30 ms; zlib: 500 (first), 10 / 90 / 90
  const t = new GunzipEngineTrial({
    isal: fake(sample.plain, [500, 40, 20, 30, 30], clock, calls, 'isal'),
    zlib: fake(sample.plain, [500, 10, 90, 90, 90], clock, calls, 'zlib'),
  }, { now: () => clock.now, name: 'fake' }, sample);
  t.round();
  t.round();
  assert.equal(t.timedRounds, 1);
  assert.equal(MIN_TIMED_ROUNDS, 3);
  const c = t.choice();
  assert.equal(t.timedRounds, 3, 'the choice ran the two rounds missing');
  assert.deepEqual(calls, ['isal', 'zlib', 'isal', 'zlib', 'isal', 'zlib', 'isal', 'zlib']);
  assert.equal(c.engine, 'node:zlib');
  // 2 MiB in 20 ms and in 10 ms
  assert.deepEqual(c.rates, { isal: Math.round(2 * MiB / 1e6 / 0.02), zlib: Math.round(2 * MiB / 1e6 / 0.01) });
  // rounds spread out: one that ran alone (zlib 30 ms, igzip 12 ms) decides
  const calls2: string[] = [];
  const t2 = new GunzipEngineTrial({
    isal: fake(sample.plain, [500, 80, 90, 12, 70, 80], clock, calls2, 'isal'),
    zlib: fake(sample.plain, [500, 40, 45, 30, 35, 40], clock, calls2, 'zlib'),
  }, { now: () => clock.now, name: 'fake' }, sample);
  for (let i = 0; i < 6; i++) t2.round();
  assert.equal(t2.choice().engine, 'ISA-L igzip');
  assert.equal(calls2.length, 12, 'no round more than those run');
  // done: its buffers are freed, and another choice or round changes nothing
  t2.round();
  assert.equal(calls2.length, 12);
  assert.deepEqual(t2.choice(), t2.choice());
});

test('the trial frees its buffers when it has chosen (a detached ArrayBuffer is released at once)', () => {
  const sample = gunzipSample();
  const seen: ArrayBuffer[] = [];
  const keep: SampleDecode = (gz, out) => { seen.push(gz.buffer as ArrayBuffer, out.buffer as ArrayBuffer); return zlib.gunzipSync(gz).copy(out) === sample.plain.length; };
  let tick = 0;
  const t = new GunzipEngineTrial({ isal: keep, zlib: keep }, { now: () => (tick += 10), name: 'fake' }, sample);
  assert.equal(t.choice().engine, 'ISA-L igzip', 'a tie keeps igzip');
  assert.ok(seen.length > 0 && seen.every((ab) => ab.detached && ab.byteLength === 0), 'every buffer the engines were given is detached');
});

test('the trial: an engine that fails or decodes other bytes is never kept, however fast', () => {
  const sample = { plain: Buffer.alloc(MiB, 3), gz: Buffer.alloc(0) };
  for (const broken of ['isal', 'zlib'] as const) {
    for (const how of ['fails', 'wrong bytes'] as const) {
      const clock = { now: 0 };
      const calls: string[] = [];
      const good = fake(sample.plain, [50], clock, calls, 'good');
      const bad: SampleDecode = how === 'fails' ? () => false : fake(sample.plain, [1], clock, calls, 'bad', true);
      const c = new GunzipEngineTrial(broken === 'isal' ? { isal: bad, zlib: good } : { isal: good, zlib: bad }, { now: () => clock.now, name: 'fake' }, sample).choice();
      assert.equal(c.engine, broken === 'isal' ? 'node:zlib' : 'ISA-L igzip', `${broken} ${how}`);
      assert.equal(c.rates, undefined);
      assert.match(c.reason, /decoded the calibration sample wrong/);
    }
  }
  const neither = new GunzipEngineTrial({ isal: () => false, zlib: () => false }, { now: () => 0, name: 'fake' }, sample).choice();
  assert.equal(neither.engine, 'node:zlib');
});

test('the sample: deterministic, text, code and a zero run, and a gzip member that gzip(1) and node:zlib decode to it', () => {
  const a = gunzipSample();
  const b = gunzipSample();
  assert.ok(a.plain.equals(b.plain) && a.gz.equals(b.gz), 'the same bytes every time');
  assert.equal(a.plain.length, 1.4375 * MiB);
  assert.ok(a.plain.subarray(a.plain.length - MiB).every((x) => x === 0), 'ends in 1 MiB of zeros');
  const data = a.plain.subarray(0, a.plain.length - MiB);
  assert.ok(data.subarray(0, 4096).toString('latin1').match(/^[a-z \n]+$/), 'starts with words');
  const ratio = data.length / zlib.deflateRawSync(data).length;
  assert.ok(ratio > 1.5 && ratio < 6, `its data compresses as ordinary files do, not as zeros or noise (${ratio.toFixed(2)}x)`);
  assert.ok(execFileSync('gzip', ['-dc'], { input: a.gz, maxBuffer: 4 * MiB }).equals(a.plain), 'gzip -dc');
  assert.ok(zlib.gunzipSync(a.gz).equals(a.plain));
  // pinned: a change to the sample changes what every machine measures (README quotes rates on it)
  assert.equal(createHash('sha256').update(a.plain).digest('hex').slice(0, 16), PLAIN_SHA256_PREFIX);
});
const PLAIN_SHA256_PREFIX = '5b56c1a4fc28a29a';

test('the clock: the thread\'s CPU time through clock_gettime, precise to well under a millisecond; a clock that moves by ticks or fails is refused for wall time', () => {
  const cpu = threadCpuClock(createRequire(import.meta.url).resolve('koffi'));
  assert.ok(cpu !== undefined, 'koffi and libc load here');
  // taken (its probe fails only when every spin of it was preempted: the tests run side by side)
  let c = decodeClock(cpu);
  for (let i = 0; i < 20 && c.name !== 'thread CPU time'; i++) c = decodeClock(cpu);
  assert.equal(c.name, 'thread CPU time');
  // it reads a short spin as about its length (less when preempted), where a tick clock reads 0 or 4
  const readings: number[] = [];
  for (let i = 0; i < 50 && !readings.some((d) => d > 2 && d < 3); i++) {
    const t0 = c.now();
    const w0 = performance.now();
    while (performance.now() - w0 < 2.5) { /* spin */ }
    readings.push(c.now() - t0);
  }
  assert.ok(readings.some((d) => d > 2 && d < 3), `CPU ms for 2.5 ms spins: ${readings.join(', ')}`);
  // and it is this thread's: time asleep does not count
  const before = c.now();
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
  assert.ok(c.now() - before < 20, 'a 50 ms sleep is not CPU time');
  assert.equal(decodeClock(() => Math.floor(performance.now() / 4) * 4).name, 'wall time');
  assert.equal(decodeClock(() => Math.floor(performance.now())).name, 'wall time');
  assert.equal(decodeClock(() => { throw new Error('no clock'); }).name, 'wall time');
  assert.equal(decodeClock(undefined).name, 'wall time');
  assert.equal(threadCpuClock('/nonexistent/koffi/index.js'), undefined);
});
