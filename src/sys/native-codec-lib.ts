// A compression library the codec workers load through koffi (libdeflate, ISA-L), with the one
// decision of whether they get it and why not. The main thread checks here, once, that koffi and
// the library load, have the functions the workers declare and pass the library's own check
// (ISA-L decodes a known gzip member through its declared struct layout), then hands the workers
// a path to koffi and the library's soname; each worker loads it again itself
// (native-codec-worker.ts). Where the library is missing, fails its check, or the operator turned
// it off (a CLI flag or an environment variable set to 0), the workers use node:zlib: same bytes
// in, same checks, slower; status() / whyNot() say why, for the logs.
import { createRequire } from 'node:module';
import { koffi } from './libc.ts';
import type { Koffi, KoffiFn, NativeLibForWorkers } from './native-codec-worker.ts';

export type { NativeLibForWorkers } from './native-codec-worker.ts';

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
  /** run once on the main thread after the library loaded, with its functions (declared in the
   *  order of `functions`): '' when it works as booty expects, else why not */
  check?: (k: Koffi, fns: KoffiFn[]) => string;
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
    const { soname, functions, check } = this.spec;
    let fns: KoffiFn[];
    try {
      const lib = koffi().load(soname);
      fns = functions.map((f) => lib.func(f));
    } catch (e) {
      return { ok: undefined, why: `${soname} not loadable: ${firstLine(e)}` };
    }
    let failed: string;
    try { failed = check?.(koffi(), fns) ?? ''; } catch (e) { failed = firstLine(e); }
    if (failed !== '') return { ok: undefined, why: `${soname} failed booty's load-time check (${failed})` };
    return { ok: { koffi: createRequire(import.meta.url).resolve('koffi'), lib: soname }, why: '' };
  }
}

/** The first line of an error's message (koffi's load errors run to several lines), for logs. */
export function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0];
}
