// The bench's whole-machine CPU accounting: busy ticks from /proc/stat (idle and iowait are not
// busy), and the per-row figures derived from them (CPU s/GiB of the machine, busy share, the
// MB/s the row would reach with every CPU busy on the same work).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { machineTicks } from '../../bench/lib/measure.ts';
import { stats, type RowResult } from '../../bench/lib/report.ts';

test('/proc/stat: user+nice+system+irq+softirq+steal are busy, idle and iowait are not; CPUs counted', () => {
  const stat = 'cpu  100 5 40 900 30 2 3 1 0 0\ncpu0 50 2 20 450 15 1 1 0 0 0\ncpu1 50 3 20 450 15 1 2 1 0 0\nintr 123\n';
  assert.deepEqual(machineTicks(stat), { busy: 100 + 5 + 40 + 2 + 3 + 1, cpus: 2 });
  const live = machineTicks();
  assert.ok(live.cpus >= 1 && live.busy > 0);
});

test('row stats: machine s/GiB, busy share and the all-CPUs ceiling', () => {
  const GiB = 2 ** 30;
  const row: RowResult = {
    id: 'x', section: 'deploy', label: 'x', booty: true, bytes: 2 * GiB,
    runs: [1, 2, 3].map((run) => ({ run, ok: true, wallS: 2, userS: 1, sysS: 1, maxRssKiB: 1024, machineBusyS: 3, machineCpus: 2 })),
  };
  const s = stats(row);
  assert.equal(s.machineCpuSPerGiB, 1.5);
  assert.equal(s.machineBusy, 0.75);
  // 2 CPUs / 1.5 CPU s per GiB = 1.33 GiB/s
  assert.ok(Math.abs(s.cpuCeilingMBps! - (2 / 1.5) * GiB / 1e6) < 1e-6);
  // records written before the machine figures existed
  const old = stats({ ...row, runs: row.runs.map(({ machineBusyS: _b, machineCpus: _c, ...r }) => r) });
  assert.equal(old.machineCpuSPerGiB, null);
  assert.equal(old.cpuCeilingMBps, null);
});
