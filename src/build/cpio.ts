// The "newc" cpio format (the one the Linux kernel unpacks as an initramfs), written by us so
// the archive is reproducible by construction: entries in byte order of their names, owner
// 0:0, one fixed mtime, inode numbers counted from 1 in that order, no host metadata at all.
// It can also hold device nodes (/dev/console) without root.
//
// Layout of one entry: a 110-byte ASCII header "070701" + 13 eight-digit hex fields, the name
// and a NUL padded to a multiple of 4 (counting the header), then the data padded to 4.

export type CpioEntry =
  | { name: string; kind: 'dir'; perm: number }
  | { name: string; kind: 'file'; perm: number; size: number; data: Buffer | (() => Promise<Buffer>) }
  | { name: string; kind: 'symlink'; target: string }
  | { name: string; kind: 'char' | 'block'; perm: number; major: number; minor: number };

export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;

export const TRAILER = 'TRAILER!!!';

export interface HeaderFields {
  ino: number; mode: number; uid: number; gid: number; nlink: number; mtime: number;
  filesize: number; devmajor: number; devminor: number; rdevmajor: number; rdevminor: number;
  namesize: number; check: number;
}

const FIELD_ORDER: (keyof HeaderFields)[] = [
  'ino', 'mode', 'uid', 'gid', 'nlink', 'mtime', 'filesize', 'devmajor', 'devminor',
  'rdevmajor', 'rdevminor', 'namesize', 'check',
];

function hex8(n: number, field: string): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`cpio: ${field} ${n} does not fit in 32 bits`);
  return n.toString(16).padStart(8, '0');
}

/** The header plus the NUL-terminated, padded name. */
export function encodeHeader(f: HeaderFields, name: string): Buffer {
  const nameBytes = Buffer.from(name, 'utf8');
  if (nameBytes.length + 1 !== f.namesize) throw new Error('cpio: namesize does not match the name');
  const head = '070701' + FIELD_ORDER.map((k) => hex8(f[k], k)).join('');
  const total = pad4(110 + f.namesize);
  const out = Buffer.alloc(total);
  out.write(head, 0, 'ascii');
  nameBytes.copy(out, 110);
  return out;
}

export function pad4(n: number): number {
  return (n + 3) & ~3;
}

/** Checks a name the kernel will unpack: relative, no '.'/'..' components, no empty parts. */
export function checkName(name: string): void {
  if (name === '' || name.startsWith('/') || name.endsWith('/') || name.split('/').some((p) => p === '' || p === '.' || p === '..')) {
    throw new Error(`cpio: bad entry name '${name}'`);
  }
}

/** Byte-wise comparison of UTF-8 names (locale independent). */
export function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * Yields the archive's bytes: the entries sorted by name (a parent directory sorts before its
 * children), then the trailer. File data callbacks are awaited one at a time, so a large tree
 * streams through with one file in memory.
 */
export async function* writeCpio(entries: Iterable<CpioEntry>, opts: { mtime: number }): AsyncGenerator<Buffer> {
  const sorted = [...entries].sort((a, b) => compareNames(a.name, b.name));
  let ino = 0;
  let prev: string | undefined;
  for (const e of sorted) {
    checkName(e.name);
    if (e.name === prev) throw new Error(`cpio: duplicate entry '${e.name}'`);
    prev = e.name;
    ino += 1;
    const base = {
      ino, uid: 0, gid: 0, mtime: opts.mtime, devmajor: 0, devminor: 0, rdevmajor: 0, rdevminor: 0,
      namesize: Buffer.byteLength(e.name, 'utf8') + 1, check: 0,
    };
    let data: Buffer;
    let mode: number;
    let nlink = 1;
    let rdev = { rdevmajor: 0, rdevminor: 0 };
    switch (e.kind) {
      case 'dir': mode = S_IFDIR | (e.perm & 0o7777); nlink = 2; data = Buffer.alloc(0); break;
      case 'symlink': mode = S_IFLNK | 0o777; data = Buffer.from(e.target, 'utf8'); break;
      case 'char': case 'block':
        mode = (e.kind === 'char' ? S_IFCHR : S_IFBLK) | (e.perm & 0o7777);
        rdev = { rdevmajor: e.major, rdevminor: e.minor };
        data = Buffer.alloc(0);
        break;
      case 'file': {
        mode = S_IFREG | (e.perm & 0o7777);
        data = typeof e.data === 'function' ? await e.data() : e.data;
        if (data.length !== e.size) throw new Error(`cpio: ${e.name} changed size while archiving (${e.size} -> ${data.length})`);
        break;
      }
    }
    yield encodeHeader({ ...base, ...rdev, mode, nlink, filesize: data.length }, e.name);
    if (data.length > 0) {
      yield data;
      const padding = pad4(data.length) - data.length;
      if (padding > 0) yield Buffer.alloc(padding);
    }
  }
  yield encodeHeader({
    ino: 0, mode: 0, uid: 0, gid: 0, nlink: 1, mtime: 0, filesize: 0, devmajor: 0, devminor: 0,
    rdevmajor: 0, rdevminor: 0, namesize: TRAILER.length + 1, check: 0,
  }, TRAILER);
}

/** Parses a newc archive back into headers and data (for tests and for `--list`). */
export function readCpio(buf: Buffer): { name: string; fields: HeaderFields; data: Buffer }[] {
  const out: { name: string; fields: HeaderFields; data: Buffer }[] = [];
  let off = 0;
  for (;;) {
    if (off + 110 > buf.length) throw new Error('cpio: truncated header');
    const magic = buf.toString('ascii', off, off + 6);
    if (magic !== '070701') throw new Error(`cpio: bad magic '${magic}' at ${off}`);
    const f = {} as HeaderFields;
    FIELD_ORDER.forEach((k, i) => { f[k] = parseInt(buf.toString('ascii', off + 6 + i * 8, off + 14 + i * 8), 16); });
    const name = buf.toString('utf8', off + 110, off + 110 + f.namesize - 1);
    off = pad4(off + 110 + f.namesize);
    if (name === TRAILER) return out;
    const data = buf.subarray(off, off + f.filesize);
    off = pad4(off + f.filesize);
    out.push({ name, fields: f, data });
  }
}
