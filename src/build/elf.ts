// A minimal ELF64 reader: just enough to find what the dynamic loader will look for
// (PT_INTERP and the DT_NEEDED sonames), so the builder can compute a binary's shared library
// closure inside the unpacked packages instead of asking the host's ldd about the host's files.
import { closeSync, openSync, readSync } from 'node:fs';

export interface ElfDeps {
  /** the program interpreter (PT_INTERP), e.g. /lib64/ld-linux-x86-64.so.2; undefined for libraries and static binaries */
  interp: string | undefined;
  /** DT_NEEDED entries in file order */
  needed: string[];
  /** DT_RUNPATH or DT_RPATH, split on ':' */
  runpath: string[];
}

type Reader = (offset: number, length: number) => Buffer;

const PT_LOAD = 1, PT_DYNAMIC = 2, PT_INTERP = 3;
const DT_NULL = 0n, DT_NEEDED = 1n, DT_STRTAB = 5n, DT_RPATH = 15n, DT_RUNPATH = 29n;

/** True when the bytes start with the ELF magic. */
export function isElf(head: Buffer): boolean {
  return head.length >= 4 && head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46;
}

/** Parses an x86-64 (ELF64 little-endian) file; returns undefined for anything that is not ELF. */
export function parseElfDeps(read: Reader): ElfDeps | undefined {
  const h = read(0, 64);
  if (!isElf(h)) return undefined;
  if (h[4] !== 2 || h[5] !== 1) throw new Error('only 64-bit little-endian ELF files are supported');
  const phoff = Number(h.readBigUInt64LE(32));
  const phentsize = h.readUInt16LE(54);
  const phnum = h.readUInt16LE(56);
  const ph = read(phoff, phentsize * phnum);
  const loads: { vaddr: number; offset: number; filesz: number }[] = [];
  let interp: string | undefined;
  let dyn: { offset: number; size: number } | undefined;
  for (let i = 0; i < phnum; i++) {
    const o = i * phentsize;
    const type = ph.readUInt32LE(o);
    const offset = Number(ph.readBigUInt64LE(o + 8));
    const vaddr = Number(ph.readBigUInt64LE(o + 16));
    const filesz = Number(ph.readBigUInt64LE(o + 32));
    if (type === PT_LOAD) loads.push({ vaddr, offset, filesz });
    else if (type === PT_DYNAMIC) dyn = { offset, size: filesz };
    else if (type === PT_INTERP) interp = cString(read(offset, filesz), 0);
  }
  if (dyn === undefined) return { interp, needed: [], runpath: [] };
  const d = read(dyn.offset, dyn.size);
  const neededOffsets: number[] = [];
  let strtab: number | undefined;
  let runpathOffset: number | undefined;
  for (let o = 0; o + 16 <= d.length; o += 16) {
    const tag = d.readBigInt64LE(o);
    const val = Number(d.readBigUInt64LE(o + 8));
    if (tag === DT_NULL) break;
    if (tag === DT_NEEDED) neededOffsets.push(val);
    else if (tag === DT_STRTAB) strtab = val;
    else if (tag === DT_RUNPATH || (tag === DT_RPATH && runpathOffset === undefined)) runpathOffset = val;
  }
  if (strtab === undefined) return { interp, needed: [], runpath: [] };
  // DT_STRTAB is a virtual address: map it to a file offset through the PT_LOAD segments.
  const seg = loads.find((l) => strtab! >= l.vaddr && strtab! < l.vaddr + l.filesz);
  if (seg === undefined) throw new Error('ELF string table is outside every loadable segment');
  const strOff = strtab - seg.vaddr + seg.offset;
  const str = (off: number) => cString(read(strOff + off, 4096), 0);
  return {
    interp,
    needed: neededOffsets.map(str),
    runpath: runpathOffset === undefined ? [] : str(runpathOffset).split(':').filter((s) => s !== ''),
  };
}

function cString(b: Buffer, at: number): string {
  const end = b.indexOf(0, at);
  return b.toString('utf8', at, end < 0 ? b.length : end);
}

/** parseElfDeps for a file on disk (reads only the headers and the dynamic section). */
export function readElfDeps(file: string): ElfDeps | undefined {
  const fd = openSync(file, 'r');
  try {
    return parseElfDeps((offset, length) => {
      const b = Buffer.alloc(length);
      const n = readSync(fd, b, 0, length, offset);
      return b.subarray(0, n);
    });
  } finally {
    closeSync(fd);
  }
}
