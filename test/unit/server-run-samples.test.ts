// Progress samples per run (src/server/machines/run-samples.ts): the rate rule (kept samples at
// least the resolution apart, the newest always kept), the cap (halving: every second sample
// dropped, the first and last kept, the resolution doubled), the result's byte count as the last
// sample, and a store reopened on the same database carrying on where it was.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase } from '../../src/server/db.ts';
import { RunSamples } from '../../src/server/machines/run-samples.ts';

const T0 = Date.parse('2026-12-06T10:00:00Z');
const at = (ms: number) => new Date(T0 + ms).toISOString();
const progress = (ms: number, bytes: number, extra: Record<string, number> = {}) =>
  ({ type: 'progress' as const, time: at(ms), phase: 'writing' as const, bytes, rate: 0, ...extra });

function store(limits?: { maxPerRun?: number; baseResolutionMs?: number }) {
  const db = openDatabase(':memory:');
  db.prepare("INSERT INTO runs (id, mac, started, phases) VALUES (7, '52-54-00-00-00-07', ?, '[]')").run(at(0));
  return { db, samples: new RunSamples(db, limits) };
}

describe('run samples', () => {
  it('keeps samples at least the resolution apart, and always the newest', () => {
    const { samples } = store();
    // every 250 ms for 3 s: 13 reports
    for (let ms = 0; ms <= 3000; ms += 250) samples.progress(7, progress(ms, ms * 1000));
    const got = samples.samples(7).samples.map((s) => Date.parse(s.time) - T0);
    assert.deepEqual(got, [0, 1000, 2000, 3000]);
    assert.equal(samples.samples(7).samples.at(-1)!.bytes, 3_000_000);
    // a report 100 ms later is kept (the newest), provisionally: the next one replaces it
    samples.progress(7, progress(3100, 3_100_000));
    assert.deepEqual(samples.samples(7).samples.map((s) => Date.parse(s.time) - T0), [0, 1000, 2000, 3000, 3100]);
    samples.progress(7, progress(3400, 3_400_000));
    assert.deepEqual(samples.samples(7).samples.map((s) => Date.parse(s.time) - T0), [0, 1000, 2000, 3000, 3400]);
  });

  it('halves the resolution when a run passes the cap, keeping first and last, evenly spaced', () => {
    const { samples } = store({ maxPerRun: 100 });
    // a 10-hour run reporting every 2 s: 18 001 reports
    const end = 10 * 3600_000;
    for (let ms = 0; ms <= end; ms += 2000) samples.progress(7, progress(ms, ms, { resumes: ms >= end / 2 ? 1 : 0 }));
    const { resolutionMs, samples: kept } = samples.samples(7);
    assert.ok(kept.length <= 100 && kept.length > 50, `${kept.length} samples kept`);
    const times = kept.map((s) => Date.parse(s.time) - T0);
    assert.equal(times[0], 0, 'the first sample stays');
    assert.equal(times.at(-1), end, 'the last sample stays');
    assert.equal(kept.at(-1)!.bytes, end);
    // the resolution doubled until the run fits: 10 h / 100 samples needs at least 360 s
    assert.ok(resolutionMs >= 360_000 && resolutionMs <= 4 * 360_000, `resolution ${resolutionMs} ms`);
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    // evenly spaced: every gap within a factor of two of the resolution (the last is provisional)
    for (const g of gaps.slice(0, -1)) assert.ok(g >= resolutionMs / 2 && g <= resolutionMs * 2, `gap ${g} ms at resolution ${resolutionMs}`);
    // cumulative counters lose no resume: the samples after the middle carry it
    assert.equal(kept.at(-1)!.resumes, 1);
    assert.equal(kept[0].resumes, 0);
  });

  it('ends a run at its result\'s byte count; the network series ends at the last report', () => {
    const { samples } = store();
    samples.progress(7, progress(0, 0, { wireBytes: 0 }));
    samples.progress(7, progress(2000, 10_000_000, { wireBytes: 4_000_000 }));
    samples.progress(7, progress(4000, 20_000_000, { wireBytes: 8_000_000 }));
    samples.result(7, { type: 'result', time: at(5500), ok: true, action: 'deploy', bytes: 24_000_000, resumes: 2 });
    const kept = samples.samples(7).samples;
    assert.equal(kept.length, 4);
    assert.deepEqual(kept.at(-1), { time: at(5500), phase: 'writing', bytes: 24_000_000, resumes: 2 });
  });

  it('adds nothing for a result of a run without progress (a wipe, a failure before writing)', () => {
    const { samples } = store();
    samples.result(7, { type: 'result', time: at(5500), ok: false, action: 'deploy', code: 'X' });
    samples.result(7, { type: 'result', time: at(5500), ok: true, action: 'wipe', bytes: 10 });
    assert.deepEqual(samples.samples(7).samples, []);
  });

  it('carries on after a restart of the server (tail and resolution from the tables)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'booty-samples-'));
    try {
      const file = join(dir, 'booty.db');
      let db = openDatabase(file);
      db.prepare("INSERT INTO runs (id, mac, started, phases) VALUES (7, '52-54-00-00-00-07', ?, '[]')").run(at(0));
      let s = new RunSamples(db, { maxPerRun: 10 });
      for (let ms = 0; ms <= 20_000; ms += 1000) s.progress(7, progress(ms, ms));
      const before = s.samples(7);
      assert.ok(before.resolutionMs > 1000);
      db.close();
      db = openDatabase(file);
      s = new RunSamples(db, { maxPerRun: 10 });
      assert.deepEqual(s.samples(7), before);
      s.progress(7, progress(20_100, 20_100));
      s.progress(7, progress(20_200, 20_200));
      const after = s.samples(7).samples;
      assert.equal(after.length, before.samples.length + 1, 'the second report 100 ms later replaces the first');
      assert.equal(after.at(-1)!.bytes, 20_200);
      assert.ok(s.isRunOf('52-54-00-00-00-07', 7));
      assert.ok(!s.isRunOf('52-54-00-00-00-08', 7));
      s.forget([7]);
      assert.deepEqual(s.samples(7).samples, []);
      db.close();
    } finally { await rm(dir, { recursive: true, force: true }); }
  });
});
