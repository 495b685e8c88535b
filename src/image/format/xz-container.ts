// The .xz container around the LZMA2 data (xz-file-format 1.1.0: stream header, blocks, index,
// stream footer, stream padding), read on the main thread so that a multi-block stream can be cut
// at its block boundaries and its blocks decoded on several workers (xz-block-decompress.ts). Only
// the framing is read here; the blocks' contents (filters, LZMA2, integrity checks) are liblzma's,
// given each block wrapped as a standalone one-block stream (wrapBlock). Every check xz(1) makes on
// the framing is made here: CRC32 of the stream flags, block headers, index and footer, the index
// against the blocks seen, the footer's backward size and flags against the header's.
// Worker-safe (a worker entry imports wrapBlock): node: modules only.
import zlib from 'node:zlib';

export const XZ_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
const FOOTER_MAGIC = Buffer.from('YZ', 'latin1');
export const XZ_HEADER_BYTES = 12;
export const XZ_FOOTER_BYTES = 12;

/** Bytes of the integrity check for check type `id` (0 none, 1 CRC32, 4 CRC64, 10 SHA-256; the
 *  reserved ids have sizes too, which liblzma refuses to verify). */
export function checkBytes(id: number): number {
  return id === 0 ? 0 : 4 << Math.floor((id - 1) / 3);
}

/** A variable-length integer at `at`: its value and length, 'more' when `b` ends inside it, or
 *  undefined when it is not a valid one (longer than 9 bytes, or a non-minimal encoding). */
export function readVli(b: Uint8Array, at: number): { value: number; length: number } | 'more' | undefined {
  let value = 0;
  for (let i = 0; i < 9; i++) {
    if (at + i >= b.length) return 'more';
    const byte = b[at + i];
    value += (byte & 0x7f) * 2 ** (7 * i);
    if ((byte & 0x80) === 0) {
      if (byte === 0 && i > 0) return undefined;
      return value > Number.MAX_SAFE_INTEGER ? undefined : { value, length: i + 1 };
    }
  }
  return undefined;
}

function vli(n: number): Buffer {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return Buffer.from(out);
}

/** The stream flags (2 bytes) of a stream header, or what is wrong with it. */
export function parseStreamHeader(h: Buffer): { flags: Buffer; check: number } | string {
  if (!h.subarray(0, 6).equals(XZ_MAGIC)) return 'not the start of an xz stream';
  const flags = h.subarray(6, 8);
  if (flags[0] !== 0 || (flags[1] & 0xf0) !== 0) return 'unsupported stream flags';
  if (zlib.crc32(flags) !== h.readUInt32LE(8)) return 'the stream header is corrupt (CRC32)';
  return { flags: Buffer.from(flags), check: flags[1] & 0x0f };
}

export interface XzBlockHeader {
  headerBytes: number;
  /** absent when the encoder did not record it (single-threaded xz) */
  compressed?: number;
  uncompressed?: number;
}

/** A block header (`h` holds at least its first byte; its size is (h[0] + 1) * 4): 'more' until
 *  `h` holds all of it, else its sizes or what is wrong. h[0] must not be 0 (that starts the index). */
export function parseBlockHeader(h: Buffer): XzBlockHeader | 'more' | string {
  const headerBytes = (h[0] + 1) * 4;
  if (h.length < headerBytes) return 'more';
  if (zlib.crc32(h.subarray(0, headerBytes - 4)) !== h.readUInt32LE(headerBytes - 4)) return 'a block header is corrupt (CRC32)';
  const flags = h[1];
  if ((flags & 0x3c) !== 0) return 'a block header has unsupported flags';
  let at = 2;
  const out: XzBlockHeader = { headerBytes };
  for (const [bit, key] of [[0x40, 'compressed'], [0x80, 'uncompressed']] as const) {
    if ((flags & bit) === 0) continue;
    const v = readVli(h.subarray(0, headerBytes - 4), at);
    if (v === undefined || v === 'more' || (key === 'compressed' && v.value === 0)) return 'a block header is corrupt (sizes)';
    out[key] = v.value;
    at += v.length;
  }
  return out;
}

/** A block's bytes from its header to the end of its check, given its header's sizes. */
export function blockBytes(h: XzBlockHeader & { compressed: number }, check: number): number {
  return h.headerBytes + h.compressed + ((4 - (h.compressed % 4)) % 4) + checkBytes(check);
}

/** What the index records per block: header + compressed data + check, without the padding. */
export function unpaddedSize(h: XzBlockHeader & { compressed: number }, check: number): number {
  return h.headerBytes + h.compressed + checkBytes(check);
}

/** The index at the start of `b` (its indicator byte 0 included): 'more' until all of it is in
 *  `b`, else its length and records, or what is wrong. */
export function parseIndex(b: Buffer): { length: number; records: Array<[number, number]> } | 'more' | string {
  const count = readVli(b, 1);
  if (count === 'more') return 'more';
  if (count === undefined) return 'the index is corrupt';
  let at = 1 + count.length;
  const records: Array<[number, number]> = [];
  for (let i = 0; i < count.value; i++) {
    const u = readVli(b, at);
    if (u === 'more') return 'more';
    if (u === undefined) return 'the index is corrupt';
    const s = readVli(b, at + u.length);
    if (s === 'more') return 'more';
    if (s === undefined) return 'the index is corrupt';
    at += u.length + s.length;
    records.push([u.value, s.value]);
  }
  const pad = (4 - (at % 4)) % 4;
  if (b.length < at + pad + 4) return 'more';
  for (let i = 0; i < pad; i++) if (b[at + i] !== 0) return 'the index is corrupt (padding)';
  at += pad;
  if (zlib.crc32(b.subarray(0, at)) !== b.readUInt32LE(at)) return 'the index is corrupt (CRC32)';
  return { length: at + 4, records };
}

/** What is wrong with a stream footer after an index of `indexBytes` in a stream with `flags`. */
export function footerProblem(f: Buffer, flags: Buffer, indexBytes: number): string | undefined {
  if (!f.subarray(10, 12).equals(FOOTER_MAGIC)) return 'the stream footer is corrupt (magic)';
  if (zlib.crc32(f.subarray(4, 10)) !== f.readUInt32LE(0)) return 'the stream footer is corrupt (CRC32)';
  if ((f.readUInt32LE(4) + 1) * 4 !== indexBytes) return 'the stream footer does not match the index (backward size)';
  if (!f.subarray(8, 10).equals(flags)) return 'the stream footer does not match the stream header (flags)';
  return undefined;
}

/** One block (header to check) as a standalone .xz stream with one block: stream header, the
 *  block, an index of one record, stream footer, as three pieces to feed a decoder in a row (the
 *  block itself is not copied). liblzma then checks the block in full (header CRC32, its sizes,
 *  the integrity check) as it would inside the original stream. */
export function wrapBlock(block: Buffer, flags: Uint8Array, unpadded: number, uncompressed: number): [Buffer, Buffer, Buffer] {
  const header = Buffer.alloc(XZ_HEADER_BYTES);
  XZ_MAGIC.copy(header, 0);
  header.set(flags, 6);
  header.writeUInt32LE(zlib.crc32(flags), 8);
  const records = Buffer.concat([Buffer.from([0x00, 0x01]), vli(unpadded), vli(uncompressed)]);
  const indexBytes = records.length + ((4 - (records.length % 4)) % 4) + 4;
  const trailer = Buffer.alloc(indexBytes + XZ_FOOTER_BYTES);
  records.copy(trailer, 0);
  trailer.writeUInt32LE(zlib.crc32(trailer.subarray(0, indexBytes - 4)), indexBytes - 4);
  const footer = trailer.subarray(indexBytes);
  footer.writeUInt32LE(indexBytes / 4 - 1, 4);
  footer.set(flags, 8);
  footer.writeUInt32LE(zlib.crc32(footer.subarray(4, 10)), 0);
  FOOTER_MAGIC.copy(footer, 10);
  return [header, block, trailer];
}
