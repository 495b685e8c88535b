// Disk hints on a real kernel's sysfs: a QEMU guest (our kernel and initramfs, stopped by
// booty.break=network in a shell) with a virtio-blk, an NVMe, a virtio-scsi and an AHCI SATA disk
// plus a CD-ROM, each with its own serial/model/WWN/rotation rate. The agent's readBlockSnapshot
// and chooseDisk, bundled from this checkout, are carried in on a small raw disk and run by the
// guest's node; the test checks what they read (serial sources, VPD page, WWN, rotational,
// SCSI address, udev-style by-path names) and what each hint set chooses.
// Sized for TCG: one boot, about a minute.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureInitramfs } from '../helpers/initramfs-build.ts';
import { repoRoot, startVm } from '../helpers/qemu.ts';
import type { BlockEntry } from '../../src/agent/disk-choice.ts';
import { skipUnlessPresent } from '../helpers/prerequisite.ts';

const have = (cmd: string) => { try { execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }); return true; } catch { return false; } };
const missing = ['qemu-system-x86_64', 'apt-get', 'dpkg-deb', 'depmod'].filter((c) => !have(c));
const skip = skipUnlessPresent(missing.length === 0, `missing: ${missing.join(', ')}`);
const MiB = 2 ** 20;

test('readBlockSnapshot and disk hints on virtio, NVMe, virtio-scsi and SATA in a real kernel', { skip, timeout: 15 * 60_000 }, async (t) => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-hints-e2e-'));
  t.after(() => fs.rmSync(work, { recursive: true, force: true }));
  const { kernel, initrd } = await ensureInitramfs();

  const probe = path.join(work, 'probe.mjs');
  const esbuild = await import('esbuild');
  await esbuild.build({ entryPoints: [path.join(repoRoot, 'test', 'helpers', 'disk-choice-probe.ts')], bundle: true, platform: 'node', format: 'esm', outfile: probe, logLevel: 'error' });
  const probeBytes = fs.statSync(probe).size;
  const disk = (name: string, bytes: number, from?: string) => {
    const p = path.join(work, name);
    if (from !== undefined) fs.copyFileSync(from, p); else fs.writeFileSync(p, '');
    fs.truncateSync(p, bytes);
    return p;
  };
  const carrier = disk('probe.img', Math.ceil(probeBytes / MiB + 1) * MiB, probe);
  const drive = (file: string, id: string, extra = '') => ['-drive', `file=${file},format=raw,if=none,id=${id}${extra}`];
  const vm = await startVm({
    name: 'disk-hints-sysfs', kernel, initrd, memMiB: 768,
    append: 'quiet booty.break=network',
    extraArgs: [
      ...drive(carrier, 'd0'), '-device', 'virtio-blk-pci,drive=d0,serial=probe-carrier',
      ...drive(disk('virtio.img', 64 * MiB), 'd1'), '-device', 'virtio-blk-pci,drive=d1,serial=virt-b',
      ...drive(disk('nvme.img', 48 * MiB), 'd2'), '-device', 'nvme,drive=d2,serial=NVME-SER-2',
      '-device', 'virtio-scsi-pci,id=scsi0',
      ...drive(disk('scsi.img', 40 * MiB), 'd3'), '-device', 'scsi-hd,drive=d3,bus=scsi0.0,serial=scsi-ser-3,vendor=ACME,product=ROTOR-9000,rotation_rate=7200',
      '-device', 'ahci,id=ahci0',
      ...drive(disk('sata.img', 56 * MiB), 'd4'), '-device', 'ide-hd,drive=d4,bus=ahci0.0,serial=SATA-SER-1,wwn=0x5000c500a1b2c3d4,model=FAST SSD,rotation_rate=1',
      ...drive(disk('cd.iso', 8 * MiB), 'd5', ',media=cdrom'), '-device', 'ide-cd,drive=d5,bus=ahci0.1',
      // a NIC (no traffic) so the agent does not wait for one before the shell
      '-netdev', 'user,id=n0,restrict=on', '-device', 'virtio-net-pci,netdev=n0',
    ],
  }, t);
  await vm.waitFor(/booty# /, 8 * 60_000);
  const hintSets = [
    { serial: 'sata-ser-1' }, { wwn: '0x5000C500A1B2C3D4' }, { byPath: 'pci-0000:00:06.0-ata-1.0' }, { rotational: false },
    { model: 'QEMU NVMe', serial: 'NVME-SER-2' }, { vendor: 'acme', model: 'rotor' }, { byPath: 'virtio-pci-0000:00:03.0' },
    { minSize: 50 * MiB, maxSize: 60 * MiB }, { serial: 'nothing-has-this' },
  ];
  const from = vm.output.length;
  vm.send(`head -c ${probeBytes} /dev/vda > /tmp/probe.mjs; /usr/bin/node /tmp/probe.mjs ${hintSets.map((h) => `'${JSON.stringify(h)}'`).join(' ')}\n`);
  await vm.waitFor(/PROBE-END/, 3 * 60_000, from);
  const lines = vm.output.slice(from).split(/\r?\n/);
  const snap = JSON.parse(lines.find((l) => l.startsWith('PROBE-SNAPSHOT '))!.slice(15)) as BlockEntry[];
  const byName = new Map(snap.map((e) => [e.name, e]));
  const choices = lines.filter((l) => l.startsWith('PROBE-CHOICE ')).map((l) => JSON.parse(l.slice(13)) as { disk?: string; reason?: string; error?: string });
  await vm.kill();

  assert.deepEqual([...byName.keys()].filter((n) => !n.startsWith('sr')).sort(), ['nvme0n1', 'sda', 'sdb', 'vda', 'vdb']);
  // virtio-blk: <disk>/serial, no model; by-path from the PCI function
  assert.deepEqual(byName.get('vdb'), { name: 'vdb', partition: false, removable: false, readOnly: false, sizeSectors: 64 * MiB / 512,
    serial: 'virt-b', vendor: '0x1af4', rotational: true, byPath: ['pci-0000:00:03.0', 'virtio-pci-0000:00:03.0'],
    transport: 'virtio', logicalBlockSize: 512, physicalBlockSize: 512 });
  // NVMe: controller serial and model, the namespace's wwid and nsid
  const nvme = byName.get('nvme0n1')!;
  assert.equal(nvme.serial, 'NVME-SER-2');
  assert.equal(nvme.model, 'QEMU NVMe Ctrl');
  assert.equal(nvme.rotational, false);
  assert.match(nvme.wwn ?? '', /^(nvme|eui|uuid|naa)\./);
  assert.deepEqual(nvme.byPath, ['pci-0000:00:04.0-nvme-1']);
  // SATA through libata: serial from VPD page 0x80, the WWN QEMU was given, rotation rate 1 = SSD
  assert.deepEqual(byName.get('sda'), { name: 'sda', partition: false, removable: false, readOnly: false, sizeSectors: 56 * MiB / 512,
    serial: 'SATA-SER-1', model: 'FAST SSD', vendor: 'ATA', wwn: 'naa.5000c500a1b2c3d4', rotational: false, hctl: '0:0:0:0',
    byPath: ['pci-0000:00:06.0-ata-1.0', 'pci-0000:00:06.0-ata-1'], transport: 'sata', logicalBlockSize: 512, physicalBlockSize: 512 });
  // virtio-scsi: the host number is rebased as udev does
  const scsi = byName.get('sdb')!;
  assert.deepEqual({ serial: scsi.serial, model: scsi.model, vendor: scsi.vendor, rotational: scsi.rotational },
    { serial: 'scsi-ser-3', model: 'ROTOR-9000', vendor: 'ACME', rotational: true });
  assert.equal(scsi.transport, 'scsi');
  assert.equal(nvme.transport, 'nvme');
  assert.match(scsi.hctl ?? '', /^\d+:0:0:0$/);
  assert.deepEqual(scsi.byPath, ['pci-0000:00:05.0-scsi-0:0:0:0']);

  const picked = choices.map((c) => c.disk ?? 'none');
  assert.deepEqual(picked, ['/dev/sda', '/dev/sda', '/dev/sda', '/dev/nvme0n1', '/dev/nvme0n1', '/dev/sdb', '/dev/vdb', '/dev/sda', 'none']);
  assert.match(choices[3].reason!, /the smallest of 2 disks matching the disk hints \(rotational=false\); also matched: \/dev\/sda/);
  const err = choices[8].error!;
  for (const name of ['nvme0n1', 'sda', 'sdb', 'vda', 'vdb']) assert.match(err, new RegExp(`^- /dev/${name}: .*\\n  not used: serial is `, 'm'));
});
