// The worker side of native-codec-lib.ts: a codec worker loads the library the main thread
// checked (libdeflate, ISA-L) itself, through koffi, on first use. Loading on first use matters:
// koffi costs a worker memory (README, Performance), which a worker that never needs the library never pays. This
// module is imported by worker entries, so it imports nothing that needs import.meta or a
// node_modules beside it (worker-start.ts): koffi is required by the path the main thread
// resolved.
import { createRequire } from 'node:module';

export type Koffi = typeof import('koffi');
export type KoffiLib = ReturnType<Koffi['load']>;
export type KoffiFn = ReturnType<KoffiLib['func']>;

/** What a worker needs to load the library itself. */
export interface NativeLibForWorkers {
  /** koffi's resolved module path (workers require it by path) */
  koffi: string;
  /** the library's file name, as dlopen finds it */
  lib: string;
}

/** koffi, required by its resolved path (a worker evaluated from the bundle's text has no
 *  node_modules to search from). */
export function requireKoffi(resolved: string): Koffi {
  return createRequire(resolved)(resolved) as Koffi;
}

/**
 * A library in a worker: get() loads it on its first call (koffi, the library, its functions
 * declared in the order of `functions`) and returns make()'s API; null when the main thread gave
 * no library (`cfg` undefined), or when loading or make() threw. Never retried; drop() gives it up
 * for good (a check found it wrong).
 */
export class WorkerNativeLib<T> {
  private loaded: T | null | undefined;
  private readonly cfg: NativeLibForWorkers | undefined;
  private readonly functions: readonly string[];
  private readonly make: (k: Koffi, fns: KoffiFn[]) => T;

  constructor(cfg: NativeLibForWorkers | undefined, functions: readonly string[], make: (k: Koffi, fns: KoffiFn[]) => T) {
    this.cfg = cfg;
    this.functions = functions;
    this.make = make;
  }

  get(): T | null {
    if (this.loaded !== undefined) return this.loaded;
    this.loaded = null;
    const cfg = this.cfg;
    if (cfg === undefined) return null;
    try {
      const k = requireKoffi(cfg.koffi);
      const lib = k.load(cfg.lib);
      this.loaded = this.make(k, this.functions.map((p) => lib.func(p)));
    } catch {
      this.loaded = null;
    }
    return this.loaded;
  }

  drop(): void {
    this.loaded = null;
  }
}

/** A member's offset in a struct declared with koffi.struct, checked to be `bytes` wide (the
 *  accessor the caller uses on it): a layout typed by hand never drifts from the declaration. */
export function structOffset(k: Koffi, t: ReturnType<Koffi['struct']>, name: string, bytes: number, owner: string): number {
  const m = t.members?.[name];
  if (m === undefined || k.sizeof(m.type) !== bytes) throw new Error(`${owner}: ${name} is not a ${bytes}-byte member of its struct`);
  return k.offsetof(t, name);
}
