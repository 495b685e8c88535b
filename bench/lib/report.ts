// Turns the samples of every row into the printed table, the ratios of booty's rows to the others,
// and the JSON written under bench/out/.
import type { RowKey, Section } from './peers.ts';
import { comparedWith } from './peers.ts';

export type RunRecord = {
  run: number;
  ok: boolean;
  wallS: number;
  userS: number;
  sysS: number;
  maxRssKiB: number;
  /** the whole machine's busy CPU seconds during the run (measure.ts) */
  machineBusyS?: number;
  machineCpus?: number;
  error?: string;
  outputBytes?: number; // capture: bytes uploaded
  verified?: boolean;
  verifyNote?: string;
};

export type RowResult = {
  id: string;
  section: Section;
  label: string;
  booty: boolean;
  bytes: number;
  na?: string;
  runs: RunRecord[];
};

export type Stats = {
  mbps: { min: number; median: number; max: number } | null;
  cpuS: number | null; // median over runs, user + sys of the whole pipeline
  cpuSPerGiB: number | null;
  peakRssMiB: number | null; // max over runs
  /** median busy CPU seconds of the whole machine per GiB: the pipeline plus what no process of it
   *  is charged for (kernel threads, softirqs, the origin) */
  machineCpuSPerGiB: number | null;
  /** median share of all CPUs busy during the run */
  machineBusy: number | null;
  /** MB/s this row would reach with every CPU busy doing the same work per byte */
  cpuCeilingMBps: number | null;
  outputBytes: number | null; // median, capture only
  verified: 'yes' | 'NO' | '-' | 'n/a';
  failed: number;
};

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function stats(r: RowResult): Stats {
  const ok = r.runs.filter((x) => x.ok);
  const mbps = ok.map((x) => r.bytes / 1e6 / x.wallS);
  const checked = r.runs.filter((x) => x.verified !== undefined);
  const cpu = ok.map((x) => x.userS + x.sysS);
  const outs = ok.map((x) => x.outputBytes).filter((x): x is number => x !== undefined);
  const machine = ok.filter((x) => x.machineBusyS !== undefined && x.machineCpus !== undefined && x.machineCpus > 0);
  const machinePerGiB = machine.length ? median(machine.map((x) => x.machineBusyS!)) / (r.bytes / 2 ** 30) : null;
  const cpus = machine[0]?.machineCpus ?? 0;
  return {
    mbps: mbps.length ? { min: Math.min(...mbps), median: median(mbps), max: Math.max(...mbps) } : null,
    cpuS: cpu.length ? median(cpu) : null,
    cpuSPerGiB: cpu.length ? median(cpu) / (r.bytes / 2 ** 30) : null,
    peakRssMiB: ok.length ? Math.max(...ok.map((x) => x.maxRssKiB)) / 1024 : null,
    outputBytes: outs.length ? median(outs) : null,
    machineCpuSPerGiB: machinePerGiB,
    machineBusy: machine.length ? median(machine.map((x) => x.machineBusyS! / (x.wallS * x.machineCpus!))) : null,
    cpuCeilingMBps: machinePerGiB !== null && machinePerGiB > 0 ? (cpus / machinePerGiB) * (2 ** 30 / 1e6) : null,
    verified: r.na !== undefined ? 'n/a' : checked.length === 0 ? '-' : checked.every((x) => x.verified) ? 'yes' : 'NO',
    failed: r.runs.length - ok.length,
  };
}

export type Ratio = { booty: string; other: string; ratio: number };

export function ratios(results: RowResult[], rows: RowKey[]): Ratio[] {
  const byId = new Map(results.map((r) => [r.id, r]));
  const out: Ratio[] = [];
  for (const row of rows.filter((r) => r.booty)) {
    const b = byId.get(row.id);
    const bm = b ? stats(b).mbps : null;
    if (!b || !bm) continue;
    for (const other of comparedWith(row, rows)) {
      const o = byId.get(other.id);
      const om = o ? stats(o).mbps : null;
      if (o && om) out.push({ booty: b.id, other: o.id, ratio: bm.median / om.median });
    }
  }
  return out;
}

const TITLES: Record<Section, string> = {
  deploy: 'DEPLOY (HTTP > decompress > device, fsynced)',
  limit: 'MACHINE LIMITS (measured the same way)',
  capture: 'CAPTURE (device > compress > HTTP upload)',
  rootfs: 'ROOTFS (partition, mkfs.ext4, HTTP > zstd > tar extraction, unmount, fsync; MB/s of tar stream)',
};

const f0 = (x: number | null | undefined) => (x === null || x === undefined ? '-' : x >= 100 ? x.toFixed(0) : x.toFixed(1));
const f1 = (x: number | null | undefined) => (x === null || x === undefined ? '-' : x.toFixed(1));

export function table(results: RowResult[], rows: RowKey[]): string {
  const labelW = Math.max(...results.map((r) => r.label.length)) + 2;
  const lines: string[] = [];
  const head = `${''.padEnd(labelW)}${'MB/s min'.padStart(9)}${'median'.padStart(8)}${'max'.padStart(8)}${'CPU s'.padStart(8)}${'CPU s/GiB'.padStart(10)}${'RSS MiB'.padStart(9)}${'out MB'.padStart(8)}${'machine s/GiB'.padStart(14)}${'busy'.padStart(6)}${'ceiling'.padStart(9)}  verified`;
  for (const section of ['deploy', 'limit', 'capture', 'rootfs'] as Section[]) {
    const rs = results.filter((r) => r.section === section);
    if (rs.length === 0) continue;
    lines.push('', TITLES[section], head);
    for (const r of rs) {
      const s = stats(r);
      let line = r.label.padEnd(labelW);
      if (r.na !== undefined) {
        line += `n/a (${r.na})`;
      } else if (s.mbps === null) {
        line += `failed: ${(r.runs.find((x) => !x.ok)?.error ?? '').split('\n')[0]}`;
      } else {
        line += f0(s.mbps.min).padStart(9) + f0(s.mbps.median).padStart(8) + f0(s.mbps.max).padStart(8);
        line += f1(s.cpuS).padStart(8) + f1(s.cpuSPerGiB).padStart(10) + f0(s.peakRssMiB).padStart(9);
        line += (s.outputBytes === null ? '-' : f0(s.outputBytes / 1e6)).padStart(8);
        line += f1(s.machineCpuSPerGiB).padStart(14) + (s.machineBusy === null ? '-' : `${(s.machineBusy * 100).toFixed(0)}%`).padStart(6) + f0(s.cpuCeilingMBps).padStart(9);
        line += `  ${s.verified}`;
        if (s.failed) line += `  (${s.failed} run(s) failed)`;
      }
      lines.push(line);
    }
  }
  lines.push('', 'machine s/GiB: busy CPU seconds of the whole machine per GiB (the row\'s processes, kernel threads such as the loop',
    'device\'s worker, softirqs, the origin server); busy: of all CPUs during the run; ceiling: MB/s with every CPU busy on the same work');
  const rs = ratios(results, rows);
  const label = new Map(results.map((r) => [r.id, r.label]));
  if (rs.length) {
    lines.push('', 'RATIOS (booty median MB/s / other median MB/s; > 1.00x: booty is faster)');
    let current = '';
    for (const r of rs) {
      if (r.booty !== current) {
        current = r.booty;
        lines.push(`${label.get(r.booty)}`);
      }
      lines.push(`  ${`vs ${label.get(r.other)}`.padEnd(labelW + 2)}${r.ratio.toFixed(2).padStart(6)}x`);
    }
  } else {
    lines.push('', 'RATIOS: none yet (no booty row ran)');
  }
  return lines.join('\n');
}
