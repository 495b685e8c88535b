// Packs a directory tree (a captured disk's filesystems, mounted read-only) into a tar stream
// with tar-stream, walking it as the consumer reads: memory holds one directory listing per level
// of depth and one file's read buffer, not the tree.
//
// What an OS root needs back intact: numeric owners (never names: the capturing initramfs has no
// passwd of the captured OS), modes incl. setuid/setgid/sticky, mtimes (whole seconds, like GNU
// tar's default format; a sub-second part is dropped), symlinks as written, hard links once (later names are link entries to
// the first), device nodes and FIFOs, and every xattr, incl. binary ones such as
// security.capability, as SCHILY.xattr.* PAX records (GNU tar's --xattrs form). Names are bytes
// (a name need not be UTF-8); whatever ustar's header cannot hold exactly goes into PAX records
// booty writes itself (pax-records.ts). Sockets cannot be archived (GNU tar skips them too) and are
// counted and logged. Entry names are GNU tar's `tar -C ROOT -c .` form: `./`, `./etc/`, `./etc/passwd`.
import fs from 'node:fs';
import os from 'node:os';
import { pipeline } from 'node:stream/promises';
import tarStream from 'tar-stream';
import type { Pack } from 'tar-stream';

type Headers = Parameters<Pack['entry']>[0];
import { silentLogger, type Logger } from '../util/log.ts';
import { lgetxattr, llistxattr } from '../sys/xattr.ts';
import { encodePaxRecords, paxHeaderBlocks, textRecord, type PaxRecord } from './pax-records.ts';

export interface PackResult {
  files: number;
  directories: number;
  symlinks: number;
  hardLinks: number;
  devices: number;
  fifos: number;
  /** Sockets, which tar cannot hold: not archived. */
  socketsSkipped: number;
  /** Entries that carried xattrs. */
  withXattrs: number;
  /** Bytes of regular file content archived. */
  fileBytes: number;
}

/** tar-stream writes ids as 6 octal digits: larger ones need a PAX record. */
const USTAR_MAX_ID = 0o777777;
const USTAR_NAME_MAX = 100;
const XATTR_KEY = Buffer.from('SCHILY.xattr.', 'latin1');
const { ENOTSUP, EOPNOTSUPP } = os.constants.errno;

/** Thrown for a tree the packer cannot archive faithfully; the message names the path. */
export class PackError extends Error {
  readonly path: string;
  constructor(path: string, message: string, cause?: unknown) {
    super(`${path}: ${message}`, cause === undefined ? undefined : { cause });
    this.name = 'PackError';
    this.path = path;
  }
}

export interface TreePackOptions {
  log?: Logger;
  /** Called after each regular file's content is archived (progress). */
  onFileBytes?: (n: number) => void;
}

/**
 * The tar stream of ROOT's tree. Read `tar`; `done` resolves with the counts once the last entry
 * and the end-of-archive blocks are out, or rejects (and `tar` errors) naming the path that failed.
 */
export function packTree(root: string, opts: TreePackOptions = {}): { tar: Pack; done: Promise<PackResult> } {
  const tar = tarStream.pack();
  const walker = new TreeWalker(Buffer.from(root, 'utf8'), tar, opts);
  const done = walker.run().then(
    (result) => { tar.finalize(); return result; },
    (err: unknown) => { tar.destroy(err as Error); throw err; },
  );
  done.catch(() => {}); // the caller awaits it; an early failure also reaches it through `tar`
  return { tar, done };
}

class TreeWalker {
  private readonly counts: PackResult = { files: 0, directories: 0, symlinks: 0, hardLinks: 0, devices: 0, fifos: 0, socketsSkipped: 0, withXattrs: 0, fileBytes: 0 };
  /** dev:ino of files with more than one link -> the entry name they were archived under first. */
  private readonly firstNames = new Map<string, Buffer>();
  private paxHeaders = 0;
  private readonly log: Logger;
  private readonly root: Buffer;
  private readonly tar: Pack;
  private readonly opts: TreePackOptions;

  constructor(root: Buffer, tar: Pack, opts: TreePackOptions) {
    this.root = root;
    this.tar = tar;
    this.opts = opts;
    this.log = opts.log ?? silentLogger;
  }

  async run(): Promise<PackResult> {
    const st = fs.lstatSync(this.root, { bigint: true });
    if (!st.isDirectory()) throw new PackError(this.root.toString(), 'is not a directory');
    await this.entry(Buffer.from('./', 'latin1'), this.root, st);
    await this.directory(Buffer.from('./', 'latin1'), this.root);
    return { ...this.counts };
  }

  /** Archive the contents of the directory at PATH (archived as NAME, ending in '/'). */
  private async directory(name: Buffer, path: Buffer): Promise<void> {
    // Metadata and small files are read with synchronous calls: each is microseconds on a
    // mounted filesystem, while an async call's thread-pool round trip costs more than the work
    // (four per file), which made a root of small files crawl under emulation.
    const children = fs.readdirSync(path, { encoding: 'buffer' }).sort(Buffer.compare);
    for (const child of children) {
      const childPath = Buffer.concat([path, SLASH, child]);
      const st = fs.lstatSync(childPath, { bigint: true });
      const childName = Buffer.concat([name, child]);
      if (st.isDirectory()) {
        const dirName = Buffer.concat([childName, SLASH]);
        await this.entry(dirName, childPath, st);
        await this.directory(dirName, childPath);
      } else {
        await this.entry(childName, childPath, st);
      }
    }
  }

  private async entry(name: Buffer, path: Buffer, st: fs.BigIntStats): Promise<void> {
    const shown = displayPath(name);
    if (st.isSocket()) {
      this.counts.socketsSkipped++;
      this.log.warn(`capture: ${shown} is a socket, which tar cannot hold; not archived`);
      return;
    }
    const records: PaxRecord[] = [];
    const header: Headers = {
      name: '', // set by nameField below
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      mtime: new Date(Number(st.mtimeMs / 1000n) * 1000),
      size: 0,
    };
    if (Number(st.uid) > USTAR_MAX_ID) { records.push(textRecord('uid', String(st.uid))); header.uid = 0; }
    if (Number(st.gid) > USTAR_MAX_ID) { records.push(textRecord('gid', String(st.gid))); header.gid = 0; }

    const multiplyLinked = !st.isDirectory() && st.nlink > 1n;
    const key = `${st.dev}:${st.ino}`;
    const first = multiplyLinked ? this.firstNames.get(key) : undefined;
    let content: { path: Buffer; size: number } | undefined;
    if (first !== undefined) {
      header.type = 'link';
      header.linkname = this.linkField(first, records);
      this.counts.hardLinks++;
    } else if (st.isDirectory()) {
      header.type = 'directory';
      this.counts.directories++;
    } else if (st.isFile()) {
      header.type = 'file';
      header.size = Number(st.size);
      content = { path, size: Number(st.size) };
      this.counts.files++;
    } else if (st.isSymbolicLink()) {
      header.type = 'symlink';
      header.linkname = this.linkField(fs.readlinkSync(path, { encoding: 'buffer' }), records);
      this.counts.symlinks++;
    } else if (st.isCharacterDevice() || st.isBlockDevice()) {
      header.type = st.isCharacterDevice() ? 'character-device' : 'block-device';
      header.devmajor = major(st.rdev);
      header.devminor = minor(st.rdev);
      this.counts.devices++;
    } else if (st.isFIFO()) {
      header.type = 'fifo';
      this.counts.fifos++;
    } else {
      throw new PackError(shown, 'has a file type tar cannot hold');
    }
    if (multiplyLinked && first === undefined) this.firstNames.set(key, name);

    // A hard link to a file carries no xattrs of its own: they belong to the inode, archived once.
    if (header.type !== 'link') {
      const xattrs = this.xattrsOf(path, shown);
      for (const [xname, value] of xattrs) records.push([Buffer.concat([XATTR_KEY, xname]), value]);
      if (xattrs.length > 0) this.counts.withXattrs++;
    }
    header.name = this.nameField(name, records);
    if (records.length > 0) this.writePax(records);
    if (content === undefined) {
      await this.write(header);
    } else {
      await this.writeFile(header, content, shown);
    }
  }

  /** NAME as ustar can hold it; when it cannot (too long, not ASCII), the exact bytes go into a
   *  PAX path record and the header gets a readable ASCII stand-in, as GNU tar does. Like GNU tar,
   *  no hdrcharset record marks a name that is not UTF-8 (GNU tar 1.34 warns about the keyword);
   *  readers take the bytes as they are. */
  private nameField(name: Buffer, records: PaxRecord[]): string {
    if (name.length <= USTAR_NAME_MAX && isPlainAscii(name)) return name.toString('latin1');
    records.push([Buffer.from('path', 'latin1'), name]);
    return standIn(name);
  }

  private linkField(target: Buffer, records: PaxRecord[]): string {
    if (target.length <= USTAR_NAME_MAX && isPlainAscii(target)) return target.toString('latin1');
    records.push([Buffer.from('linkpath', 'latin1'), target]);
    return standIn(target);
  }

  private xattrsOf(path: Buffer, shown: string): Array<[Buffer, Buffer]> {
    let names: Buffer[];
    try {
      names = llistxattr(path);
    } catch (e) {
      const errno = (e as NodeJS.ErrnoException).errno;
      if (errno === ENOTSUP || errno === EOPNOTSUPP) return []; // vfat (an ESP) has none
      throw new PackError(shown, `cannot list its extended attributes: ${(e as Error).message}`, e);
    }
    const out: Array<[Buffer, Buffer]> = [];
    for (const n of names.sort(Buffer.compare)) {
      const value = lgetxattr(path, n);
      if (value !== undefined) out.push([n, value]);
    }
    return out;
  }

  /** The PAX header for the next entry, pushed whole: the previous entry is complete (each write
   *  is awaited) and the next not begun, so the bytes land between the two. It is a few blocks;
   *  the entry after it waits for the reader as tar-stream's entries do. */
  private writePax(records: PaxRecord[]): void {
    this.paxHeaders++;
    this.tar.push(paxHeaderBlocks(`./PaxHeaders/${this.paxHeaders}`, encodePaxRecords(records)));
  }

  private write(header: Headers, data?: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      const callback = (err?: Error | null): void => (err ? reject(err) : resolve());
      if (data === undefined) this.tar.entry(header, callback);
      else this.tar.entry(header, data, callback);
    });
  }

  private async writeFile(header: Headers, file: { path: Buffer; size: number }, shown: string): Promise<void> {
    // Most files of an OS are small: read whole into a buffer of their size, one entry write.
    // Only large ones stream, in 1 MiB reads (a stream's buffer per file would be churn).
    if (file.size <= SMALL_FILE) {
      const data = readExactly(file.path, file.size, shown);
      await this.write(header, data);
      this.opts.onFileBytes?.(file.size);
      this.counts.fileBytes += file.size;
      return;
    }
    let entryDone!: Promise<void>;
    const sink = await new Promise<ReturnType<Pack['entry']>>((resolve) => {
      entryDone = new Promise<void>((res, rej) => {
        resolve(this.tar.entry(header, (err) => (err ? rej(err) : res())));
      });
    });
    let read = 0;
    const source = fs.createReadStream(file.path, { highWaterMark: SMALL_FILE });
    source.on('data', (chunk) => { read += chunk.length; this.opts.onFileBytes?.(chunk.length); });
    try {
      await pipeline(source, sink);
      await entryDone;
    } catch (e) {
      // tar-stream's own size check (more or fewer bytes than the header said) lands here too
      throw new PackError(shown, read === file.size
        ? `archiving it failed: ${(e as Error).message}`
        : `changed size while it was read (${file.size} bytes when listed, ${read} read); the filesystem must be mounted read-only`, e);
    }
    this.counts.fileBytes += file.size;
  }
}

const SMALL_FILE = 1 << 20;

/** The SIZE bytes of the file at PATH, or a PackError when it holds fewer. */
function readExactly(path: Buffer, size: number, shown: string): Buffer {
  const data = Buffer.allocUnsafe(size);
  let fd: number;
  try { fd = fs.openSync(path, 'r'); } catch (e) { throw new PackError(shown, `cannot open it: ${(e as Error).message}`, e); }
  try {
    let got = 0;
    while (got < size) {
      const n = fs.readSync(fd, data, got, size - got, got);
      if (n === 0) throw new PackError(shown, `changed size while it was read (${size} bytes when listed, ${got} read); the filesystem must be mounted read-only`);
      got += n;
    }
    return data;
  } finally {
    fs.closeSync(fd);
  }
}

const SLASH = Buffer.from('/', 'latin1');

function isPlainAscii(b: Buffer): boolean {
  for (const c of b) if (c < 0x20 || c >= 0x7f) return false;
  return true;
}

/** An ASCII, ustar-sized stand-in for a name held in a PAX record (readers that know PAX ignore it). */
function standIn(name: Buffer): string {
  let s = '';
  for (const c of name) s += c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : '_';
  const dir = s.endsWith('/');
  return s.length <= USTAR_NAME_MAX ? s : s.slice(0, USTAR_NAME_MAX - (dir ? 1 : 0)) + (dir ? '/' : '');
}

function displayPath(name: Buffer): string {
  return name.toString('utf8');
}

// The kernel's dev_t encoding (glibc's gnu_dev_major/minor).
function major(dev: bigint): number {
  return Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
}

function minor(dev: bigint): number {
  return Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
}
