// growDisk for real (root): an image with a real partition table and filesystem is attached as a
// loop device larger than the image, grown by our codec, the kernel told through BLKRRPART/BLKPG,
// and the filesystem grown by real resize2fs / xfs_growfs, through chroot into a tiny root that
// holds the tools, or with the host's tools. dumpe2fs / xfs_info / sfdisk check the result.
// (LVM needs device-mapper, which this host lacks: its path runs in the QEMU end-to-end test.)
import { describe, it, after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { growDisk } from '../../src/disk/grow.ts';
import { createLogger } from '../../src/util/log.ts';
import { attachLoop, ext4Bytes, isRoot, makeMiniRoot, mkExt4, mkXfs, sfdiskJsonDev, writeAt, xfsBytes } from '../helpers/loop-disk.ts';
import { growFile, makeImage, tempDir } from '../helpers/sparse-disk-image.ts';

const MiB = 1024 * 1024;
const skip = isRoot() ? false : 'needs root (loop devices)';
/** Online ext4 resize needs CAP_SYS_RESOURCE, which some sandboxes drop even for root. */
const canResizeOnline = (BigInt('0x' + (/^CapEff:\s+([0-9a-f]+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0')) >> 24n) & 1n;

describe('growDisk on loop devices', { skip }, () => {
  let dir = '';
  before(() => { dir = tempDir('booty-growloop-'); });
  after(() => { if (dir) fs.rmSync(dir, { recursive: true, force: true }); });

  const lines: string[] = [];
  const log = createLogger({ level: 'debug', sinks: [(l, m) => { lines.push(`${l}: ${m}`); }] });
  const dump = () => lines.join('\n');

  it('MBR + ext4 root: partition and filesystem fill the disk, grown with the root\'s own resize2fs via chroot', async () => {
    // Without CAP_SYS_RESOURCE the online resize in the chroot is refused: then this checks the
    // fallback (offline, initramfs tools) instead.
    const disk = path.join(dir, 'mbr-ext4.img');
    const rootDir = path.join(dir, 'root-ext');
    makeMiniRoot(rootDir, ['resize2fs']);
    makeImage(disk, 96 * MiB, 'label: dos\n,16M,83,*\n,,83\n');
    const fsImg = path.join(dir, 'ext4.img');
    mkExt4(fsImg, 79 * MiB, rootDir);
    writeAt(disk, fsImg, 17 * MiB);
    growFile(disk, 320 * MiB);
    const loop = attachLoop(disk);
    try {
      const r = await growDisk({ disk: loop.dev, partition: 'last', log });
      assert.equal(r.partition, 2, dump());
      assert.equal(r.content, 'ext');
      if (canResizeOnline) {
        assert.equal(r.filesystem?.toolsFrom, 'chroot', dump());
      } else {
        assert.equal(r.filesystem?.toolsFrom, 'initramfs', dump());
        assert.match(r.notes.join('\n'), /online resize of .* failed .*Permission denied.*retrying offline/);
      }
      assert.equal(r.lvm, undefined);
      const t = sfdiskJsonDev(loop.dev);
      assert.equal(t.partitions[1].start + t.partitions[1].size, (320 * MiB) / 512, 'partition ends at the end of the disk');
      const bytes = ext4Bytes(r.partitionDevice);
      assert.ok(bytes > 300 * MiB && bytes <= 303 * MiB, `ext4 is ${bytes} bytes\n${dump()}`);
      assert.equal(r.filesystem?.afterBytes, bytes, 'the report measured the grown filesystem');
      assert.equal(r.filesystem?.beforeBytes, 79 * MiB);
      // nothing left mounted
      assert.doesNotMatch(fs.readFileSync('/proc/mounts', 'utf8'), /booty-root-/);
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
      const r = await growDisk({ disk: loop.dev, partition: 2, log, preferChroot: false });
      assert.equal(r.filesystem?.toolsFrom, 'initramfs');
      const bytes = ext4Bytes(r.partitionDevice);
      assert.ok(bytes > 180 * MiB && bytes <= 190 * MiB, `ext4 is ${bytes} bytes`);
      assert.equal(r.partitionBytes.after, 190 * MiB, 'from 9 MiB to the last MiB (the backup GPT lives there)');
      // Growing again changes nothing and fails nowhere.
      const again = await growDisk({ disk: loop.dev, partition: 2, log, preferChroot: false });
      assert.equal(again.partitionGrown, false);
      assert.equal(ext4Bytes(r.partitionDevice), bytes);
    } finally {
      loop.detach();
    }
  });

  it('GPT + XFS root: xfs_growfs of the root via chroot', async () => {
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
      assert.equal(r.filesystem?.toolsFrom, 'chroot', dump());
      const bytes = xfsBytes(r.partitionDevice);
      assert.ok(bytes > 850 * MiB && bytes <= r.partitionBytes.after, `xfs is ${bytes} bytes\n${dump()}`);
    } finally {
      loop.detach();
    }
  });
});
