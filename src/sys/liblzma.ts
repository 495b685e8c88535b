// xz through liblzma (Debian's liblzma5, on every system; through koffi, the one native door).
// The .xz decoder is liblzma 5.4's multi-threaded one: it decodes the blocks of a multi-block
// file (what `xz -T0`/`-T2` and pixz write) on its own threads while this thread only moves
// bytes, and falls back to one thread for single-block files or when the memory cap is reached.
// Concatenated .xz streams and stream padding are read as xz(1) reads them, and errors come in
// stream order as xz(1) reports them (no LZMA_FAIL_FAST: with it a file cut short reads as
// corrupt, where xz -t says "Unexpected end of input").
//
// lzma_stream and lzma_mt are declared field by field as in liblzma 5.4's base.h/container.h
// (soname liblzma.so.5: callers allocate both, so their layout is the ABI), offsets taken from
// the declaration (koffi.offsetof). When the library loads, a known .xz stream is decoded and a
// damaged copy must fail, before booty trusts it with a disk.
import os from 'node:os';
import { NativeCodecLib } from './native-codec-lib.ts';
import { koffi } from './libc.ts';
import { checkKnownStream, type NativeStreamDecoder } from './stream-decoder.ts';
import { LZMA_FUNCTIONS as FUNCTIONS, lzmaApi } from './liblzma-api.ts';

/** `printf 'booty checks liblzma with this text before trusting it.\n' | xz -9e` */
const KNOWN_TEXT = 'booty checks liblzma with this text before trusting it.\n';
const KNOWN_XZ = Buffer.from('fd377a585a000004e6d6b446020021011c00000010cf58cc010037626f6f747920636865636b73206c69626c7a6d61207769746820746869732074657874206265666f7265207472757374696e672069742e0a00d28dcfe58e1e382a00015038e1503fb21fb6f37d010000000004595a', 'hex');

export const LIBLZMA = new NativeCodecLib({
  name: 'liblzma', soname: 'liblzma.so.5', flag: '--no-liblzma', env: 'BOOTY_LIBLZMA', functions: FUNCTIONS,
  check(k, fns) {
    const api = lzmaApi(k, fns);
    // both decoders booty runs: the threaded one (one stream) and the single-threaded one (blocks)
    return checkKnownStream(() => api.decoder(1), '.xz', KNOWN_XZ, KNOWN_TEXT, 40) || checkKnownStream(() => api.decoder(0), '.xz', KNOWN_XZ, KNOWN_TEXT, 40);
  },
});

/** An xz decoder on this thread using up to `threads` of liblzma's (undefined: one per core). */
export function xzDecoder(threads = os.availableParallelism()): NativeStreamDecoder {
  const lib = LIBLZMA.forWorkers();
  if (lib === undefined) throw new Error(`xz needs ${LIBLZMA.whyNot()}`);
  const loaded = koffi().load(lib.lib);
  return lzmaApi(koffi(), FUNCTIONS.map((f) => loaded.func(f))).decoder(threads);
}
