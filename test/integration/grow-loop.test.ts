// growDisk for real (root): an image with a real partition table and filesystem is attached as a
// loop device larger than the image, grown by our codec, the kernel told through BLKRRPART/BLKPG,
// and the filesystem grown by real e2fsck + resize2fs (offline) / xfs_growfs, with the host's
// tools or, as the fallback, through chroot into a tiny root that holds them. dumpe2fs /
// xfs_info / sfdisk check the result.
// (LVM needs device-mapper, which this host lacks: its path runs in the QEMU end-to-end test.)
import { describe, it, after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { growDisk } from '../../src/disk/grow.ts';
import { spawnToolRunner } from '../../src/disk/tools.ts';
import { createLogger } from '../../src/util/log.ts';
import { attachLoop, ext4Bytes, isRoot, makeMiniRoot, mkExt4, mkXfs, sfdiskJsonDev, writeAt, xfsBytes } from '../helpers/loop-disk.ts';
import { growFile, makeImage, tempDir } from '../helpers/sparse-disk-image.ts';

const MiB = 1024 * 1024;
const skip = isRoot() ? false : 'needs root (loop devices)';

describe('growDisk on loop devices', { skip }, () => {
  let dir = '';
  before(() => { dir = tempDir('booty-growloop-'); });
  after(() => { if (dir) fs.rmSync(dir, { recursive: true, force: true }); });

  const lines: string[] = [];
  const log = createLogger({ level: 'debug', sinks: [(l, m) => { lines.push(`${l}: ${m}`); }] });
  const dump = () => lines.join('\n');

  it('MBR + 1 KiB-block ext4 made by mkfs -d (the kind that crashed an online resize): grown offline, never mounted', async () => {
    const disk = path.join(dir, 'mbr-ext4.img');
    const rootDir = path.join(dir, 'root-ext');
    makeMiniRoot(rootDir, ['resize2fs']);
    makeImage(disk, 96 * MiB, 'label: dos\n,16M,83,*\n,,83\n');
    const fsImg = path.join(dir, 'ext4.img');
    mkExt4(fsImg, 79 * MiB, rootDir, 1024);
    writeAt(disk, fsImg, 17 * MiB);
    growFile(disk, 320 * MiB);
    const loop = attachLoop(disk);
    try {
      const r = await growDisk({ disk: loop.dev, partition: 'last', log });
      assert.equal(r.partition, 2, dump());
      assert.equal(r.content, 'ext');
      assert.deepEqual({ from: r.filesystem?.toolsFrom, mode: r.filesystem?.mode }, { from: 'initramfs', mode: 'offline' }, dump());
      assert.doesNotMatch(dump(), /mounted /, 'nothing was mounted');
      assert.equal(r.lvm, undefined);
      const t = sfdiskJsonDev(loop.dev);
      assert.equal(t.partitions[1].start + t.partitions[1].size, (320 * MiB) / 512, 'partition ends at the end of the disk');
      const bytes = ext4Bytes(r.partitionDevice);
      assert.ok(bytes > 300 * MiB && bytes <= 303 * MiB, `ext4 is ${bytes} bytes\n${dump()}`);
      assert.equal(r.filesystem?.afterBytes, bytes, 'the report measured the grown filesystem');
      assert.equal(r.filesystem?.beforeBytes, 79 * MiB);
      execFileSync('e2fsck', ['-f', '-n', r.partitionDevice], { stdio: 'ignore' }); // clean after the grow (throws otherwise)
    } finally {
      loop.detach();
    }
  });

  it('ext4 the agent\'s e2fsprogs refuse: grown offline by the OS\'s own tools from its other partition via chroot', async () => {
    // The refusal is staged (an e2fsck on the agent's PATH that answers like an old one meeting
    // new features); the chroot, its tools and the grow are real.
    const disk = path.join(dir, 'mbr-fallback.img');
    const rootDir = path.join(dir, 'root-tools');
    makeMiniRoot(rootDir, ['e2fsck', 'resize2fs']);
    makeImage(disk, 128 * MiB, 'label: dos\n,40M,83\n,,83\n');
    const rootImg = path.join(dir, 'root-tools.img');
    mkExt4(rootImg, 40 * MiB, rootDir);
    writeAt(disk, rootImg, 1 * MiB);
    const dataImg = path.join(dir, 'data.img');
    mkExt4(dataImg, 87 * MiB);
    writeAt(disk, dataImg, 41 * MiB);
    growFile(disk, 256 * MiB);
    const oldTools = path.join(dir, 'old-tools');
    fs.mkdirSync(oldTools, { recursive: true });
    fs.writeFileSync(path.join(oldTools, 'e2fsck'), '#!/bin/sh\necho "e2fsck: Filesystem has unsupported feature(s) while trying to open $3" >&2\necho "e2fsck: Get a newer version of e2fsck!" >&2\nexit 8\n', { mode: 0o755 });
    fs.symlinkSync(execFileSync('sh', ['-c', 'command -v resize2fs'], { encoding: 'utf8' }).trim(), path.join(oldTools, 'resize2fs'));
    const tools = spawnToolRunner({ searchPath: [oldTools, '/usr/sbin', '/usr/bin', '/sbin', '/bin'] });
    const loop = attachLoop(disk);
    try {
      const r = await growDisk({ disk: loop.dev, partition: 2, log, tools });
      assert.deepEqual({ from: r.filesystem?.toolsFrom, mode: r.filesystem?.mode }, { from: 'chroot', mode: 'offline' }, dump());
      assert.match(r.notes.join('\n'), /initramfs's e2fsprogs could not grow .*unsupported feature/);
      const bytes = ext4Bytes(r.partitionDevice);
      assert.ok(bytes > 210 * MiB && bytes <= 215 * MiB, `ext4 is ${bytes} bytes\n${dump()}`);
      assert.doesNotMatch(fs.readFileSync('/proc/mounts', 'utf8'), /booty-root-/, 'nothing left mounted');
    } finally {
      loop.detach();
    }
  });

  it('GPT + ext4 without tools inside: offline e2fsck + resize2fs from the agent\'s PATH', async () => {
    const disk = path.join(dir, 'gpt-ext4.img');
    makeImage(disk, 64 * MiB, 'label: gpt\n,8M\n,\n');
    const fsImg = path.join(dir, 'ext4-plain.img');
    mkExt4(fsImg, 54 * MiB);
    writeAt(disk, fsImg, 9 * MiB);
    growFile(disk, 200 * MiB);
    const loop = attachLoop(disk);
    try {
      const r = await growDisk({ disk: loop.dev, partition: 2, log, chrootFallback: false });
      assert.equal(r.filesystem?.toolsFrom, 'initramfs');
      const bytes = ext4Bytes(r.partitionDevice);
      assert.ok(bytes > 180 * MiB && bytes <= 190 * MiB, `ext4 is ${bytes} bytes`);
      assert.equal(r.partitionBytes.after, 190 * MiB, 'from 9 MiB to the last MiB (the backup GPT lives there)');
      // Growing again changes nothing and fails nowhere.
      const again = await growDisk({ disk: loop.dev, partition: 2, log });
      assert.equal(again.partitionGrown, false);
      assert.equal(ext4Bytes(r.partitionDevice), bytes);
    } finally {
      loop.detach();
    }
  });

  it('GPT + XFS root: xfs_growfs through a temporary mount', async () => {
    const disk = path.join(dir, 'gpt-xfs.img');
    const rootDir = path.join(dir, 'root-xfs');
    makeMiniRoot(rootDir, ['xfs_growfs']);
    makeImage(disk, 400 * MiB, 'label: gpt\n,16M\n,\n');
    const fsImg = path.join(dir, 'xfs.img');
    mkXfs(fsImg, 383 * MiB, rootDir, path.join(dir, 'mnt'));
    writeAt(disk, fsImg, 17 * MiB);
    growFile(disk, 900 * MiB);
    const loop = attachLoop(disk);
    try {
      const r = await growDisk({ disk: loop.dev, partition: 'last', log });
      assert.equal(r.content, 'xfs');
      assert.equal(r.filesystem?.toolsFrom, 'initramfs', dump());
      const bytes = xfsBytes(r.partitionDevice);
      assert.ok(bytes > 850 * MiB && bytes <= r.partitionBytes.after, `xfs is ${bytes} bytes\n${dump()}`);
    } finally {
      loop.detach();
    }
  });
});
