// One measured run of a peer: wall time from the harness's clock, CPU and peak RSS from GNU time,
// which reports the rusage of the bash it starts, and through it of every process of the
// pipeline (the kernel folds waited-for children into their parent: CPU is summed, max RSS is
// the largest single process). The whole machine's CPU time over the same interval (/proc/stat)
// adds what no pipeline process is charged for: the loop device's kernel worker, softirqs of the
// loopback network, the origin server.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, q } from './shell.ts';

export type Sample = {
  wallS: number;
  userS: number;
  sysS: number;
  maxRssKiB: number;
  /** CPU seconds the whole machine spent busy (every CPU, every process and kernel thread) */
  machineBusyS: number;
  /** CPUs counted in /proc/stat */
  machineCpus: number;
  code: number;
  stdout: string;
  stderr: string;
};

/** USER_HZ: the unit of /proc/stat (100 on every Linux architecture booty runs on) */
const USER_HZ = 100;

/** Busy ticks of the whole machine (user, nice, system, irq, softirq, steal; not idle or iowait)
 *  and the number of CPUs, from /proc/stat. */
export function machineTicks(stat = readFileSync('/proc/stat', 'utf8')): { busy: number; cpus: number } {
  const lines = stat.split('\n');
  const all = lines.find((l) => l.startsWith('cpu '));
  if (all === undefined) throw new Error('/proc/stat has no "cpu " line');
  const [user, nice, system, , , irq, softirq, steal] = all.trim().split(/\s+/).slice(1).map(Number);
  return { busy: [user, nice, system, irq, softirq, steal].reduce((a, b) => a + (b ?? 0), 0), cpus: lines.filter((l) => /^cpu\d+ /.test(l)).length };
}

export async function measure(cmd: string, cwd: string): Promise<Sample> {
  const dir = mkdtempSync(join(tmpdir(), 'booty-bench-'));
  const out = join(dir, 'time');
  try {
    const ticks = machineTicks();
    const start = process.hrtime.bigint();
    const r = await run(`/usr/bin/time -f '%U %S %M' -o ${q(out)} bash -c ${q(`set -o pipefail; ${cmd}`)}`, { cwd });
    const wallS = Number(process.hrtime.bigint() - start) / 1e9;
    const busyS = (machineTicks().busy - ticks.busy) / USER_HZ;
    // GNU time writes "Command exited with non-zero status N" before the figures on failure.
    const lines = readFileSync(out, 'utf8').trim().split('\n');
    const [user, sys, rss] = (lines[lines.length - 1] ?? '').split(' ').map(Number);
    return {
      wallS,
      userS: user ?? NaN,
      sysS: sys ?? NaN,
      maxRssKiB: rss ?? NaN,
      machineBusyS: busyS,
      machineCpus: ticks.cpus,
      code: r.code,
      stdout: r.stdout,
      stderr: r.stderr,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
