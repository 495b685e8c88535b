// The worker side of isal.ts: igzip's one-shot DEFLATE (capture's codec workers) and a streaming
// gunzip (deploy's decode worker), through koffi.
//
// igzip takes its parameters in structs the caller allocates (isal_zstream, inflate_state;
// igzip_lib.h), not as arguments. Their layouts are declared below as koffi structs, field by
// field as in ISA-L 2.30's header (x86-64), and every offset booty reads or writes comes from the
// declaration (koffi.offsetof), never from a number typed by hand. The layout is fixed by the
// library's ABI (soname libisal.so.2: callers allocate the structs, so they cannot change within
// a soname), but nothing at run time says a given build agrees: so the main thread, when it loads
// the library, decodes a known gzip member and compresses a known text through this very code
// (isalSelfCheck, called from isal.ts); any mismatch keeps node:zlib and the log says why.
// test/unit/sys-isal-layout.test.ts pins the declared offsets to the ones offsetof() gave in C.
import zlib from 'node:zlib';
import { WorkerNativeLib, structOffset, type Koffi, type KoffiFn, type NativeLibForWorkers } from './native-codec-worker.ts';

/** The C functions the workers declare (native-codec-lib.ts checks they resolve). */
export const ISAL_FUNCTIONS = [
  'void isal_deflate_stateless_init(void *stream)',
  'int isal_deflate_stateless(void *stream)',
  'void isal_inflate_init(void *state)',
  'void isal_inflate_reset(void *state)',
  'int isal_inflate(void *state)',
] as const;

/** The gzip level that igzip compresses (the other levels stay with libdeflate / node:zlib). */
export const ISAL_GZIP_LEVEL = 1;

// igzip_lib.h's sizes (ISA-L 2.30)
const ISAL_DEF_MAX_HDR_SIZE = 328;
const ISAL_DEF_HIST_SIZE = 32 * 1024;
const ISAL_LOOK_AHEAD = 18 * 16;
const ISAL_DECODE_LONG_BITS = 12;
const ISAL_DECODE_SHORT_BITS = 10;
const ISAL_HUFF_CODE_LARGEST_LONG_SIZE = 1264;
const ISAL_HUFF_CODE_SMALL_LONG_SIZE = 80;
/** sizeof(struct isal_zstate): the compressor's internal state, opaque to booty */
const ISAL_ZSTATE_BYTES = 82320;
/** igzip's level-3 work area (ISAL_DEF_LVL3_DEFAULT) */
const LEVEL3_BUF_BYTES = 348160;

/** The declared structs (koffi types) of igzip_lib.h that booty fills. */
export function isalStructs(k: Koffi): { zstream: ReturnType<Koffi['struct']>; inflateState: ReturnType<Koffi['struct']> } {
  const zstream = k.struct({
    next_in: 'uint8_t *', avail_in: 'uint32_t', total_in: 'uint32_t',
    next_out: 'uint8_t *', avail_out: 'uint32_t', total_out: 'uint32_t',
    hufftables: 'void *', level: 'uint32_t', level_buf_size: 'uint32_t', level_buf: 'uint8_t *',
    end_of_stream: 'uint16_t', flush: 'uint16_t', gzip_flag: 'uint16_t', hist_bits: 'uint16_t',
    internal_state: k.array('uint8_t', ISAL_ZSTATE_BYTES),
  });
  const inflateState = k.struct({
    next_out: 'uint8_t *', avail_out: 'uint32_t', total_out: 'uint32_t',
    next_in: 'uint8_t *', read_in: 'uint64_t', avail_in: 'uint32_t', read_in_length: 'int32_t',
    lit_huff_code: k.struct({ short_code_lookup: k.array('uint32_t', 1 << ISAL_DECODE_LONG_BITS), long_code_lookup: k.array('uint16_t', ISAL_HUFF_CODE_LARGEST_LONG_SIZE) }),
    dist_huff_code: k.struct({ short_code_lookup: k.array('uint16_t', 1 << ISAL_DECODE_SHORT_BITS), long_code_lookup: k.array('uint16_t', ISAL_HUFF_CODE_SMALL_LONG_SIZE) }),
    block_state: 'int32_t', // enum isal_block_state
    dict_length: 'uint32_t', bfinal: 'uint32_t', crc_flag: 'uint32_t', crc: 'uint32_t', hist_bits: 'uint32_t',
    type0_block_len: 'int32_t', // a union of three 32-bit fields
    write_overflow_lits: 'int32_t', write_overflow_len: 'int32_t', copy_overflow_length: 'int32_t', copy_overflow_distance: 'int32_t',
    wrapper_flag: 'int16_t', tmp_in_size: 'int16_t', tmp_out_valid: 'int32_t', tmp_out_processed: 'int32_t',
    tmp_in_buffer: k.array('uint8_t', ISAL_DEF_MAX_HDR_SIZE),
    tmp_out_buffer: k.array('uint8_t', 2 * ISAL_DEF_HIST_SIZE + ISAL_LOOK_AHEAD),
  });
  return { zstream, inflateState };
}

/** A member's offset in a declared struct, checked to be `bytes` wide (the accessor used on it). */
function at(k: Koffi, t: ReturnType<Koffi['struct']>, name: string, bytes: number): number {
  return structOffset(k, t, name, bytes, 'isal-worker');
}

/** zlib's error report, as the decode worker passes it on. */
export interface GunzipError {
  message: string;
  code: string;
  errno: number;
}

/** A streaming gzip decoder that behaves as node:zlib's gunzip does (deploy's decode worker
 *  drives either). */
export interface IsalGunzip {
  /** Decodes what fits; outLeft > 0 means the input was taken (or a stream ended before it).
   *  igzip keeps its own copy of the window, so each call may write to a different buffer. */
  write(finish: boolean, inp: Buffer, inOff: number, inLen: number, out: Buffer, outOff: number, outLen: number): { inLeft: number; outLeft: number; error: GunzipError | null };
}

export interface Isal {
  /** bytes of raw DEFLATE written into out, or 0 when they did not fit or igzip refused (the
   *  caller then compresses with another library) */
  deflate(input: Buffer, out: Buffer): number;
  /** an output size that always fits (igzip falls back to stored blocks) */
  bound(n: number): number;
  gunzip(): IsalGunzip;
}

// igzip's constants (igzip_lib.h)
const ISAL_GZIP = 1;
const ISAL_BLOCK_FINISH = 5;
/** igzip's level 3: its best, the one booty uses (isal.ts says why) */
const IGZIP_LEVEL = 3;
// igzip's errors in zlib's words; -4 is a header igzip refused after its magic was checked,
// -6 a CRC-32 or length mismatch (told apart in write())
const ZLIB_WORDS: Record<number, string> = {
  [-1]: 'invalid block type', [-2]: 'invalid code', [-3]: 'invalid distance too far back',
  [-4]: 'unknown header flags set', [-5]: 'unknown compression method', [-6]: 'incorrect data check',
};

function dataError(inLeft: number, outLeft: number, message: string): { inLeft: number; outLeft: number; error: GunzipError } {
  return { inLeft, outLeft, error: { message, code: 'Z_DATA_ERROR', errno: -3 } };
}

/** The API over a loaded library (`fns` declared in the order of ISAL_FUNCTIONS). */
export function isalApi(k: Koffi, fns: KoffiFn[]): Isal {
  const [init, stateless, inflateInit, inflateReset, inflate] = fns;
  const { zstream, inflateState } = isalStructs(k);
  const Z = {
    nextIn: at(k, zstream, 'next_in', 8), availIn: at(k, zstream, 'avail_in', 4),
    nextOut: at(k, zstream, 'next_out', 8), availOut: at(k, zstream, 'avail_out', 4), totalOut: at(k, zstream, 'total_out', 4),
    level: at(k, zstream, 'level', 4), levelBufSize: at(k, zstream, 'level_buf_size', 4), levelBuf: at(k, zstream, 'level_buf', 8),
    endOfStream: at(k, zstream, 'end_of_stream', 2), flush: at(k, zstream, 'flush', 2), gzipFlag: at(k, zstream, 'gzip_flag', 2), histBits: at(k, zstream, 'hist_bits', 2),
  };
  const S = {
    nextOut: at(k, inflateState, 'next_out', 8), availOut: at(k, inflateState, 'avail_out', 4),
    nextIn: at(k, inflateState, 'next_in', 8), availIn: at(k, inflateState, 'avail_in', 4),
    blockState: at(k, inflateState, 'block_state', 4), crcFlag: at(k, inflateState, 'crc_flag', 4), crc: at(k, inflateState, 'crc', 4),
  };
  const zstreamBytes = k.sizeof(zstream);
  const inflateStateBytes = k.sizeof(inflateState);
  // allocated on the first frame (a decode worker never compresses)
  let stream: Buffer | null = null;
  let levelBuf: Buffer | null = null;
  let levelBufAt = 0n;

  // igzip parses each member's header, checks its CRC-32 and ISIZE, and stops at the member's
  // end; another member follows when the next byte is not 0 (trailing zeros are left unconsumed,
  // as zlib leaves them: deploy then reports them as trailing bytes); garbage after a member is a
  // header error. Errors carry zlib's codes and its wording where they mean the same.
  const newGunzip = (): IsalGunzip => {
    const st = Buffer.alloc(inflateStateBytes);
    inflateInit(st);
    st.writeUInt32LE(ISAL_GZIP, S.crcFlag);
    let ended = false;
    let memberIn = 0; // bytes of the current member igzip has taken
    // igzip skips what zlib refuses in a member's header (RFC 1952: a decoder must refuse
    // reserved flags): its method (byte 2) and flags (byte 3) are checked here
    const badHeader = (inp: Buffer, pos: number, left: number): string | null => {
      for (let i = memberIn; i < 4 && i - memberIn < left; i++) {
        const v = inp[pos + i - memberIn];
        if (i === 2 && v !== 8) return 'unknown compression method';
        if (i === 3 && (v & 0xe0) !== 0) return 'unknown header flags set';
      }
      return null;
    };
    return {
      write(finish, inp, inOff, inLen, out, outOff, outLen) {
        let inLeft = inLen;
        let outLeft = outLen;
        const inAt = (k.address(inp) as bigint) + BigInt(inOff);
        const outAt = (k.address(out) as bigint) + BigInt(outOff);
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
            st.writeUInt32LE(ISAL_GZIP, S.crcFlag);
            ended = false;
            memberIn = 0;
          }
          const bad = memberIn < 4 ? badHeader(inp, inOff + inPos, inLeft) : null;
          if (bad !== null) return dataError(inLeft, outLeft, bad);
          st.writeBigUInt64LE(inAt + BigInt(inPos), S.nextIn);
          st.writeUInt32LE(inLeft, S.availIn);
          st.writeBigUInt64LE(outAt + BigInt(outLen - outLeft), S.nextOut);
          st.writeUInt32LE(outLeft, S.availOut);
          const r = inflate(st) as number;
          memberIn += inLeft - st.readUInt32LE(S.availIn);
          inLeft = st.readUInt32LE(S.availIn);
          outLeft = st.readUInt32LE(S.availOut);
          if (r < 0) {
            let message = ZLIB_WORDS[r] ?? `isal_inflate error ${r}`;
            // the member's trailer ends where igzip stopped: a stored CRC-32 equal to the one
            // computed means the length (ISIZE) was wrong, as zlib words it
            const end = inOff + inLen - inLeft;
            if (r === -6 && end - inOff >= 8 && inp.readUInt32LE(end - 8) === st.readUInt32LE(S.crc)) message = 'incorrect length check';
            return dataError(inLeft, outLeft, message);
          }
          if (st.readUInt32LE(S.blockState) !== ISAL_BLOCK_FINISH) break;
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
      if (stream === null || levelBuf === null) {
        stream = Buffer.alloc(zstreamBytes);
        levelBuf = Buffer.alloc(LEVEL3_BUF_BYTES);
        levelBufAt = k.address(levelBuf) as bigint;
      }
      init(stream);
      stream.writeBigUInt64LE(k.address(input) as bigint, Z.nextIn);
      stream.writeUInt32LE(input.length, Z.availIn);
      stream.writeBigUInt64LE(k.address(out) as bigint, Z.nextOut);
      stream.writeUInt32LE(out.length, Z.availOut);
      stream.writeUInt32LE(IGZIP_LEVEL, Z.level);
      stream.writeUInt32LE(levelBuf.length, Z.levelBufSize);
      stream.writeBigUInt64LE(levelBufAt, Z.levelBuf);
      stream.writeUInt16LE(1, Z.endOfStream);
      stream.writeUInt16LE(0, Z.flush);     // NO_FLUSH: one final block sequence
      stream.writeUInt16LE(0, Z.gzipFlag);  // IGZIP_DEFLATE: raw DEFLATE (booty writes the member)
      stream.writeUInt16LE(0, Z.histBits);  // the default 32 KiB window
      const r = stateless(stream) as number;
      return r === 0 ? stream.readUInt32LE(Z.totalOut) : 0;
    },
    gunzip: newGunzip,
  };
}

/** The text of the known gzip member below: 48 lines, 1702 bytes. */
export function knownText(): Buffer {
  return Buffer.from(Array.from({ length: 48 }, (_, i) => `booty checks igzip, line ${i}: ${'abcdefghij'.slice(i % 10)}\n`).join(''));
}

/** knownText() as `gzip -9n` wrote it: one member, a dynamic-Huffman block, 199 bytes. */
export const KNOWN_MEMBER = Buffer.from('H4sIAAAAAAACA43UOw7CUAxE0Z5VeAEU+MPPuyEhJA8QQYKGrJ6GFs/Uc6sjy908vz/ST0N/e0kbl/Zcy709BtmknLr+PFzGqV1X3b9MU4jKUnDkKbCJFJRsU0CxS6mDfUq5H1Kq+ZhSibGyHK1StsrgKqGrmFehryJgBcJaExtJbOT1UsTGEBtBbJjYILEhYgPEVhM7SewcsXMfgiF2gtgxsUNiR8QOiL0mDpI4OOKgiIP6wgRxYOKAxPEj/gLQ4V/ZpgYAAA==', 'base64');

/** Decodes `member` with igzip in pieces (input in two, output `outPiece` bytes at a time, so
 *  every field booty reads and writes between calls is exercised); the bytes, or its error. */
function gunzipPieces(isal: Isal, member: Buffer, size: number, outPiece: number): Buffer | GunzipError {
  const g = isal.gunzip();
  const out = Buffer.alloc(size + 1024);
  let produced = 0;
  const cut = member.length >> 2;
  for (const [off, len, finish] of [[0, cut, false], [cut, member.length - cut, true]] as const) {
    let inLeft = len;
    for (;;) {
      const room = Math.min(outPiece, out.length - produced);
      const r = g.write(finish, member, off + len - inLeft, inLeft, out, produced, room);
      if (r.error !== null) return r.error;
      produced += room - r.outLeft;
      inLeft = r.inLeft;
      if (r.outLeft > 0 || produced === out.length) break;
    }
    if (inLeft !== 0) return { message: `${inLeft} bytes of input not taken`, code: '', errno: 0 };
  }
  return out.subarray(0, produced);
}

/**
 * The load-time check: '' when igzip, driven through the declared layout, decodes the known
 * member to its text (and names a wrong CRC-32 and a wrong ISIZE as zlib does: the CRC field is
 * read too) and compresses the text into DEFLATE that node:zlib inflates back; else what differed.
 */
export function isalSelfCheck(isal: Isal): string {
  const text = knownText();
  const got = gunzipPieces(isal, KNOWN_MEMBER, text.length, 256);
  if (!Buffer.isBuffer(got)) return `decoding a known gzip member failed: ${got.message}`;
  if (!got.equals(text)) return `a known gzip member decoded to ${got.length} other bytes than its ${text.length}`;
  for (const [at, field, word] of [[KNOWN_MEMBER.length - 8, 'CRC-32', 'incorrect data check'], [KNOWN_MEMBER.length - 4, 'ISIZE', 'incorrect length check']] as const) {
    const bad = Buffer.from(KNOWN_MEMBER);
    bad[at] ^= 1;
    // (with room for all of the output: a member whose last bytes igzip still holds when the
    // trailer fails is called a data check error whatever was wrong, which deploy lives with)
    const r = gunzipPieces(isal, bad, text.length, text.length + 1024);
    if (Buffer.isBuffer(r) || r.message !== word) return `a known gzip member with a wrong ${field} gave ${Buffer.isBuffer(r) ? 'no error' : `"${r.message}"`}, not "${word}"`;
  }
  const out = Buffer.alloc(isal.bound(text.length));
  const n = isal.deflate(text, out);
  if (n === 0 || n >= text.length) return `compressing a known text gave ${n} bytes`;
  let back: Buffer;
  try { back = zlib.inflateRawSync(out.subarray(0, n)); } catch (e) { return `its DEFLATE of a known text does not inflate: ${(e as Error).message}`; }
  if (!back.equals(text)) return 'its DEFLATE of a known text inflates to other bytes';
  return '';
}

/** ISA-L in a worker: `.get()` loads it on first use; null when the main thread gave none
 *  (`cfg` undefined) or it failed to load here. */
export function workerIsal(cfg: NativeLibForWorkers | undefined): WorkerNativeLib<Isal> {
  return new WorkerNativeLib(cfg, ISAL_FUNCTIONS, isalApi);
}
