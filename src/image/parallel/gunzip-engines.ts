// The gzip engine trial (gunzip-engine-choice.ts) over the real engines: igzip through the
// library the main thread checked, node:zlib's native handle, timed by the calling thread's CPU
// clock. Runs on whichever thread has the time: the prestarted decode worker while it waits for
// its format, or the main thread while a decode worker started for a deploy boots (a worker's
// start takes longer than the trial, so on two cores the first block comes only a little later:
// README, "Which inflate, measured"). Imports nothing that needs import.meta (worker entries
// import it).
import zlib from 'node:zlib';
import { syncZlib } from '../../sys/zlib-handle.ts';
import { workerIsal } from '../../sys/isal-worker.ts';
import { threadCpuClock } from '../../sys/thread-cpu-clock.ts';
import type { NativeLibForWorkers } from '../../sys/native-codec-lib.ts';
import { decodeClock, GunzipEngineTrial } from './gunzip-engine-choice.ts';

/** A trial of igzip (ISA-L as `isalCfg` says where to load it) against node:zlib; undefined
 *  where the library does not load on this thread. */
export function gunzipEngineTrial(isalCfg: NativeLibForWorkers, lib = workerIsal(isalCfg).get()): GunzipEngineTrial | undefined {
  if (lib === null) return undefined;
  return new GunzipEngineTrial({
    isal: (gz, out) => { const r = lib.gunzip().write(true, gz, 0, gz.length, out, 0, out.length); return r.error === null && r.inLeft === 0; },
    zlib: (gz, out) => {
      const d = syncZlib(zlib.createGunzip());
      if (d === undefined) return false;
      const ok = d.write(d.finishFlag, gz, 0, gz.length, out, 0, out.length) && d.inLeft === 0;
      d.close();
      return ok;
    },
  }, decodeClock(threadCpuClock(isalCfg.koffi)));
}
