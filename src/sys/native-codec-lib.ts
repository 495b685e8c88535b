// A compression library the codec workers load through koffi (libdeflate, ISA-L), with the one
// decision of whether they get it and why not. The workers are evaluated sources (the agent is
// one bundle) and cannot import this module: the main thread checks here, once, that koffi and
// the library load and have the functions the workers declare, then hands the workers a path to
// koffi and the library's soname. Where the library is missing, or the operator turned it off
// (a CLI flag or an environment variable set to 0), the workers use node:zlib: same bytes in,
// same checks, slower.
import { createRequire } from 'node:module';
import { koffi } from './libc.ts';

/** What a worker needs to load the library itself. */
export interface NativeLibForWorkers {
  /** koffi's resolved module path (workers require it by path) */
  koffi: string;
  /** the library's file name, as dlopen finds it */
  lib: string;
}

export interface NativeCodecLibSpec {
  /** what logs call it, e.g. 'libdeflate' */
  name: string;
  /** e.g. 'libdeflate.so.0' */
  soname: string;
  /** the CLI flag that turns it off, e.g. '--no-libdeflate' */
  flag: string;
  /** the environment variable that turns it off when '0', e.g. 'BOOTY_LIBDEFLATE' */
  env: string;
  /** C prototypes the workers declare: all must resolve in this build of the library */
  functions: readonly string[];
}

export class NativeCodecLib {
  readonly spec: NativeCodecLibSpec;
  private checked: { ok: NativeLibForWorkers | undefined; why: string } | undefined;
  private disabledByCaller = false;

  constructor(spec: NativeCodecLibSpec) {
    this.spec = spec;
  }

  /** Turns the library off for this process (the CLI flag). */
  disable(): void {
    this.disabledByCaller = true;
  }

  /** The library for the workers, or undefined (then `status()` says why). */
  forWorkers(): NativeLibForWorkers | undefined {
    return this.current().ok;
  }

  /** Why the workers do not get the library ('' when they do). */
  whyNot(): string {
    return this.current().why;
  }

  /** One line for logs: the library, or node:zlib and why. */
  status(): string {
    const c = this.current();
    return c.ok !== undefined ? `${this.spec.name} (${this.spec.soname})` : `node:zlib (${c.why})`;
  }

  private current(): { ok: NativeLibForWorkers | undefined; why: string } {
    const { soname, flag, env } = this.spec;
    if (this.disabledByCaller) return { ok: undefined, why: `${soname} turned off by ${flag}` };
    if (process.env[env] === '0') return { ok: undefined, why: `${soname} turned off by ${env}=0` };
    this.checked ??= this.probe();
    return this.checked;
  }

  private probe(): { ok: NativeLibForWorkers | undefined; why: string } {
    const { soname, functions } = this.spec;
    try {
      const lib = koffi().load(soname);
      for (const f of functions) lib.func(f);
      const koffiPath = createRequire(import.meta.url).resolve('koffi');
      return { ok: { koffi: koffiPath, lib: soname }, why: '' };
    } catch (e) {
      return { ok: undefined, why: `${soname} not loadable: ${(e as Error).message.split('\n')[0]}` };
    }
  }
}

/**
 * Worker source that defines `const <fn> = () => api | null`: on its first call it loads the
 * library that workerData[<key>] names (a NativeLibForWorkers) and evaluates `body`, JavaScript
 * with `k` (koffi) and `lib` (the loaded library) in scope that declares `F`, the library's
 * functions in the order of `functions`, and returns the worker's API. Null when the main thread
 * gave no library, or when loading or `body` throws; never retried. Loading on first use matters:
 * koffi costs a worker ~1.6 MiB, which a worker that never needs the library never pays.
 */
export function workerLoaderSource(fn: string, key: string, functions: readonly string[], body: string): string {
  return `
let ${fn}Loaded;
const ${fn} = () => ${fn}Loaded !== undefined ? ${fn}Loaded : (${fn}Loaded = (() => {
  const cfg = workerData && workerData[${JSON.stringify(key)}];
  if (!cfg) return null;
  try {
    const k = require(cfg.koffi);
    const lib = k.load(cfg.lib);
    const F = ${JSON.stringify(functions)}.map((p) => lib.func(p));
    ${body}
  } catch (e) {
    return null;
  }
})());
`;
}
