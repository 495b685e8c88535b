// The machine page's chart arithmetic (src/server/dashboard/chart-scale.js, plain ES module
// without the DOM): nice value ticks, time ticks in s/min/h from a 10-second to a 10-hour run,
// their labels, phases as timeline segments and samples as throughput intervals whose bytes add
// up to what was written.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
// @ts-expect-error: a browser module in plain JavaScript, without type declarations
import * as scale from '../../src/server/dashboard/chart-scale.js';

interface Interval { start: number; end: number; diskBytes: number; disk: number; netBytes?: number; net?: number }
const s = scale as {
  linear(d0: number, d1: number, r0: number, r1: number): (v: number) => number;
  niceStep(raw: number): number;
  valueTicks(max: number, count?: number): { max: number; step: number; ticks: number[] };
  timeTicks(seconds: number, maxTicks?: number): { step: number; ticks: number[] };
  formatTimeTick(t: number, step: number): string;
  formatRateTick(v: number, step: number): string;
  timelineSegments(phases: { phase: string; time: string }[], endMs: number): { segments: { phase: string; stage: string; start: number; end: number }[]; results: { phase: string; at: number }[] };
  throughputIntervals(samples: Record<string, unknown>[], startMs: number): { intervals: Interval[]; marks: { at: number; kind: string; count: number }[]; diskBytes: number; netBytes: number };
};

const T0 = Date.parse('2026-12-06T10:00:00Z');
const at = (sec: number) => new Date(T0 + sec * 1000).toISOString();

describe('chart scales', () => {
  it('linear maps a domain onto a range (flipped for a y axis)', () => {
    const y = s.linear(0, 100, 170, 10);
    assert.equal(y(0), 170);
    assert.equal(y(100), 10);
    assert.equal(y(50), 90);
    assert.equal(s.linear(5, 5, 1, 9)(5), 1, 'a zero-width domain does not divide by zero');
  });

  it('value ticks are 1, 2 or 5 times a power of ten and cover the maximum', () => {
    assert.deepEqual([0.7, 1, 1.3, 3, 7, 12, 480].map(s.niceStep), [1, 1, 2, 5, 10, 20, 500]);
    const t = s.valueTicks(117e6, 4);
    assert.equal(t.step, 50e6);
    assert.deepEqual(t.ticks, [0, 50e6, 100e6, 150e6]);
    assert.equal(t.max, 150e6);
    assert.equal(s.valueTicks(0).max, 1, 'an idle run still gets an axis');
    assert.equal(s.formatRateTick(150e6, 50e6), '150 MB/s');
    assert.equal(s.formatRateTick(0.4e6, 0.2e6), '0.4 MB/s');
    assert.equal(s.formatRateTick(0.05e6, 0.05e6), '0.05 MB/s');
  });

  it('time ticks step in seconds, minutes or hours and stay within the count, up to a 10-hour run', () => {
    const cases: [number, number, number][] = [[12, 6, 2], [45, 6, 10], [200, 6, 60], [1500, 6, 300], [4 * 3600, 6, 3600], [10 * 3600, 6, 7200], [10 * 3600, 12, 3600]];
    for (const [span, max, step] of cases) {
      const t = s.timeTicks(span, max);
      assert.equal(t.step, step, `${span} s in at most ${max} ticks`);
      assert.ok(t.ticks.length - 1 <= max);
      assert.equal(t.ticks[0], 0);
      assert.ok(t.ticks.at(-1)! <= span && t.ticks.at(-1)! + step > span);
    }
    assert.deepEqual(s.timeTicks(10 * 3600, 6).ticks.map((v) => s.formatTimeTick(v, 7200)), ['0', '2 h', '4 h', '6 h', '8 h', '10 h']);
    assert.deepEqual(s.timeTicks(45, 6).ticks.map((v) => s.formatTimeTick(v, 10)), ['0', '10 s', '20 s', '30 s', '40 s']);
    assert.deepEqual([0, 300, 600, 3600, 5400].map((v) => s.formatTimeTick(v, 300)), ['0', '5 min', '10 min', '1 h', '1 h 30 min']);
    assert.equal(s.formatTimeTick(90, 30), '1 min 30 s');
  });
});

describe('a run as pictures', () => {
  it('phases become segments up to the next phase; done/failed are marks', () => {
    const phases = [['booting', 0], ['dhcp', 3], ['fetching-action', 5], ['writing', 6], ['growing', 40], ['configuring', 44], ['done', 50], ['done', 50], ['rebooting', 50]]
      .map(([phase, t]) => ({ phase: phase as string, time: at(t as number) }));
    const { segments, results } = s.timelineSegments(phases, T0 + 52_000);
    assert.deepEqual(segments.map((x) => [x.phase, x.stage, (x.start - T0) / 1000, (x.end - T0) / 1000]), [
      ['booting', 'boot', 0, 3], ['dhcp', 'boot', 3, 5], ['fetching-action', 'action', 5, 6], ['writing', 'write', 6, 40],
      ['growing', 'grow', 40, 44], ['configuring', 'post', 44, 50], ['rebooting', 'reboot', 50, 52]]);
    assert.deepEqual(results.map((r) => [r.phase, (r.at - T0) / 1000]), [['done', 50]]);
  });

  it('samples become intervals whose bytes add up to the last sample; resumes and restarts are marked', () => {
    const samples = [
      { time: at(2), bytes: 20e6, wireBytes: 8e6 },
      { time: at(4), bytes: 60e6, wireBytes: 24e6 },
      { time: at(6), bytes: 80e6, wireBytes: 32e6, resumes: 1 },
      { time: at(6), bytes: 82e6, wireBytes: 33e6, resumes: 1 }, // same instant: added to the next interval
      { time: at(8), bytes: 100e6, resumes: 1 }, // the result's count: no network figure
    ];
    const r = s.throughputIntervals(samples, T0);
    assert.equal(r.diskBytes, 100e6);
    assert.equal(r.netBytes, 33e6);
    assert.deepEqual(r.intervals.map((i) => [(i.start - T0) / 1000, (i.end - T0) / 1000, i.disk / 1e6, i.net === undefined ? null : i.net / 1e6]),
      [[0, 2, 10, 4], [2, 4, 20, 8], [4, 6, 10, 4], [6, 8, 10, null]]);
    assert.deepEqual(r.marks.map((m) => [m.kind, (m.at - T0) / 1000, m.count]), [['resume', 6, 1]]);
    const restart = s.throughputIntervals([{ time: at(2), bytes: 50e6 }, { time: at(4), bytes: 10e6, restarts: 1 }, { time: at(6), bytes: 30e6, restarts: 1 }], T0);
    assert.equal(restart.diskBytes, 80e6, 'bytes written before the restart count: they were written');
    assert.deepEqual(restart.marks.map((m) => m.kind), ['restart']);
  });

  it('a 10-hour run of 2000 samples gives 2000 intervals and the whole byte count', () => {
    const samples = Array.from({ length: 2000 }, (_, i) => ({ time: at((i + 1) * 18), bytes: (i + 1) * 5e8, wireBytes: (i + 1) * 2e8 }));
    const r = s.throughputIntervals(samples, T0);
    assert.equal(r.intervals.length, 2000);
    assert.equal(r.diskBytes, 2000 * 5e8);
    assert.ok(r.intervals.every((i) => Math.abs(i.disk - 5e8 / 18) < 1e-3));
  });
});
