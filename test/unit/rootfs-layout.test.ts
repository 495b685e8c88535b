import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseAction, summarizeAction, toBootyJson } from '../../src/config/parse.ts';
import { defaultLayout, type RootfsLayout } from '../../src/config/rootfs-layout.ts';
import { planLayout, sfdiskScript } from '../../src/rootfs/layout-plan.ts';
import { renderFstab } from '../../src/rootfs/fstab.ts';
import { BootyError } from '../../src/util/errors.ts';
import type { RootfsDeployAction } from '../../src/config/action.ts';

const MiB = 1 << 20;
const GiB = 1 << 30;
const url = 'http://10.0.0.1:3000/rootfs/debian.tar.zst';

function refused(input: unknown, field: RegExp): void {
  assert.throws(() => parseAction(input), (e: unknown) => {
    assert.ok(e instanceof BootyError, String(e));
    assert.equal(e.stage, 'config');
    assert.match(e.message, field);
    return true;
  });
}

describe('deploy-rootfs action', () => {
  it('defaults: GPT, BIOS boot + ESP + ext4 root on the rest, grub for both firmwares, fstab generated', () => {
    const a = parseAction({ action: 'deploy-rootfs', rootfs: url, disk: '/dev/sda' }) as RootfsDeployAction;
    assert.equal(a.action, 'deploy-rootfs');
    assert.deepEqual(a.layout, defaultLayout());
    assert.equal(a.bootloader, 'both');
    assert.equal(a.fstab, 'generate');
    assert.equal(a.after, 'reboot');
    assert.match(summarizeAction(a), /^deploy-rootfs http:\/\/.*debian\.tar\.zst -> \/dev\/sda \(gpt, 3 partitions, bootloader both\)$/);
  });

  it('a custom layout: sizes in units, roles from fs and mountpoint, in the combined form too', () => {
    const layout = { table: 'msdos', partitions: [
      { size: '1GiB', fs: 'ext4', mountpoint: '/boot', label: 'boot' },
      { size: '2G', fs: 'swap' },
      { size: 'rest', fs: 'xfs', mountpoint: '/', label: 'root' },
    ] };
    const a = parseAction({ booty: { action: 'deploy-rootfs', rootfs: url, layout, bootloader: 'grub-bios', fstab: 'keep', sha256: 'AB'.repeat(32) } }) as RootfsDeployAction;
    assert.deepEqual(a.layout, { table: 'msdos', partitions: [
      { size: GiB, type: 'linux', fs: 'ext4', mountpoint: '/boot', label: 'boot' },
      { size: 2 * GiB, type: 'swap', fs: 'swap' },
      { size: 'rest', type: 'linux', fs: 'xfs', mountpoint: '/', label: 'root' },
    ] });
    assert.equal(a.fstab, 'keep');
    assert.equal(a.sha256, 'ab'.repeat(32));
  });

  it('the normalized action, as booty server serves it (toBootyJson), parses back to itself', () => {
    for (const input of [
      { action: 'deploy-rootfs', rootfs: url, disk: '/dev/sda' },
      { action: 'deploy-rootfs', rootfs: url, diskHints: { minSize: '100G' }, bootloader: 'grub-bios', fstab: 'keep', post: { hostname: 'db-7' },
        layout: { table: 'msdos', partitions: [{ size: '1GiB', fs: 'ext4', mountpoint: '/boot' }, { size: 'rest', fs: 'xfs', mountpoint: '/', label: 'root' }] } },
    ]) {
      const a = parseAction(input);
      assert.deepEqual(parseAction(toBootyJson(a)), a);
      assert.deepEqual(parseAction(JSON.parse(JSON.stringify(a))), a);
    }
  });

  it('refuses bad layouts naming the field', () => {
    const base = { action: 'deploy-rootfs', rootfs: url };
    const parts = (p: unknown[], extra: object = {}) => ({ ...base, layout: { partitions: p }, bootloader: 'none', ...extra });
    refused(parts([{ size: 'rest', fs: 'ext4', mountpoint: '/' }, { size: 'rest', fs: 'ext4', mountpoint: '/home' }]), /"layout\.partitions\[1\]\.size" is "rest" as is/);
    refused(parts([{ size: '512MiB', fs: 'ext4', mountpoint: '/boot' }]), /"layout\.partitions" must have a partition with "mountpoint": "\/"/);
    refused(parts([{ size: '100MiB', fs: 'xfs', mountpoint: '/' }]), /"layout\.partitions\[0\]\.size" is 100 MiB; mkfs makes xfs from 300 MiB up/);
    refused(parts([{ size: 'rest', fs: 'ext4', mountpoint: '/' }, { size: '8MiB', fs: 'ext4', mountpoint: '/' }]), /"layout\.partitions\[1\]\.mountpoint" "\/" is also/);
    refused(parts([{ size: 'rest', fs: 'ext4', mountpoint: '/', label: 'a-label-far-too-long' }]), /"layout\.partitions\[0\]\.label" is too long/);
    refused(parts([{ size: 'rest', fs: 'vfat', mountpoint: '/', label: 'x' }]), /cannot be vfat for the root/);
    refused(parts([{ size: 'rest', fs: 'ext4', mountpoint: 'boot' }]), /"layout\.partitions\[0\]\.mountpoint" must be an absolute path/);
    refused(parts([{ size: 'lots', fs: 'ext4', mountpoint: '/' }]), /"layout\.partitions\[0\]\.size" must be a size/);
    refused(parts([{ size: 'rest', fs: 'btrfs', mountpoint: '/' }]), /"layout\.partitions\[0\]\.fs" must be one of "ext4", "xfs", "vfat", "swap"/);
    refused(parts([{ size: '1MiB', type: 'bios-boot' }, { size: 'rest', fs: 'ext4', mountpoint: '/' }], { layout: { table: 'msdos', partitions: [{ size: '1MiB', type: 'bios-boot' }, { size: 'rest', fs: 'ext4', mountpoint: '/' }] } }),
      /"layout\.partitions\[0\]\.type" is "bios-boot", which only a GPT table has/);
    refused(parts([{ size: 'rest', fs: 'ext4', mountpoint: '/', colour: 'red' }]), /"layout\.partitions\[0\]\.colour" is not a known field/);
    refused(parts(Array.from({ length: 5 }, (_, i) => ({ size: '10MiB', fs: 'ext4', mountpoint: i === 0 ? '/' : `/d${i}` })), { layout: { table: 'msdos', partitions: Array.from({ length: 5 }, (_, i) => ({ size: '10MiB', fs: 'ext4', mountpoint: i === 0 ? '/' : `/d${i}` })) } }),
      /an msdos table takes at most 4/);
    // the boot loader asks for what it needs
    refused({ ...base, layout: { partitions: [{ size: 'rest', fs: 'ext4', mountpoint: '/' }] } }, /"bootloader" is "both", which on a GPT disk needs a BIOS boot partition/);
    refused({ ...base, layout: { partitions: [{ size: '1MiB', type: 'bios-boot' }, { size: 'rest', fs: 'ext4', mountpoint: '/' }] }, bootloader: 'grub-efi' },
      /"bootloader" is "grub-efi", which needs an EFI system partition mounted at \/boot\/efi/);
    refused({ ...base, rootfs: 'ftp://x/y.tar' }, /"rootfs" must be an absolute http/);
    refused({ ...base, restartOnChange: true }, /"restartOnChange" is not a known field/);
  });
});

describe('layout plan', () => {
  it('places the default layout on a 3 GiB disk, 1 MiB aligned, the root up to the backup GPT', () => {
    const plan = planLayout(defaultLayout(), 3 * GiB, 512);
    assert.deepEqual(plan.partitions.map((p) => [p.number, p.start, p.sectors]), [
      [1, 2048, 2048], [2, 4096, 1048576], [3, 1052672, (3 * GiB - MiB /* backup GPT, aligned down */ - 514 * MiB) / 512],
    ]);
    const script = sfdiskScript(plan);
    assert.equal(script, 'label: gpt\nunit: sectors\n\n' +
      'start=2048, size=2048, type=21686148-6449-6E6F-744E-656564454649\n' +
      'start=4096, size=1048576, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI"\n' +
      `start=1052672, size=${plan.partitions[2].sectors}, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="root"\n`);
  });

  it('4Kn sectors: the same bytes in 4096-byte sectors', () => {
    const plan = planLayout(defaultLayout(), 3 * GiB, 4096);
    assert.deepEqual(plan.partitions.map((p) => [p.start, p.sectors * 4096]), [[256, MiB], [512, 512 * MiB], [514 * 256, 3 * GiB - MiB - 514 * MiB]]);
  });

  it('msdos: the root is marked bootable, types are MBR bytes, the whole disk is used', () => {
    const l: RootfsLayout = { table: 'msdos', partitions: [{ size: 256 * MiB, type: 'swap', fs: 'swap' }, { size: 'rest', type: 'linux', fs: 'ext4', mountpoint: '/' }] };
    const plan = planLayout(l, GiB, 512);
    assert.equal(plan.partitions[1].bytes, GiB - MiB - 256 * MiB);
    assert.match(sfdiskScript(plan), /^label: dos\n[\s\S]*type=82\n.*type=83, bootable\n$/);
  });

  it('refuses a layout that does not fit before anything is written, with the numbers', () => {
    assert.throws(() => planLayout(defaultLayout(), 512 * MiB, 512), (e: unknown) => {
      assert.ok(e instanceof BootyError);
      assert.equal(e.code, 'LAYOUT_DOES_NOT_FIT');
      assert.equal(e.stage, 'preflight');
      assert.equal(e.diskState, 'untouched');
      assert.match(e.message, /needs 513\.0 MiB \(\d+ bytes\) for its fixed-size partitions plus at least 1 MiB for "rest", but the disk has 510\.0 MiB \(\d+ bytes\) to partition/);
      return true;
    });
    const xfsRest: RootfsLayout = { table: 'gpt', partitions: [{ size: 'rest', type: 'linux', fs: 'xfs', mountpoint: '/' }] };
    assert.throws(() => planLayout(xfsRest, 200 * MiB, 512), /partition 1 \("rest"\) gets .*mkfs\.xfs needs 300 MiB/);
  });
});

describe('fstab', () => {
  it('by UUID, parents first, swap last, ESP root-only', () => {
    const text = renderFstab([
      { number: 1, start: 0, sectors: 0, bytes: 0, size: MiB, type: 'bios-boot', device: '/dev/sda1' },
      { number: 2, start: 0, sectors: 0, bytes: 0, size: MiB, type: 'esp', fs: 'vfat', mountpoint: '/boot/efi', device: '/dev/sda2', uuid: 'ABCD-1234' },
      { number: 3, start: 0, sectors: 0, bytes: 0, size: MiB, type: 'swap', fs: 'swap', device: '/dev/sda3', uuid: 'u-swap' },
      { number: 4, start: 0, sectors: 0, bytes: 0, size: 'rest', type: 'linux', fs: 'ext4', mountpoint: '/', device: '/dev/sda4', uuid: 'u-root' },
      { number: 5, start: 0, sectors: 0, bytes: 0, size: MiB, type: 'linux', fs: 'xfs', mountpoint: '/boot', device: '/dev/sda5', uuid: 'u-boot' },
    ]);
    assert.deepEqual(text.split('\n').filter((l) => !l.startsWith('#') && l !== ''), [
      'UUID=u-root / ext4 errors=remount-ro 0 1',
      'UUID=u-boot /boot xfs defaults 0 2',
      'UUID=ABCD-1234 /boot/efi vfat umask=0077 0 2',
      'UUID=u-swap none swap sw 0 0',
    ]);
  });
});
