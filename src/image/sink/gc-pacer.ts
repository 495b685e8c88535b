// Keeps the data path's memory flat. Decompressors and readers hand out a fresh 1-4 MiB buffer
// per chunk, and V8 only collects on its own once ~64 MiB of such external (ArrayBuffer) memory
// piled up since the last collection: at GB/s that garbage, not live data, sets the peak RSS.
// A minor GC (scavenge: young objects only, about a millisecond here) every few MiB frees those
// short-lived buffers early. `--expose-gc` is switched on at run time for this; where that is not
// possible, pacing is simply off.
import v8 from 'node:v8';
import vm from 'node:vm';

type GcFn = (opts?: { type?: 'minor' | 'major'; execution?: 'sync' | 'async' }) => void;

let gc: GcFn | null | undefined;
function gcFunction(): GcFn | null {
  if (gc !== undefined) return gc;
  try {
    const existing = (globalThis as { gc?: GcFn }).gc;
    if (typeof existing === 'function') gc = existing;
    else {
      v8.setFlagsFromString('--expose-gc');
      gc = vm.runInNewContext('gc') as GcFn;
    }
  } catch { gc = null; }
  return gc;
}

export const DEFAULT_GC_EVERY = 8 << 20;

/** Returns add(n): call it with each chunk's size; every `everyBytes` it runs a minor GC (or,
 *  with type 'major', a full collection: for buffers that live long enough to be promoted to the
 *  old generation, such as frames waiting for their turn in the parallel codecs, which a
 *  scavenge never frees and V8 would let pile up by ~64 MiB before collecting). */
export function createGcPacer(everyBytes = DEFAULT_GC_EVERY, type: 'minor' | 'major' = 'minor'): (n: number) => void {
  const fn = gcFunction();
  if (fn === null || everyBytes <= 0) return () => {};
  let since = 0;
  return (n: number) => {
    since += n;
    if (since < everyBytes) return;
    since = 0;
    fn({ type });
  };
}
