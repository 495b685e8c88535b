// The worker side of libdeflate.ts: what a codec or segment worker calls, once it loaded the
// library the main thread handed it (native-codec-worker.ts). Buffers may be views (koffi passes a
// view's own start).
import { WorkerNativeLib, type KoffiFn, type NativeLibForWorkers } from './native-codec-worker.ts';

/** The C functions the workers declare (native-codec-lib.ts checks they resolve). */
export const LIBDEFLATE_FUNCTIONS = [
  'void *libdeflate_alloc_compressor(int level)',
  'size_t libdeflate_deflate_compress_bound(void *c, size_t n)',
  'size_t libdeflate_deflate_compress(void *c, const void *in, size_t in_n, void *out, size_t out_avail)',
  'void *libdeflate_alloc_decompressor()',
  'int libdeflate_deflate_decompress_ex(void *d, const void *in, size_t in_n, void *out, size_t out_avail, void *actual_in, void *actual_out)',
  'uint32_t libdeflate_crc32(uint32_t crc, const void *buf, size_t len)',
] as const;

export interface Libdeflate {
  /** CRC-32 as zlib.crc32 computes it (PCLMULQDQ) */
  crc32(buf: Uint8Array, crc?: number): number;
  /** the most raw DEFLATE n bytes can take at `level` */
  compressBound(level: number, n: number): number;
  /** bytes of raw DEFLATE written into out (0: out too small) */
  compress(level: number, input: Uint8Array, out: Uint8Array): number;
  /** raw DEFLATE up to its final block; result 0 = success, 1 = bad data, 3 = output too small
   *  (libdeflate_result) */
  decompress(input: Uint8Array, out: Uint8Array): { result: number; inUsed: number; outUsed: number };
}

type Pointer = unknown;

function libdeflateApi(fns: KoffiFn[]): Libdeflate {
  const [allocC, boundC, compressC, allocD, decompressD, crc32C] = fns;
  const compressors = new Map<number, Pointer>();
  const compressorFor = (level: number): Pointer => {
    let c = compressors.get(level);
    if (c === undefined) {
      c = allocC(level) as Pointer;
      if (!c) throw new Error(`libdeflate_alloc_compressor(${level}) failed`);
      compressors.set(level, c);
    }
    return c;
  };
  let d: Pointer = null;
  const sizes = new BigUint64Array(2);
  const inUsed = new BigUint64Array(sizes.buffer, 0, 1);
  const outUsed = new BigUint64Array(sizes.buffer, 8, 1);
  return {
    crc32: (buf, crc = 0) => crc32C(crc, buf, buf.length) as number,
    compressBound: (level, n) => Number(boundC(compressorFor(level), n)),
    compress: (level, input, out) => Number(compressC(compressorFor(level), input, input.length, out, out.length)),
    decompress: (input, out) => {
      if (d === null) {
        d = allocD() as Pointer;
        if (!d) throw new Error('libdeflate_alloc_decompressor failed');
      }
      const result = decompressD(d, input, input.length, out, out.length, inUsed, outUsed) as number;
      return { result, inUsed: Number(sizes[0]), outUsed: Number(sizes[1]) };
    },
  };
}

/** libdeflate in a worker: `.get()` loads it on first use (a zstd-only worker never does); null
 *  when the main thread gave none (`cfg` undefined) or it failed to load here. */
export function workerLibdeflate(cfg: NativeLibForWorkers | undefined): WorkerNativeLib<Libdeflate> {
  return new WorkerNativeLib(cfg, LIBDEFLATE_FUNCTIONS, (_k, fns) => libdeflateApi(fns));
}
