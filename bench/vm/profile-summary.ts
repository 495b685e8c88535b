// Reading a boot profile (`npm run bench -- vm --profile`, src/agent/boot-profile.ts): where the
// agent's main thread spent its time, by bundle module and by function, and between each pair of
// consecutive console lines of the agent (so a slow phase names what ran in it). V8 stamps
// samples with the monotonic clock in microseconds, the agent's lines with the same clock in
// seconds since boot, so both line up.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { readCpio } from '../../src/build/cpio.ts';

interface CallFrame { functionName: string; url: string; lineNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; children?: number[] }
interface CpuProfile { nodes: ProfileNode[]; startTime: number; endTime: number; samples: number[]; timeDeltas: number[] }

/** The bundle (/usr/lib/booty/booty.cjs) inside an initramfs archive: gzip, zstd, lz4 (the
 *  legacy format the kernel reads, which booty's lz4 builds use, or the frame format) or none. */
export function bundleOfInitrd(initrd: string): string | undefined {
  const head = Buffer.alloc(4);
  const fd = fs.openSync(initrd, 'r');
  try { fs.readSync(fd, head, 0, 4, 0); } finally { fs.closeSync(fd); }
  const magic = head.readUInt32LE(0);
  const unpack = magic === 0x184c2102 || magic === 0x184d2204 ? ['lz4', '-dc'] : magic === 0xfd2fb528 ? ['zstd', '-dc'] : head[0] === 0x1f && head[1] === 0x8b ? ['gzip', '-dc'] : undefined;
  try {
    const cpio = unpack === undefined ? fs.readFileSync(initrd) : execFileSync(unpack[0], [...unpack.slice(1), initrd], { maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'ignore'] });
    return readCpio(cpio).find((e) => e.name === 'usr/lib/booty/booty.cjs')?.data.toString('latin1');
  } catch {
    return undefined;
  }
}

/** line (0-based) -> the bundle module it belongs to, from esbuild's `// src/...` markers. */
function moduleMap(bundle: string | undefined): (line: number) => string {
  if (bundle === undefined) return () => 'bundle';
  const starts: { line: number; name: string }[] = [];
  bundle.split('\n').forEach((l, i) => {
    const m = /^\s*\/\/ ((?:src|node_modules|scripts)\/\S+)$/.exec(l);
    if (m !== null) starts.push({ line: i, name: m[1] });
  });
  return (line) => {
    let lo = 0, hi = starts.length - 1, found = 'bundle (top)';
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid].line <= line) { found = starts[mid].name; lo = mid + 1; } else hi = mid - 1;
    }
    return found.replace(/^node_modules\/([^/]+)\/.*$/, 'node_modules/$1');
  };
}

function where(f: CallFrame, mod: (line: number) => string): string {
  if (f.url === '') return f.functionName === '' ? '(native)' : `(${f.functionName.replace(/^\((.*)\)$/, '$1')})`;
  if (f.url.endsWith('booty.cjs')) return mod(f.lineNumber);
  if (f.url.startsWith('node:')) return f.url;
  return f.url.split('/').slice(-2).join('/');
}

function top(m: Map<string, number>, n: number, total: number): string[] {
  return [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, v]) => `${(v / 1e6).toFixed(3).padStart(7)} s ${((100 * v) / total).toFixed(1).padStart(5)} %  ${k}`);
}

/** Lines of text: totals, self time by module and by function, and what ran between console lines. */
export function summarizeProfile(profileJson: string, bundle: string | undefined, consoleText: string): string[] {
  const p = JSON.parse(profileJson) as CpuProfile;
  const mod = moduleMap(bundle);
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const byModule = new Map<string, number>();
  const byFunction = new Map<string, number>();
  const add = (m: Map<string, number>, k: string, v: number) => m.set(k, (m.get(k) ?? 0) + v);
  const samples: { t: number; module: string; fn: string }[] = [];
  let t = p.startTime;
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    t += dt;
    const node = byId.get(p.samples[i]);
    if (node === undefined) continue;
    const m = where(node.callFrame, mod);
    const fn = `${node.callFrame.functionName || '(anonymous)'} [${m}:${node.callFrame.lineNumber + 1}]`;
    // the time until the next sample belongs to this one
    const span = p.timeDeltas[i + 1] ?? 0;
    total += span;
    add(byModule, m, span);
    if (m !== '(idle)') add(byFunction, fn, span);
    samples.push({ t, module: m, fn });
  }
  const idle = byModule.get('(idle)') ?? 0;
  const out = [`profile: ${(total / 1e6).toFixed(2)} s sampled from ${(p.startTime / 1e6).toFixed(3)} s to ${(p.endTime / 1e6).toFixed(3)} s since boot, main thread busy ${((total - idle) / 1e6).toFixed(2)} s`];
  out.push('self time by module:', ...top(byModule, 25, total).map((l) => `  ${l}`));
  out.push('self time by function (idle left out):', ...top(byFunction, 25, total).map((l) => `  ${l}`));
  // windows between the agent's own console lines
  const marks: { t: number; text: string }[] = [];
  for (const m of consoleText.matchAll(/^\[\s*(\d+\.\d+)\] booty: (.*?)\r?$/gm)) marks.push({ t: Number(m[1]) * 1e6, text: m[2].slice(0, 70) });
  out.push('between console lines (busy: not idle), the largest 3 modules of each window of 50 ms or more:');
  for (let i = 0; i + 1 < marks.length; i++) {
    const a = marks[i].t, b = marks[i + 1].t;
    if (b - a < 50_000) continue;
    const inside = new Map<string, number>();
    let busy = 0;
    for (let k = 0; k < samples.length; k++) {
      const s = samples[k];
      if (s.t < a || s.t >= b) continue;
      const span = (samples[k + 1]?.t ?? s.t) - s.t;
      if (s.module !== '(idle)') busy += span;
      add(inside, s.module, span);
    }
    const parts = [...inside.entries()].filter(([k]) => k !== '(idle)').sort((x, y) => y[1] - x[1]).slice(0, 3).map(([k, v]) => `${k} ${(v / 1e6).toFixed(2)}`);
    out.push(`  ${(a / 1e6).toFixed(3)} -> ${(b / 1e6).toFixed(3)} (${((b - a) / 1e6).toFixed(2)} s, busy ${(busy / 1e6).toFixed(2)}): after "${marks[i].text}": ${parts.join(', ')}`);
  }
  return out;
}
