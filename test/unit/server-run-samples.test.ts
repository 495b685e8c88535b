// Progress samples per run (src/server/machines/run-samples.ts): the rate rule (kept samples at
// least the resolution apart, the newest always kept), the cap (halving: every second sample
// dropped, the first and last kept, the resolution doubled), the result's byte count as the last
// sample, a store reopened on the same database carrying on where it was, and reports sent again
// (a retried batch) not kept twice. Over the state store on SQLite; both backends and two
// replicas: test/integration/state-store.test.ts.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RunSamples } from '../../src/server/machines/run-samples.ts';
import { SqliteStore } from '../../src/server/store/sqlite-store.ts';
import type { StoreTx } from '../../src/server/store/state-store.ts';

const T0 = Date.parse('2026-12-06T10:00:00Z');
const at = (ms: number) => new Date(T0 + ms).toISOString();
const progress = (ms: number, bytes: number, extra: Record<string, number> = {}) =>
  ({ type: 'progress' as const, time: at(ms), phase: 'writing' as const, bytes, rate: 0, ...extra });

const MAC = '52-54-00-00-00-07';
const stores: SqliteStore[] = [];
after(async () => { for (const s of stores) await s.close(); });

/** A store (SQLite in memory) with one run of MAC; each call of `tx` is one transaction, as the recorder's. */
async function store(limits?: { maxPerRun?: number; baseResolutionMs?: number }, file = ':memory:') {
  const db = SqliteStore.open(file);
  stores.push(db);
  const run = (await db.runs.latestId(MAC)) ?? await db.transaction((t) => t.runs.start(MAC, at(0), 'deploy', 'booting'));
  const samples = new RunSamples(db, limits);
  return { db, run, samples, tx: <T>(fn: (t: StoreTx) => Promise<T>) => db.transaction(fn) };
}

describe('run samples', () => {
  it('keeps samples at least the resolution apart, and always the newest', async () => {
    const { run, samples, tx } = await store();
    // every 250 ms for 3 s: 13 reports
    for (let ms = 0; ms <= 3000; ms += 250) await tx((t) => samples.progress(t, run, progress(ms, ms * 1000)));
    const times = async () => (await samples.samples(run)).samples.map((s) => Date.parse(s.time) - T0);
    assert.deepEqual(await times(), [0, 1000, 2000, 3000]);
    assert.equal((await samples.samples(run)).samples.at(-1)!.bytes, 3_000_000);
    // a report 100 ms later is kept (the newest), provisionally: the next one replaces it
    await tx((t) => samples.progress(t, run, progress(3100, 3_100_000)));
    assert.deepEqual(await times(), [0, 1000, 2000, 3000, 3100]);
    await tx((t) => samples.progress(t, run, progress(3400, 3_400_000)));
    assert.deepEqual(await times(), [0, 1000, 2000, 3000, 3400]);
    // the same reports again (a batch re-sent after its answer was lost) change nothing
    for (let ms = 2000; ms <= 3400; ms += 200) await tx((t) => samples.progress(t, run, progress(ms, ms * 1000)));
    assert.deepEqual(await times(), [0, 1000, 2000, 3000, 3400]);
  });

  it('halves the resolution when a run passes the cap, keeping first and last, evenly spaced', async () => {
    const { run, samples, tx } = await store({ maxPerRun: 100 });
    // a 10-hour run reporting every 2 s: 18 001 reports (in batches of 50, as an agent's queue sends them)
    const end = 10 * 3600_000;
    for (let from = 0; from <= end; from += 100_000) {
      await tx(async (t) => {
        for (let ms = from; ms < from + 100_000 && ms <= end; ms += 2000) await samples.progress(t, run, progress(ms, ms, { resumes: ms >= end / 2 ? 1 : 0 }));
      });
    }
    const { resolutionMs, samples: kept } = await samples.samples(run);
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

  it('ends a run at its result\'s byte count; the network series ends at the last report', async () => {
    const { run, samples, tx } = await store();
    const result = { type: 'result' as const, time: at(5500), ok: true, action: 'deploy' as const, bytes: 24_000_000, resumes: 2 };
    await tx(async (t) => {
      await samples.progress(t, run, progress(0, 0, { wireBytes: 0 }));
      await samples.progress(t, run, progress(2000, 10_000_000, { wireBytes: 4_000_000 }));
      await samples.progress(t, run, progress(4000, 20_000_000, { wireBytes: 8_000_000 }));
      await samples.result(t, run, result);
    });
    const kept = (await samples.samples(run)).samples;
    assert.equal(kept.length, 4);
    assert.deepEqual(kept.at(-1), { time: at(5500), phase: 'writing', bytes: 24_000_000, resumes: 2 });
    // the result sent again (a retried batch) is not a second last sample
    await tx((t) => samples.result(t, run, result));
    assert.deepEqual((await samples.samples(run)).samples, kept);
  });

  it('adds nothing for a result of a run without progress (a wipe, a failure before writing)', async () => {
    const { run, samples, tx } = await store();
    await tx((t) => samples.result(t, run, { type: 'result', time: at(5500), ok: false, action: 'deploy', code: 'X' }));
    await tx((t) => samples.result(t, run, { type: 'result', time: at(5500), ok: true, action: 'wipe', bytes: 10 }));
    assert.deepEqual((await samples.samples(run)).samples, []);
  });

  it('carries on after a restart of the server (tail and resolution from the tables)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'booty-samples-'));
    try {
      const file = join(dir, 'booty.db');
      let s = await store({ maxPerRun: 10 }, file);
      for (let ms = 0; ms <= 20_000; ms += 1000) await s.tx((t) => s.samples.progress(t, s.run, progress(ms, ms)));
      const before = await s.samples.samples(s.run);
      assert.ok(before.resolutionMs > 1000);
      await s.db.close();
      s = await store({ maxPerRun: 10 }, file);
      assert.deepEqual(await s.samples.samples(s.run), before);
      await s.tx((t) => s.samples.progress(t, s.run, progress(20_100, 20_100)));
      await s.tx((t) => s.samples.progress(t, s.run, progress(20_200, 20_200)));
      const after = (await s.samples.samples(s.run)).samples;
      assert.equal(after.length, before.samples.length + 1, 'the second report 100 ms later replaces the first');
      assert.equal(after.at(-1)!.bytes, 20_200);
      assert.ok(await s.samples.isRunOf(MAC, s.run));
      assert.ok(!await s.samples.isRunOf('52-54-00-00-00-08', s.run));
      await s.tx((t) => s.samples.forget(t, MAC));
      assert.deepEqual((await s.samples.samples(s.run)).samples, []);
    } finally { await rm(dir, { recursive: true, force: true }); }
  });
});
