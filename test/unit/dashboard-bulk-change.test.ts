// The dashboard's bulk form turned into changes (src/server/dashboard/bulk-change.js): hostname
// patterns numbered in the selection's order, the action per kind, disk hints that are not JSON
// refused with a sentence, registrations parsed from "MAC name" lines.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
// @ts-expect-error plain JavaScript served to browsers, without types
import { buildChanges, fillPattern, parseRegistrations } from '../../src/server/dashboard/bulk-change.js';

const sel = [{ mac: '52-54-00-00-00-0b', name: 'rack1-u2' }, { mac: '52-54-00-00-00-0a' }];
const base = { action: 'keep', image: '', sha256: '', disk: '', diskHints: '', hostname: '', start: '1', captureInto: '', origin: 'http://s:3000', wipeMethod: 'quick', persistence: 'keep', rearm: false };

describe('dashboard bulk-change.js', () => {
  it('numbers hostname patterns in the selection order, with padding, MAC and name', () => {
    assert.equal(fillPattern('web{n}', 0, sel[0]), 'web1');
    assert.equal(fillPattern('web{n:3}', 6, sel[0], 5), 'web011');
    assert.equal(fillPattern('{name}-{mac}', 1, sel[1]), '52-54-00-00-00-0a-52-54-00-00-00-0a');
    const { changes } = buildChanges(sel, { ...base, action: 'deploy', image: 'http://s:3000/images/u.img', sha256: 'ab'.repeat(32), disk: '/dev/sda', hostname: 'web{n}', start: '7' });
    assert.deepEqual(changes, [
      { mac: sel[0].mac, action: { action: 'deploy', image: 'http://s:3000/images/u.img', disk: '/dev/sda', sha256: 'ab'.repeat(32), post: { hostname: 'web7' } } },
      { mac: sel[1].mac, action: { action: 'deploy', image: 'http://s:3000/images/u.img', disk: '/dev/sda', sha256: 'ab'.repeat(32), post: { hostname: 'web8' } } },
    ]);
  });
  it('builds capture, wipe and none actions, persistence and re-arm', () => {
    const cap = buildChanges(sel, { ...base, action: 'capture', captureInto: 'golden-{n}.img', diskHints: '{"transport":"nvme"}', persistence: 'persistent' }).changes;
    assert.deepEqual(cap[1], { mac: sel[1].mac, action: { action: 'capture', upload: 'http://s:3000/images/golden-2.img', diskHints: { transport: 'nvme' } }, persistent: true });
    assert.deepEqual(buildChanges(sel, { ...base, action: 'wipe', wipeMethod: 'zero' }).changes[0].action, { action: 'wipe', method: 'zero' });
    assert.deepEqual(buildChanges(sel, { ...base, action: 'none', persistence: 'one-shot', rearm: true }).changes[0], { mac: sel[0].mac, action: { action: 'none' }, persistent: false, rearm: true });
  });
  it('refuses what it cannot build, with a sentence', () => {
    assert.match(buildChanges(sel, { ...base, action: 'wipe', diskHints: '{transport' }).problem, /^the disk hints are not JSON/);
    assert.match(buildChanges(sel, base).problem, /^nothing to change/);
  });
  it('parses registrations: MAC and optional name per line, comments and blanks skipped', () => {
    assert.deepEqual(parseRegistrations('52:54:00:aa:bb:01 rack1-u1\n\n# spare\n52:54:00:aa:bb:02\n52:54:00:aa:bb:03, rack1-u3'), [
      { mac: '52:54:00:aa:bb:01', name: 'rack1-u1' }, { mac: '52:54:00:aa:bb:02' }, { mac: '52:54:00:aa:bb:03', name: 'rack1-u3' },
    ]);
  });
});
