// The orphan reaper of PID 1, run in a child process that is made a subreaper (so it adopts
// orphans as init does) without needing to be PID 1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';

const child = path.join(import.meta.dirname, '../fixtures/agent/reaper-child.ts');

function runChild(mode: 'reap' | 'none'): { codes: (number | null)[]; zombies: number; reaped: number } {
  const out = execFileSync(process.execPath, ['--disable-warning=ExperimentalWarning', child, mode], { encoding: 'utf8', timeout: 60_000 });
  return JSON.parse(out.trim().split('\n').pop() as string);
}

test('without a reaper, exited orphans stay zombies (the problem is real)', () => {
  const r = runChild('none');
  assert.equal(r.zombies, 9);
});

test('the reaper reaps every orphan and never steals the exit of a child Node spawned', () => {
  const r = runChild('reap');
  assert.deepEqual(r.codes, [0, 0, 0, 1, 2, 3, 4, 5, 6]);
  assert.equal(r.zombies, 0);
  assert.equal(r.reaped, 9);
});
