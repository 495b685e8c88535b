// The Debian test images (scripts/build-test-image.sh) boot by themselves in QEMU: BIOS -> GRUB in
// the MBR -> kernel + initrd from /boot -> root on LVM (or a plain partition) -> the marker unit
// prints the root filesystem and disk sizes on ttyS0 and powers off. The deploy tests rely on this
// marker, so this test is the proof that the image itself is sound before booty touches it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { ensureTestImage, type TestImage, type TestImageKind } from '../helpers/test-image.ts';
import { withoutKernelLines } from '../helpers/qemu.ts';

const bootTimeoutMs = 10 * 60_000; // TCG on a shared 2-core machine: usually about a minute
const sectorBytes = 512;

interface BootResult {
  marker: Record<string, string>;
  /** from QEMU's start to the marker line (BIOS, GRUB, kernel, initrd, systemd) */
  markerSeconds: number;
}

/** Boots the raw image alone (writes go to a throw-away overlay) and returns the marker's fields. */
function bootUntilMarker(image: TestImage): Promise<BootResult> {
  const started = Date.now();
  const accel = process.env.BOOTY_QEMU_ACCEL ?? 'tcg';
  const args = [
    '-accel', accel, '-cpu', 'max', '-m', '1024', '-smp', '1',
    // snapshot=on: QEMU keeps the guest's writes in a temporary qcow2 overlay; the cache stays pristine
    '-drive', `file=${image.raw},format=raw,if=virtio,snapshot=on`,
    '-nic', 'none', '-display', 'none', '-monitor', 'none', '-serial', 'stdio', '-no-reboot',
  ];
  return new Promise((resolve, reject) => {
    const qemu = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let serial = '';
    let marker: Record<string, string> | undefined;
    let markerSeconds = 0;
    const timer = setTimeout(() => {
      qemu.kill('SIGKILL');
      reject(new Error(`no BOOTY-TEST-MARKER within ${bootTimeoutMs / 1000} s; console tail:\n${serial.slice(-3000)}`));
    }, bootTimeoutMs);
    const onData = (chunk: Buffer): void => {
      serial = (serial + chunk.toString('latin1')).slice(-200_000);
      if (marker) return;
      const line = /BOOTY-TEST-MARKER ([^\r\n]*)[\r\n]/.exec(withoutKernelLines(serial)); // the tty turns \n into \r\n
      if (line) {
        marker = parseFields(line[1]);
        markerSeconds = (Date.now() - started) / 1000;
      }
    };
    qemu.stdout.on('data', onData);
    qemu.stderr.on('data', onData);
    qemu.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    // The guest powers off after the marker: QEMU exiting by itself is the normal end.
    qemu.on('close', (code, signal) => {
      clearTimeout(timer);
      if (marker) resolve({ marker, markerSeconds });
      else reject(new Error(`QEMU ended (code ${code}, signal ${signal}) without the marker; console tail:\n${serial.slice(-3000)}`));
    });
  });
}

function parseFields(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const pair of text.trim().split(/\s+/)) {
    const eq = pair.indexOf('=');
    if (eq > 0) fields[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return fields;
}

for (const kind of ['lvm', 'plain'] as TestImageKind[]) {
  test(`the ${kind} Debian test image boots alone and reports its sizes`, { timeout: 40 * 60_000 }, async (t) => {
    const image = await ensureTestImage(kind);
    assert.equal(image.size, 2 * 1024 ** 3);

    const { marker, markerSeconds } = await bootUntilMarker(image);
    t.diagnostic(`${kind}: marker ${markerSeconds.toFixed(1)} s after QEMU started under ${process.env.BOOTY_QEMU_ACCEL ?? 'tcg'}: ${JSON.stringify(marker)}`);

    assert.equal(marker.variant, kind);
    assert.equal(marker.boot_disk, 'vda');
    assert.equal(Number(marker.disk_bytes), image.size);
    // The root filesystem fills its partition (plain) or the LV that fills it (lvm), less what
    // ext4 and LVM keep for themselves: between 90 % and 100 % of the partition.
    const partitionBytes = image.rootPartition.sectors * sectorBytes;
    const rootfsBytes = Number(marker.rootfs_bytes);
    assert.ok(rootfsBytes > 0.9 * partitionBytes && rootfsBytes < partitionBytes,
      `rootfs_bytes ${rootfsBytes} is not 90-100 % of the root partition (${partitionBytes} bytes)`);
    if (kind === 'lvm') assert.equal(marker.root, '/dev/mapper/bootyvg-root');
    else assert.equal(marker.root, '/dev/vda2');
  });
}
