// The initramfs as a set of entries before it is archived: every file knows where it came from
// and which part of the breakdown it counts towards. Parent directories are implied, paths are
// relative to / and follow Debian's merged /usr (bin, sbin, lib, lib64 are links into usr/).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { CpioEntry } from './cpio.ts';

export type Part = 'node' | 'bundle' | 'koffi' | 'libs' | 'busybox' | 'tools' | 'modules' | 'config';

export interface TreeFile { dest: string; perm: number; size: number; source: string | Buffer; part: Part; origin: string }

/** usrmerge: the path a package file gets in the initramfs ('sbin/lvm' -> 'usr/sbin/lvm'). */
export function mergedUsrPath(rel: string): string {
  const clean = rel.replace(/^\/+/, '');
  return /^(bin|sbin|lib|lib64)(\/|$)/.test(clean) ? `usr/${clean}` : clean;
}

export const USRMERGE_LINKS: Record<string, string> = { bin: 'usr/bin', sbin: 'usr/sbin', lib: 'usr/lib', lib64: 'usr/lib64' };

export class InitramfsTree {
  readonly files = new Map<string, TreeFile>();
  readonly symlinks = new Map<string, { target: string; part: Part }>();
  readonly dirs = new Map<string, number>();
  readonly devices = new Map<string, { kind: 'char' | 'block'; perm: number; major: number; minor: number }>();

  private claim(dest: string): string {
    const d = dest.replace(/^\/+/, '');
    if (this.files.has(d) || this.symlinks.has(d) || this.devices.has(d) || this.dirs.has(d)) {
      throw new Error(`initramfs: '${d}' added twice`);
    }
    return d;
  }

  addFile(dest: string, f: { source: string | Buffer; size: number; perm: number; part: Part; origin: string }): void {
    const d = this.claim(dest);
    this.files.set(d, { dest: d, ...f });
  }

  /** Adds a file unless the same destination already holds the same source (shared libraries). */
  addFileOnce(dest: string, f: { source: string; size: number; perm: number; part: Part; origin: string }): void {
    const have = this.files.get(dest.replace(/^\/+/, ''));
    if (have !== undefined && have.source === f.source) return;
    this.addFile(dest, f);
  }

  addSymlink(dest: string, target: string, part: Part): void {
    this.symlinks.set(this.claim(dest), { target, part });
  }

  addDir(dest: string, perm = 0o755): void {
    this.dirs.set(this.claim(dest), perm);
  }

  addDevice(dest: string, kind: 'char' | 'block', major: number, minor: number, perm: number): void {
    this.devices.set(this.claim(dest), { kind, perm, major, minor });
  }

  has(dest: string): boolean {
    const d = dest.replace(/^\/+/, '');
    return this.files.has(d) || this.symlinks.has(d) || this.devices.has(d) || this.dirs.has(d);
  }

  /** Every entry, with the parent directories nobody added explicitly (mode 0755). */
  toCpioEntries(): CpioEntry[] {
    const out: CpioEntry[] = [];
    const dirs = new Map(this.dirs);
    const addParents = (p: string) => {
      for (let d = path.posix.dirname(p); d !== '.' && d !== ''; d = path.posix.dirname(d)) {
        if (!dirs.has(d)) dirs.set(d, 0o755);
      }
    };
    for (const f of this.files.values()) {
      addParents(f.dest);
      const src = f.source;
      out.push({ name: f.dest, kind: 'file', perm: f.perm, size: f.size, data: typeof src === 'string' ? () => readFile(src) : src });
    }
    for (const [name, l] of this.symlinks) { addParents(name); out.push({ name, kind: 'symlink', target: l.target }); }
    for (const [name, d] of this.devices) { addParents(name); out.push({ name, kind: d.kind, perm: d.perm, major: d.major, minor: d.minor }); }
    for (const name of [...dirs.keys()]) addParents(name);
    for (const [name, perm] of dirs) {
      if (this.files.has(name) || this.symlinks.has(name)) throw new Error(`initramfs: '${name}' is both a directory and a file`);
      out.push({ name, kind: 'dir', perm });
    }
    return out;
  }

  /** Bytes per part (file contents only) and the number of entries. */
  breakdown(): { part: Part; bytes: number; files: number }[] {
    const by = new Map<Part, { bytes: number; files: number }>();
    for (const f of this.files.values()) {
      const b = by.get(f.part) ?? { bytes: 0, files: 0 };
      b.bytes += f.size;
      b.files += 1;
      by.set(f.part, b);
    }
    return [...by].map(([part, b]) => ({ part, ...b })).sort((a, b) => b.bytes - a.bytes);
  }
}
