// Fetching pinned Debian packages: `apt-get download name=version` into the cache, unpacked
// with `dpkg-deb -x` into one directory per package. The host's installed files are never
// used, so the initramfs does not depend on what happens to be installed on the build machine.
import { lstat, mkdir, readdir, readlink, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { BootyError } from '../util/errors.ts';
import { runTool, runToolOk } from './run.ts';

export interface UnpackedPackage { name: string; version: string; dir: string }

/** A file-system-safe directory name for name=version (epochs have ':'). */
export function packageDirName(name: string, version: string): string {
  return `${name}_${version.replace(/[^A-Za-z0-9.+~-]/g, '_')}`;
}

async function exists(p: string): Promise<boolean> {
  try { await stat(p); return true; } catch { return false; }
}

/** Downloads (once) and unpacks (once) name=version under cacheDir; returns the unpacked dir. */
export async function fetchPackage(cacheDir: string, name: string, version: string, log: (m: string) => void): Promise<UnpackedPackage> {
  const base = packageDirName(name, version);
  const dir = path.join(cacheDir, 'pkg', base);
  if (await exists(path.join(dir, '.unpacked'))) return { name, version, dir };
  const debDir = path.join(cacheDir, 'debs');
  const deb = path.join(debDir, `${base}.deb`);
  if (!(await exists(deb))) {
    log(`downloading ${name} ${version}`);
    const tmp = path.join(debDir, `.tmp-${base}-${process.pid}`);
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    try {
      const r = await runTool('apt-get', ['download', '-q', `${name}=${version}`], { cwd: tmp });
      if (r.code !== 0) throw vanished(name, version, r.stderr || r.stdout);
      const got = (await readdir(tmp)).filter((f) => f.endsWith('.deb'));
      if (got.length !== 1) throw vanished(name, version, `expected one .deb, got: ${got.join(', ') || 'none'}`);
      await rename(path.join(tmp, got[0]), deb);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await runToolOk('dpkg-deb', ['-x', deb, dir]);
  await writeFile(path.join(dir, '.unpacked'), `${name} ${version}\n`);
  return { name, version, dir };
}

function vanished(name: string, version: string, aptSays: string): BootyError {
  const said = aptSays.trim().split('\n').filter((l) => l.startsWith('E:')).join(' ') || aptSays.trim().split('\n').slice(-2).join(' ');
  return new BootyError({
    stage: 'build', code: 'pin-unavailable',
    message: `cannot download the pinned ${name} ${version} (apt-get: ${said})`,
    hint: `Debian drops superseded versions from its mirrors: run 'apt-get update', then ` +
      `'booty build-initramfs --update-pins' to pin what apt offers now (it rewrites initramfs/inputs.json; commit that), and build again`,
  });
}

/**
 * A read-only view over several unpacked packages as if they were installed in one root:
 * `find('lib/x86_64-linux-gnu/libc.so.6')` returns the first package directory holding it.
 * Debian 12 .debs still ship /lib, /sbin and /usr/lib, /usr/sbin separately (usrmerge happens
 * at install time), so lookups try both spellings.
 */
export class PackageRoot {
  readonly packages: UnpackedPackage[];
  constructor(packages: UnpackedPackage[]) { this.packages = packages; }

  /** The absolute host path of rel (relative to /) in the first package that ships it. */
  async find(rel: string): Promise<{ path: string; rel: string; pkg: UnpackedPackage } | undefined> {
    const clean = path.posix.normalize(rel.replace(/^\/+/, ''));
    for (const cand of usrMergeSpellings(clean)) {
      for (const p of this.packages) {
        const full = path.join(p.dir, cand);
        try { await lstat(full); } catch { continue; }
        return { path: full, rel: cand, pkg: p };
      }
    }
    return undefined;
  }

  /**
   * Like find, but follows symbolic links inside the package root (never into the host: an
   * absolute link target such as /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 is looked up here).
   */
  async findFile(rel: string): Promise<{ path: string; rel: string; pkg: UnpackedPackage } | undefined> {
    let cur = rel;
    for (let hops = 0; hops < 16; hops++) {
      const f = await this.find(cur);
      if (f === undefined) return undefined;
      const st = await lstat(f.path);
      if (!st.isSymbolicLink()) return st.isFile() ? f : undefined;
      const target = await readlink(f.path);
      cur = target.startsWith('/') ? target : path.posix.join(path.posix.dirname(f.rel), target);
    }
    return undefined;
  }
}

/** 'sbin/lvm' -> ['sbin/lvm', 'usr/sbin/lvm']; 'usr/lib/x' -> ['usr/lib/x', 'lib/x']. */
export function usrMergeSpellings(rel: string): string[] {
  const m = /^(bin|sbin|lib|lib64)\//.exec(rel);
  if (m) return [rel, `usr/${rel}`];
  const u = /^usr\/(bin|sbin|lib|lib64)\//.exec(rel);
  if (u) return [rel, rel.slice(4)];
  return [rel];
}
