// Extracts a rootfs tarball (the decompressed tar bytes, as a Node Readable) into a directory,
// entry by entry as the bytes arrive: memory does not grow with the tarball (only with its number
// of directories, whose metadata waits for the end).
//
// Safety: nothing is ever written outside ROOT. An entry whose name (or hard link target) is
// absolute or has a ".." component is refused before any file-system call; every parent directory
// of an entry is checked with lstat (a symlink or a non-directory there is refused, whether the
// tarball made it or it was there before), and the final component is never followed either:
// the new one is created with O_EXCL|O_NOFOLLOW (or mkdir/symlink/link/mknod, which fail on any
// existing name), and what was there is unlinked (never followed) before the create is retried.
// The first refusal ends the whole extraction with a BootyError naming the entry.
//
// Speed: the file-system calls are synchronous (as GNU tar's, and as the packer's): awaiting each
// one through libuv's thread pool left the process idle between them, about a dozen per entry.
// Only the body of a large file is written asynchronously, as it arrives, so memory stays flat;
// a small file's body is buffered and written with one call (writev). A name is created first
// and looked at only when that fails with EEXIST, which spares an lstat per entry. Parent
// directories this extraction made or checked are remembered, so their lstat is not repeated.
//
// Metadata order (each step undoes part of an earlier one): content, then chown (numeric ids,
// never names; it clears setuid/setgid and security.capability), then chmod, then xattrs (a write
// or a chown clears security.capability), then times. Directories are created 0700 and get their
// owner, mode, xattrs and times at the end, deepest first: a read-only directory must not block
// the entries inside it, and writing those entries changes its mtime.
import fs from 'node:fs';
import { once } from 'node:events';
import { promisify } from 'node:util';
import type { Readable } from 'node:stream';
import tarStream from 'tar-stream';
import type { ExtractEvents, Header } from 'tar-stream';
import { BootyError } from '../util/errors.ts';
import { makedev, mkfifo, mknod, S_IFBLK, S_IFCHR } from '../sys/devnodes.ts';
import { fsetxattr, lsetxattr } from '../sys/xattr.ts';
import { RawHeaderTap, type RawEntryHeader } from './raw-header-tap.ts';
import { displayName, joinComponents, normalizeEntryPath, toFsPath } from './entry-path.ts';

export interface ExtractResult {
  files: number;
  directories: number;
  symlinks: number;
  hardLinks: number;
  /** Character and block devices. */
  devices: number;
  fifos: number;
  /** Bytes of regular file content written. */
  bytesWritten: number;
}

/** What is applied to an entry after its content exists. */
interface EntryMetadata {
  mode: number;
  uid: number;
  gid: number;
  atime: number;
  mtime: number;
  /** xattr name (bytes) and value (bytes). */
  xattrs: Array<[Buffer, Buffer]>;
}

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_RDONLY, O_DIRECTORY } = fs.constants;
const XATTR_PREFIX = 'SCHILY.xattr.';
const TYPE_SPARSE = 0x53; // 'S': GNU's old sparse format
/** Files up to this size are buffered whole and written synchronously; larger ones stream. */
const SMALL_FILE_BYTES = 1024 * 1024;
const writeAsync = promisify(fs.write);

/** An entry's data as tar-stream hands it out (with .offset: where its header starts). */
type Source = ExtractEvents['entry'][1];

/**
 * Extract the tar byte stream TAR into ROOT (an existing directory: the mounted root filesystem).
 * Resolves with the counts once every entry and every directory's metadata is in place; rejects
 * with a BootyError (stage 'write') naming the entry that was refused or failed.
 */
export async function extractRootfs(tar: Readable, root: string): Promise<ExtractResult> {
  const rootStat = lstatOrUndefined(root);
  if (rootStat === undefined || !rootStat.isDirectory()) {
    throw new BootyError({ stage: 'write', code: 'TAR_TARGET_INVALID', diskState: 'untouched',
      message: `rootfs: the target ${root} is not a directory` });
  }
  return new RootfsExtraction(root).run(tar);
}

class RootfsExtraction {
  private readonly counts: ExtractResult = { files: 0, directories: 0, symlinks: 0, hardLinks: 0, devices: 0, fifos: 0, bytesWritten: 0 };
  /** Relative paths (byte strings) known to be real directories, not symlinks, in this extraction. */
  private readonly directories = new Set<string>(['']);
  /** Directory entries' metadata, applied at the end. */
  private readonly pendingDirectories = new Map<string, { name: string; meta: EntryMetadata }>();
  private readonly tap = new RawHeaderTap();
  private touched = false;
  private lastEntry: string | undefined;

  private readonly root: string;

  constructor(root: string) {
    this.root = root;
  }

  async run(tar: Readable): Promise<ExtractResult> {
    // Names as byte strings (latin1): see entry-path.ts. tar-stream's types omit this option.
    const extract = tarStream.extract({ filenameEncoding: 'latin1' } as Parameters<typeof tarStream.extract>[0]);
    let current: Promise<void> = Promise.resolve();
    extract.on('entry', (header: Header, stream: Source, next: (err?: Error | null) => void) => {
      current = this.onEntry(header, stream);
      current.then(() => next(), (err: Error) => next(err));
    });
    const finished = new Promise<void>((resolve, reject) => {
      extract.on('finish', resolve);
      extract.on('error', reject);
      // An entry whose writing fails (ENOSPC, EIO) ends its data stream early, and tar-stream then
      // destroys the whole extraction without an error: its 'close' comes with neither 'finish'
      // nor 'error'. The entry's own failure is the cause to report (a no-op after 'finish').
      extract.on('close', () => {
        current.then(() => reject(new Error('the tar extraction stopped before the end of the archive')), reject);
      });
    });
    finished.catch(() => {}); // awaited below; this only keeps an early failure from being "unhandled"
    // An error of the input (the caller's HTTP body or decompressor) is the caller's to describe.
    let inputError: unknown;
    tar.once('error', (err) => { inputError = err; });
    try {
      for await (const chunk of tar) {
        // The tap sees each byte before tar-stream does, so an entry's raw header is always ready.
        this.tap.observe(chunk as Buffer);
        if (!extract.write(chunk)) await Promise.race([once(extract, 'drain'), finished]);
      }
      extract.end(null); // streamx: end(data) writes data first unless it is null
      await finished;
      this.applyDirectoryMetadata();
    } catch (err) {
      extract.destroy();
      tar.destroy();
      if (inputError !== undefined) throw inputError;
      throw this.asBootyError(err);
    }
    return { ...this.counts };
  }

  private async onEntry(header: Header, stream: Source): Promise<void> {
    const raw = this.tap.take(stream.offset);
    if (raw === undefined) {
      throw this.corrupt(this.tap.lostReason ?? `booty's header walk and tar-stream's disagree at byte ${stream.offset}`);
    }
    const pax = raw.pax;
    // A PAX path or link path is taken as its raw bytes (tar-stream's copy went through UTF-8).
    const name = pax?.get('path')?.toString('latin1') ?? header.name;
    const linkname = pax?.get('linkpath')?.toString('latin1') ?? header.linkname ?? '';
    this.lastEntry = name;
    this.refuseUnsupported(name, header, raw);
    const where = normalizeEntryPath(name);
    if (!where.ok) throw this.unsafe(name, where.why);
    const components = where.components;
    const meta = metadataOf(header, pax);
    this.touched = true;
    try {
      switch (header.type) {
        case 'directory': this.directory(name, components, meta); break;
        case 'file':
        case 'contiguous-file': await this.file(name, components, meta, stream, header.size ?? 0); break;
        case 'symlink': this.symlink(name, components, linkname, meta); break;
        case 'link': this.hardLink(name, components, linkname); break;
        case 'character-device':
        case 'block-device':
        case 'fifo': this.special(name, components, header, meta); break;
      }
    } catch (err) {
      throw this.asBootyError(err, name);
    }
    await drain(stream); // data a non-file entry carries (none, in archives tar writes)
  }

  /** Entries booty cannot write faithfully are refused by name rather than written wrong. */
  private refuseUnsupported(name: string, header: Header, raw: RawEntryHeader): void {
    const keys = raw.pax === undefined ? [] : [...raw.pax.keys()];
    if (raw.typeflag === TYPE_SPARSE || keys.some((k) => k.startsWith('GNU.sparse.'))) {
      const realName = raw.pax?.get('GNU.sparse.name')?.toString('latin1') ?? name;
      throw this.unsupported(realName, 'is a sparse file (GNU tar --sparse), which booty does not extract yet',
        'repack the rootfs without --sparse (-S)');
    }
    if (keys.some((k) => k.startsWith('LIBARCHIVE.xattr.'))) {
      throw this.unsupported(name, 'carries xattrs in libarchive\'s form (LIBARCHIVE.xattr.*), which booty does not read yet',
        'repack the rootfs with GNU tar --xattrs --xattrs-include=\'*\' (SCHILY.xattr.* records)');
    }
    if (header.type === null || header.type === undefined) {
      const flag = String.fromCharCode(raw.typeflag);
      throw this.unsupported(name, `has tar type '${flag}', which booty does not extract`,
        'repack the rootfs with GNU tar (--format=posix or gnu)');
    }
  }

  private directory(name: string, components: string[], meta: EntryMetadata): void {
    this.ensureParents(name, components);
    const rel = joinComponents(components);
    if (!this.directories.has(rel)) {
      const path = this.fsPath(rel);
      // its own mode comes at the end; mkdir(2) fails with EEXIST on anything there, a symlink too
      if (!created(() => fs.mkdirSync(path, 0o700))) {
        const existing = lstatOrUndefined(path);
        if (existing === undefined || !existing.isDirectory()) {
          if (existing !== undefined) fs.unlinkSync(path);
          fs.mkdirSync(path, 0o700);
        }
      }
      this.directories.add(rel);
    }
    this.pendingDirectories.set(rel, { name, meta });
    this.counts.directories++;
  }

  private async file(name: string, components: string[], meta: EntryMetadata, stream: Source, size: number): Promise<void> {
    const open = (path: Buffer): number => fs.openSync(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    if (size <= SMALL_FILE_BYTES) {
      // the whole body first, then open, write, metadata and close without yielding
      const chunks: Buffer[] = [];
      let length = 0;
      for await (const chunk of stream) {
        chunks.push(chunk as Buffer);
        length += (chunk as Buffer).length;
      }
      const rel = this.prepareParents(name, components);
      const fd = this.createFinal(name, rel, open);
      try {
        // one writev for the chunks as they came (no copy); a short write finishes from a copy
        let off = length === 0 ? 0 : fs.writevSync(fd, chunks);
        if (off < length) {
          const body = Buffer.concat(chunks, length);
          while (off < length) off += fs.writeSync(fd, body, off, length - off);
        }
        this.counts.bytesWritten += length;
        applyMetadata(fd, meta, rel);
      } finally {
        fs.closeSync(fd);
      }
    } else {
      const rel = this.prepareParents(name, components);
      const fd = this.createFinal(name, rel, open);
      try {
        // written as it arrives, through the thread pool: a write that waits for the disk (dirty
        // page throttling) does not hold up the download and the decompression meanwhile
        for await (const chunk of stream) {
          const buf = chunk as Buffer;
          let off = 0;
          while (off < buf.length) off += (await writeAsync(fd, buf, off, buf.length - off)).bytesWritten;
          this.counts.bytesWritten += buf.length;
        }
        applyMetadata(fd, meta, rel);
      } finally {
        fs.closeSync(fd);
      }
    }
    this.counts.files++;
  }

  private symlink(name: string, components: string[], target: string, meta: EntryMetadata): void {
    const rel = this.prepareParents(name, components);
    // The target is stored as it is: it is never followed during the extraction.
    const path = this.createFinal(name, rel, (p) => { fs.symlinkSync(Buffer.from(target, 'latin1'), p); return p; });
    applyMetadataByPath(path, meta, false); // a symlink has no mode of its own on Linux
    this.counts.symlinks++;
  }

  private hardLink(name: string, components: string[], target: string): void {
    const to = normalizeEntryPath(target);
    if (!to.ok) throw this.unsafe(name, `is a hard link to "${displayName(target)}", which ${to.why}`);
    const targetRel = joinComponents(to.components);
    this.checkParents(name, to.components, `is a hard link to "${displayName(target)}"`);
    const existing = lstatOrUndefined(this.fsPath(targetRel));
    if (existing === undefined) throw this.unsafe(name, `is a hard link to "${displayName(target)}", which is not in the target (a link must follow its file in the tarball)`);
    if (existing.isDirectory()) throw this.unsafe(name, `is a hard link to "${displayName(target)}", which is a directory`);
    const rel = joinComponents(components);
    if (rel === targetRel) return; // a link to itself: already there
    this.prepareParents(name, components);
    // link(2) does not follow a symlink at the target: the link is to the symlink itself.
    this.createFinal(name, rel, (p) => fs.linkSync(this.fsPath(targetRel), p));
    this.counts.hardLinks++;
  }

  private special(name: string, components: string[], header: Header, meta: EntryMetadata): void {
    const rel = this.prepareParents(name, components);
    // mknod/mkfifo fail with EEXIST on anything there, a symlink too
    const path = this.createFinal(name, rel, (p) => {
      if (header.type === 'fifo') mkfifo(p, 0o600);
      else mknod(p, (header.type === 'block-device' ? S_IFBLK : S_IFCHR) | 0o600, makedev(header.devmajor ?? 0, header.devminor ?? 0));
      return p;
    });
    if (header.type === 'fifo') this.counts.fifos++;
    else this.counts.devices++;
    applyMetadataByPath(path, meta, true);
  }

  /** The entry's parents made or checked; its relative path. */
  private prepareParents(name: string, components: string[]): string {
    if (components.length === 0) throw this.unsafe(name, 'names the target directory itself but is not a directory');
    this.ensureParents(name, components);
    return joinComponents(components);
  }

  /**
   * CREATE (a call that fails with EEXIST on anything at the path, never following it) at REL's
   * path; when something is there, it is removed (never followed) and CREATE tried once more.
   */
  private createFinal<T>(name: string, rel: string, create: (path: Buffer) => T): T {
    const path = this.fsPath(rel);
    try {
      return create(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    this.removeExisting(name, rel);
    return create(path);
  }

  /** Whatever is at the entry's own path removed (never followed). */
  private removeExisting(name: string, rel: string): void {
    const existing = lstatOrUndefined(this.fsPath(rel));
    if (existing?.isDirectory()) {
      try {
        fs.rmdirSync(this.fsPath(rel));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOTEMPTY') throw err;
        throw new BootyError({ stage: 'write', code: 'TAR_ENTRY_CONFLICT', diskState: 'partially-written',
          message: `rootfs: entry "${displayName(name)}" is not a directory, but a directory that is not empty is already there in ${this.root}; the tarball is refused` });
      }
      this.directories.delete(rel);
      this.pendingDirectories.delete(rel);
    } else if (existing !== undefined) {
      fs.unlinkSync(this.fsPath(rel));
    }
  }

  /** Every parent of COMPONENTS is a real directory (made 0755 when missing, as tar does). */
  private ensureParents(name: string, components: string[]): void {
    this.walkParents(name, components, 'would be written', true);
  }

  /** Every parent of COMPONENTS exists and is a real directory; nothing is made. */
  private checkParents(name: string, components: string[], what: string): void {
    this.walkParents(name, components, what, false);
  }

  private walkParents(name: string, components: string[], what: string, create: boolean): void {
    for (let i = 1; i < components.length; i++) {
      const rel = joinComponents(components.slice(0, i));
      if (this.directories.has(rel)) continue;
      const path = this.fsPath(rel);
      const st = lstatOrUndefined(path);
      if (st === undefined) {
        if (!create) throw this.unsafe(name, `${what}, whose directory "${displayName(rel)}" is not in the target`);
        fs.mkdirSync(path, 0o755);
      } else if (st.isSymbolicLink()) {
        const target = fs.readlinkSync(path, { encoding: 'buffer' }).toString('utf8');
        throw this.unsafe(name, `${what} through the symlink "${displayName(rel)}" (-> ${target})`);
      } else if (!st.isDirectory()) {
        throw this.unsafe(name, `${what} below "${displayName(rel)}", which is not a directory`);
      }
      this.directories.add(rel);
    }
  }

  /** Directories' owner, mode, xattrs and times, deepest first (the root, "./", last). */
  private applyDirectoryMetadata(): void {
    const depth = (rel: string): number => (rel === '' ? 0 : rel.split('/').length);
    const rels = [...this.pendingDirectories.keys()].sort((a, b) => depth(b) - depth(a));
    for (const rel of rels) {
      const { name, meta } = this.pendingDirectories.get(rel)!;
      try {
        const fd = fs.openSync(this.fsPath(rel), O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
        try {
          applyMetadata(fd, meta, rel);
        } finally {
          fs.closeSync(fd);
        }
      } catch (err) {
        throw this.asBootyError(err, name);
      }
    }
  }

  private fsPath(rel: string): Buffer {
    return toFsPath(this.root, rel);
  }

  private diskState(): 'untouched' | 'partially-written' {
    return this.touched ? 'partially-written' : 'untouched';
  }

  private unsafe(name: string, why: string): BootyError {
    return new BootyError({ stage: 'write', code: 'TAR_UNSAFE_ENTRY', diskState: this.diskState(),
      message: `rootfs: entry "${displayName(name)}" ${why}; nothing outside ${this.root} was written; the tarball is refused`,
      hint: 'a rootfs tarball holds relative names only (tar -C ROOTFS -cpf FILE .); this one is damaged or hostile' });
  }

  private unsupported(name: string, why: string, hint: string): BootyError {
    return new BootyError({ stage: 'write', code: 'TAR_UNSUPPORTED_ENTRY', diskState: this.diskState(),
      message: `rootfs: entry "${displayName(name)}" ${why}; the tarball is refused`, hint });
  }

  private corrupt(why: string): BootyError {
    const after = this.lastEntry === undefined ? 'before the first entry' : `after entry "${displayName(this.lastEntry)}"`;
    return new BootyError({ stage: 'write', code: 'TAR_CORRUPT', diskState: this.diskState(),
      message: `rootfs: the tar stream is corrupt or truncated (${why}) ${after}` });
  }

  private asBootyError(err: unknown, name?: string): BootyError {
    if (err instanceof BootyError) return err;
    const e = err as NodeJS.ErrnoException;
    if (name === undefined || e.code === undefined) return this.corrupt(e.message ?? String(err));
    return new BootyError({ stage: 'write', code: 'TAR_WRITE_FAILED', diskState: this.diskState(), cause: err,
      message: `rootfs: entry "${displayName(name)}" could not be written: ${e.message}` });
  }
}

/** Mode, numeric owner, times and xattrs of an entry; PAX records win over the header's fields. */
function metadataOf(header: Header, pax: Map<string, Buffer> | undefined): EntryMetadata {
  const paxNumber = (key: string): number | undefined => {
    const v = pax?.get(key)?.toString('latin1');
    if (v === undefined || !/^-?\d+(\.\d+)?$/.test(v)) return undefined;
    return Number(v);
  };
  const mtime = paxNumber('mtime') ?? header.mtime.getTime() / 1000;
  const xattrs: Array<[Buffer, Buffer]> = [];
  for (const [key, value] of pax ?? []) {
    if (key.startsWith(XATTR_PREFIX)) xattrs.push([Buffer.from(key.slice(XATTR_PREFIX.length), 'latin1'), value]);
  }
  return {
    mode: header.mode & 0o7777,
    uid: paxNumber('uid') ?? header.uid,
    gid: paxNumber('gid') ?? header.gid,
    atime: paxNumber('atime') ?? mtime,
    mtime,
    xattrs,
  };
}

/** Owner, mode, xattrs, times, in that order (see the top of this file), on an open file or directory. */
function applyMetadata(fd: number, meta: EntryMetadata, rel: string): void {
  fs.fchownSync(fd, meta.uid, meta.gid);
  fs.fchmodSync(fd, meta.mode);
  for (const [xname, value] of meta.xattrs) fsetxattr(fd, xname, value, displayName(rel));
  fs.futimesSync(fd, meta.atime, meta.mtime);
}

/** The same by path, for what cannot be opened (a symlink, a device, a FIFO); never follows PATH. */
function applyMetadataByPath(path: Buffer, meta: EntryMetadata, withMode: boolean): void {
  fs.lchownSync(path, meta.uid, meta.gid);
  // chmod(2) would follow a symlink, so it is used only for a device or FIFO node just made
  // (mknod fails on an existing name) below parents checked to be real directories.
  if (withMode) fs.chmodSync(path, meta.mode);
  for (const [xname, value] of meta.xattrs) lsetxattr(path, xname, value);
  fs.lutimesSync(path, meta.atime, meta.mtime);
}

function lstatOrUndefined(path: Buffer | string): fs.Stats | undefined {
  // throwIfNoEntry: false spares building an ENOENT error for every name that is not there yet
  return fs.lstatSync(path, { throwIfNoEntry: false });
}

/** CREATE run; false when it failed with EEXIST (something is at the path already). */
function created(create: () => void): boolean {
  try {
    create();
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

async function drain(stream: Source): Promise<void> {
  for await (const _ of stream) { /* discarded */ }
}
