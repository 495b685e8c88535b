// Paths inside a mounted foreign root. A deployed OS is full of absolute symlinks
// (/etc/resolv.conf -> /run/systemd/resolve/stub-resolv.conf, /sbin -> /usr/sbin on older
// layouts); following them from the agent would read or write the initramfs's own files. So every
// lookup resolves symlinks the way the kernel would inside a chroot at `root`.
import fs from 'node:fs';
import path from 'node:path';

const MAX_LINKS = 40;

/**
 * The host path of `p` (absolute, as seen inside `root`) with every symlink resolved inside
 * `root`. Components that do not exist yet are kept as given, so the result can be created.
 */
export function resolveInRoot(root: string, p: string): string {
  const pending = p.split('/').filter((c) => c !== '' && c !== '.');
  const done: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const c = pending.shift() as string;
    if (c === '..') { done.pop(); continue; }
    const hostPath = path.join(root, ...done, c);
    let st: fs.Stats | undefined;
    try { st = fs.lstatSync(hostPath); } catch { st = undefined; }
    if (st?.isSymbolicLink()) {
      if (++links > MAX_LINKS) throw new Error(`too many symlinks resolving ${p} inside ${root}`);
      const target = fs.readlinkSync(hostPath);
      const parts = target.split('/').filter((x) => x !== '' && x !== '.');
      if (target.startsWith('/')) done.length = 0;
      pending.unshift(...parts);
      continue;
    }
    done.push(c);
  }
  return path.join(root, ...done);
}

/** lstat of the final component (symlinks not followed) of `p` inside `root`, or undefined. */
export function lstatInRoot(root: string, p: string): fs.Stats | undefined {
  const parent = resolveInRoot(root, path.posix.dirname(p));
  try { return fs.lstatSync(path.join(parent, path.posix.basename(p))); } catch { return undefined; }
}

export function existsInRoot(root: string, p: string): boolean {
  try { fs.statSync(resolveInRoot(root, p)); return true; } catch { return false; }
}

/** An executable file at `p` inside `root`, or undefined. */
export function executableInRoot(root: string, p: string): string | undefined {
  const host = resolveInRoot(root, p);
  try {
    const st = fs.statSync(host);
    return st.isFile() && (st.mode & 0o111) !== 0 ? host : undefined;
  } catch {
    return undefined;
  }
}
