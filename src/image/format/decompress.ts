// Decompressors for deploy and compressors for capture, from node:zlib with 1 MiB chunks (the
// first-order speed knob: 16 KiB chunks halve the throughput and double the system time).
// node:zlib's gunzip reads concatenated gzip members (pigz, parallel compressors) and its zstd
// decoder reads concatenated frames; both stop at the end of valid data, which is why
// trailingBytes() exists: bytes the decoder never consumed are an error, not padding to ignore.
import zlib from 'node:zlib';
import type { Transform } from 'node:stream';
import type { Format } from './detect.ts';
import { NativeDecompress } from './native-decompress.ts';
import { xzDecoder } from '../../sys/liblzma.ts';
import { bzip2Decoder } from '../../sys/libbz2.ts';

export const ZLIB_CHUNK = 1 << 20;

type ZlibStream = Transform & { bytesWritten: number };

/** A decoder for `format`, or undefined for raw (bytes pass as they are). xz and bzip2 decode
 *  through liblzma / libbz2 (src/sys/), the rest through node:zlib. */
export function createDecompressor(format: Format): ZlibStream | undefined {
  switch (format) {
    case 'gzip': return zlib.createGunzip({ chunkSize: ZLIB_CHUNK }) as ZlibStream;
    case 'zstd': return zlib.createZstdDecompress({ chunkSize: ZLIB_CHUNK }) as ZlibStream;
    case 'xz': return new NativeDecompress(xzDecoder());
    case 'bzip2': return new NativeDecompress(bzip2Decoder());
    case 'raw': return undefined;
  }
}

/**
 * Input bytes the decoder left unconsumed after its stream ended: trailing zeros after a gzip
 * member or garbage after a zstd frame, which node:zlib skips silently. `fed` is how many bytes
 * went into the decoder.
 */
export function trailingBytes(decoder: ZlibStream, fed: number): number {
  return fed - decoder.bytesWritten;
}

export interface CompressorOptions {
  level?: number;
  /** uncompressed size, when known: zstd records it in the frame header (deploy checks the disk
   *  size against it before writing a byte) */
  pledgedSize?: number;
}

/** A compressor for capture. gzip level 1-9 (default 6), zstd level 1-19 (default 3). zstd
 *  frames carry a checksum so deploy detects corruption even without a sha256. */
export function createCompressor(format: 'gzip' | 'zstd', opts: CompressorOptions = {}): ZlibStream {
  if (format === 'gzip') return zlib.createGzip({ level: opts.level ?? 6, chunkSize: ZLIB_CHUNK }) as ZlibStream;
  const c = zlib.constants;
  const params: Record<number, number> = {
    [c.ZSTD_c_compressionLevel]: opts.level ?? 3,
    [c.ZSTD_c_checksumFlag]: 1,
  };
  return zlib.createZstdCompress({
    chunkSize: ZLIB_CHUNK, params,
    ...(opts.pledgedSize !== undefined ? { pledgedSrcSize: opts.pledgedSize } : {}),
  }) as ZlibStream;
}

/** errors the JavaScript engine throws for faulty code, never for faulty data */
const ENGINE_ERRORS = new Set(['ReferenceError', 'TypeError', 'SyntaxError', 'EvalError', 'URIError']);

/** Operator wording for a decoder failure. */
export function describeDecodeError(format: Format, e: Error & { code?: string }): { code: string; what: string } {
  const msg = e.message;
  // an error of the JavaScript engine (a decoder's own code failed, on a worker or here) says
  // nothing about the image: calling it corrupt would send the operator to re-upload a good one
  if (ENGINE_ERRORS.has(e.name) && e.code === undefined) {
    return { code: 'DECODER_FAILED', what: `booty's ${format} decoder failed (${e.name}: ${msg}), not the image` };
  }
  if (e.code === 'DECODER_LIMIT') {
    return { code: 'IMAGE_DECODER_LIMIT', what: `the ${format} stream needs what booty does not allow or support (${msg})` };
  }
  if (e.code === 'Z_BUF_ERROR' || /unexpected end/i.test(msg)) {
    return { code: 'IMAGE_TRUNCATED', what: `the ${format} stream ends early: the image is truncated` };
  }
  if (/incorrect header check/i.test(msg)) {
    return { code: 'IMAGE_TRAILING_GARBAGE', what: `bytes after the end of a gzip member are not another gzip member (garbage appended to the image)` };
  }
  if (/checksum|data check/i.test(msg)) {
    return { code: 'IMAGE_CORRUPT', what: `the ${format} data is corrupt (its ${format === 'gzip' ? 'CRC-32' : 'checksum'} does not match: ${msg})` };
  }
  if (format === 'xz' || format === 'bzip2') {
    return { code: 'IMAGE_CORRUPT', what: `the ${format} data is corrupt (${msg})` };
  }
  return { code: 'IMAGE_CORRUPT', what: `the ${format} data is corrupt (${msg})` };
}
