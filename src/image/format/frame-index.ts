// The frame index booty's capture appends to an image: the list of its independently decodable
// frames (compressed and uncompressed length of each, in order), so that whoever holds the image
// knows its uncompressed size and where each frame starts, and can decode frames in parallel or
// fetch them with ranges, without reading the data. Deploy checks it against the frames it
// decoded (a mismatch is a damaged image).
//
// Payload (little endian):
//   0  "BOOTYIDX"        8  version (1)   9  format (1 gzip, 2 zstd)   10 reserved u16
//   12 frame count u32   16 nominal block size u32   20 reserved u32
//   24 total uncompressed bytes u64   32 total compressed bytes of the frames u64 (index excluded)
//   40 per frame: compressed length u32, uncompressed length u32
// Container: zstd: one skippable frame (magic 0x184D2A5B) holding the payload; gzip: empty members
// (decompress to nothing) whose 'BI' extra subfield holds consecutive pieces of the payload.
// Stock gunzip and zstd skip both.
import { buildGzipMember, EMPTY_DEFLATE, GZIP_MAX_XLEN, SUBFIELD_INDEX, ZSTD_INDEX_MAGIC } from './frame-format.ts';

const MAGIC = Buffer.from('BOOTYIDX', 'latin1');
const VERSION = 1;
const HEADER = 40;
/** Payload bytes per gzip index member: XLEN minus the 'BY' subfield (12) and the 'BI' subfield header (4). */
export const GZIP_INDEX_PIECE = GZIP_MAX_XLEN - 12 - 4;

export type FramedFormat = 'gzip' | 'zstd';

/** Frame lengths, appended as frames are produced (8 bytes per frame: 2 KiB per GiB at 4 MiB). */
export class FrameList {
  private data = new Uint32Array(2048);
  count = 0;
  totalSize = 0;
  totalCompressed = 0;

  add(compressed: number, size: number): void {
    if (2 * this.count + 2 > this.data.length) {
      const bigger = new Uint32Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[2 * this.count] = compressed;
    this.data[2 * this.count + 1] = size;
    this.count++;
    this.totalSize += size;
    this.totalCompressed += compressed;
  }

  compressed(i: number): number { return this.data[2 * i]; }
  size(i: number): number { return this.data[2 * i + 1]; }
}

export interface FrameIndex {
  format: FramedFormat;
  blockSize: number;
  totalSize: number;
  totalCompressed: number;
  frames: FrameList;
}

export function encodeIndexPayload(format: FramedFormat, blockSize: number, frames: FrameList): Buffer {
  const out = Buffer.alloc(HEADER + 8 * frames.count);
  MAGIC.copy(out, 0);
  out[8] = VERSION;
  out[9] = format === 'gzip' ? 1 : 2;
  out.writeUInt32LE(frames.count, 12);
  out.writeUInt32LE(blockSize, 16);
  out.writeBigUInt64LE(BigInt(frames.totalSize), 24);
  out.writeBigUInt64LE(BigInt(frames.totalCompressed), 32);
  for (let i = 0; i < frames.count; i++) {
    out.writeUInt32LE(frames.compressed(i), HEADER + 8 * i);
    out.writeUInt32LE(frames.size(i), HEADER + 8 * i + 4);
  }
  return out;
}

/** Parses a payload; throws an Error saying what is wrong with it. */
export function decodeIndexPayload(payload: Buffer): FrameIndex {
  if (payload.length < HEADER || !payload.subarray(0, 8).equals(MAGIC)) throw new Error('not a booty frame index');
  if (payload[8] !== VERSION) throw new Error(`frame index version ${payload[8]} is not supported`);
  const format: FramedFormat | undefined = payload[9] === 1 ? 'gzip' : payload[9] === 2 ? 'zstd' : undefined;
  if (format === undefined) throw new Error(`frame index names an unknown format (${payload[9]})`);
  const count = payload.readUInt32LE(12);
  if (payload.length !== HEADER + 8 * count) throw new Error(`frame index holds ${payload.length} bytes, ${HEADER + 8 * count} expected for ${count} frames`);
  const frames = new FrameList();
  for (let i = 0; i < count; i++) frames.add(payload.readUInt32LE(HEADER + 8 * i), payload.readUInt32LE(HEADER + 8 * i + 4));
  const totalSize = Number(payload.readBigUInt64LE(24));
  const totalCompressed = Number(payload.readBigUInt64LE(32));
  if (totalSize !== frames.totalSize || totalCompressed !== frames.totalCompressed) throw new Error('frame index totals do not add up');
  return { format, blockSize: payload.readUInt32LE(16), totalSize, totalCompressed, frames };
}

/** The payload wrapped so that stock decoders skip it: bytes to append after the last frame. */
export function wrapIndex(format: FramedFormat, payload: Buffer): Buffer {
  if (format === 'zstd') {
    const head = Buffer.alloc(8);
    head.writeUInt32LE(ZSTD_INDEX_MAGIC, 0);
    head.writeUInt32LE(payload.length, 4);
    return Buffer.concat([head, payload]);
  }
  const members: Buffer[] = [];
  for (let at = 0; at < payload.length; at += GZIP_INDEX_PIECE) {
    members.push(buildGzipMember({
      deflate: EMPTY_DEFLATE, crc32: 0, size: 0,
      extra: [{ id: SUBFIELD_INDEX, data: payload.subarray(at, at + GZIP_INDEX_PIECE) }],
    }));
  }
  return Buffer.concat(members);
}

/** Checks an index against the frames a deploy decoded; returns what differs, or undefined. */
export function indexMismatch(index: FrameIndex, decoded: FrameList): string | undefined {
  if (index.frames.count !== decoded.count) return `the image's frame index lists ${index.frames.count} frames, the image holds ${decoded.count}`;
  for (let i = 0; i < decoded.count; i++) {
    if (index.frames.compressed(i) !== decoded.compressed(i) || index.frames.size(i) !== decoded.size(i)) {
      return `frame ${i} is ${decoded.compressed(i)} bytes decoding to ${decoded.size(i)}, the frame index says ${index.frames.compressed(i)} and ${index.frames.size(i)}`;
    }
  }
  return undefined;
}
