// Intel ISA-L's igzip (Debian's libisal2) for capture's fastest gzip level and deploy's single
// gzip streams, through koffi. At
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
  'void isal_inflate_init(void *state)',
  'void isal_inflate_reset(void *state)',
  'int isal_inflate(void *state)',
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
 *   gunzip() -> a streaming gzip decoder (below)
 */
export const ISAL_WORKER_SOURCE = workerLoaderSource('loadIsal', 'isal', WORKER_FUNCTIONS, String.raw`
  const [init, stateless, inflateInit, inflateReset, inflate] = F;
  // struct isal_zstream (igzip_lib.h, ISA-L 2.30, x86-64): 82384 bytes; more is harmless
  const NEXT_IN = 0, AVAIL_IN = 8, NEXT_OUT = 16, AVAIL_OUT = 24, TOTAL_OUT = 28;
  const LEVEL = 40, LEVEL_BUF_SIZE = 44, LEVEL_BUF = 48, END_OF_STREAM = 56, FLUSH = 58, GZIP_FLAG = 60, HIST_BITS = 62;
  // igzip's level 3 with its default work area (ISAL_DEF_LVL3_DEFAULT); allocated on the first
  // frame (a decode worker never compresses)
  const IGZIP_LEVEL = 3;
  let stream = null, levelBuf = null, levelBufAt = 0n;
  // A streaming gzip decoder that behaves as node:zlib's gunzip does (deploy's decode worker
  // drives either): igzip parses each member's header, checks its CRC-32 and ISIZE, and stops at
  // the member's end; another member follows when the next byte is not 0 (trailing zeros are left
  // unconsumed, as zlib leaves them: deploy then reports them as trailing bytes); garbage after a
  // member is a header error. Errors carry zlib's codes and its wording where they mean the same.
  //   write(finish, inp, inOff, inLen, out, outOff, outLen) -> { inLeft, outLeft, error }
  // decodes what fits; outLeft > 0 means the input was taken (or a stream ended before it).
  // igzip keeps its own copy of the window, so each call may write to a different buffer.
  const newGunzip = () => {
    // struct inflate_state (igzip_lib.h, ISA-L 2.30, x86-64): 87368 bytes; more is harmless
    const st = Buffer.alloc(96 * 1024);
    const OUT_AT = 0, OUT_LEFT = 8, IN_AT = 16, IN_LEFT = 32, BLOCK_STATE = 21160, CRC_FLAG = 21172, CRC = 21176;
    const ISAL_GZIP = 1, ISAL_BLOCK_FINISH = 5;
    // igzip's errors in zlib's words; -4 is a header igzip refused after its magic was checked,
    // -6 a CRC-32 or length mismatch (told apart below)
    const ZLIB_WORDS = { '-1': 'invalid block type', '-2': 'invalid code', '-3': 'invalid distance too far back',
      '-4': 'unknown header flags set', '-5': 'unknown compression method', '-6': 'incorrect data check' };
    const dataError = (inLeft, outLeft, message) => ({ inLeft, outLeft, error: { message, code: 'Z_DATA_ERROR', errno: -3 } });
    inflateInit(st);
    st.writeUInt32LE(ISAL_GZIP, CRC_FLAG);
    let ended = false;
    let memberIn = 0; // bytes of the current member igzip has taken
    // igzip skips what zlib refuses in a member's header (RFC 1952: a decoder must refuse
    // reserved flags): its method (byte 2) and flags (byte 3) are checked here
    const badHeader = (inp, at, left) => {
      for (let i = memberIn; i < 4 && i - memberIn < left; i++) {
        const v = inp[at + i - memberIn];
        if (i === 2 && v !== 8) return 'unknown compression method';
        if (i === 3 && (v & 0xe0) !== 0) return 'unknown header flags set';
      }
      return null;
    };
    return {
      write(finish, inp, inOff, inLen, out, outOff, outLen) {
        let inLeft = inLen, outLeft = outLen;
        const inAt = k.address(inp) + BigInt(inOff), outAt = k.address(out) + BigInt(outOff);
        for (;;) {
          const inPos = inLen - inLeft;
          if (ended) {
            if (inLeft === 0 || inp[inOff + inPos] === 0) break;
            // not another member: refused at once, as zlib does (igzip would wait for a whole
            // header first, and call a short tail of garbage a truncated member)
            if (inp[inOff + inPos] !== 0x1f || (inLeft > 1 && inp[inOff + inPos + 1] !== 0x8b)) {
              return dataError(inLeft, outLeft, 'incorrect header check');
            }
            inflateReset(st);
            st.writeUInt32LE(ISAL_GZIP, CRC_FLAG);
            ended = false;
            memberIn = 0;
          }
          const bad = memberIn < 4 ? badHeader(inp, inOff + inPos, inLeft) : null;
          if (bad !== null) return dataError(inLeft, outLeft, bad);
          st.writeBigUInt64LE(inAt + BigInt(inPos), IN_AT);
          st.writeUInt32LE(inLeft, IN_LEFT);
          st.writeBigUInt64LE(outAt + BigInt(outLen - outLeft), OUT_AT);
          st.writeUInt32LE(outLeft, OUT_LEFT);
          const r = inflate(st);
          memberIn += inLeft - st.readUInt32LE(IN_LEFT);
          inLeft = st.readUInt32LE(IN_LEFT);
          outLeft = st.readUInt32LE(OUT_LEFT);
          if (r < 0) {
            let message = ZLIB_WORDS[r] || 'isal_inflate error ' + r;
            // the member's trailer ends where igzip stopped: a stored CRC-32 equal to the one
            // computed means the length (ISIZE) was wrong, as zlib words it
            const end = inOff + inLen - inLeft;
            if (r === -6 && end - inOff >= 8 && inp.readUInt32LE(end - 8) === st.readUInt32LE(CRC)) message = 'incorrect length check';
            return dataError(inLeft, outLeft, message);
          }
          if (st.readUInt32LE(BLOCK_STATE) !== ISAL_BLOCK_FINISH) break;
          ended = true;
        }
        if (finish && !ended && outLeft > 0) return { inLeft, outLeft, error: { message: 'unexpected end of file', code: 'Z_BUF_ERROR', errno: -5 } };
        return { inLeft, outLeft, error: null };
      },
    };
  };
  return {
    bound: (n) => n + Math.ceil(n / 4096) + 1024,
    deflate: (input, out) => {
      if (stream === null) {
        stream = Buffer.alloc(96 * 1024);
        levelBuf = Buffer.alloc(348160);
        levelBufAt = k.address(levelBuf);
      }
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
    gunzip: () => newGunzip(),
  };
`);
