// The thing an image is written to (deploy) or read from (capture): a block device or a regular
// file, behind one small interface. On a block device data goes through O_DIRECT (no page cache:
// writing 8 GiB through the cache costs a copy per byte and evicts everything else) whenever the
// buffer, offset and length are sector aligned; the unaligned tail of an odd-sized image goes
// through a second, buffered descriptor. Zero ranges use BLKZEROOUT on devices and hole punching
// on files, and fall back to writing zeros when the kernel or filesystem cannot.
import fs from 'node:fs';
import { promisify } from 'node:util';
import {
  blockDeviceSize, bufferAddress, fallocate, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE,
  logicalSectorSize, rereadPartitions, zeroOut,
} from '../../sys/blockdev.ts';

function write(fd: number, buf: Uint8Array, off: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fs.write(fd, buf, off, len, pos, (e, n) => (e ? reject(e) : resolve(n))));
}
function read(fd: number, buf: Uint8Array, off: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fs.read(fd, buf, off, len, pos, (e, n) => (e ? reject(e) : resolve(n))));
}
const fdatasync = promisify(fs.fdatasync);
const ftruncate = promisify(fs.ftruncate);
const fstat = promisify(fs.fstat);
const close = promisify(fs.close);

/** Alignment used for O_DIRECT buffers and offsets (covers 512 and 4096 byte sectors). */
export const DIRECT_ALIGN = 4096;
/** Largest single zeroing request: keeps progress and cancellation responsive. */
const ZERO_CHUNK = 1 << 30;

/** A buffer of `size` bytes whose address is DIRECT_ALIGN aligned (Node's are page + 16).
 *  `zeroed`: filled with zeros by calloc (large ones are fresh pages that take no memory until
 *  written, so a zero block that is only ever read costs nothing). */
export function alignedBuffer(size: number, zeroed = false): Buffer {
  const raw = zeroed ? Buffer.alloc(size + DIRECT_ALIGN) : Buffer.allocUnsafeSlow(size + DIRECT_ALIGN);
  const misalign = Number(bufferAddress(raw) % BigInt(DIRECT_ALIGN));
  const start = misalign === 0 ? 0 : DIRECT_ALIGN - misalign;
  return raw.subarray(start, start + size);
}

let zeros: Buffer | undefined;
function zeroBuffer(): Buffer {
  zeros ??= alignedBuffer(1 << 20).fill(0);
  return zeros;
}

export interface TargetInfo {
  path: string;
  kind: 'block' | 'file';
  /** bytes; for a regular file its current size (0 = grows as needed) */
  size: number;
  sectorSize: number;
}

export class WriteTarget {
  readonly info: TargetInfo;
  /** the descriptor (O_DIRECT on a block device): block workers that write a decoded xz block at
   *  its own offset use it too (xz-placed-writer.ts), with aligned buffers, offsets and lengths */
  readonly fd: number;
  private readonly direct: boolean;
  private bufferedFd: number | undefined;
  private zeroOffload: boolean;
  /** what zeroing used, for the log: 'BLKZEROOUT', 'punch-hole', 'write' */
  zeroMethod: string;

  private constructor(info: TargetInfo, fd: number, direct: boolean) {
    this.info = info;
    this.fd = fd;
    this.direct = direct;
    this.zeroOffload = true;
    this.zeroMethod = info.kind === 'block' ? 'BLKZEROOUT' : 'punch-hole';
  }

  /** Opens for writing. A block device is opened O_EXCL: the kernel refuses it while mounted or
   *  held (LVM, RAID, swap) and nobody can mount it while we write. */
  static open(path: string, opts: { direct?: boolean } = {}): WriteTarget {
    const st = fs.statSync(path);
    const c = fs.constants;
    if (st.isBlockDevice()) {
      const wantDirect = opts.direct ?? true;
      const fd = fs.openSync(path, c.O_WRONLY | c.O_EXCL | (wantDirect ? c.O_DIRECT : 0));
      try {
        const info: TargetInfo = { path, kind: 'block', size: blockDeviceSize(fd), sectorSize: logicalSectorSize(fd) };
        return new WriteTarget(info, fd, wantDirect);
      } catch (e) { fs.closeSync(fd); throw e; }
    }
    if (!st.isFile()) throw new Error(`${path} is neither a block device nor a regular file`);
    const fd = fs.openSync(path, c.O_WRONLY);
    return new WriteTarget({ path, kind: 'file', size: st.size, sectorSize: 512 }, fd, false);
  }

  private aligned(buf: Uint8Array, pos: number): boolean {
    return this.direct && pos % DIRECT_ALIGN === 0 && buf.length % DIRECT_ALIGN === 0
      && bufferAddress(buf) % BigInt(DIRECT_ALIGN) === 0n;
  }

  private tailFd(): number {
    this.bufferedFd ??= fs.openSync(this.info.path, fs.constants.O_WRONLY);
    return this.bufferedFd;
  }

  /** Writes all of buf at pos (direct when aligned, else through the buffered descriptor). */
  async writeAt(buf: Uint8Array, pos: number): Promise<void> {
    const fd = this.aligned(buf, pos) ? this.fd : this.tailFd();
    let done = 0;
    while (done < buf.length) {
      const n = await write(fd, buf, done, buf.length - done, pos + done);
      if (n <= 0) throw new Error(`short write at byte ${pos + done}`);
      done += n;
    }
  }

  /** Makes [pos, pos+length) read back as zeros. */
  async zeroRange(pos: number, length: number): Promise<void> {
    const end = pos + length;
    let at = pos;
    if (this.zeroOffload) {
      const sector = this.info.kind === 'block' ? this.info.sectorSize : 1;
      const alignedEnd = end - (end % sector);
      try {
        while (at < alignedEnd && at % sector === 0) {
          const n = Math.min(ZERO_CHUNK, alignedEnd - at);
          if (this.info.kind === 'block') await zeroOut(this.fd, at, n);
          else await fallocate(this.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, at, n);
          at += n;
        }
      } catch {
        // not supported here (old kernel, filesystem without holes): write zeros from now on
        this.zeroOffload = false;
        this.zeroMethod = 'write';
      }
    }
    const z = zeroBuffer();
    while (at < end) {
      const n = Math.min(z.length, end - at);
      await this.writeAt(n === z.length ? z : z.subarray(0, n), at);
      at += n;
    }
  }

  /** A regular file must reach the image's end even when its last bytes were punched as a hole. */
  async ensureLength(length: number): Promise<void> {
    if (this.info.kind !== 'file') return;
    const st = await fstat(this.fd);
    if (st.size < length) await ftruncate(this.fd, length);
  }

  /** Everything written so far is on stable storage. */
  async sync(): Promise<void> {
    await fdatasync(this.fd);
    if (this.bufferedFd !== undefined) await fdatasync(this.bufferedFd);
  }

  /** BLKRRPART: returns undefined when done, else why not (not a partitionable device, in use). */
  rereadPartitions(): string | undefined {
    if (this.info.kind !== 'block') return 'not a block device';
    try { rereadPartitions(this.fd); return undefined; } catch (e) { return (e as Error).message; }
  }

  async close(): Promise<void> {
    if (this.bufferedFd !== undefined) { await close(this.bufferedFd).catch(() => {}); this.bufferedFd = undefined; }
    await close(this.fd).catch(() => {});
  }
}

/** A disk opened for reading (capture): O_DIRECT on block devices for the same reason. */
export class ReadTarget {
  readonly info: TargetInfo;
  private readonly fd: number;
  private readonly direct: boolean;

  private constructor(info: TargetInfo, fd: number, direct: boolean) {
    this.info = info;
    this.fd = fd;
    this.direct = direct;
  }

  static open(path: string, opts: { direct?: boolean } = {}): ReadTarget {
    const st = fs.statSync(path);
    const c = fs.constants;
    if (st.isBlockDevice()) {
      const direct = opts.direct ?? true;
      const fd = fs.openSync(path, c.O_RDONLY | (direct ? c.O_DIRECT : 0));
      try {
        return new ReadTarget({ path, kind: 'block', size: blockDeviceSize(fd), sectorSize: logicalSectorSize(fd) }, fd, direct);
      } catch (e) { fs.closeSync(fd); throw e; }
    }
    if (!st.isFile()) throw new Error(`${path} is neither a block device nor a regular file`);
    return new ReadTarget({ path, kind: 'file', size: st.size, sectorSize: 512 }, fs.openSync(path, c.O_RDONLY), false);
  }

  /** Reads up to buf.length bytes at pos (buf aligned when the target is direct); 0 at the end. */
  async readAt(buf: Buffer, pos: number): Promise<number> {
    let done = 0;
    while (done < buf.length && pos + done < this.info.size) {
      let len = Math.min(buf.length - done, this.info.size - pos - done);
      // O_DIRECT reads need sector multiples: the device size is one, so only round up here
      if (this.direct) len = Math.ceil(len / this.info.sectorSize) * this.info.sectorSize;
      const n = await read(this.fd, buf, done, Math.min(len, buf.length - done), pos + done);
      if (n <= 0) break;
      done += n;
    }
    return done;
  }

  async close(): Promise<void> { await close(this.fd).catch(() => {}); }
}
