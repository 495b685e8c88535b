// The uncompressed size of a whole zstd file, from its frame and block headers alone (nothing is
// decompressed). A zstd file may hold several frames (a parallel compressor writes one per chunk,
// `cat a.zst b.zst` is valid zstd) and skippable frames; the size the agent is told (X-Image-Size)
// must be the sum over all of them, or nothing at all when any frame does not record its size:
// announcing the first frame's size alone makes a correct multi-frame image fail as too long.
//
// Format (RFC 8878): frame = magic FD2FB528, Frame_Header_Descriptor, [Window_Descriptor],
// [Dictionary_ID], [Frame_Content_Size], blocks (3-byte header: Last_Block, Block_Type,
// Block_Size), [4-byte checksum]. Skippable frame = magic 184D2A5?, 4-byte size, that many bytes.

import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { parseZstdFrameStart } from '../image/format/frame-format.ts';

const ZSTD_MAGIC = 0xfd2fb528;
const SKIPPABLE_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;
const WINDOW = 64 * 1024;

/** Reads bytes at absolute offsets, through a small window so block headers close together cost one read. */
export type ReadAt = (pos: number, len: number) => Promise<Buffer>;

function windowedReader(fh: FileHandle): ReadAt {
  let winStart = 0;
  let win = Buffer.alloc(0);
  return async (pos, len) => {
    if (pos >= winStart && pos + len <= winStart + win.length) return win.subarray(pos - winStart, pos - winStart + len);
    const buf = Buffer.alloc(Math.max(len, WINDOW));
    const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
    winStart = pos;
    win = buf.subarray(0, bytesRead);
    return win.subarray(0, Math.min(len, bytesRead));
  };
}

/**
 * Sum of Frame_Content_Size over every frame of a `fileSize`-byte zstd file, or undefined when a
 * frame lacks it, the file is not zstd, or its structure is broken or truncated (the agent's own
 * checks then report the problem; a wrong size hint must never be sent).
 */
export async function zstdTotalContentSize(readAt: ReadAt, fileSize: number): Promise<number | undefined> {
  let pos = 0;
  let total = 0;
  let frames = 0;
  while (pos < fileSize) {
    const magicBytes = await readAt(pos, 4);
    if (magicBytes.length < 4) return undefined;
    const magic = magicBytes.readUInt32LE(0);
    if (((magic & SKIPPABLE_MASK) >>> 0) === SKIPPABLE_MAGIC) {
      const sizeBytes = await readAt(pos + 4, 4);
      if (sizeBytes.length < 4) return undefined;
      pos += 8 + sizeBytes.readUInt32LE(0);
      continue;
    }
    if (magic !== ZSTD_MAGIC) return undefined;
    const start = parseZstdFrameStart(await readAt(pos, 18));
    if (start.kind !== 'frame') return undefined;
    const hdr = start.header;
    if (hdr.contentSize === undefined || !Number.isFinite(hdr.contentSize)) return undefined;
    pos += hdr.headerLength;
    for (;;) {
      const b = await readAt(pos, 3);
      if (b.length < 3) return undefined;
      const v = b[0] | (b[1] << 8) | (b[2] << 16);
      const last = (v & 1) === 1;
      const type = (v >> 1) & 3;
      const size = v >>> 3;
      if (type === 3) return undefined; // reserved block type: corrupt
      pos += 3 + (type === 1 ? 1 : size);
      if (last) break;
    }
    if (hdr.hasChecksum) pos += 4;
    total += hdr.contentSize;
    frames++;
  }
  if (pos !== fileSize || frames === 0) return undefined;
  return total;
}

/** zstdTotalContentSize() of an open file. */
export function zstdFileContentSize(fh: FileHandle, fileSize: number): Promise<number | undefined> {
  return zstdTotalContentSize(windowedReader(fh), fileSize);
}

/** zstdTotalContentSize() of the file at `path` (undefined when it cannot be read). */
export async function zstdPathContentSize(path: string): Promise<number | undefined> {
  let fh: FileHandle;
  try { fh = await open(path, 'r'); } catch { return undefined; }
  try { return await zstdFileContentSize(fh, (await fh.stat()).size); } catch { return undefined; } finally { await fh.close(); }
}
