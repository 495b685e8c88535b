// The kernel writes its log lines to the serial console between any two bytes a guest program is
// writing; the end-to-end tests read the guest's marker lines (BOOTY-EFI, BOOTY-TEST-MARKER) from
// the console without them. The case below is the shape that failed a CI run: the BootOrder line
// lost its prefix and the test found no BootOrder at all.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { firstTroubleLines, withoutKernelLines } from '../helpers/qemu.ts';

test('a kernel log line inside a marker line is taken out and the marker line is whole again', () => {
  const console = 'BOOTY-EFI Timeout: 0 seconds\r\n'
    + 'BOOTY-EF[   12.905739] sd 2:0:0:0: Attached scsi generic sg0 type 0\r\n'
    + 'I BootOrder: 0008,0000,0001\r\n'
    + 'BOOTY-TEST-MARKER variant=uefi [   13.573879] input: Power Button as /devices/LNXSYSTM:00/LNXPWRBN:00/input/input3\r\n'
    + 'rootfs_bytes=3\r\n';
  const clean = withoutKernelLines(console);
  assert.equal(clean, 'BOOTY-EFI Timeout: 0 seconds\r\nBOOTY-EFI BootOrder: 0008,0000,0001\r\nBOOTY-TEST-MARKER variant=uefi rootfs_bytes=3\r\n');
  assert.deepEqual([...clean.matchAll(/BOOTY-EFI ([^\r\n]*)\r*\n/g)].map((m) => m[1]), ['Timeout: 0 seconds', 'BootOrder: 0008,0000,0001']);
});

test('systemd status lines and text without a kernel timestamp stay', () => {
  const text = '[  OK  ] Started systemd-networkd.service - Network Configuration.\r\nbooting from the local disk\r\n[1.5] not the kernel\r\n';
  assert.equal(withoutKernelLines(text), text);
});

// A failed wait reports the kernel's first signs of trouble before the console's tail: in a CI run
// the tail held only EXT4's I/O errors, not what started them.
test('firstTroubleLines: the start of a cascade, in order, without the boot lines that merely mention the words', () => {
  const console = '[    0.000000] Command line: BOOT_IMAGE=/vmlinuz root=/dev/x ro nvme_core.io_timeout=600\r\n'
    + '[    0.383000] APIC: Switch to symmetric I/O mode setup\r\n'
    + '[   10.021151] systemd[1]: Mounting sys-kernel-debug.mount - Kernel Debug File System...\r\n'
    + '[   11.200000] EXT4-fs (dm-0): re-mounted. Opts: errors=remount-ro. Quota mode: none.\r\n'
    + 'BOOTY-TEST-MARKER nothing[   60.100000] nvme nvme0: I/O 12 QID 1 timeout, aborting\r\n'
    + '[   90.200000] nvme nvme0: I/O 12 QID 1 timeout, reset controller\r\n'
    + '[  136.432437] Buffer I/O error on dev dm-0, logical block 0, lost sync page write\r\n'
    + '[  137.000000] kernel BUG at fs/x.c:1!\r\n';
  assert.deepEqual(firstTroubleLines(console), [
    '[   60.100000] nvme nvme0: I/O 12 QID 1 timeout, aborting',
    '[   90.200000] nvme nvme0: I/O 12 QID 1 timeout, reset controller',
    '[  136.432437] Buffer I/O error on dev dm-0, logical block 0, lost sync page write',
    '[  137.000000] kernel BUG at fs/x.c:1!',
  ]);
  assert.deepEqual(firstTroubleLines(console, 1), ['[   60.100000] nvme nvme0: I/O 12 QID 1 timeout, aborting']);
});
