// Intel ISA-L's igzip (Debian's libisal2) for capture's fastest gzip level and deploy's single
// gzip streams, through koffi. At `--level 1` capture was CPU-bound on libdeflate's level 1 on 2
// cores; igzip's one-shot ("stateless") DEFLATE at its level 3 (its best) is much faster and its
// output is still smaller than zlib's gzip -1; its levels 1/2 are faster still but larger than
// gzip -1, so not used (README, Performance, has the figures). Its output is plain DEFLATE: any
// inflater, and every booty deploy, reads it. Where the library is missing, fails the load-time
// check, or with --no-isal / BOOTY_ISAL=0, level 1 uses libdeflate (or node:zlib) and deploy
// inflates with node:zlib.
//
// igzip takes its parameters in structs, declared in isal-worker.ts (the code the workers run).
// Before any worker gets the library, the main thread decodes a known gzip member and compresses
// a known text through that code (isalSelfCheck): a build whose layout or behaviour disagrees is
// not used, and `ISAL.whyNot()` (in deploy's and capture's log lines) says what differed. A capture
// worker also inflates its first igzip frame and compares it before sending it.
import { NativeCodecLib } from './native-codec-lib.ts';
import { ISAL_FUNCTIONS, isalApi, isalSelfCheck } from './isal-worker.ts';

/** ISA-L for the codec workers: `.forWorkers()`, `.whyNot()`, `.disable()` (`--no-isal`; also
 *  BOOTY_ISAL=0). */
export const ISAL = new NativeCodecLib({
  name: 'ISA-L', soname: 'libisal.so.2', flag: '--no-isal', env: 'BOOTY_ISAL', functions: ISAL_FUNCTIONS,
  check: (k, fns) => isalSelfCheck(isalApi(k, fns)),
});

export { ISAL_GZIP_LEVEL } from './isal-worker.ts';
