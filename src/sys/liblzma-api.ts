// The worker-safe half of liblzma.ts: the C functions booty declares, lzma_stream / lzma_mt as
// koffi structs, and decoders over a loaded library. Worker entries import this module (it needs
// neither import.meta nor node_modules: worker-start.ts); liblzma.ts checks and loads the library
// on the main thread with the same code.
import { structOffset, type Koffi, type KoffiFn } from './native-codec-worker.ts';
import type { NativeStreamDecoder, StepResult, StreamDecodeError } from './stream-decoder.ts';

export const LZMA_FUNCTIONS = [
  'int lzma_stream_decoder_mt(void *strm, const void *options)',
  'int lzma_code(void *strm, int action)',
  'void lzma_end(void *strm)',
  'int lzma_stream_decoder(void *strm, uint64_t memlimit, uint32_t flags)',
] as const;

const LZMA_OK = 0;
const LZMA_STREAM_END = 1;
const LZMA_RUN = 0;
const LZMA_FINISH = 3;
const LZMA_CONCATENATED = 0x08;
const LZMA_WORDS: Record<number, string> = {
  2: 'no integrity check', 3: 'unsupported integrity check', 5: 'out of memory', 6: 'memory limit reached',
  7: 'not in the .xz format', 8: 'unsupported options (filters)', 9: 'corrupt data', 10: 'the stream ends early',
};

/** Memory liblzma may use to decode on several threads (it drops to one thread above it): what
 *  keeps a deploy under 150 MiB RSS; blocks of up to ~8 MiB (xz -T0 --block-size=8MiB) decode on
 *  two threads within it, larger ones on one. */
const MEMLIMIT_THREADING = 32 << 20;
/** Hard cap: an xz file that needs more than this to decode (a 1.5 GiB dictionary) is refused. */
const MEMLIMIT_STOP = 512 << 20;

function structs(k: Koffi): { stream: ReturnType<Koffi['struct']>; mt: ReturnType<Koffi['struct']> } {
  const stream = k.struct({
    next_in: 'void *', avail_in: 'size_t', total_in: 'uint64_t',
    next_out: 'void *', avail_out: 'size_t', total_out: 'uint64_t',
    allocator: 'void *', internal: 'void *',
    reserved_ptr1: 'void *', reserved_ptr2: 'void *', reserved_ptr3: 'void *', reserved_ptr4: 'void *',
    seek_pos: 'uint64_t', reserved_int2: 'uint64_t', reserved_int3: 'size_t', reserved_int4: 'size_t',
    reserved_enum1: 'int', reserved_enum2: 'int',
  });
  const mt = k.struct({
    flags: 'uint32_t', threads: 'uint32_t', block_size: 'uint64_t', timeout: 'uint32_t', preset: 'uint32_t',
    filters: 'void *', check: 'int', reserved_enum1: 'int', reserved_enum2: 'int', reserved_enum3: 'int',
    reserved_int1: 'uint32_t', reserved_int2: 'uint32_t', reserved_int3: 'uint32_t', reserved_int4: 'uint32_t',
    memlimit_threading: 'uint64_t', memlimit_stop: 'uint64_t', reserved_int7: 'uint64_t', reserved_int8: 'uint64_t',
    reserved_ptr1: 'void *', reserved_ptr2: 'void *', reserved_ptr3: 'void *', reserved_ptr4: 'void *',
  });
  return { stream, mt };
}

function offset(k: Koffi, t: ReturnType<Koffi['struct']>, name: string, bytes: number): number {
  return structOffset(k, t, name, bytes, 'liblzma');
}

/** xz decoders over a loaded liblzma (`fns` declared in the order of FUNCTIONS). */
export function lzmaApi(k: Koffi, fns: KoffiFn[]): { decoder(threads: number): NativeStreamDecoder } {
  const [decoderMt, code, end, decoderSingle] = fns;
  const { stream, mt } = structs(k);
  const S = {
    nextIn: offset(k, stream, 'next_in', 8), availIn: offset(k, stream, 'avail_in', 8),
    nextOut: offset(k, stream, 'next_out', 8), availOut: offset(k, stream, 'avail_out', 8),
  };
  const M = {
    flags: offset(k, mt, 'flags', 4), threads: offset(k, mt, 'threads', 4),
    memlimitThreading: offset(k, mt, 'memlimit_threading', 8), memlimitStop: offset(k, mt, 'memlimit_stop', 8),
  };
  const streamBytes = k.sizeof(stream);
  const mtBytes = k.sizeof(mt);
  return {
    /** threads 0: liblzma's single-threaded decoder of one .xz stream (no concatenation): what a
     *  block worker (block-decode-worker-entry.ts) runs on each block it is given */
    decoder(threads: number): NativeStreamDecoder {
      const st = Buffer.alloc(streamBytes); // LZMA_STREAM_INIT: all zeros
      let r: number;
      if (threads === 0) r = decoderSingle(st, BigInt(MEMLIMIT_STOP), 0) as number;
      else {
        const opts = Buffer.alloc(mtBytes);
        opts.writeUInt32LE(LZMA_CONCATENATED, M.flags);
        opts.writeUInt32LE(Math.max(1, threads), M.threads);
        opts.writeBigUInt64LE(BigInt(MEMLIMIT_THREADING), M.memlimitThreading);
        opts.writeBigUInt64LE(BigInt(MEMLIMIT_STOP), M.memlimitStop);
        r = decoderMt(st, opts) as number;
      }
      if (r !== LZMA_OK) throw new Error(`lzma_stream_decoder${threads === 0 ? '' : '_mt'} failed: ${LZMA_WORDS[r] ?? `error ${r}`}`);
      let live = true;
      let ended = false;
      return {
        step(inp, inOff, inLen, out, outOff, outLen, finish): StepResult {
          if (ended) return { inLeft: inLen, outLeft: outLen, ended: true, error: null };
          st.writeBigUInt64LE((k.address(inp) as bigint) + BigInt(inOff), S.nextIn);
          st.writeBigUInt64LE(BigInt(inLen), S.availIn);
          st.writeBigUInt64LE((k.address(out) as bigint) + BigInt(outOff), S.nextOut);
          st.writeBigUInt64LE(BigInt(outLen), S.availOut);
          const ret = code(st, finish ? LZMA_FINISH : LZMA_RUN) as number;
          const inLeft = Number(st.readBigUInt64LE(S.availIn));
          const outLeft = Number(st.readBigUInt64LE(S.availOut));
          if (ret === LZMA_STREAM_END) ended = true;
          else if (ret !== LZMA_OK) return { inLeft, outLeft, ended: false, error: lzmaError(ret) };
          return { inLeft, outLeft, ended, error: null };
        },
        end() {
          if (live) { live = false; end(st); }
        },
      };
    },
  };
}

function lzmaError(ret: number): StreamDecodeError {
  const message = LZMA_WORDS[ret] ?? `liblzma error ${ret}`;
  if (ret === 10) return { message, kind: 'truncated' };
  if (ret === 5 || ret === 6 || ret === 8 || ret === 3) return { message, kind: 'limits' };
  return { message, kind: 'corrupt' };
}

