// The VM bench reads each agent's phases off its serial console by the guest's own stamps; a
// regex with a group for alternatives once made the "done" phase NaN (the group was read as the
// time), which left the end-to-end ratio out of the table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bootyPhases, busyboxPhases, phaseTimes } from '../../bench/vm/console-phases.ts';

test('booty: every phase is a number of seconds; unpacked from inside its line, done from the reboot line', () => {
  const console = [
    '[    7.300001] booty: kernel: initramfs unpacked 1.200 -> 4.300 s (3.10 s, 51.4 MiB archive); /init run at 6.2 s',
    '[    7.400000] booty: step 1/7',
    '[   14.200000] booty: deploy: first bytes reached the writer',
    '[   39.500000] booty: deploy: wrote 2147483648 bytes',
    '[   45.812345] reboot: Restarting system',
  ].join('\n');
  const p = phaseTimes(console, bootyPhases);
  assert.equal(p.unpacked, 4.3);
  assert.equal(p.agent, 7.4);
  assert.equal(p['first byte'], 14.2);
  assert.equal(p.written, 39.5);
  assert.equal(p.done, 45.812345);
});

test('busybox: done from a power-down line; phases missing from the console stay undefined', () => {
  const p = phaseTimes('[  2.400000] bb: init started\r\n[117.9] reboot: Power down\n', busyboxPhases);
  assert.equal(p.init, 2.4);
  assert.equal(p.done, 117.9);
  assert.equal(p.written, undefined);
});

test('after a netboot: the terminal resets iPXE left in front of the first kernel line do not hide its stamp', () => {
  // as on the serial console of a SeaBIOS + iPXE boot (bench vm --boot ipxe)
  const console = 'http://10.233.1.1:3000/boot/bench-initrd.cpio... ok\r\n\x1bc\x1b[?7l\x1b[2J[    4.319] booty: /init: node v26.10.0 started as PID 1; loading the agent\r\n[    5.071] booty: step 1/7\r\n';
  const p = phaseTimes(console, bootyPhases);
  assert.equal(p.init, 4.319);
  assert.equal(p.agent, 5.071);
  // iPXE's "ok" cut short by the kernel's first line, on the same line
  const bb = phaseTimes('http://10.233.1.1:3000/boot/bench-initrd.cpio... o\x1bc\x1b[?7l\x1b[2J[2.10] bb: init started\r\n', busyboxPhases);
  assert.equal(bb.init, 2.1);
});
