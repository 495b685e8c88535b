// The one door to the kernel. Node has no mount/mknod/reboot/ioctl/netlink, so booty reaches
// them through koffi (FFI into libc). Only files under src/sys/ import this module; everything
// else takes plain functions or interfaces, so it stays pure and testable without root.
//
// koffi is loaded lazily: commands that never make a syscall (server, unit tests) never load the
// native module, and a missing koffi is reported as a clear error at the first syscall.
import { createRequire } from 'node:module';
import os from 'node:os';

type Koffi = typeof import('koffi');
type Lib = ReturnType<Koffi['load']>;

let koffiMod: Koffi | undefined;
let libcHandle: Lib | undefined;
const fnCache = new Map<string, (...args: unknown[]) => unknown>();

export function koffi(): Koffi {
  if (koffiMod === undefined) {
    // createRequire keeps koffi out of the esbuild bundle (it cannot be bundled: native module);
    // in the initramfs it is shipped beside the bundle under node_modules/koffi.
    const require = createRequire(import.meta.url);
    koffiMod = require('koffi') as Koffi;
  }
  return koffiMod;
}

export function libc(): Lib {
  libcHandle ??= koffi().load('libc.so.6');
  return libcHandle;
}

/** A libc function by C prototype, declared once and cached. */
export function fn<T extends (...args: never[]) => unknown>(prototype: string): T {
  let f = fnCache.get(prototype);
  if (f === undefined) {
    f = libc().func(prototype) as (...args: unknown[]) => unknown;
    fnCache.set(prototype, f);
  }
  return f as unknown as T;
}

/** A C string of exactly these bytes (a JS string is taken as UTF-8, as koffi would take it). Paths
 *  given as a Buffer (bytes from a tarball, not necessarily UTF-8) reach the kernel unchanged. */
export function cString(s: string | Buffer): Buffer {
  const bytes = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  return Buffer.concat([bytes, Buffer.alloc(1)]);
}

/** A path or name for a message: bytes shown as UTF-8. */
export function shown(s: string | Buffer): string {
  return typeof s === 'string' ? s : s.toString('utf8');
}

/** errno after the last failing call on this thread. */
export function errno(): number {
  return koffi().errno();
}

const errnoNames: Record<number, string> = Object.fromEntries(
  Object.entries(os.constants.errno).map(([name, num]) => [num, name]),
);

/** An Error like Node's own: `mount(/dev, devtmpfs): EBUSY (errno 16)`, with .code and .errno. */
export function sysError(what: string, err = errno()): NodeJS.ErrnoException {
  const name = errnoNames[err] ?? `errno ${err}`;
  const e: NodeJS.ErrnoException = new Error(`${what}: ${name} (errno ${err})`);
  e.code = name;
  e.errno = err;
  e.syscall = what;
  return e;
}

/** Throws sysError when a libc call returned -1 (or a negative number). */
export function check(ret: number | bigint, what: string): number {
  const n = typeof ret === 'bigint' ? Number(ret) : ret;
  if (n < 0) throw sysError(what);
  return n;
}
