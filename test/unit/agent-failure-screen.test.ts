import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatFailureScreen, screenWidth, wrap } from '../../src/agent/failure-screen.ts';
import { BootyError } from '../../src/util/errors.ts';

test('wrap keeps lines within the width and breaks long words', () => {
  const lines = wrap('one two three ' + 'x'.repeat(25), 10);
  assert.deepEqual(lines, ['one two', 'three', 'xxxxxxxxxx', 'xxxxxxxxxx', 'xxxxx']);
  assert.deepEqual(wrap('a\nb', 10), ['a', 'b']);
});

test('the box names the failure, the disk state, the server, the log and what comes next', () => {
  const err = new BootyError({ stage: 'verify', code: 'sha256-mismatch', message: 'image checksum mismatch (expected ab12, got 9f3c)', diskState: 'written-unverified', hint: 'check the sha256 in the action' });
  const s = formatFailureScreen({
    step: '6/7 run the action (deploy)', error: err, disk: '/dev/vda', mac: '52-54-00-12-34-56', address: '10.0.2.15/24',
    server: 'http://10.0.2.2:3000', reported: true, logPath: '/tmp/booty.log', next: 'a shell opens below; type exit to see this again',
  });
  const lines = s.split('\n');
  for (const l of lines) assert.equal(l.length, screenWidth, `line width: ${JSON.stringify(l)}`);
  assert.ok(lines.every((l) => /^[\x20-\x7e]*$/.test(l)), 'ASCII only');
  assert.match(s, /BOOTY FAILED at step 6\/7 run the action \(deploy\)/);
  assert.match(s, /What failed : verify: image checksum mismatch \(expected ab12, got 9f3c\)/);
  assert.match(s, /Do {10}: check the sha256 in the action/);
  assert.match(s, /Disk {8}: \/dev\/vda: image written but NOT verified: disk NOT bootable/);
  assert.match(s, /Machine {5}: 52-54-00-12-34-56 10\.0\.2\.15\/24/);
  assert.match(s, /Server {6}: http:\/\/10\.0\.2\.2:3000 \(the error was reported to it\)/);
  assert.match(s, /Full log {4}: \/tmp\/booty\.log/);
  assert.match(s, /Next {8}: a shell opens below/);
});

test('non-ASCII in messages is transliterated, so the box stays ASCII and aligned', () => {
  const err = new BootyError({ stage: 'verify', code: 'x', message: 'checksum mismatch (expected ab12\u2026, got 9f3c\u2026) \u2014 caf\u00e9' });
  const s = formatFailureScreen({ step: '6/7 run', error: err, logPath: '/tmp/booty.log', next: 'shell' });
  assert.match(s, /expected ab12\.\.\., got 9f3c\.\.\.\) -/);
  assert.match(s, /caf\?/);
  for (const l of s.split('\n')) { assert.equal(l.length, screenWidth); assert.ok(/^[\x20-\x7e]*$/.test(l)); }
});

test('plain errors, unknown disk state, unreachable server, long messages wrap inside the box', () => {
  const s = formatFailureScreen({ step: '4/7 network', error: new Error('no carrier on any interface '.repeat(6)), server: 'http://s', reported: false, logPath: '/tmp/booty.log', next: 'rebooting in 30 s', diskState: 'untouched', diskNote: 'wiped' });
  for (const l of s.split('\n')) assert.equal(l.length, screenWidth);
  assert.match(s, /internal error: no carrier/);
  assert.match(s, /NOT reachable: the error was not reported/);
  assert.match(s, /the disk was not written; wiped/);
  assert.ok(s.split('\n').filter((l) => l.includes('carrier')).length >= 2, 'wrapped');
  const u = formatFailureScreen({ step: 'x', error: 'boom', logPath: '/tmp/booty.log', next: 'n' });
  assert.match(u, /treat it as NOT bootable/);
  assert.doesNotMatch(u, /Server/);
});
