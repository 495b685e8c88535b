// Real disk images for data-path tests (root): a GPT partition table written by sfdisk, an ext4
// filesystem with real files (a copy of a source tree plus some random data), the rest zeros, as
// OS images are. Built through a loop device that is detached again before returning.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { addPartitions, attachLoop, detachLoop } from './loop-device.ts';

const root = path.resolve(import.meta.dirname, '..', '..');

/**
 * Writes a `sizeMiB` image to `file`: partition 1 ext4 (60% of the disk) holding a copy of
 * node_modules/undici and `randomMiB` of random bytes, partition 2 left empty.
 */
export function makeExt4DiskImage(file: string, opts: { sizeMiB?: number; randomMiB?: number } = {}): void {
  const sizeMiB = opts.sizeMiB ?? 128;
  execFileSync('truncate', ['-s', `${sizeMiB}M`, file]);
  const p1 = Math.floor(sizeMiB * 0.6);
  execFileSync('sfdisk', ['-q', '--no-reread', '--no-tell-kernel', file], { input: `label: gpt\n,${p1}M,L\n,,L\n` });
  const dev = attachLoop(file);
  const mnt = fs.mkdtempSync(path.join(path.dirname(file), 'mnt-'));
  let mounted = false;
  try {
    addPartitions(dev);
    execFileSync('mkfs.ext4', ['-q', '-F', `${dev}p1`], { stdio: 'ignore' });
    execFileSync('mount', [`${dev}p1`, mnt]);
    mounted = true;
    fs.cpSync(path.join(root, 'node_modules/undici'), path.join(mnt, 'undici'), { recursive: true });
    fs.writeFileSync(path.join(mnt, 'random.bin'), randomBytes((opts.randomMiB ?? 4) << 20));
    fs.writeFileSync(path.join(mnt, 'hello.txt'), 'hello from a booty test image\n');
  } finally {
    if (mounted) execFileSync('umount', [mnt]);
    fs.rmdirSync(mnt);
    detachLoop(dev);
  }
}

/** Fills `file` (or a device) with a repeating random pattern, so leftovers show up in a compare. */
export function fillWithGarbage(target: string, bytes: number): void {
  const block = randomBytes(1 << 20);
  const fd = fs.openSync(target, 'r+');
  try {
    for (let off = 0; off < bytes; off += block.length) fs.writeSync(fd, block, 0, Math.min(block.length, bytes - off), off);
    fs.fsyncSync(fd);
  } finally { fs.closeSync(fd); }
}

/** True when the first `length` bytes of a and b are equal (cmp -n). */
export function sameBytes(a: string, b: string, length: number): boolean {
  try { execFileSync('cmp', ['-n', String(length), a, b], { stdio: 'ignore' }); return true; } catch { return false; }
}

/** True when [offset, offset+length) of `file` holds only zeros. */
export function isZeroRange(file: string, offset: number, length: number): boolean {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(Math.min(length, 1 << 20));
    for (let at = offset; at < offset + length; at += buf.length) {
      const n = fs.readSync(fd, buf, 0, Math.min(buf.length, offset + length - at), at);
      if (!buf.subarray(0, n).every((x) => x === 0)) return false;
    }
    return true;
  } finally { fs.closeSync(fd); }
}
