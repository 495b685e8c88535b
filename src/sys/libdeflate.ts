// libdeflate (Eric Biggers' DEFLATE library, Debian's libdeflate0) for the codec workers, through
// koffi. On this project's 2-core machines node:zlib's deflate and inflate were the ceiling of
// capture and of deploy with a gzip index; libdeflate does the same DEFLATE faster (README,
// Performance) and its output is plain DEFLATE (any inflater reads it). It only works on whole
// buffers, which is what booty's frames and indexed segments are. Measured side by side:
// `npm run bench` rows "libdeflate off" (BOOTY_LIBDEFLATE=0).
//
// The main thread decides whether the workers get it (native-codec-lib.ts: off by
// --no-libdeflate or BOOTY_LIBDEFLATE=0, or where libdeflate0 is missing) and hands them the
// paths (`LIBDEFLATE.forWorkers()`); each worker loads it itself (libdeflate-worker.ts). Without
// it the workers use node:zlib: same bytes in, same checks, slower.
import { NativeCodecLib } from './native-codec-lib.ts';
import { LIBDEFLATE_FUNCTIONS } from './libdeflate-worker.ts';

/** libdeflate for the codec and segment workers: `.forWorkers()`, `.status()`, `.disable()`
 *  (`--no-libdeflate`; also BOOTY_LIBDEFLATE=0). */
export const LIBDEFLATE = new NativeCodecLib({ name: 'libdeflate', soname: 'libdeflate.so.0', flag: '--no-libdeflate', env: 'BOOTY_LIBDEFLATE', functions: LIBDEFLATE_FUNCTIONS });
