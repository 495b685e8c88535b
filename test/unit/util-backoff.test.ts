import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay, defaultBackoff, withinBudget } from '../../src/util/backoff.ts';

test('delays grow exponentially up to the cap (no jitter)', () => {
  const opts = { ...defaultBackoff, jitter: 0 };
  const d = [0, 1, 2, 3, 4, 5, 6, 10, 50].map((a) => backoffDelay(a, opts));
  assert.deepEqual(d, [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]);
});

test('jitter only shortens, by at most the given fraction', () => {
  assert.equal(backoffDelay(2, defaultBackoff, () => 0), 4000);
  assert.equal(backoffDelay(2, defaultBackoff, () => 0.999999), Math.round(4000 * (1 - 0.2 * 0.999999)));
  for (let i = 0; i < 100; i++) {
    const d = backoffDelay(3, defaultBackoff);
    assert.ok(d <= 8000 && d >= 6400, String(d));
  }
});

test('budget: 0 is forever; otherwise the next wait must fit', () => {
  assert.ok(withinBudget(1e12, 30_000, 0));
  assert.ok(withinBudget(50_000, 10_000, 60_000));
  assert.ok(!withinBudget(55_000, 10_000, 60_000));
});
