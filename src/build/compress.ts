// Compressing the archive stream the way the kernel can unpack it: zstd (default) or gzip.
// zstd level 19 keeps the window at 8 MiB (windowLog 23), well under the 128 MiB the kernel's
// initramfs decompressor accepts and small enough for a 384 MiB machine; --ultra levels would
// raise it. Both outputs are deterministic for the same input (Node's gzip writes mtime 0).
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { createHash } from 'node:crypto';

export type Compression = 'zstd' | 'gzip' | 'none';

export function defaultLevel(c: Compression): number {
  return c === 'zstd' ? 19 : c === 'gzip' ? 9 : 0;
}

export function compressor(c: Compression, level: number): Transform {
  const chunkSize = 1 << 20;
  if (c === 'zstd') {
    return zlib.createZstdCompress({
      chunkSize,
      params: {
        [zlib.constants.ZSTD_c_compressionLevel]: level,
        [zlib.constants.ZSTD_c_checksumFlag]: 1,
      },
    });
  }
  if (c === 'gzip') return zlib.createGzip({ level, chunkSize });
  return new Transform({ transform(chunk, _enc, cb) { cb(null, chunk); } });
}

/**
 * Streams chunks through the compressor into file (written beside it, then renamed, so a
 * reader never sees half an archive). Returns uncompressed and compressed byte counts and
 * the sha256 of the compressed file.
 */
export async function writeCompressed(chunks: AsyncIterable<Buffer>, file: string, c: Compression, level: number):
  Promise<{ rawBytes: number; bytes: number; sha256: string }> {
  let rawBytes = 0;
  let bytes = 0;
  const hash = createHash('sha256');
  const counting = async function* (src: AsyncIterable<Buffer>) { for await (const b of src) { rawBytes += b.length; yield b; } };
  const tap = new Transform({ transform(chunk: Buffer, _enc, cb) { bytes += chunk.length; hash.update(chunk); cb(null, chunk); } });
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    await pipeline(Readable.from(counting(chunks)), compressor(c, level), tap, createWriteStream(tmp));
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  return { rawBytes, bytes, sha256: hash.digest('hex') };
}
