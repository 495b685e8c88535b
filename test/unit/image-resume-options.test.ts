// The knobs of resuming deploys: --stall-timeout/--retry-for durations, the action fields
// restartOnChange/stallTimeout/retryFor (validated, naming the field), and the resume count in
// progress lines. Pure: no network, no disk.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDuration } from '../../src/util/duration.ts';
import { parseAction } from '../../src/config/parse.ts';
import { formatProgressLine, ProgressTracker } from '../../src/image/progress.ts';
import { BootyError } from '../../src/util/errors.ts';

test('durations: seconds by default, ms/s/m/h units; nonsense is undefined', () => {
  assert.equal(parseDuration('30'), 30_000);
  assert.equal(parseDuration('0.25'), 250);
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('30s'), 30_000);
  assert.equal(parseDuration('10m'), 600_000);
  assert.equal(parseDuration(' 1h '), 3_600_000);
  for (const bad of ['', 'soon', '10 minutes', '-5', '1e3', '5d', 's']) assert.equal(parseDuration(bad), undefined, bad);
});

test('deploy action: restartOnChange, stallTimeout and retryFor pass through; absent stays absent', () => {
  const a = parseAction({ action: 'deploy', image: 'http://10.0.0.1/i.gz', restartOnChange: true, stallTimeout: 12.5, retryFor: 900 });
  assert.equal(a.action, 'deploy');
  if (a.action !== 'deploy') return;
  assert.equal(a.restartOnChange, true);
  assert.equal(a.stallTimeout, 12.5);
  assert.equal(a.retryFor, 900);
  const b = parseAction({ action: 'deploy', image: 'http://10.0.0.1/i.gz' });
  assert.ok(b.action === 'deploy' && !('restartOnChange' in b) && !('retryFor' in b) && !('stallTimeout' in b));
});

test('deploy action: wrong types and ranges are refused naming the field', () => {
  for (const [field, value] of [['restartOnChange', 'yes'], ['stallTimeout', 0], ['stallTimeout', '30s'], ['retryFor', -1], ['retryFor', 1e9]] as const) {
    assert.throws(() => parseAction({ action: 'deploy', image: 'http://10.0.0.1/i.gz', [field]: value }), (e: unknown) => {
      assert.ok(e instanceof BootyError);
      assert.match(e.message, new RegExp(`"${field}"`), e.message);
      return true;
    });
  }
});

test('progress: resumes and restarts show in snapshots and lines only once they happened', () => {
  let now = 0;
  const t = new ProgressTracker({ total: 1000, now: () => now });
  t.bytes = 100;
  now = 1000;
  const before = t.snapshot();
  assert.equal(before.resumes, undefined);
  assert.doesNotMatch(formatProgressLine(before), /resume/);
  t.resumes = 2;
  t.restarts = 1;
  const after = t.snapshot();
  assert.equal(after.resumes, 2);
  assert.equal(after.restarts, 1);
  assert.match(formatProgressLine(after), /, 2 resumes, 1 restart$/);
});

test('deploy action: requireChecksum is a boolean, passed through; anything else names the field', () => {
  const a = parseAction({ action: 'deploy', image: 'http://10.0.0.1/i.raw', requireChecksum: true });
  assert.ok(a.action === 'deploy' && a.requireChecksum === true);
  assert.throws(() => parseAction({ action: 'deploy', image: 'http://10.0.0.1/i.raw', requireChecksum: 'yes' }), /requireChecksum/);
});
