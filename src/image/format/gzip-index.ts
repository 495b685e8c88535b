// An access-point index for an ordinary single-member gzip image (as pigz writes them), so deploy
// can inflate it on every core instead of one stream: zlib's inflate is one core's work, and on
// a mostly-zero OS image that core is the whole deploy's limit.
//
// Why it works: pigz compresses 128 KiB blocks and ends each with a sync flush, an empty stored
// block (bytes 00 00 FF FF) after which the deflate stream is byte-aligned at a block boundary.
// Decoding can start at such a point given the 32 KiB of output before it (the window that back
// references may reach into). The index records, every `spacing` bytes of output (4 MiB, one
// write block), the compressed offset of such a point, the segment's lengths and CRC-32, and the
// window before it, itself deflate-compressed with a sync flush: a worker inflates that "prefix"
// and then the segment's bytes with ONE raw inflater, so back references land in the window.
// (The zran technique of zlib's examples, restricted to byte-aligned points, which node:zlib can
// use: it has no inflatePrime().) An image without such points (gzip(1) output) gets no index.
//
// The builder decodes the image once, sequentially, like gunzip (header, CRC-32 and ISIZE of the
// trailer checked), and proves every point: a second inflater decodes each segment from its
// point and window alone, and must produce the same bytes (same length and CRC-32) as the
// sequential decode. A `00 00 FF FF` that merely occurs inside compressed data is not a point and
// fails that proof (the index is then refused, never wrong). The index also records the sha256 of
// the image file, which deploy compares with the bytes it received.
//
// File layout (little endian), streamable (deploy reads it front to back beside the image):
//   header, HEADER_BYTES:
//     0 "BOOTYGZI"   8 version u8 (2)   9..11 reserved   12 segment count u32   16 spacing u32
//     20 window bytes u32 (32768)   24 image file size u64   32 uncompressed size u64
//     40 deflate start (gzip header length) u32   44 trailer CRC-32 u32   48 trailer ISIZE u32
//     52 largest segment (uncompressed) u32   56 sha256 of the image file (32 bytes)
//     88 ETag of the file when the server built it (ASCII, NUL padded, 40 bytes)
//   then per segment, in order: RECORD_BYTES of
//     0 compressed offset u64   8 compressed length u32   12 uncompressed offset u64
//     20 uncompressed length u32   24 CRC-32 of its output u32   28 prefix length u32
//     32 flags u32 (bit 0: the segment's output is all zeros)
//   followed by the prefix (raw deflate of the window, ending in a sync flush; empty for the
//   first segment).
// An all-zero segment (free space of an OS image) need not be inflated at all: deploy writes it
// as a zero run. That trusts the flag only together with the segment's CRC-32 being that of
// zeros, and the CRC-32s combined still have to match the image's own trailer.
import { createHash, type Hash } from 'node:crypto';
import zlib from 'node:zlib';
import { type SyncZlib, syncZlib } from '../../sys/zlib-handle.ts';

export const GZIP_INDEX_MAGIC = Buffer.from('BOOTYGZI', 'latin1');
export const GZIP_INDEX_VERSION = 2;
export const HEADER_BYTES = 128;
export const RECORD_BYTES = 36;
/** record flag: the segment decodes to zeros only */
export const FLAG_ZEROS = 1;
export const WINDOW_BYTES = 32 << 10;
/** deploy's write block: points sit at multiples of it so segments fill whole blocks */
export const INDEX_BLOCK = 4 << 20;
export const DEFAULT_SPACING = 4 << 20;
/** a segment longer than this means the image has too few sync points: no index */
export const MAX_SEGMENT = 16 << 20;
const ETAG_BYTES = 40;
const SYNC = Buffer.from([0x00, 0x00, 0xff, 0xff]);

export interface GzipIndexHeader {
  count: number;
  spacing: number;
  window: number;
  fileSize: number;
  totalSize: number;
  deflateStart: number;
  trailerCrc: number;
  trailerIsize: number;
  maxSegment: number;
  sha256: string;
  etag: string;
}

export interface GzipIndexRecord {
  cOff: number;
  cLen: number;
  uOff: number;
  uLen: number;
  crc: number;
  prefixLength: number;
  flags: number;
}

/** Why no index can be built for an image (not an error of the image: it deploys as one stream). */
export class IndexRefused extends Error {
  constructor(message: string) { super(message); this.name = 'IndexRefused'; }
}

export function encodeHeader(h: GzipIndexHeader): Buffer {
  const b = Buffer.alloc(HEADER_BYTES);
  GZIP_INDEX_MAGIC.copy(b, 0);
  b[8] = GZIP_INDEX_VERSION;
  b.writeUInt32LE(h.count, 12);
  b.writeUInt32LE(h.spacing, 16);
  b.writeUInt32LE(h.window, 20);
  b.writeBigUInt64LE(BigInt(h.fileSize), 24);
  b.writeBigUInt64LE(BigInt(h.totalSize), 32);
  b.writeUInt32LE(h.deflateStart, 40);
  b.writeUInt32LE(h.trailerCrc >>> 0, 44);
  b.writeUInt32LE(h.trailerIsize >>> 0, 48);
  b.writeUInt32LE(h.maxSegment, 52);
  Buffer.from(h.sha256, 'hex').copy(b, 56);
  b.write(h.etag.slice(0, ETAG_BYTES), 88, 'latin1');
  return b;
}

/** Parses and sanity-checks an index header; throws a plain Error naming what is wrong. */
export function decodeHeader(b: Buffer): GzipIndexHeader {
  if (b.length < HEADER_BYTES) throw new Error(`index header is ${b.length} bytes, expected ${HEADER_BYTES}`);
  if (!b.subarray(0, 8).equals(GZIP_INDEX_MAGIC)) throw new Error('not a booty gzip index (bad magic)');
  if (b[8] !== GZIP_INDEX_VERSION) throw new Error(`gzip index version ${b[8]} is not supported (this agent reads version ${GZIP_INDEX_VERSION})`);
  const fileSize = Number(b.readBigUInt64LE(24));
  const totalSize = Number(b.readBigUInt64LE(32));
  const h: GzipIndexHeader = {
    count: b.readUInt32LE(12), spacing: b.readUInt32LE(16), window: b.readUInt32LE(20),
    fileSize, totalSize, deflateStart: b.readUInt32LE(40),
    trailerCrc: b.readUInt32LE(44), trailerIsize: b.readUInt32LE(48), maxSegment: b.readUInt32LE(52),
    sha256: b.subarray(56, 88).toString('hex'),
    etag: b.subarray(88, 88 + ETAG_BYTES).toString('latin1').replace(/\0+$/, ''),
  };
  if (h.count < 1) throw new Error('gzip index has no segments');
  if (h.window !== WINDOW_BYTES) throw new Error(`gzip index window is ${h.window} bytes, expected ${WINDOW_BYTES}`);
  if (h.spacing % INDEX_BLOCK !== 0 || h.spacing === 0) throw new Error(`gzip index spacing ${h.spacing} is not a multiple of ${INDEX_BLOCK}`);
  if (h.maxSegment > MAX_SEGMENT || h.maxSegment === 0) throw new Error(`gzip index segments of up to ${h.maxSegment} bytes are out of range`);
  if (!Number.isSafeInteger(fileSize) || !Number.isSafeInteger(totalSize) || h.deflateStart < 10 || h.deflateStart + 8 > fileSize) {
    throw new Error('gzip index sizes are out of range');
  }
  return h;
}

export function encodeRecord(r: GzipIndexRecord): Buffer {
  const b = Buffer.alloc(RECORD_BYTES);
  b.writeBigUInt64LE(BigInt(r.cOff), 0);
  b.writeUInt32LE(r.cLen, 8);
  b.writeBigUInt64LE(BigInt(r.uOff), 12);
  b.writeUInt32LE(r.uLen, 20);
  b.writeUInt32LE(r.crc >>> 0, 24);
  b.writeUInt32LE(r.prefixLength, 28);
  b.writeUInt32LE(r.flags, 32);
  return b;
}

export function decodeRecord(b: Buffer): GzipIndexRecord {
  return {
    cOff: Number(b.readBigUInt64LE(0)), cLen: b.readUInt32LE(8), uOff: Number(b.readBigUInt64LE(12)),
    uLen: b.readUInt32LE(20), crc: b.readUInt32LE(24), prefixLength: b.readUInt32LE(28), flags: b.readUInt32LE(32),
  };
}

/**
 * Length of the gzip member header at the start of `b` (RFC 1952 2.3: fixed 10 bytes, then
 * FEXTRA, FNAME, FCOMMENT, FHCRC as flagged), 'more' when `b` is too short to tell, undefined when
 * it is not a gzip header this code reads (other method, reserved flags set).
 */
export function gzipHeaderLength(b: Uint8Array): number | 'more' | undefined {
  if (b.length < 10) return b.length >= 2 && (b[0] !== 0x1f || b[1] !== 0x8b) ? undefined : 'more';
  if (b[0] !== 0x1f || b[1] !== 0x8b || b[2] !== 8 || (b[3] & 0xe0) !== 0) return undefined;
  const flg = b[3];
  let at = 10;
  if (flg & 4) {
    if (b.length < at + 2) return 'more';
    at += 2 + (b[at] | (b[at + 1] << 8));
  }
  for (const bit of [8, 16]) {
    if (flg & bit) {
      for (;;) {
        if (at >= b.length) return 'more';
        if (b[at++] === 0) break;
      }
    }
  }
  if (flg & 2) at += 2;
  return at <= b.length ? at : 'more';
}

// ---- the builder ------------------------------------------------------------------------------

type SyncInflater = SyncZlib<zlib.InflateRaw>;

/** A raw inflater whose native handle is driven synchronously (src/sys/zlib-handle.ts). */
function syncInflater(): SyncInflater {
  const s = syncZlib(zlib.createInflateRaw());
  if (s === undefined) throw new IndexRefused("this Node's zlib does not expose what the index builder drives (src/sys/zlib-handle.ts)");
  return s;
}

/** The window before a point, as raw deflate ending in a sync flush (byte-aligned, not final). */
export function windowPrefix(window: Uint8Array): Buffer {
  if (window.length === 0) return Buffer.alloc(0);
  return zlib.deflateRawSync(window, { level: 6, finishFlush: zlib.constants.Z_SYNC_FLUSH });
}

/** Decodes all of `input` with `inf` (output into `out`, reused); false when it failed or its
 *  stream ended before the input did. */
function decodeAll(inf: SyncInflater, input: Uint8Array, out: Buffer, onOut: (piece: Buffer) => void): boolean {
  let off = 0;
  let avail = input.length;
  while (avail > 0) {
    if (!inf.write(zlib.constants.Z_NO_FLUSH, input, off, avail, out, 0, out.length)) return false;
    const outAfter = inf.outLeft;
    const inAfter = inf.inLeft;
    if (outAfter < out.length) onOut(out.subarray(0, out.length - outAfter));
    off += avail - inAfter;
    avail = inAfter;
    if (outAfter !== 0 && avail > 0) return false;
  }
  return true;
}

/** Whether `inf`'s deflate stream has ended (a final block was decoded). */
function streamEnded(inf: SyncInflater, out: Buffer): boolean {
  return inf.write(zlib.constants.Z_FINISH, Buffer.alloc(0), 0, 0, out, 0, out.length) && inf.outLeft === out.length;
}

export interface GzipIndexBuilderOptions {
  /** uncompressed bytes between points (multiple of 4 MiB; default 4 MiB) */
  spacing?: number;
  /** the ETag the server serves the file with (recorded, so a stale index is never served) */
  etag?: string;
  /** receives the index's records (and prefixes) in order, as segments close */
  emit: (bytes: Buffer) => void;
}

/** A point being proven: the segment before it closes there only if the verifier, started at the
 *  point with nothing but the window, decodes exactly what the sequential decoder decodes. */
interface Candidate {
  cOff: number;
  uOff: number;
  /** the open segment's CRC-32 up to the point */
  crcBefore: number;
  prefix: Buffer;
  /** the open segment's output up to the point was all zeros */
  zerosBefore: boolean;
  /** the sequential decoder's output since the point */
  bytesAfter: number;
  crcAfter: number;
  zerosAfter: boolean;
  /** the verifier's output since the point */
  vBytes: number;
  vCrc: number;
  failed: boolean;
}

/**
 * Builds the index of a gzip file fed to push() in order (any chunking); finish() returns the
 * header (to be written before the records emit() received). Throws IndexRefused when the file
 * gets no index: not one gzip member, corrupt, truncated, or too few byte-aligned block ends.
 *
 * Points are found with inflate's Z_BLOCK flush, which stops at every deflate block end. A block
 * end is a usable point only when it falls on a byte boundary; zlib does not say (node:zlib hides
 * data_type), so the last block end before output resumes at a 4 MiB multiple is taken as the
 * candidate (pigz pads each chunk to a byte boundary with empty blocks or a sync flush, so that
 * one is aligned) and proven by the verifier over the whole next segment; an unproven candidate is
 * dropped and the segment before it simply goes on to the next one.
 */
export class GzipIndexBuilder {
  private readonly spacing: number;
  private readonly etag: string;
  private readonly emit: (bytes: Buffer) => void;
  private readonly sha: Hash = createHash('sha256');
  private phase: 'header' | 'deflate' | 'trailer' | 'after' = 'header';
  private head = Buffer.alloc(0);
  private deflateStart = 0;
  /** bytes of the file consumed */
  private pos = 0;
  private readonly main: SyncInflater;
  private readonly verifier: SyncInflater;
  private readonly out = Buffer.allocUnsafe(1 << 20);
  private readonly vOut = Buffer.allocUnsafe(1 << 20);
  private readonly window = Buffer.alloc(WINDOW_BYTES);
  private windowLength = 0;
  private total = 0;
  private totalCrc = 0;
  /** the open segment (its start is proven) */
  private seg: { cOff: number; uOff: number; crc: number; prefix: Buffer; zeros: boolean } = { cOff: 0, uOff: 0, crc: 0, prefix: Buffer.alloc(0), zeros: true };
  private readonly zeroPiece = Buffer.alloc(1 << 20);
  private cand: Candidate | undefined;
  private count = 0;
  private maxSegment = 0;
  private trailer = Buffer.alloc(0);

  constructor(o: GzipIndexBuilderOptions) {
    const spacing = o.spacing ?? DEFAULT_SPACING;
    if (spacing % INDEX_BLOCK !== 0 || spacing <= 0 || spacing > MAX_SEGMENT) throw new RangeError(`index spacing must be a multiple of ${INDEX_BLOCK} up to ${MAX_SEGMENT}, not ${spacing}`);
    this.spacing = spacing;
    this.etag = o.etag ?? '';
    this.emit = o.emit;
    this.main = syncInflater();
    this.verifier = syncInflater();
  }

  push(chunk: Buffer): void {
    this.sha.update(chunk);
    let c = chunk;
    if (this.phase === 'header') {
      this.head = Buffer.concat([this.head, c]);
      const n = gzipHeaderLength(this.head);
      if (n === undefined) throw new IndexRefused('not a gzip file');
      if (n === 'more') return;
      this.deflateStart = n;
      this.pos = n;
      this.seg.cOff = n;
      this.phase = 'deflate';
      c = this.head.subarray(n);
      this.head = Buffer.alloc(0);
    }
    if (this.phase === 'deflate') c = this.deflate(c);
    if (this.phase === 'trailer' && c.length > 0) {
      const n = Math.min(8 - this.trailer.length, c.length);
      this.trailer = Buffer.concat([this.trailer, c.subarray(0, n)]);
      this.pos += n;
      c = c.subarray(n);
      if (this.trailer.length === 8) this.phase = 'after';
    }
    if (this.phase === 'after' && c.length > 0) {
      throw new IndexRefused('the file holds more than one gzip member (or data after it): indexed images are single-member gzip, as pigz and gzip write them');
    }
  }

  /** Decodes deflate bytes, stopping at every block end; returns what follows the deflate stream. */
  private deflate(c: Buffer): Buffer {
    const main = this.main;
    let off = 0;
    let avail = c.length;
    while (avail > 0) {
      if (!main.write(zlib.constants.Z_BLOCK, c, off, avail, this.out, 0, this.out.length)) throw new IndexRefused(`the gzip data is corrupt (${main.error!.message}) near byte ${this.pos}`);
      const outAfter = main.outLeft;
      const used = avail - main.inLeft;
      const produced = this.out.length - outAfter;
      if (produced > 0) this.output(this.out.subarray(0, produced));
      if (used > 0) this.verify(c.subarray(off, off + used));
      off += used;
      avail -= used;
      this.pos += used;
      if (outAfter === 0 || avail === 0) continue;
      if (used === 0 && produced === 0) {
        this.streamDone();
        return c.subarray(off);
      }
      this.blockEnd();
    }
    return Buffer.alloc(0);
  }

  private output(piece: Buffer): void {
    this.total += piece.length;
    this.totalCrc = zlib.crc32(piece, this.totalCrc);
    this.seg.crc = zlib.crc32(piece, this.seg.crc);
    const zeros = piece.equals(this.zeroPiece.subarray(0, piece.length));
    if (!zeros) this.seg.zeros = false;
    if (this.cand !== undefined) {
      this.cand.bytesAfter += piece.length;
      this.cand.crcAfter = zlib.crc32(piece, this.cand.crcAfter);
      if (!zeros) this.cand.zerosAfter = false;
    }
    this.slide(piece);
    const upTo = this.cand?.uOff ?? this.total;
    if (upTo - this.seg.uOff > MAX_SEGMENT) this.tooSparse();
  }

  private verify(input: Buffer): void {
    const cand = this.cand;
    if (cand === undefined || cand.failed) return;
    const ok = decodeAll(this.verifier, input, this.vOut, (piece) => {
      cand.vBytes += piece.length;
      cand.vCrc = zlib.crc32(piece, cand.vCrc);
    });
    if (!ok) cand.failed = true;
  }

  private slide(piece: Buffer): void {
    const w = this.window;
    if (piece.length >= WINDOW_BYTES) {
      piece.copy(w, 0, piece.length - WINDOW_BYTES);
      this.windowLength = WINDOW_BYTES;
      return;
    }
    const keep = Math.min(this.windowLength, WINDOW_BYTES - piece.length);
    w.copyWithin(0, this.windowLength - keep, this.windowLength);
    piece.copy(w, keep);
    this.windowLength = keep + piece.length;
  }

  /** A deflate block ended at this.pos. */
  private blockEnd(): void {
    const cand = this.cand;
    // a later block end with no output in between (padding blocks): the same point, better aligned
    if (cand !== undefined && cand.bytesAfter === 0) { this.startCandidate(cand.crcBefore, cand.zerosBefore); return; }
    const from = cand?.uOff ?? this.seg.uOff;
    if (this.total % INDEX_BLOCK !== 0 || this.total - from < this.spacing) return;
    this.resolve();
    this.startCandidate(this.seg.crc, this.seg.zeros);
  }

  private startCandidate(crcBefore: number, zerosBefore: boolean): void {
    const prefix = windowPrefix(this.window.subarray(0, this.windowLength));
    this.cand = { cOff: this.pos, uOff: this.total, crcBefore, zerosBefore, prefix, bytesAfter: 0, crcAfter: 0, zerosAfter: true, vBytes: 0, vCrc: 0, failed: false };
    this.verifier.reset();
    let windowOut = 0;
    const ok = decodeAll(this.verifier, prefix, this.vOut, (piece) => { windowOut += piece.length; });
    if (!ok || windowOut !== this.windowLength) throw new IndexRefused('internal: a window prefix did not decode to its window');
  }

  /** Closes the open segment at the candidate if the candidate is proven; else drops the candidate. */
  private resolve(): void {
    const cand = this.cand;
    this.cand = undefined;
    if (cand === undefined || cand.failed || cand.vBytes !== cand.bytesAfter || cand.vCrc !== cand.crcAfter) return;
    this.closeSegment(cand.cOff, cand.uOff, cand.crcBefore, cand.zerosBefore);
    this.seg = { cOff: cand.cOff, uOff: cand.uOff, crc: cand.crcAfter, prefix: cand.prefix, zeros: cand.zerosAfter };
  }

  private closeSegment(cEnd: number, uEnd: number, crc: number, zeros: boolean): void {
    const seg = this.seg;
    const uLen = uEnd - seg.uOff;
    if (uLen > MAX_SEGMENT) this.tooSparse();
    this.maxSegment = Math.max(this.maxSegment, uLen);
    const rec = encodeRecord({ cOff: seg.cOff, cLen: cEnd - seg.cOff, uOff: seg.uOff, uLen, crc, prefixLength: seg.prefix.length, flags: zeros && uLen > 0 ? FLAG_ZEROS : 0 });
    this.emit(Buffer.concat([rec, seg.prefix]));
    this.count++;
  }

  private tooSparse(): never {
    throw new IndexRefused(`no usable block boundary on a 4 MiB multiple within ${MAX_SEGMENT >> 20} MiB of output after byte ${this.seg.uOff}: the image was not written by pigz (or another compressor that flushes), so it decodes as one stream`);
  }

  /** The final block ended: the last candidate counts if output followed it and the verifier's stream ended there too. */
  private streamDone(): void {
    const cand = this.cand;
    if (cand !== undefined && !cand.failed && cand.bytesAfter > 0 && !streamEnded(this.verifier, this.vOut)) cand.failed = true;
    if (cand !== undefined && cand.bytesAfter > 0) this.resolve();
    this.cand = undefined;
    this.closeSegment(this.pos, this.total, this.seg.crc, this.seg.zeros);
    this.phase = 'trailer';
  }

  /** After the last push(): checks the trailer and returns the index header. */
  finish(): Buffer {
    try {
      if (this.phase === 'header') throw new IndexRefused(this.head.length === 0 ? 'the file is empty' : 'the file ends inside its gzip header');
      if (this.phase === 'deflate') throw new IndexRefused('the gzip stream is truncated (it ends before its last block)');
      if (this.trailer.length < 8) throw new IndexRefused('the gzip file ends inside its trailer');
      const trailerCrc = this.trailer.readUInt32LE(0);
      const trailerIsize = this.trailer.readUInt32LE(4);
      if (trailerCrc !== (this.totalCrc >>> 0)) throw new IndexRefused(`the gzip data is corrupt (CRC-32 ${this.totalCrc.toString(16)}, trailer says ${trailerCrc.toString(16)})`);
      if (trailerIsize !== this.total % 2 ** 32) throw new IndexRefused(`the gzip data is corrupt (${this.total} bytes, trailer says ${trailerIsize} mod 2^32)`);
      if (this.count < 2) throw new IndexRefused('no usable block boundaries (gzip(1) writes none; pigz does): the image decodes as one stream');
      return encodeHeader({
        count: this.count, spacing: this.spacing, window: WINDOW_BYTES, fileSize: this.pos, totalSize: this.total,
        deflateStart: this.deflateStart, trailerCrc, trailerIsize, maxSegment: this.maxSegment,
        sha256: this.sha.digest('hex'), etag: this.etag,
      });
    } finally {
      this.close();
    }
  }

  /** Frees the inflaters (finish() does; call it when a build is abandoned). */
  close(): void {
    this.main.close();
    this.verifier.close();
  }
}
