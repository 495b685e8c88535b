// growDisk's decisions with a real partition table in a sparse file, a simulated kernel and a
// scripted tool runner: which tools run, where (chroot or initramfs), in which order, and what
// happens when the kernel is busy, lacks partition parsers, or a tool fails.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { growDisk } from '../../src/disk/grow.ts';
import { fdSectorSource } from '../../src/disk/partition-table/fd-source.ts';
import { readPartitionTable } from '../../src/disk/partition-table/table.ts';
import { isBootyError } from '../../src/util/errors.ts';
import { createLogger } from '../../src/util/log.ts';
import { FakeBlockIO, extHead, lvmPvHead, xfsHead } from '../helpers/fake-block-io.ts';
import { FakeToolRunner } from '../helpers/fake-tool-runner.ts';
import { growFile, makeImage, tempDir } from '../helpers/sparse-disk-image.ts';

const MiB = 1024 * 1024;
const dir = tempDir('booty-growlogic-');
after(() => fs.rmSync(dir, { recursive: true, force: true }));
let n = 0;

const logLines: string[] = [];
const log = createLogger({ level: 'debug', sinks: [(l, m) => { logLines.push(`${l}: ${m}`); }] });

/** A 64 MiB disk image (/boot 16 MiB + second partition) grown to 256 MiB, with `head` in partition 2. */
function disk(label: 'gpt' | 'dos', head: Buffer): FakeBlockIO {
  const file = path.join(dir, `${n++}.img`);
  makeImage(file, 64 * MiB, `label: ${label}\n,16M\n,\n`);
  const io = new FakeBlockIO(file);
  io.scan();
  const p2 = io.kernel.get(2);
  assert.ok(p2);
  io.poke(p2.start, head);
  growFile(file, 256 * MiB);
  return io;
}

function tableOf(io: FakeBlockIO) {
  const fd = fs.openSync(io.file, 'r');
  try { return readPartitionTable(fdSectorSource(fd, fs.fstatSync(fd).size, 512)); } finally { fs.closeSync(fd); }
}

/** The mount points src/disk/mounts.ts makes (under os.tmpdir(): scripts/test.sh sets TMPDIR), as a regex source. */
const mountPoint = `${os.tmpdir().replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\/booty-root-[A-Za-z0-9]+`;

/** Tool call lines with the random mount point replaced by ROOT. */
function calls(tools: FakeToolRunner): string[] {
  return tools.lines().map((l) => l.replace(new RegExp(mountPoint, 'g'), 'ROOT'));
}

const binds = ['mount -o bind /dev ROOT/dev', 'mount -o bind /proc ROOT/proc', 'mount -o bind /sys ROOT/sys', 'mount -o bind /run ROOT/run'];
const unbinds = ['umount ROOT/run', 'umount ROOT/sys', 'umount ROOT/proc', 'umount ROOT/dev'];

describe('growDisk without LVM', () => {
  it('grows partition and ext4 offline with the initramfs tools, never mounting it or touching LVM', async () => {
    const io = disk('gpt', extHead(12288));
    const tools = new FakeToolRunner({ host: ['lvm', 'resize2fs', 'e2fsck'], inRoot: ['resize2fs', 'e2fsck'] });
    tools.on('resize2fs', () => { io.poke(io.kernel.get(2)!.start, extHead(60000)); });
    const r = await growDisk({ disk: '/dev/vda', partition: 'last', log, tools, io });
    assert.equal(r.table, 'gpt');
    assert.equal(r.partition, 2);
    assert.equal(r.partitionDevice, '/dev/vda2');
    assert.equal(r.partitionGrown, true);
    assert.equal(r.content, 'ext');
    assert.equal(r.lvm, undefined);
    assert.equal(r.rootDevice, '/dev/vda2');
    assert.deepEqual(r.filesystem, { kind: 'ext', device: '/dev/vda2', beforeBytes: 12288 * 4096, afterBytes: 60000 * 4096, toolsFrom: 'initramfs', mode: 'offline' });
    assert.deepEqual(calls(tools), ['e2fsck -f -y /dev/vda2', 'resize2fs /dev/vda2']);
    assert.ok(!tools.calls.some((c) => c.tool === 'lvm'), 'no LVM step for an image without LVM');
    // the table in the file is grown, and the kernel was told
    const t = tableOf(io);
    assert.equal(t.partitions[1].end, (255 * MiB) / 512 - 1);
    assert.equal(io.kernel.get(2)?.size, (t.partitions[1].end - t.partitions[1].start + 1) * 512);
    assert.equal(r.partitionBytes.after, io.kernel.get(2)?.size);
  });

  it('accepts e2fsck\'s "errors corrected" exit codes', async () => {
    const io = disk('dos', extHead(12288));
    const tools = new FakeToolRunner({ host: ['resize2fs', 'e2fsck'] });
    tools.on('e2fsck', () => ({ code: 1 }));
    const r = await growDisk({ disk: '/dev/vda', partition: 2, log, tools, io });
    assert.equal(r.filesystem?.mode, 'offline');
    assert.deepEqual(calls(tools), ['e2fsck -f -y /dev/vda2', 'resize2fs /dev/vda2']);
  });

  it('when the initramfs e2fsprogs refuse the filesystem, uses the OS tools from another partition, still offline', async () => {
    const io = disk('dos', extHead(12288));
    const tools = new FakeToolRunner({ host: ['resize2fs', 'e2fsck'], inRoot: ['resize2fs', 'e2fsck'] });
    tools.on('e2fsck', (_a, o) => (o.root === undefined ? { code: 8, stderr: 'e2fsck: Filesystem has unsupported feature(s) while trying to open /dev/vda2\ne2fsck: Get a newer version of e2fsck!' } : undefined));
    // partition 1 holds the OS (say a separate root), partition 2 is grown
    io.poke(io.kernel.get(1)!.start, extHead(4096));
    const r = await growDisk({ disk: '/dev/vda', partition: 2, log, tools, io });
    assert.deepEqual({ from: r.filesystem?.toolsFrom, mode: r.filesystem?.mode }, { from: 'chroot', mode: 'offline' });
    assert.deepEqual(calls(tools), [
      'e2fsck -f -y /dev/vda2',
      'mount -t ext4 -o ro,noload /dev/vda1 ROOT', ...binds, '[chroot] e2fsck -f -y /dev/vda2', '[chroot] resize2fs /dev/vda2', ...unbinds, 'umount ROOT',
    ]);
    assert.match(r.notes.join('\n'), /initramfs's e2fsprogs could not grow \/dev\/vda2 .*unsupported feature.*trying the deployed OS's own tools/);
  });

  it('as the last resort grows the root online with its own resize2fs when nothing else can', async () => {
    const io = disk('dos', extHead(12288));
    const tools = new FakeToolRunner({ host: ['resize2fs', 'e2fsck'], inRoot: ['resize2fs', 'e2fsck'] });
    tools.on('resize2fs', (_a, o) => (o.root === undefined ? { code: 1, stderr: 'resize2fs: Filesystem has unsupported feature(s)' } : undefined));
    // partition 1 is an empty /boot-like filesystem: mounted read-only, no tools in it, skipped
    io.poke(io.kernel.get(1)!.start, extHead(4096));
    tools.rootDirs = ['dev', 'proc', 'sys', 'run', 'etc'];
    let mounts = 0;
    tools.on('mount', (args) => {
      if (args.includes('bind')) return;
      mounts++;
      // the first (read-only) mount is partition 1: make it look like a /boot without tools
      tools.inRoot = mounts === 1 ? new Set() : new Set(['resize2fs', 'e2fsck']);
      for (const d of tools.rootDirs) fs.mkdirSync(path.join(args[args.length - 1], d), { recursive: true });
    });
    const r = await growDisk({ disk: '/dev/vda', partition: 2, log, tools, io });
    assert.deepEqual({ from: r.filesystem?.toolsFrom, mode: r.filesystem?.mode }, { from: 'chroot', mode: 'online' });
    assert.deepEqual(calls(tools), [
      'e2fsck -f -y /dev/vda2', 'resize2fs /dev/vda2',
      'mount -t ext4 -o ro,noload /dev/vda1 ROOT', 'umount ROOT',
      'mount -t ext4 /dev/vda2 ROOT', ...binds, '[chroot] resize2fs /dev/vda2', ...unbinds, 'umount ROOT',
    ]);
    assert.match(r.notes.join('\n'), /\/dev\/vda2 was grown online/);
  });

  it('with the chroot fallback off, a refusing e2fsck is the error', async () => {
    const io = disk('dos', extHead(12288));
    const tools = new FakeToolRunner({ host: ['resize2fs', 'e2fsck'], inRoot: ['resize2fs', 'e2fsck'] });
    tools.on('e2fsck', () => ({ code: 4, stderr: 'e2fsck: errors left uncorrected' }));
    await assert.rejects(growDisk({ disk: '/dev/vda', partition: 2, log, tools, io, chrootFallback: false }), (e: unknown) => {
      assert.ok(isBootyError(e));
      assert.match(e.message, /^e2fsck -f -y \/dev\/vda2 exited with code 4: e2fsck: errors left uncorrected/);
      return true;
    });
    assert.deepEqual(calls(tools), ['e2fsck -f -y /dev/vda2']);
  });

  it('uses the deployed OS tools (online, chroot) when the initramfs has no e2fsprogs', async () => {
    const io = disk('dos', extHead(12288));
    const tools = new FakeToolRunner({ host: [], inRoot: ['resize2fs'] });
    const r = await growDisk({ disk: '/dev/vda', partition: 2, log, tools, io });
    assert.deepEqual({ from: r.filesystem?.toolsFrom, mode: r.filesystem?.mode }, { from: 'chroot', mode: 'online' });
    assert.deepEqual(calls(tools), ['mount -t ext4 /dev/vda2 ROOT', ...binds, '[chroot] resize2fs /dev/vda2', ...unbinds, 'umount ROOT']);
  });

  it('grows XFS through a temporary mount with the initramfs xfs_growfs', async () => {
    const io = disk('gpt', xfsHead(20000));
    const tools = new FakeToolRunner({ host: ['xfs_growfs'], inRoot: ['xfs_growfs'] });
    const r = await growDisk({ disk: '/dev/vda', partition: 'last', log, tools, io });
    assert.equal(r.filesystem?.kind, 'xfs');
    assert.deepEqual({ from: r.filesystem?.toolsFrom, mode: r.filesystem?.mode }, { from: 'initramfs', mode: 'online' });
    assert.deepEqual(calls(tools), ['mount -t xfs /dev/vda2 ROOT', 'xfs_growfs ROOT', 'umount ROOT']);
  });

  it('grows XFS with the OS\'s xfs_growfs / inside the chroot when the initramfs lacks it', async () => {
    const io = disk('gpt', xfsHead(20000));
    const tools = new FakeToolRunner({ host: [], inRoot: ['xfs_growfs'] });
    const r = await growDisk({ disk: '/dev/vda', partition: 'last', log, tools, io });
    assert.equal(r.filesystem?.toolsFrom, 'chroot');
    assert.deepEqual(calls(tools), ['mount -t xfs /dev/vda2 ROOT', ...binds, '[chroot] xfs_growfs /', ...unbinds, 'umount ROOT']);
  });

  it('grows only the partition when it holds something unknown, and says so', async () => {
    const io = disk('gpt', Buffer.alloc(4096));
    const tools = new FakeToolRunner({ host: ['resize2fs', 'lvm'] });
    const r = await growDisk({ disk: '/dev/vda', partition: 'last', log, tools, io });
    assert.equal(r.partitionGrown, true);
    assert.equal(r.content, 'unknown');
    assert.deepEqual(tools.calls, []);
    assert.match(r.notes.join('\n'), /only the partition was grown/);
  });

  it('names the missing tool when neither the initramfs nor the OS has it', async () => {
    const io = disk('gpt', extHead(12288));
    const tools = new FakeToolRunner({ host: [], inRoot: [] });
    await assert.rejects(growDisk({ disk: '/dev/vda', partition: 'last', log, tools, io }), (e: unknown) =>
      isBootyError(e) && e.code === 'tool-missing' && /resize2fs is neither in the initramfs nor in the deployed OS/.test(e.message));
    assert.ok(calls(tools).includes('umount ROOT'), 'unmounted after looking');
  });

  it('reports a failing chroot tool with its exit code and stderr, and still unmounts everything', async () => {
    const io = disk('gpt', extHead(12288));
    const tools = new FakeToolRunner({ host: [], inRoot: ['resize2fs'] });
    tools.on('resize2fs', () => ({ code: 1, stderr: 'resize2fs 1.47.0\nresize2fs: Permission denied to resize filesystem\n' }));
    await assert.rejects(growDisk({ disk: '/dev/vda', partition: 'last', log, tools, io }), (e: unknown) => {
      assert.ok(isBootyError(e));
      assert.equal(e.stage, 'grow');
      assert.match(e.message, new RegExp(`^resize2fs \\/dev\\/vda2 \\(in chroot ${mountPoint}\\) exited with code 1: .*Permission denied to resize filesystem`));
      return true;
    });
    assert.deepEqual(calls(tools).slice(-5), [...unbinds, 'umount ROOT']);
  });
});

describe('growDisk and the kernel', () => {
  it('retries BLKRRPART while busy, then resizes the partition with BLKPG', async () => {
    const io = disk('gpt', Buffer.alloc(4096));
    io.busy = true;
    await growDisk({ disk: '/dev/vda', partition: 'last', log, tools: new FakeToolRunner(), io });
    const sleeps = io.events.filter((e) => e.startsWith('sleep'));
    assert.ok(sleeps.length >= 3, `backs off while busy: ${io.events.join(', ')}`);
    const resize = io.events.find((e) => e.startsWith('resize 2 '));
    assert.ok(resize, `BLKPG resize: ${io.events.join(', ')}`);
    assert.equal(Number(resize.split(' ')[2]), (tableOf(io).partitions[1].end - tableOf(io).partitions[1].start + 1) * 512);
  });

  it('adds the partitions itself when the kernel has no parser for the table', async () => {
    const io = disk('dos', extHead(100));
    io.parserless = true;
    io.kernel.clear();
    const tools = new FakeToolRunner({ host: ['resize2fs', 'e2fsck'] });
    const r = await growDisk({ disk: '/dev/vda', partition: 2, log, tools, io });
    assert.ok(io.events.includes('add 1') && io.events.includes('add 2'), io.events.join(', '));
    assert.equal(io.kernel.get(2)?.size, r.partitionBytes.after);
  });

  it('writes nothing when the partition already fills the disk, and still grows the filesystem', async () => {
    const file = path.join(dir, `${n++}-full.img`);
    makeImage(file, 64 * MiB, 'label: dos\n,\n');
    const io = new FakeBlockIO(file);
    io.scan();
    io.poke(io.kernel.get(1)!.start, extHead(100));
    const tools = new FakeToolRunner({ host: ['resize2fs', 'e2fsck'] });
    const r = await growDisk({ disk: '/dev/vda', partition: 1, log, tools, io });
    assert.equal(r.partitionGrown, false);
    assert.ok(!io.events.some((e) => e.startsWith('write')), io.events.join(', '));
    assert.deepEqual(calls(tools), ['e2fsck -f -y /dev/vda1', 'resize2fs /dev/vda1']);
  });

  it('refuses an unknown disk before doing anything', async () => {
    const io = disk('gpt', Buffer.alloc(16));
    await assert.rejects(growDisk({ disk: '/dev/sdz', partition: 1, log, tools: new FakeToolRunner(), io }),
      (e: unknown) => isBootyError(e) && e.code === 'open-disk' && /cannot open \/dev\/sdz/.test(e.message));
  });
});

describe('growDisk with LVM', () => {
  const lvsOut = [
    '  /dev/debian-vg/root|root|debian-vg|1979711488|-wi-a-----',
    '  /dev/debian-vg/swap_1|swap_1|debian-vg|1023410176|-wi-a-----',
  ].join('\n');

  function lvmDisk(): FakeBlockIO {
    const io = disk('dos', lvmPvHead());
    io.devices.set('/dev/debian-vg/root', extHead(483328));
    io.devices.set('/dev/debian-vg/swap_1', Buffer.alloc(4096));
    return io;
  }

  function lvmTools(inRoot: string[], free = '  2147483648\n'): FakeToolRunner {
    const tools = new FakeToolRunner({ host: ['lvm', 'resize2fs', 'e2fsck'], inRoot });
    tools.on('lvm pvs', () => ({ stdout: '  debian-vg\n' }));
    tools.on('lvm lvs', () => ({ stdout: lvsOut + '\n' }));
    tools.on('lvm vgs', () => ({ stdout: free }));
    return tools;
  }

  const lvsCall = 'lvm lvs --noheadings --separator | --units b --nosuffix -o lv_path,lv_name,vg_name,lv_size,lv_attr debian-vg';

  it('activates, pvresize, lvextend, then e2fsck + resize2fs offline, all with initramfs tools, and deactivates the VG', async () => {
    const io = lvmDisk();
    const tools = lvmTools(['lvm', 'resize2fs', 'e2fsck']);
    const r = await growDisk({ disk: '/dev/vda', partition: 2, log, tools, io });
    assert.deepEqual(calls(tools), [
      'lvm pvs --noheadings -o vg_name /dev/vda2',
      'lvm vgchange -ay debian-vg',
      lvsCall,
      'lvm pvresize /dev/vda2',
      'lvm vgs --noheadings --units b --nosuffix -o vg_free debian-vg',
      'lvm lvextend -l +100%FREE /dev/debian-vg/root',
      'e2fsck -f -y /dev/debian-vg/root',
      'resize2fs /dev/debian-vg/root',
      'lvm vgchange -an debian-vg',
    ]);
    assert.deepEqual(r.lvm, { vg: 'debian-vg', lv: 'root', pvResized: true, lvExtended: true, active: false });
    assert.equal(r.rootDevice, '/dev/debian-vg/root');
    assert.deepEqual({ device: r.filesystem?.device, from: r.filesystem?.toolsFrom, mode: r.filesystem?.mode },
      { device: '/dev/debian-vg/root', from: 'initramfs', mode: 'offline' });
    // lvm never waits for udev (there is none in the initramfs)
    for (const c of tools.calls.filter((x) => x.tool === 'lvm')) {
      assert.equal(c.env?.DM_DISABLE_UDEV, '1');
      assert.match(c.args.join(' '), /--config .*udev_sync = 0/);
    }
  });

  it('keeps the VG active on success when asked (post-deploy settings follow), and says so', async () => {
    const io = lvmDisk();
    const tools = lvmTools([]);
    const r = await growDisk({ disk: '/dev/vda', partition: 2, log, tools, io, keepVgActive: true });
    assert.equal(r.lvm?.active, true);
    assert.ok(!calls(tools).includes('lvm vgchange -an debian-vg'));
  });

  it('deactivates the VG after a failure, even when asked to keep it, and the failure is the error', async () => {
    const io = lvmDisk();
    const tools = lvmTools([]);
    tools.on('resize2fs', () => ({ code: 1, stderr: 'resize2fs: No space left on device' }));
    await assert.rejects(growDisk({ disk: '/dev/vda', partition: 2, log, tools, io, keepVgActive: true, chrootFallback: false }),
      (e: unknown) => isBootyError(e) && /^resize2fs \/dev\/debian-vg\/root exited with code 1: .*No space left/.test(e.message));
    assert.equal(calls(tools).at(-1), 'lvm vgchange -an debian-vg');
  });

  it('takes the LV named in BOOTy spelling (/dev/mapper/...), not the larger one', async () => {
    const io = lvmDisk();
    io.devices.set('/dev/debian-vg/data', xfsHead(9_000_000));
    const tools = lvmTools([]);
    tools.on('lvm lvs', () => ({ stdout: lvsOut + '\n  /dev/debian-vg/data|data|debian-vg|36864000000|-wi-a-----\n' }));
    const r = await growDisk({ disk: '/dev/vda', partition: 2, lvmRoot: '/dev/mapper/debian--vg-root', log, tools, io });
    assert.equal(r.lvm?.lv, 'root', 'the named LV, not the larger one');
    assert.ok(calls(tools).includes('lvm pvresize /dev/vda2'));
    assert.ok(calls(tools).includes('lvm lvextend -l +100%FREE /dev/debian-vg/root'));
    assert.ok(calls(tools).includes('resize2fs /dev/debian-vg/root'));
  });

  it('skips lvextend when the volume group has no free space', async () => {
    const io = lvmDisk();
    const tools = lvmTools([], '  0\n');
    const r = await growDisk({ disk: '/dev/vda', partition: 2, log, tools, io });
    assert.equal(r.lvm?.lvExtended, false);
    assert.ok(!calls(tools).some((l) => l.includes('lvextend')));
    assert.ok(calls(tools).includes('resize2fs /dev/debian-vg/root'));
  });

  it('refuses a named LV that is not in the volume group, listing what is there', async () => {
    const io = lvmDisk();
    const tools = lvmTools(['lvm', 'resize2fs']);
    await assert.rejects(growDisk({ disk: '/dev/vda', partition: 2, lvmRoot: '/dev/ubuntu-vg/root', log, tools, io }), (e: unknown) =>
      isBootyError(e) && e.code === 'lvm-root-not-found' && /debian-vg\/root, debian-vg\/swap_1/.test(e.message));
  });

  it('says the initramfs needs lvm when the partition is a PV and lvm is missing', async () => {
    const io = lvmDisk();
    const tools = new FakeToolRunner({ host: ['resize2fs'], inRoot: ['lvm'] });
    await assert.rejects(growDisk({ disk: '/dev/vda', partition: 2, log, tools, io }), (e: unknown) =>
      isBootyError(e) && e.code === 'tool-missing' && /initramfs has no lvm/.test(e.message));
  });
});
