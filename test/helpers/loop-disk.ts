// Real disks for integration tests (root): loop devices over sparse image files, filesystems
// written into partitions at their offsets, and a tiny "deployed OS" root holding real tools
// (copied with the libraries ldd names) so chroot steps run for real.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

export interface LoopDisk {
  dev: string;
  detach(): void;
}

/** Attach with partition scanning; always detach (also on failure). */
export function attachLoop(file: string): LoopDisk {
  const dev = execFileSync('losetup', ['-f', '--show', '-P', file], { encoding: 'utf8' }).trim();
  return {
    dev,
    detach() {
      try { execFileSync('losetup', ['-d', dev], { stdio: 'ignore' }); } catch { /* already gone */ }
    },
  };
}

/** Copy a filesystem image into the disk image at a byte offset (sparse, no truncation). */
export function writeAt(disk: string, fsImage: string, offset: number): void {
  const MiB = 1024 * 1024;
  if (offset % MiB !== 0) throw new Error('offset must be MiB-aligned');
  execFileSync('dd', [`if=${fsImage}`, `of=${disk}`, 'bs=1M', `seek=${offset / MiB}`, 'conv=notrunc,sparse', 'status=none']);
}

/** A directory shaped like a deployed OS root with the given host tools (and their libraries). */
export function makeMiniRoot(dir: string, tools: string[], extra: Record<string, string> = {}): void {
  for (const d of ['etc', 'dev', 'proc', 'sys', 'run', 'tmp', 'usr/sbin', 'usr/bin', 'usr/lib', 'lib64']) {
    fs.mkdirSync(path.join(dir, d), { recursive: true });
  }
  fs.writeFileSync(path.join(dir, 'etc/os-release'), 'PRETTY_NAME="booty test root"\nID=bootytest\n');
  fs.writeFileSync(path.join(dir, 'etc/fstab'), '# test\n');
  for (const t of tools) {
    const host = execFileSync('sh', ['-c', `command -v ${t}`], { encoding: 'utf8' }).trim();
    copyWithLibs(dir, host);
  }
  for (const [p, content] of Object.entries(extra)) {
    fs.mkdirSync(path.join(dir, path.dirname(p)), { recursive: true });
    fs.writeFileSync(path.join(dir, p), content);
  }
}

function copyWithLibs(root: string, binary: string): void {
  const files = new Set<string>([binary]);
  const ldd = execFileSync('ldd', [binary], { encoding: 'utf8' });
  for (const m of ldd.matchAll(/(\/[^\s]+\.so[^\s]*)/g)) files.add(m[1]);
  for (const f of files) {
    const real = fs.realpathSync(f);
    const dest = path.join(root, f);
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    if (!fs.existsSync(dest)) fs.copyFileSync(real, dest);
    fs.chmodSync(dest, fs.statSync(real).mode & 0o7777);
  }
}

/** An ext4 filesystem image of `size` bytes populated from `dir` (block size 4096 unless given). */
export function mkExt4(image: string, size: number, dir?: string, blockSize = 4096): void {
  execFileSync('truncate', ['-s', String(size), image]);
  execFileSync('mkfs.ext4', ['-q', '-F', '-b', String(blockSize), ...(dir ? ['-d', dir] : []), image], { stdio: 'ignore' });
}

/** An XFS filesystem image, with `dir` copied in through a temporary loop mount. */
export function mkXfs(image: string, size: number, dir?: string, mnt?: string): void {
  execFileSync('truncate', ['-s', String(size), image]);
  execFileSync('mkfs.xfs', ['-q', '-f', image], { stdio: 'ignore' });
  if (dir === undefined || mnt === undefined) return;
  fs.mkdirSync(mnt, { recursive: true });
  execFileSync('mount', ['-o', 'loop', image, mnt]);
  try {
    execFileSync('cp', ['-a', `${dir}/.`, mnt]);
  } finally {
    execFileSync('umount', [mnt]);
  }
}

export function sfdiskJsonDev(dev: string): { partitions: { node: string; start: number; size: number }[] } {
  return (JSON.parse(execFileSync('sfdisk', ['--json', dev], { encoding: 'utf8' })) as { partitiontable: { partitions: { node: string; start: number; size: number }[] } }).partitiontable;
}

/** ext4 size in bytes as dumpe2fs reports it. */
export function ext4Bytes(dev: string): number {
  const out = execFileSync('dumpe2fs', ['-h', dev], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const count = Number(/^Block count:\s+(\d+)/m.exec(out)?.[1]);
  const size = Number(/^Block size:\s+(\d+)/m.exec(out)?.[1]);
  return count * size;
}

/** XFS data size in bytes as xfs_info reports it. */
export function xfsBytes(dev: string): number {
  const out = execFileSync('xfs_info', [dev], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const m = /^data\s+=\s+bsize=(\d+)\s+blocks=(\d+)/m.exec(out);
  if (m === null) throw new Error(`unexpected xfs_info output: ${out}`);
  return Number(m[1]) * Number(m[2]);
}
