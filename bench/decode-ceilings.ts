// Decode ceilings (issue 19): each decoder alone, one thread, on the same compressed file held in
// memory, its output thrown into a reused 4 MiB buffer, so what is measured is the decoder and
// nothing else (no network, no disk, no hashing). Side by side in one run, round robin:
//   zstd: node:zlib's zstd (the handle deploy's decode worker drives), libzstd driven directly
//         through koffi (Debian's libzstd1, ZSTD_decompressStream_simpleArgs), the zstd CLI;
//   gzip: node:zlib's gunzip, ISA-L's igzip through koffi (deploy's single-stream engine),
//         libdeflate on whole 4 MiB segments is not a stream decoder and is measured by the deploy
//         rows; the pigz and gzip CLIs.
// Prints MB/s of output (wall) and CPU seconds per GiB (the figure a loaded machine disturbs
// least); a first, untimed round checks every in-process engine's output against the others'
// (CRC-32 and length).
//
//   node bench/decode-ceilings.ts FILE.zst FILE.gz [--runs N]
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import zlib from 'node:zlib';
import { koffi } from '../src/sys/libc.ts';
import { syncZlib } from '../src/sys/zlib-handle.ts';
import { ISAL_FUNCTIONS, isalApi } from '../src/sys/isal-worker.ts';

const args = process.argv.slice(2);
const runsAt = args.indexOf('--runs');
const runs = runsAt >= 0 ? Number(args[runsAt + 1]) : 3;
const files = args.filter((a, i) => !a.startsWith('--') && (runsAt < 0 || i !== runsAt + 1));
const zstFile = files.find((f) => f.endsWith('.zst'));
const gzFile = files.find((f) => f.endsWith('.gz'));
if (zstFile === undefined && gzFile === undefined) {
  process.stderr.write('usage: node bench/decode-ceilings.ts FILE.zst FILE.gz [--runs N]\n');
  process.exit(2);
}

const OUT = Buffer.allocUnsafe(4 << 20);
/** the first round checks the output (CRC-32); the timed rounds after it do not hash */
let check = true;
const IN_CHUNK = 1 << 20;

/** Output bytes and their CRC-32 (so engines are compared on the same result). */
interface Decoded { bytes: number; crc: number }

function nodeZlib(kind: 'zstd' | 'gzip', input: Buffer): Decoded {
  const d = syncZlib(kind === 'zstd' ? zlib.createZstdDecompress() : zlib.createGunzip());
  if (d === undefined) throw new Error("this Node's zlib lacks the handle deploy drives");
  let bytes = 0, crc = 0;
  for (let off = 0; off < input.length;) {
    const n = Math.min(IN_CHUNK, input.length - off);
    let inOff = off, inLen = n;
    for (;;) {
      if (!d.write(d.flushFlag, input, inOff, inLen, OUT, 0, OUT.length)) throw new Error(d.error!.message);
      const made = OUT.length - d.outLeft;
      if (check) crc = zlib.crc32(OUT.subarray(0, made), crc);
      bytes += made;
      inOff += inLen - d.inLeft;
      inLen = d.inLeft;
      if (d.outLeft > 0 && inLen === 0) break;
      if (d.outLeft > 0 && made === 0) break;
    }
    off += n;
  }
  d.close();
  return { bytes, crc };
}

type Fn = (...a: unknown[]) => unknown;
let zstdFns: { create: Fn; decompress: Fn; isError: Fn; free: Fn } | undefined;
function libzstd(input: Buffer): Decoded {
  if (zstdFns === undefined) {
    // RTLD_DEEPBIND: Node's own binary exports its bundled zstd (ZSTD_* symbols), which would
    // otherwise take the place of libzstd's internal calls (a DCtx of one version handed to the
    // other: 'Error (generic)' on the first call)
    const lib = koffi().load('libzstd.so.1', { deep: true });
    zstdFns = {
      create: lib.func('void *ZSTD_createDCtx()') as Fn,
      decompress: lib.func('size_t ZSTD_decompressStream_simpleArgs(void *dctx, void *dst, size_t dstCap, _Inout_ size_t *dstPos, const void *src, size_t srcSize, _Inout_ size_t *srcPos)') as Fn,
      isError: lib.func('unsigned int ZSTD_isError(size_t code)') as Fn,
      free: lib.func('size_t ZSTD_freeDCtx(void *dctx)') as Fn,
    };
  }
  const z = zstdFns;
  const dctx = z.create();
  const dstPos = [0], srcPos = [0];
  let bytes = 0, crc = 0;
  for (let off = 0; off < input.length;) {
    const n = Math.min(IN_CHUNK, input.length - off);
    const src = input.subarray(off, off + n);
    srcPos[0] = 0;
    while (srcPos[0] < n || dstPos[0] === OUT.length) {
      dstPos[0] = 0;
      const r = z.decompress(dctx, OUT, OUT.length, dstPos, src, n, srcPos) as number | bigint;
      if ((z.isError(r) as number) !== 0) throw new Error(`libzstd: error ${r}`);
      if (check) crc = zlib.crc32(OUT.subarray(0, dstPos[0]), crc);
      bytes += dstPos[0];
      if (dstPos[0] < OUT.length && srcPos[0] >= n) break;
    }
    off += n;
  }
  z.free(dctx);
  return { bytes, crc };
}

let isal: ReturnType<typeof isalApi> | undefined;
function igzip(input: Buffer): Decoded {
  if (isal === undefined) {
    const lib = koffi().load('libisal.so.2');
    isal = isalApi(koffi(), ISAL_FUNCTIONS.map((f) => lib.func(f)));
  }
  const g = isal.gunzip();
  let bytes = 0, crc = 0;
  for (let off = 0; off < input.length;) {
    const n = Math.min(IN_CHUNK, input.length - off);
    let inOff = off, inLen = n;
    for (;;) {
      const r = g.write(off + n === input.length, input, inOff, inLen, OUT, 0, OUT.length);
      if (r.error !== null) throw new Error(r.error.message);
      const made = OUT.length - r.outLeft;
      if (check) crc = zlib.crc32(OUT.subarray(0, made), crc);
      bytes += made;
      inOff += inLen - r.inLeft;
      inLen = r.inLeft;
      if (r.outLeft > 0) break;
    }
    off += n;
  }
  return { bytes, crc };
}

interface Row { name: string; wall: number[]; cpu: number[]; bytes: number; crc?: number }
const rows = new Map<string, Row>();
function note(name: string, wall: number, cpu: number, d: Decoded | { bytes: number }): void {
  if (check) {
    // the checking round: only the result is kept
    const r0 = rows.get(name) ?? { name, wall: [], cpu: [], bytes: d.bytes };
    if ('crc' in d) r0.crc = d.crc;
    rows.set(name, r0);
    return;
  }
  const r = rows.get(name) ?? { name, wall: [], cpu: [], bytes: d.bytes };
  r.wall.push(wall);
  r.cpu.push(cpu);
  if ('crc' in d) r.crc = d.crc;
  rows.set(name, r);
}

function inProcess(name: string, f: () => Decoded): void {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const d = f();
  const wall = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  note(name, wall, (c.user + c.system) / 1e6, d);
}

function cli(name: string, cmd: string, bytes: number): void {
  const r = spawnSync('bash', ['-c', `/usr/bin/time -f '%e %U %S' ${cmd} > /dev/null`], { encoding: 'utf8' });
  const m = /([\d.]+) ([\d.]+) ([\d.]+)\s*$/.exec(r.stderr);
  if (r.status !== 0 || m === null) throw new Error(`${cmd}: ${r.stderr}`);
  note(name, Number(m[1]), Number(m[2]) + Number(m[3]), { bytes });
}

const zst = zstFile !== undefined ? readFileSync(zstFile) : undefined;
const gz = gzFile !== undefined ? readFileSync(gzFile) : undefined;
const load0 = loadavg()[0];
for (let run = -1; run < runs; run++) {
  check = run < 0;
  const steps: (() => void)[] = [];
  if (zst !== undefined) {
    steps.push(() => inProcess('zstd: node:zlib', () => nodeZlib('zstd', zst)));
    steps.push(() => inProcess('zstd: libzstd (koffi)', () => libzstd(zst)));
    steps.push(() => cli('zstd: zstd -dc (CLI)', `zstd -dc ${JSON.stringify(zstFile)}`, rows.get('zstd: node:zlib')?.bytes ?? 0));
  }
  if (gz !== undefined) {
    steps.push(() => inProcess('gzip: node:zlib', () => nodeZlib('gzip', gz)));
    steps.push(() => inProcess('gzip: ISA-L igzip (koffi)', () => igzip(gz)));
    steps.push(() => cli('gzip: pigz -dc (CLI)', `pigz -dc ${JSON.stringify(gzFile)}`, rows.get('gzip: node:zlib')?.bytes ?? 0));
    steps.push(() => cli('gzip: gzip -dc (CLI)', `gzip -dc ${JSON.stringify(gzFile)}`, rows.get('gzip: node:zlib')?.bytes ?? 0));
  }
  // rotated each round, so no engine always runs first
  for (let i = 0; i < steps.length; i++) steps[(i + Math.max(run, 0)) % steps.length]();
}
const median = (a: number[]): number => [...a].sort((x, y) => x - y)[a.length >> 1];
process.stdout.write(`decode ceilings: ${runs} runs each, one thread, from memory; load average ${load0.toFixed(1)} -> ${loadavg()[0].toFixed(1)}\n`);
process.stdout.write('| decoder | MB/s (median, min-max) | CPU s/GiB | output |\n|---|---|---|---|\n');
let bad = false;
for (const r of rows.values()) {
  const mbs = r.wall.map((w) => r.bytes / w / 1e6);
  const ref = [...rows.values()].find((x) => x.name.split(':')[0] === r.name.split(':')[0] && x.crc !== undefined);
  const same = r.crc === undefined ? 'n/a (CLI)' : ref !== undefined && ref.crc === r.crc && ref.bytes === r.bytes ? 'same bytes' : 'DIFFERENT';
  if (same === 'DIFFERENT') bad = true;
  process.stdout.write(`| ${r.name} | ${median(mbs).toFixed(0)} (${Math.min(...mbs).toFixed(0)}-${Math.max(...mbs).toFixed(0)}) | ${(median(r.cpu) / (r.bytes / 2 ** 30)).toFixed(2)} | ${same} |\n`);
}
process.exit(bad ? 1 : 0);
