// bzip2 through libbz2 (Debian's libbz2-1.0, on every system; through koffi, the one native door).
// Streams in a row (pbzip2 writes one per chunk; `cat a.bz2 b.bz2` is what bzip2 -d reads as one
// file) are decoded one after the other, as bzip2(1) does; bytes after the last stream that do
// not start another are left to the caller (deploy reports them as trailing bytes).
//
// bz_stream is declared field by field as in bzlib.h 1.0.x (soname libbz2.so.1.0: callers
// allocate it, so its layout is the ABI). When the library loads, a known .bz2 stream is decoded
// and a damaged copy must fail, before booty trusts it with a disk.
import { NativeCodecLib } from './native-codec-lib.ts';
import { koffi } from './libc.ts';
import { checkKnownStream, type NativeStreamDecoder } from './stream-decoder.ts';
import { BZ2_FUNCTIONS as FUNCTIONS, bz2Api } from './libbz2-api.ts';

/** `printf 'booty checks liblzma with this text before trusting it.\n' | bzip2 -9` (liblzma.ts's text) */
const KNOWN_TEXT = 'booty checks liblzma with this text before trusting it.\n';
const KNOWN_BZ2 = Buffer.from('425a683931415926535937d325e8000006d180001040013bef9ef020005450003434c20a9ed51b53c821b26881b54795aaa7f53ca8374ba74c3d262348984dd83c49627ad8522c9505e36e7c5dc914e14240df4c97a0', 'hex');

export const LIBBZ2 = new NativeCodecLib({
  name: 'libbz2', soname: 'libbz2.so.1.0', flag: '--no-libbz2', env: 'BOOTY_LIBBZ2', functions: FUNCTIONS,
  check(k, fns) {
    const api = bz2Api(k, fns);
    return checkKnownStream(() => api.decoder(), '.bz2', KNOWN_BZ2, KNOWN_TEXT, 30);
  },
});

/** A bzip2 decoder on this thread. */
export function bzip2Decoder(): NativeStreamDecoder {
  const lib = LIBBZ2.forWorkers();
  if (lib === undefined) throw new Error(`bzip2 needs ${LIBBZ2.whyNot()}`);
  const loaded = koffi().load(lib.lib);
  return bz2Api(koffi(), FUNCTIONS.map((f) => loaded.func(f))).decoder();
}
