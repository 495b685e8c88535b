// Test inputs that are slow to make (a 512 MiB image through `xz -6` takes minutes on a shared
// 2-core machine) are made once per content and kept in $BOOTY_CACHE/test-inputs/. The key hashes
// everything the file depends on: the generator's source text, its parameters and the version of
// each tool it runs, so a changed generator or an upgraded xz makes a new file instead of reusing
// a stale one. A file is built under a temporary name and renamed into place (a killed build
// leaves no half file under the key); concurrent test processes wait for one builder (a lock
// directory, as test/helpers/initramfs-build.ts does). Tests still judge the cached bytes with the
// real tools (xz -dc, bzip2 -dc), so a damaged cache fails a test instead of passing it.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const repoRoot = path.resolve(import.meta.dirname, '..', '..');
// BOOTY_CACHE (CI sets it) keeps builds across clones and runs; keys make sharing safe.
const cacheRoot = process.env.BOOTY_CACHE ?? path.join(repoRoot, '.cache');

const LOCK_STALE_MS = 30 * 60_000;
const UNUSED_PRUNE_MS = 2 * 24 * 3600_000;

/** `tool --version`'s first line: part of a key, so an upgraded tool rebuilds. */
export function toolVersion(tool: string): string {
  return execFileSync(tool, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0]!.trim();
}

export interface CachedInput {
  /** absolute paths under the cache, keyed by name as the builder produced them */
  files: Record<string, string>;
  key: string;
  /** whether this call built them (false: taken from the cache) */
  built: boolean;
}

/**
 * The files `build` writes into the directory it is given, taken from the cache when a build with
 * the same key exists. `keyParts` must name every input of the build (generator source, sizes,
 * seeds, command lines, tool versions).
 */
export async function cachedInput(name: string, keyParts: readonly unknown[], fileNames: readonly string[],
  build: (dir: string) => void | Promise<void>): Promise<CachedInput> {
  const base = path.join(cacheRoot, 'test-inputs');
  fs.mkdirSync(base, { recursive: true });
  const key = createHash('sha256').update(JSON.stringify([name, ...keyParts])).digest('hex').slice(0, 16);
  const dir = path.join(base, `${name}-${key}`);
  const files = Object.fromEntries(fileNames.map((f) => [f, path.join(dir, f)]));
  const complete = (): boolean => fileNames.every((f) => fs.existsSync(path.join(dir, f)));
  if (complete()) return { files, key, built: markUsed(dir, false) };
  const lock = `${dir}.lock`;
  for (;;) {
    try { fs.mkdirSync(lock); break; } catch { /* another process builds */ }
    try { if (Date.now() - fs.statSync(lock).mtimeMs > LOCK_STALE_MS) fs.rmSync(lock, { recursive: true, force: true }); } catch { /* gone */ }
    if (complete()) return { files, key, built: markUsed(dir, false) };
    await new Promise((r) => setTimeout(r, 2000));
  }
  try {
    if (complete()) return { files, key, built: markUsed(dir, false) };
    const tmp = `${dir}.tmp-${process.pid}`;
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp);
    try {
      await build(tmp);
      for (const f of fileNames) if (!fs.existsSync(path.join(tmp, f))) throw new Error(`cachedInput(${name}): the build made no ${f}`);
      fs.rmSync(dir, { recursive: true, force: true });
      fs.renameSync(tmp, dir);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
    pruneUnused(base, name, key);
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
  return { files, key, built: true };
}

/** Puts a cached file where a test serves it from: a hard link when the cache shares the file
 *  system, else a copy (the cached file is never written through either). */
export function placeCachedFile(from: string, to: string): void {
  try { fs.linkSync(from, to); } catch { fs.copyFileSync(from, to); }
}

function markUsed(dir: string, built: boolean): boolean {
  try { const now = new Date(); fs.utimesSync(dir, now, now); } catch { /* pruned meanwhile */ }
  return built;
}

/** Other keys of the same name that no test has taken for two days go (several checkouts share
 *  the cache, each may be on another generator version). */
function pruneUnused(base: string, name: string, key: string): void {
  for (const f of fs.readdirSync(base)) {
    if (!f.startsWith(`${name}-`) || f.includes(key) || f.endsWith('.lock') || f.includes('.tmp-')) continue;
    const p = path.join(base, f);
    try { if (Date.now() - fs.statSync(p).mtimeMs > UNUSED_PRUNE_MS) fs.rmSync(p, { recursive: true, force: true }); } catch { /* raced */ }
  }
}
