// UEFI variables through efivarfs (/sys/firmware/efi/efivars): one file per variable, named
// <Name>-<vendor GUID>, whose content is the 4-byte attributes then the data. Each write(2) is
// one SetVariable() call, so a value is written with a single write; existing files are
// immutable until FS_IOC_SETFLAGS clears the flag. The store is an interface so the boot entry
// logic runs in unit tests on a plain directory.
import fs from 'node:fs';
import path from 'node:path';

export const EFI_GLOBAL_GUID = '8be4df61-93ca-11d2-aa0d-00e098032b8c';
/** NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS: what Boot####, BootOrder and BootNext carry */
export const NV_BS_RT = 0x7;
export const EFIVARFS_DIR = '/sys/firmware/efi/efivars';

export interface EfiVarStore {
  /** the data (without the attributes) of a global variable, or undefined when it does not exist */
  get(name: string): Buffer | undefined;
  set(name: string, data: Buffer, attributes?: number): void;
  delete(name: string): void;
  /** names of the global variables present */
  names(): string[];
}

export interface InodeFlagOps {
  get(fd: number, what: string): number;
  set(fd: number, flags: number, what: string): void;
  immutable: number;
}

/** A store over an efivarfs directory (or, with no-op flag ops, a plain directory in tests). */
export function efivarfsStore(dir: string, flags: InodeFlagOps | undefined): EfiVarStore {
  const file = (name: string) => path.join(dir, `${name}-${EFI_GLOBAL_GUID}`);
  const makeMutable = (p: string) => {
    if (flags === undefined) return;
    const fd = fs.openSync(p, fs.constants.O_RDONLY);
    try {
      const f = flags.get(fd, p);
      if ((f & flags.immutable) !== 0) flags.set(fd, f & ~flags.immutable, p);
    } finally { fs.closeSync(fd); }
  };
  return {
    get(name) {
      let b: Buffer;
      try { b = fs.readFileSync(file(name)); } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw e;
      }
      if (b.length < 4) throw new Error(`efivarfs: ${file(name)} has ${b.length} bytes, fewer than its attributes`);
      return b.subarray(4);
    },
    set(name, data, attributes = NV_BS_RT) {
      const p = file(name);
      const buf = Buffer.alloc(4 + data.length);
      buf.writeUInt32LE(attributes, 0);
      data.copy(buf, 4);
      let fd: number;
      if (fs.existsSync(p)) {
        makeMutable(p);
        fd = fs.openSync(p, fs.constants.O_WRONLY);
      } else {
        fd = fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_CREAT, 0o644);
      }
      try {
        const n = fs.writeSync(fd, buf, 0, buf.length);
        if (n !== buf.length) throw new Error(`efivarfs: short write of ${name} (${n} of ${buf.length} bytes)`);
        if (flags === undefined) fs.ftruncateSync(fd, buf.length); // a plain file keeps old bytes past the end
      } finally { fs.closeSync(fd); }
    },
    delete(name) {
      const p = file(name);
      if (!fs.existsSync(p)) return;
      makeMutable(p);
      fs.unlinkSync(p);
    },
    names() {
      const suffix = `-${EFI_GLOBAL_GUID}`;
      return fs.readdirSync(dir).filter((f) => f.toLowerCase().endsWith(suffix)).map((f) => f.slice(0, -suffix.length));
    },
  };
}

export function bootVarName(n: number): string {
  return `Boot${n.toString(16).toUpperCase().padStart(4, '0')}`;
}

export function parseBootOrder(b: Buffer | undefined): number[] {
  if (b === undefined) return [];
  const out: number[] = [];
  for (let i = 0; i + 1 < b.length; i += 2) out.push(b.readUInt16LE(i));
  return out;
}

export function encodeBootOrder(order: number[]): Buffer {
  const b = Buffer.alloc(order.length * 2);
  order.forEach((n, i) => b.writeUInt16LE(n, i * 2));
  return b;
}
