// A tree holding every kind of entry a root filesystem has, made by real tools (mkdir, mknod,
// mkfifo, ln, setcap, python3's os.setxattr), and the per-entry description two trees are
// compared by. Used by the rootfs extraction tests (GNU tar packs it, booty extracts) and the
// rootfs capture tests (booty packs it, GNU tar judges).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { lgetxattr, llistxattr } from '../../src/sys/xattr.ts';

/** cap_setuid (bit 7) + cap_net_raw (bit 13): the permitted mask's first byte is 0x80. */
export const CAPS = 'cap_setuid,cap_net_raw=ep';
export const LONG_DIR = `deep/${'d'.repeat(60)}`;
export const LONG_FILE = `${LONG_DIR}/${'f'.repeat(60)}.conf`;
export const LONG_TARGET = `${'../'.repeat(3)}${'t'.repeat(110)}`;
/** "café" in ISO-8859-1: a name that is not UTF-8, as bytes */
export const LATIN1_NAME = Buffer.from([0x63, 0x61, 0x66, 0xe9]);
/** The tools buildRootfsTree runs. */
export const ROOTFS_TREE_TOOLS = ['setcap', 'getcap', 'python3', 'mknod'];

export const sha = (p: fs.PathLike): string => createHash('sha256').update(fs.readFileSync(p)).digest('hex');

/**
 * Make the tree at TREE (created; its parent must exist): long names, odd and read-only directory
 * modes, setuid/setgid/sticky, foreign numeric owners, relative and absolute symlinks, hard links,
 * a FIFO, char and block devices, a binary security.capability set by setcap and binary user.*
 * xattrs, an empty and a 5 MiB random file, a name that is not UTF-8; then distinct old mtimes on
 * everything, directories last.
 */
export function buildRootfsTree(tree: string): void {
  fs.mkdirSync(tree);
  const sh = (cmd: string): void => { execFileSync('bash', ['-euo', 'pipefail', '-c', cmd], { cwd: tree, stdio: ['ignore', 'pipe', 'pipe'] }); };
  sh(`mkdir -p ${LONG_DIR} private readonly/sub sgid-dir sticky owned-dir etc
    printf 'hello\\n' > plain.txt
    : > empty
    head -c ${5 * 1024 * 1024} /dev/urandom > random.bin
    printf 'long name\\n' > ${LONG_FILE}
    ln -s ${LONG_TARGET} longlink
    ln -s plain.txt rel-link
    ln -s /etc/hostname abs-link
    printf 'secret\\n' > private/key; chmod 0600 private/key; chmod 0700 private
    printf 'a\\n' > readonly/a; printf 'b\\n' > readonly/sub/b; chmod 0555 readonly/sub readonly
    printf '#!/bin/sh\\n' > suid; chmod 04755 suid
    chmod 02775 sgid-dir; printf 'g\\n' > sgid-dir/file
    chmod 01777 sticky
    printf 'o\\n' > owned; chown 1234:5678 owned owned-dir; chmod 0640 owned
    printf 'linked\\n' > hl-a; ln hl-a hl-b
    mkfifo fifo
    mknod null-dev c 1 3
    mknod blk-dev b 7 200
    printf '\\177ELF' > ping; chmod 0755 ping; setcap ${CAPS} ping
    printf 'utf8\\n' > café`);
  fs.writeFileSync(Buffer.concat([Buffer.from(tree + '/'), LATIN1_NAME]), 'latin1\n');
  // Binary user.* xattrs (every byte value) on a file and a directory; then distinct old mtimes on
  // everything, directories last, so that a directory's mtime is one extraction must restore.
  execFileSync('python3', ['-c', `
import os
os.chdir(${JSON.stringify(path.dirname(tree))})
tree = ${JSON.stringify(path.basename(tree))}.encode()
os.setxattr(tree + b'/plain.txt', 'user.blob', bytes(range(256)))
os.setxattr(tree + b'/owned-dir', 'user.dir', b'\\x00\\xff\\x80dir')
t = 1500000000
entries = []
for root, dirs, files in os.walk(tree, topdown=False):
    entries += [os.path.join(root, f) for f in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]]
    entries += [root]
for i, p in enumerate(entries):
    os.utime(p, (t + i * 1000, t + i * 1000), follow_symlinks=False)
`], { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Every path below ROOT (byte strings, latin1), sorted. */
export function walk(root: string, rel = ''): string[] {
  const out: string[] = [];
  const abs = Buffer.concat([Buffer.from(root), Buffer.from(rel === '' ? '' : '/' + rel, 'latin1')]);
  for (const name of fs.readdirSync(abs, { encoding: 'buffer' })) {
    const child = (rel === '' ? '' : rel + '/') + name.toString('latin1');
    out.push(child);
    const st = fs.lstatSync(Buffer.concat([Buffer.from(root + '/'), Buffer.from(child, 'latin1')]));
    if (st.isDirectory()) out.push(...walk(root, child));
  }
  return out.sort();
}

/** What a copy must reproduce of one path: type, mode, owner, times, content, links, xattrs. */
export function describe(root: string, rel: string, withXattrs = true): Record<string, unknown> {
  const p = rel === '' ? Buffer.from(root) : Buffer.concat([Buffer.from(root + '/'), Buffer.from(rel, 'latin1')]);
  const st = fs.lstatSync(p);
  const xattrs: Record<string, string> = {};
  if (withXattrs) for (const name of llistxattr(p)) xattrs[name.toString('latin1')] = lgetxattr(p, name)!.toString('hex');
  return {
    type: st.mode & 0o170000,
    mode: (st.mode & 0o7777).toString(8),
    uid: st.uid,
    gid: st.gid,
    mtime: Math.floor(st.mtimeMs / 1000),
    ...(st.isFile() ? { size: st.size, sha256: sha(p), nlink: st.nlink } : {}),
    ...(st.isSymbolicLink() ? { target: fs.readlinkSync(p, { encoding: 'buffer' }).toString('latin1') } : {}),
    ...(st.isCharacterDevice() || st.isBlockDevice() ? { rdev: st.rdev } : {}),
    xattrs,
  };
}
