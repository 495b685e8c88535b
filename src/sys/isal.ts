// Intel ISA-L's igzip (Debian's libisal2) for capture's fastest gzip level, through koffi. At
// `--level 1` capture was CPU-bound on libdeflate's level 1 on 2 cores; igzip's one-shot
// ("stateless") DEFLATE at its level 3 (its best) is about 2.2x as fast and its output is still
// smaller than zlib's gzip -1 (measured on the bench image's non-zero 4 MiB blocks, one core:
// zlib -1 132 MB/s, 592.7 MB; libdeflate -1 237 MB/s, 578.0 MB; igzip level 3 515 MB/s,
// 586.5 MB; igzip levels 1/2 774/731 MB/s but 603.1/597.4 MB, larger than gzip -1: not used).
// Its output is plain DEFLATE: any inflater, and every booty deploy, reads it. Where the library
// is missing, or with --no-isal / BOOTY_ISAL=0, level 1 uses libdeflate (or node:zlib).
//
// igzip takes its parameters in a struct (isal_zstream, igzip_lib.h), not as arguments: the
// worker fills one in a Buffer at the offsets below. They are fixed by the library's ABI
// (soname libisal.so.2: callers allocate the struct themselves, so its layout cannot change
// within a soname); they were read from ISA-L 2.30's header with offsetof(). A worker also checks
// its first frame by inflating it, so a library that disagreed would be found before any data
// went out through it (and the frame compressed again by libdeflate).
import { NativeCodecLib, workerLoaderSource } from './native-codec-lib.ts';

const WORKER_FUNCTIONS = [
  'void isal_deflate_stateless_init(void *stream)',
  'int isal_deflate_stateless(void *stream)',
];

/** ISA-L for the codec workers: `.forWorkers()`, `.whyNot()`, `.disable()` (`--no-isal`; also
 *  BOOTY_ISAL=0). */
export const ISAL = new NativeCodecLib({ name: 'ISA-L', soname: 'libisal.so.2', flag: '--no-isal', env: 'BOOTY_ISAL', functions: WORKER_FUNCTIONS });

/** The gzip level that igzip compresses (the other levels stay with libdeflate / node:zlib). */
export const ISAL_GZIP_LEVEL = 1;

/**
 * Evaluated inside a worker, after `workerData` is in scope: defines `loadIsal()`, which loads the
 * library on its first call and returns null when workerData.isal is absent or fails to load
 * there, else
 *   deflate(input, out) -> bytes of raw DEFLATE written into out, or 0 when they did not fit
 *     (out of input.length + input.length / 4096 + 1024 bytes always fits: igzip falls back to
 *     stored blocks) or igzip refused (the caller then compresses with another library)
 *   bound(n) -> an output size that always fits
 */
export const ISAL_WORKER_SOURCE = workerLoaderSource('loadIsal', 'isal', WORKER_FUNCTIONS, String.raw`
  const [init, stateless] = F;
  // struct isal_zstream (igzip_lib.h, ISA-L 2.30, x86-64): 82384 bytes; more is harmless
  const stream = Buffer.alloc(96 * 1024);
  const NEXT_IN = 0, AVAIL_IN = 8, NEXT_OUT = 16, AVAIL_OUT = 24, TOTAL_OUT = 28;
  const LEVEL = 40, LEVEL_BUF_SIZE = 44, LEVEL_BUF = 48, END_OF_STREAM = 56, FLUSH = 58, GZIP_FLAG = 60, HIST_BITS = 62;
  // igzip's level 3 with its default work area (ISAL_DEF_LVL3_DEFAULT)
  const IGZIP_LEVEL = 3;
  const levelBuf = Buffer.alloc(348160);
  const levelBufAt = k.address(levelBuf);
  return {
    bound: (n) => n + Math.ceil(n / 4096) + 1024,
    deflate: (input, out) => {
      init(stream);
      stream.writeBigUInt64LE(k.address(input), NEXT_IN);
      stream.writeUInt32LE(input.length, AVAIL_IN);
      stream.writeBigUInt64LE(k.address(out), NEXT_OUT);
      stream.writeUInt32LE(out.length, AVAIL_OUT);
      stream.writeUInt32LE(IGZIP_LEVEL, LEVEL);
      stream.writeUInt32LE(levelBuf.length, LEVEL_BUF_SIZE);
      stream.writeBigUInt64LE(levelBufAt, LEVEL_BUF);
      stream.writeUInt16LE(1, END_OF_STREAM);
      stream.writeUInt16LE(0, FLUSH);     // NO_FLUSH: one final block sequence
      stream.writeUInt16LE(0, GZIP_FLAG); // IGZIP_DEFLATE: raw DEFLATE (booty writes the member)
      stream.writeUInt16LE(0, HIST_BITS); // the default 32 KiB window
      const r = stateless(stream);
      return r === 0 ? stream.readUInt32LE(TOTAL_OUT) : 0;
    },
  };
`);
