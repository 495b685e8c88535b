// The agent's "kernel: initramfs unpacked ..." line, read from /dev/kmsg records as the Debian 6.1
// kernel writes them (`quiet` keeps them off the console, not out of the log).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { describeKernelTimeline, parseKernelTimeline, readKmsg } from '../../src/agent/kernel-timeline.ts';

const records = [
  '5,0,0,-;Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org) (gcc-12) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2\n',
  '6,412,1033512,-;Trying to unpack rootfs image as initramfs...\n',
  '6,420,1205003,-;Freeing unused decrypted memory: 2036K\n',
  '6,511,4120877,-;Freeing initrd memory: 52640K\n',
  '6,530,4380001,-;Run /init as init process\n',
  '6,531,4380002,-;  with arguments:\n',
];

test('the unpack span and the /init exec come out in seconds since kernel start', () => {
  const t = parseKernelTimeline(records);
  assert.deepEqual(t, { unpackStart: 1.033512, unpackEnd: 4.120877, freedKiB: 52640, initRun: 4.380001 });
  assert.equal(describeKernelTimeline(t), 'kernel: initramfs unpacked 1.034 -> 4.121 s (3.09 s, 51.4 MiB archive); /init run at 4.380 s');
});

test('a log without those records gives no line; a malformed record is skipped', () => {
  assert.equal(describeKernelTimeline(parseKernelTimeline(['garbage', '6,1,x,-;Run /init as init process'])), undefined);
  assert.equal(describeKernelTimeline(parseKernelTimeline(['6,1,2000000,-;Run /init as init process'])), 'kernel: /init run at 2.000 s');
});

test('readKmsg reads nothing from a missing file instead of throwing', () => {
  assert.deepEqual(readKmsg(10, path.join(os.tmpdir(), `no-kmsg-${process.pid}`)), []);
});

test('readKmsg reads the host kernel\'s records when it may (root)', { skip: !fs.existsSync('/dev/kmsg') || process.getuid?.() !== 0 ? 'needs /dev/kmsg as root' : false }, () => {
  const recs = readKmsg(50);
  assert.ok(recs.length > 0 && recs.length <= 50);
  assert.match(recs[0]!, /^\d+,\d+,\d+,/);
});
