// One measured run of a peer: wall time from the harness's clock, CPU and peak RSS from GNU time,
// which reports the rusage of the bash it starts, and through it of every process of the
// pipeline (the kernel folds waited-for children into their parent: CPU is summed, max RSS is
// the largest single process).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, q } from './shell.ts';

export type Sample = {
  wallS: number;
  userS: number;
  sysS: number;
  maxRssKiB: number;
  code: number;
  stdout: string;
  stderr: string;
};

export async function measure(cmd: string, cwd: string): Promise<Sample> {
  const dir = mkdtempSync(join(tmpdir(), 'booty-bench-'));
  const out = join(dir, 'time');
  try {
    const start = process.hrtime.bigint();
    const r = await run(`/usr/bin/time -f '%U %S %M' -o ${q(out)} bash -c ${q(`set -o pipefail; ${cmd}`)}`, { cwd });
    const wallS = Number(process.hrtime.bigint() - start) / 1e9;
    // GNU time writes "Command exited with non-zero status N" before the figures on failure.
    const lines = readFileSync(out, 'utf8').trim().split('\n');
    const [user, sys, rss] = (lines[lines.length - 1] ?? '').split(' ').map(Number);
    return {
      wallS,
      userS: user ?? NaN,
      sysS: sys ?? NaN,
      maxRssKiB: rss ?? NaN,
      code: r.code,
      stdout: r.stdout,
      stderr: r.stderr,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
