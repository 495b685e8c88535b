// libdeflate (Eric Biggers' DEFLATE library, Debian's libdeflate0) for the codec workers, through
// koffi. On this project's 2-core machines node:zlib's deflate and inflate were the ceiling of
// capture and of deploy with a gzip index; libdeflate does the same DEFLATE about twice as fast
// and its output is plain DEFLATE (any inflater reads it). It only works on whole buffers, which
// is what booty's frames and indexed segments are. Measured side by side: `npm run bench` rows
// "libdeflate off" (BOOTY_LIBDEFLATE=0).
//
// The main thread decides whether the workers get it (native-codec-lib.ts: off by
// --no-libdeflate or BOOTY_LIBDEFLATE=0, or where libdeflate0 is missing) and hands them the
// paths (`LIBDEFLATE.forWorkers()`) together with LIBDEFLATE_WORKER_SOURCE, which each worker
// evaluates. Without it the workers use node:zlib: same bytes in, same checks, slower.
import { NativeCodecLib, workerLoaderSource } from './native-codec-lib.ts';

const WORKER_FUNCTIONS = [
  'void *libdeflate_alloc_compressor(int level)',
  'size_t libdeflate_deflate_compress_bound(void *c, size_t n)',
  'size_t libdeflate_deflate_compress(void *c, const void *in, size_t in_n, void *out, size_t out_avail)',
  'void *libdeflate_alloc_decompressor()',
  'int libdeflate_deflate_decompress_ex(void *d, const void *in, size_t in_n, void *out, size_t out_avail, void *actual_in, void *actual_out)',
  'uint32_t libdeflate_crc32(uint32_t crc, const void *buf, size_t len)',
];

/** libdeflate for the codec and segment workers: `.forWorkers()`, `.status()`, `.disable()`
 *  (`--no-libdeflate`; also BOOTY_LIBDEFLATE=0). */
export const LIBDEFLATE = new NativeCodecLib({ name: 'libdeflate', soname: 'libdeflate.so.0', flag: '--no-libdeflate', env: 'BOOTY_LIBDEFLATE', functions: WORKER_FUNCTIONS });

/**
 * Evaluated inside a worker, after `workerData` is in scope: defines `loadLibdeflate()`, which
 * loads the library on its first call (a zstd-only worker never does) and returns null when
 * workerData.libdeflate is absent or fails to load there (native-codec-lib.ts), else
 *   compress(level, input, out) -> bytes of raw DEFLATE written into out (0: out too small)
 *   compressBound(level, n) -> the most raw DEFLATE n bytes can take
 *   decompress(input, out) -> { result, inUsed, outUsed }: raw DEFLATE up to its final block;
 *     result 0 = success, 1 = bad data, 3 = output too small (libdeflate_result)
 *   crc32(buf, crc = 0) -> CRC-32 as zlib.crc32 computes it, about 5x as fast (PCLMULQDQ)
 * Buffers may be views (koffi passes a view's own start).
 */
export const LIBDEFLATE_WORKER_SOURCE = workerLoaderSource('loadLibdeflate', 'libdeflate', WORKER_FUNCTIONS, String.raw`
  const [allocC, boundC, compressC, allocD, decompressD, crc32C] = F;
  const compressors = new Map();
  const compressorFor = (level) => {
    let c = compressors.get(level);
    if (c === undefined) { c = allocC(level); if (!c) throw new Error('libdeflate_alloc_compressor(' + level + ') failed'); compressors.set(level, c); }
    return c;
  };
  let d = null;
  const sizes = new BigUint64Array(2);
  const inUsed = new BigUint64Array(sizes.buffer, 0, 1), outUsed = new BigUint64Array(sizes.buffer, 8, 1);
  return {
    crc32: (buf, crc = 0) => crc32C(crc, buf, buf.length),
    compressBound: (level, n) => Number(boundC(compressorFor(level), n)),
    compress: (level, input, out) => Number(compressC(compressorFor(level), input, input.length, out, out.length)),
    decompress: (input, out) => {
      if (d === null) { d = allocD(); if (!d) throw new Error('libdeflate_alloc_decompressor failed'); }
      const result = decompressD(d, input, input.length, out, out.length, inUsed, outUsed);
      return { result, inUsed: Number(sizes[0]), outUsed: Number(sizes[1]) };
    },
  };
`);
