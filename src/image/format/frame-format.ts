// The byte layout of the frames booty's parallel capture writes and its parallel deploy splits,
// without decompressing anything: every frame is a standard gzip member or zstd frame (stock
// gunzip, pigz, zstd and older booty agents read them unchanged); what makes them splittable
// while they stream in is that each frame says how long it is before its data begins:
//  - gzip: every member carries an FEXTRA subfield 'BY' (RFC 1952 2.3.1.1) with its own total
//    length and its uncompressed length (u32 LE each). Decoders skip extra fields they do not know.
//  - zstd: a frame's header carries its content size (Frame_Content_Size), and its compressed
//    length follows from walking the 3-byte block headers (RFC 8878 3.1.1.2), no decoding needed.
// The trailing frame index (frame-index.ts) travels in containers decoders skip as well: empty gzip
// members with a 'BI' subfield, or a zstd skippable frame.

export const GZIP_ID1 = 0x1f;
export const GZIP_ID2 = 0x8b;
const CM_DEFLATE = 8;
const FLG_FEXTRA = 4;
const OS_UNKNOWN = 255;

/** 'BY': a booty member's own length and uncompressed length. */
export const SUBFIELD_SIZES = [0x42, 0x59] as const;
/** 'BI': a piece of the frame index (frame-index.ts). */
export const SUBFIELD_INDEX = [0x42, 0x49] as const;

/** Bytes of a booty gzip member's header: 10 fixed + XLEN(2) + 'BY' subfield (4 + 8). */
export const BOOTY_GZIP_HEADER = 24;
/** CRC-32 + ISIZE. */
export const GZIP_TRAILER = 8;
/** Most bytes an FEXTRA field may hold (XLEN is 16 bits). */
export const GZIP_MAX_XLEN = 0xffff;

/** A raw-deflate encoding of empty input (a final fixed-Huffman block with no symbols). */
export const EMPTY_DEFLATE = Buffer.from([0x03, 0x00]);

export interface GzipMemberParts {
  /** raw deflate data */
  deflate: Uint8Array;
  crc32: number;
  /** uncompressed length */
  size: number;
  /** extra subfields after 'BY' (e.g. an index piece), each [id1, id2, data] */
  extra?: Array<{ id: readonly [number, number]; data: Uint8Array }>;
  /** XFL: 2 = best compression, 4 = fastest (informational, as gzip(1) sets it) */
  xfl?: number;
}

/** Builds one complete gzip member whose header says how long the member is. */
export function buildGzipMember(p: GzipMemberParts): Buffer {
  const extra = p.extra ?? [];
  const xlen = 12 + extra.reduce((n, s) => n + 4 + s.data.length, 0);
  if (xlen > GZIP_MAX_XLEN) throw new RangeError(`gzip extra field too long (${xlen} bytes)`);
  const total = 12 + xlen + p.deflate.length + GZIP_TRAILER;
  if (total > 0xffffffff || p.size > 0xffffffff) throw new RangeError('gzip member too large for its size field');
  const out = Buffer.allocUnsafeSlow(total);
  out[0] = GZIP_ID1; out[1] = GZIP_ID2; out[2] = CM_DEFLATE; out[3] = FLG_FEXTRA;
  out.writeUInt32LE(0, 4); // MTIME: none (reproducible output)
  out[8] = p.xfl ?? 0; out[9] = OS_UNKNOWN;
  out.writeUInt16LE(xlen, 10);
  let at = 12;
  out[at] = SUBFIELD_SIZES[0]; out[at + 1] = SUBFIELD_SIZES[1]; out.writeUInt16LE(8, at + 2);
  out.writeUInt32LE(total, at + 4);
  out.writeUInt32LE(p.size, at + 8);
  at += 12;
  for (const s of extra) {
    out[at] = s.id[0]; out[at + 1] = s.id[1]; out.writeUInt16LE(s.data.length, at + 2);
    out.set(s.data, at + 4);
    at += 4 + s.data.length;
  }
  out.set(p.deflate, at);
  at += p.deflate.length;
  out.writeUInt32LE(p.crc32 >>> 0, at);
  out.writeUInt32LE(p.size >>> 0, at + 4);
  return out;
}

export interface BootyGzipHeader {
  /** bytes of the header (where the deflate data starts) */
  headerLength: number;
  /** total bytes of the member, header to trailer */
  memberLength: number;
  /** uncompressed bytes */
  size: number;
  /** the 'BI' index piece, when this member carries one */
  indexPiece?: Buffer;
}

/**
 * Reads a gzip member header from `head` (the member's first bytes). Returns:
 *  - 'more' when `head` is too short to tell,
 *  - undefined when it is not a booty member (not gzip, other flags, no 'BY' subfield, sizes that
 *    cannot be right): the caller decodes such data as a plain stream,
 *  - the header otherwise.
 */
export function parseBootyGzipHeader(head: Uint8Array): BootyGzipHeader | undefined | 'more' {
  if (head.length < 4) return 'more';
  if (!looksLikeBootyGzip(head)) return undefined;
  if (head.length < 12) return 'more';
  const view = Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  const xlen = view.readUInt16LE(10);
  if (head.length < 12 + xlen) return 'more';
  let sizes: { member: number; size: number } | undefined;
  let indexPiece: Buffer | undefined;
  for (let at = 12; at + 4 <= 12 + xlen;) {
    const len = view.readUInt16LE(at + 2);
    if (at + 4 + len > 12 + xlen) return undefined; // subfields overrun XLEN: not well formed
    if (view[at] === SUBFIELD_SIZES[0] && view[at + 1] === SUBFIELD_SIZES[1] && len === 8) {
      sizes = { member: view.readUInt32LE(at + 4), size: view.readUInt32LE(at + 8) };
    } else if (view[at] === SUBFIELD_INDEX[0] && view[at + 1] === SUBFIELD_INDEX[1]) {
      indexPiece = Buffer.from(view.subarray(at + 4, at + 4 + len));
    }
    at += 4 + len;
  }
  if (sizes === undefined) return undefined;
  const headerLength = 12 + xlen;
  if (sizes.member < headerLength + 2 + GZIP_TRAILER) return undefined;
  return { headerLength, memberLength: sizes.member, size: sizes.size, ...(indexPiece ? { indexPiece } : {}) };
}

/** gzip magic, deflate, and exactly FEXTRA among the flags (what buildGzipMember writes). */
function looksLikeBootyGzip(head: Uint8Array): boolean {
  return head[0] === GZIP_ID1 && head[1] === GZIP_ID2 && head[2] === CM_DEFLATE && head[3] === FLG_FEXTRA;
}

// ---- zstd

export const ZSTD_MAGIC = 0xfd2fb528;
/** Skippable frames: magic 0x184D2A50..0x184D2A5F, u32 LE length, that many bytes. */
export const ZSTD_SKIPPABLE_MIN = 0x184d2a50;
export const ZSTD_SKIPPABLE_MAX = 0x184d2a5f;
/** The skippable-frame magic booty's index frame uses. */
export const ZSTD_INDEX_MAGIC = 0x184d2a5b;

export interface ZstdFrameHeader {
  headerLength: number;
  /** Frame_Content_Size, when the header declares it; Infinity for a declared size beyond 2^53
   *  (no disk holds it: every size check fails, and no sum or hint is ever made of it) */
  contentSize: number | undefined;
  hasChecksum: boolean;
  hasDictionary: boolean;
}

export type ZstdFrameStart =
  | { kind: 'frame'; header: ZstdFrameHeader }
  | { kind: 'skippable'; magic: number; length: number }
  | { kind: 'unknown' }
  | { kind: 'invalid' }
  | { kind: 'more' };

/** What starts at `head`: a zstd frame (with its parsed header), a skippable frame, a damaged
 *  frame header ('invalid'), or no zstd magic at all ('unknown'). The one zstd header parser:
 *  detection, deploy, the frame pool and the server's size sum all read frames through it. */
export function parseZstdFrameStart(head: Uint8Array): ZstdFrameStart {
  if (head.length < 4) return { kind: 'more' };
  const view = Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  const magic = view.readUInt32LE(0);
  if (magic >= ZSTD_SKIPPABLE_MIN && magic <= ZSTD_SKIPPABLE_MAX) {
    if (head.length < 8) return { kind: 'more' };
    return { kind: 'skippable', magic, length: 8 + view.readUInt32LE(4) };
  }
  if (magic !== ZSTD_MAGIC) return { kind: 'unknown' };
  if (head.length < 5) return { kind: 'more' };
  const fhd = view[4];
  if ((fhd & 0x08) !== 0) return { kind: 'invalid' }; // zstd magic, reserved bit set: a damaged frame
  const fcsFlag = fhd >> 6;
  const singleSegment = (fhd >> 5) & 1;
  const dictIdSize = [0, 1, 2, 4][fhd & 3];
  const fcsSize = fcsFlag === 0 ? singleSegment : [1, 2, 4, 8][fcsFlag];
  const headerLength = 5 + (singleSegment ? 0 : 1) + dictIdSize + fcsSize;
  if (head.length < headerLength) return { kind: 'more' };
  const at = headerLength - fcsSize;
  let contentSize: number | undefined;
  switch (fcsSize) {
    case 0: contentSize = undefined; break;
    case 1: contentSize = view[at]; break;
    case 2: contentSize = view.readUInt16LE(at) + 256; break;
    case 4: contentSize = view.readUInt32LE(at); break;
    default: {
      const big = view.readBigUInt64LE(at);
      contentSize = big > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(big);
    }
  }
  return { kind: 'frame', header: { headerLength, contentSize, hasChecksum: (fhd & 0x04) !== 0, hasDictionary: dictIdSize > 0 } };
}

/**
 * Walks a zstd frame's blocks as its bytes arrive, to find where the frame ends without decoding
 * it. feed() with the bytes available at `pos` (absolute in the frame); it answers how many more
 * bytes it must see, or the frame's total length once the last block (and checksum) is known.
 */
export class ZstdFrameWalker {
  /** absolute offset in the frame of the next block header to read */
  private next: number;
  private lastSeen = false;
  private readonly checksum: boolean;
  private done: number | undefined;

  constructor(header: ZstdFrameHeader) {
    this.next = header.headerLength;
    this.checksum = header.hasChecksum;
  }

  /** bytes of the frame known so far to be needed (read at least this many before calling again) */
  get needed(): number { return this.done ?? this.next + (this.lastSeen ? 0 : 3); }

  /**
   * `read3(at)` returns the 3 bytes at absolute frame offset `at` (at < available). Returns the
   * frame length when known, 'bad' for a reserved block type, or undefined to wait for more bytes.
   */
  walk(available: number, read3: (at: number) => number): number | 'bad' | undefined {
    while (this.done === undefined && this.next + 3 <= available) {
      const bh = read3(this.next);
      const last = (bh & 1) === 1;
      const type = (bh >> 1) & 3;
      const size = bh >>> 3;
      if (type === 3) return 'bad';
      this.next += 3 + (type === 1 ? 1 : size);
      if (last) {
        this.lastSeen = true;
        this.done = this.next + (this.checksum ? 4 : 0);
      }
    }
    return this.done;
  }
}
