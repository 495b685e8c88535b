// Sparse disk image files with real partition tables made by sfdisk, for tests of the partition
// table codecs: no root needed, a few KiB on disk each.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface SfdiskPartition {
  node: string;
  start: number;
  size: number;
  type: string;
}

export interface SfdiskTable {
  label: 'dos' | 'gpt';
  lastlba?: number;
  firstlba?: number;
  sectorsize: number;
  partitions: SfdiskPartition[];
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A sparse file of `size` bytes partitioned by an sfdisk script. */
export function makeImage(file: string, size: number | string, script: string): void {
  execFileSync('truncate', ['-s', String(size), file]);
  execFileSync('sfdisk', ['-q', '--no-reread', '--no-tell-kernel', file], { input: script, stdio: ['pipe', 'ignore', 'pipe'] });
}

export function sfdiskJson(file: string): SfdiskTable {
  const out = execFileSync('sfdisk', ['--json', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return (JSON.parse(out) as { partitiontable: SfdiskTable }).partitiontable;
}

/**
 * Images with 4096-byte sectors: Debian 12's sfdisk has no --sector-size, fdisk has -b. `commands`
 * are fdisk's interactive keystrokes (e.g. "g\nn\n1\n\n+8M\nw\n").
 */
export function makeImageFdisk(file: string, size: number | string, sectorSize: number, commands: string): void {
  execFileSync('truncate', ['-s', String(size), file]);
  execFileSync('fdisk', ['-b', String(sectorSize), file], { input: commands, stdio: ['pipe', 'ignore', 'pipe'] });
}

/** fdisk's listing: partitions as [start, end] in sectors, and all it printed (warnings included). */
export function fdiskList(file: string, sectorSize: number): { partitions: [number, number][]; text: string } {
  const r = spawnSync('fdisk', ['-b', String(sectorSize), '-l', '-o', 'Device,Start,End', file], { encoding: 'utf8' });
  const text = r.stdout + r.stderr;
  const partitions: [number, number][] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /^\S+\s+(\d+)\s+(\d+)\s*$/.exec(line);
    if (m) partitions.push([Number(m[1]), Number(m[2])]);
  }
  return { partitions, text };
}

/** `sgdisk -v` output; it exits 0 even when it finds problems, so callers check the text. */
export function sgdiskVerify(file: string): string {
  return execFileSync('sgdisk', ['-v', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export function growFile(file: string, size: number | string): void {
  execFileSync('truncate', ['-s', String(size), file]);
}
