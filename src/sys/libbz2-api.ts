// The worker-safe half of libbz2.ts: the C functions booty declares, bz_stream as a koffi
// struct, and decoders over a loaded library. Worker entries import this module (it needs neither
// import.meta nor node_modules: worker-start.ts); libbz2.ts checks and loads the library on the
// main thread with the same code.
import { structOffset, type Koffi, type KoffiFn } from './native-codec-worker.ts';
import type { NativeStreamDecoder, StepResult, StreamDecodeError } from './stream-decoder.ts';

export const BZ2_FUNCTIONS = [
  'int BZ2_bzDecompressInit(void *strm, int verbosity, int small)',
  'int BZ2_bzDecompress(void *strm)',
  'int BZ2_bzDecompressEnd(void *strm)',
] as const;

const BZ_OK = 0;
const BZ_STREAM_END = 4;
const BZ_WORDS: Record<number, string> = {
  [-1]: 'sequence error', [-2]: 'parameter error', [-3]: 'out of memory', [-4]: 'corrupt data (a block CRC or the stream CRC does not match, or a bad block)',
  [-5]: 'not a bzip2 stream (bad magic)', [-9]: 'libbz2 misbuilt',
};

function bzStream(k: Koffi): ReturnType<Koffi['struct']> {
  return k.struct({
    next_in: 'void *', avail_in: 'uint32_t', total_in_lo32: 'uint32_t', total_in_hi32: 'uint32_t',
    next_out: 'void *', avail_out: 'uint32_t', total_out_lo32: 'uint32_t', total_out_hi32: 'uint32_t',
    state: 'void *', bzalloc: 'void *', bzfree: 'void *', opaque: 'void *',
  });
}

/** A chunk of input larger than this is fed in pieces (avail_in is 32 bits wide). */
const MAX_STEP = 1 << 30;

/** bzip2 decoders over a loaded libbz2 (`fns` declared in the order of FUNCTIONS). */
export function bz2Api(k: Koffi, fns: KoffiFn[]): { decoder(): NativeStreamDecoder } {
  const [init, decompress, end] = fns;
  const t = bzStream(k);
  const S = {
    nextIn: structOffset(k, t, 'next_in', 8, 'libbz2'), availIn: structOffset(k, t, 'avail_in', 4, 'libbz2'),
    nextOut: structOffset(k, t, 'next_out', 8, 'libbz2'), availOut: structOffset(k, t, 'avail_out', 4, 'libbz2'),
  };
  const bytes = k.sizeof(t);
  return {
    decoder(): NativeStreamDecoder {
      const st = Buffer.alloc(bytes);
      const start = () => {
        st.fill(0);
        const r = init(st, 0, 0) as number;
        if (r !== BZ_OK) throw new Error(`BZ2_bzDecompressInit failed: ${BZ_WORDS[r] ?? `error ${r}`}`);
      };
      start();
      let live = true;
      // between streams: the last one ended, the next has not started (its magic not seen yet)
      let between = false;
      return {
        step(inp, inOff, inLen, out, outOff, outLen, finish): StepResult {
          let inLeft = inLen;
          let outLeft = outLen;
          for (;;) {
            if (between) {
              // another stream only if the next bytes are its magic ("BZh" and a level digit)
              const at = inOff + inLen - inLeft;
              const head = inp.subarray(at, at + Math.min(inLeft, 4));
              const magic = Buffer.from('BZh1');
              const couldBe = head.every((b, i) => (i < 3 ? b === magic[i] : b >= 0x31 && b <= 0x39));
              if (inLeft === 0 || !couldBe || (head.length < 4 && finish)) return { inLeft, outLeft, ended: true, error: null };
              if (head.length < 4) return { inLeft, outLeft, ended: false, error: null }; // wait for the rest of the magic
              end(st);
              start();
              between = false;
            }
            const take = Math.min(inLeft, MAX_STEP);
            st.writeBigUInt64LE((k.address(inp) as bigint) + BigInt(inOff + inLen - inLeft), S.nextIn);
            st.writeUInt32LE(take, S.availIn);
            st.writeBigUInt64LE((k.address(out) as bigint) + BigInt(outOff + outLen - outLeft), S.nextOut);
            st.writeUInt32LE(outLeft, S.availOut);
            const r = decompress(st) as number;
            inLeft -= take - st.readUInt32LE(S.availIn);
            const produced = outLeft - st.readUInt32LE(S.availOut);
            outLeft -= produced;
            if (r === BZ_STREAM_END) { between = true; continue; }
            if (r !== BZ_OK) return { inLeft, outLeft, ended: false, error: bz2Error(r) };
            if (produced === 0 && take === st.readUInt32LE(S.availIn) && take > 0) break; // no progress: wait
            // no room left, or all input taken and nothing more to give
            if (outLeft === 0 || (inLeft === 0 && produced === 0)) break;
            if (inLeft === 0 && !finish) break;
          }
          if (finish && inLeft === 0 && outLeft > 0) return { inLeft, outLeft, ended: false, error: { message: 'the stream ends early', kind: 'truncated' } };
          return { inLeft, outLeft, ended: false, error: null };
        },
        end() {
          if (live) { live = false; end(st); }
        },
      };
    },
  };
}

function bz2Error(r: number): StreamDecodeError {
  const message = BZ_WORDS[r] ?? `libbz2 error ${r}`;
  return { message, kind: r === -3 ? 'limits' : 'corrupt' };
}

