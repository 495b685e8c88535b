import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseProcStat } from '../../src/agent/reaper.ts';
import { createAgentLog, formatStamp } from '../../src/agent/agent-log.ts';
import { wipeRanges } from '../../src/agent/wipe.ts';
import { shellCommand } from '../../src/agent/shell.ts';
import { makedev } from '../../src/sys/devnodes.ts';

test('/proc/<pid>/stat: comm with spaces and parentheses', () => {
  assert.deepEqual(parseProcStat('1234 (sleep) Z 1 1234 1234 0 -1 4194564'), { pid: 1234, comm: 'sleep', state: 'Z', ppid: 1 });
  assert.deepEqual(parseProcStat('77 (a (b) c) S 12 77 77'), { pid: 77, comm: 'a (b) c', state: 'S', ppid: 12 });
  assert.equal(parseProcStat('garbage'), undefined);
});

test('log: console filtered by level, ring keeps all, stamps shift when calibrated, file gets earlier lines', () => {
  const out: string[] = [];
  const l = createAgentLog({ write: (s) => out.push(s), ringSize: 3 });
  l.log.debug('d1');
  l.log.info('i1');
  l.log.warn('w1');
  assert.equal(out.length, 2);
  assert.match(out[0], /^\[ +\d+\.\d{3}\] booty: i1\n$/);
  assert.match(out[1], /booty: warn: w1\n$/);
  l.calibrate('1000.50 20.00');
  assert.ok(l.lines().every((x) => x.uptime > 999 && x.uptime <= 1000.5), 'earlier stamps moved to kernel time');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-log-'));
  try {
    const file = path.join(dir, 'booty.log');
    l.openFile(file);
    l.log.error('e1');
    l.closeFile();
    const text = fs.readFileSync(file, 'utf8');
    assert.deepEqual(text.trim().split('\n').map((x) => x.replace(/^\[ *[\d.]+\] /, '')), ['booty: debug: d1', 'booty: i1', 'booty: warn: w1', 'booty: error: e1'], 'the file gets every level');
    assert.equal(l.tail(2).length, 2);
    assert.match(l.tail(1)[0], /error: e1$/);
    l.setConsoleLevel('debug');
    l.log.debug('d2');
    assert.match(out[out.length - 1], /debug: d2/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(formatStamp(3.14159), '[    3.142]');
});

test('wipe ranges: head and tail, never overlapping, small disks zeroed whole', () => {
  const MiB = 1024 * 1024;
  assert.deepEqual(wipeRanges(4096 * MiB, 100 * MiB, MiB), [[0, 100 * MiB], [4095 * MiB, MiB]]);
  assert.deepEqual(wipeRanges(50 * MiB, 100 * MiB, MiB), [[0, 50 * MiB]]);
  assert.deepEqual(wipeRanges(100 * MiB + 512, 100 * MiB, MiB), [[0, 100 * MiB], [100 * MiB, 512]]);
  assert.deepEqual(wipeRanges(0, 100 * MiB, MiB), []);
});

test('shell: busybox with setsid + cttyhack when present, else sh, else none', () => {
  assert.deepEqual(shellCommand((p) => p === '/bin/busybox' || p === '/bin/sh'), { file: '/bin/busybox', args: ['setsid', 'cttyhack', 'sh'] });
  assert.deepEqual(shellCommand((p) => p === '/usr/bin/sh'), { file: '/usr/bin/sh', args: [] });
  assert.equal(shellCommand(() => false), undefined);
});

test('makedev matches glibc for small and large numbers', () => {
  assert.equal(makedev(5, 1), 0x501n);
  assert.equal(makedev(1, 3), 0x103n);
  assert.equal(makedev(259, 0), 0x10300n);
  assert.equal(makedev(4096, 256), (1n << 44n) | (1n << 20n));
});
