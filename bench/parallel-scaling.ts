// Parallel capture and deploy, per worker count: MB/s, CPU seconds, peak RSS and output size of
// `booty capture --workers N` and `booty deploy --workers N` (N = 0: one stream on the main
// thread, 1, 2, ..., all cores), next to `pigz -6`, `pigz -1 -p2`, `zstd -3 -T2` on the same
// input, through the same `booty server` on loopback. booty runs as the shipped esbuild bundle.
//
// Usage (as root is not needed: the disk is a regular file):
//   node bench/parallel-scaling.ts [RAW_IMAGE] [--workers 0,1,2] [--runs 1] [--formats gzip,zstd]
// RAW_IMAGE defaults to the main bench's cached .cache/bench/512M/image.raw (run `BENCH_SIZE=512M
// npm run bench` once to build it). MB/s are 10^6 uncompressed bytes per second of wall time;
// the page cache is warm (the input is read once first): this measures the CPU side.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { workers: { type: 'string' }, runs: { type: 'string', default: '1' }, formats: { type: 'string', default: 'gzip,zstd' }, 'no-peers': { type: 'boolean' } },
});
const raw = resolve(positionals[0] ?? join(root, '.cache/bench/512M/image.raw'));
if (!existsSync(raw)) {
  process.stderr.write(`parallel-scaling: ${raw} missing (BENCH_SIZE=512M npm run bench builds it, or give a raw image)\n`);
  process.exit(2);
}
const cores = availableParallelism();
const workerCounts = values.workers !== undefined ? values.workers.split(',').map(Number) : [...new Set([0, 1, 2, cores])];
const runs = Math.max(1, Number(values.runs));
const formats = values.formats.split(',') as Array<'gzip' | 'zstd'>;
const size = statSync(raw).size;
const log = (s: string) => process.stderr.write(s + '\n');

const work = mkdtempSync(join(tmpdir(), 'booty-scaling-'));
// next to node_modules: the bundle loads koffi from there at run time
const bundle = join(root, 'dist', `parallel-scaling-${process.pid}.mjs`);
execFileSync(process.execPath, [join(root, 'scripts/bundle.mjs'), bundle], { stdio: 'ignore' });
const dataDir = join(work, 'data');
const server = spawn(process.execPath, [bundle, 'server', '--data', dataDir, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'ignore'] });
process.on('exit', () => { server.kill(); rmSync(work, { recursive: true, force: true }); rmSync(bundle, { force: true }); });
const url = await new Promise<string>((ok, fail) => {
  let out = '';
  server.stdout!.setEncoding('utf8').on('data', (s: string) => { out += s; const m = /listening on (http:\/\/\S+)/.exec(out); if (m) ok(m[1]); });
  server.once('exit', (c) => fail(new Error(`booty server exited (${c})`)));
});
const imagesDir = join(dataDir, 'images');

interface Measured { wall: number; cpu: number; rssMiB: number }
function timed(cmd: string): Measured {
  const r = spawnSync('/usr/bin/time', ['-f', 'TIME %e %U %S %M', 'sh', '-c', cmd], { encoding: 'utf8', maxBuffer: 1 << 24 });
  const m = /TIME ([\d.]+) ([\d.]+) ([\d.]+) (\d+)/.exec(r.stderr);
  if (r.status !== 0 || m === null) throw new Error(`failed (${r.status}): ${cmd}\n${r.stderr.slice(-2000)}`);
  return { wall: Number(m[1]), cpu: Number(m[2]) + Number(m[3]), rssMiB: Number(m[4]) / 1024 };
}
function best(cmd: string, before?: () => void): Measured {
  let b: Measured | undefined;
  for (let i = 0; i < runs; i++) {
    before?.();
    const m = timed(cmd);
    if (b === undefined || m.wall < b.wall) b = m;
  }
  return b!;
}
const node = `${process.execPath} ${bundle}`;
const rows: string[][] = [];
const row = (what: string, m: Measured, out?: number) => {
  rows.push([what, (size / 1e6 / m.wall).toFixed(0), m.cpu.toFixed(1), m.rssMiB.toFixed(0), out === undefined ? '' : (out / 1e6).toFixed(1)]);
  log(`  ${what}: ${(size / 1e6 / m.wall).toFixed(0)} MB/s, cpu ${m.cpu.toFixed(1)} s, rss ${m.rssMiB.toFixed(0)} MiB${out === undefined ? '' : `, ${(out / 1e6).toFixed(1)} MB`}`);
};

execFileSync('sh', ['-c', `cat '${raw}' > /dev/null`]);
log(`parallel-scaling: ${raw} (${(size / 1e6).toFixed(0)} MB), ${cores} cores, workers ${workerCounts.join(',')}, best of ${runs}`);

// ---- capture
if (!values['no-peers']) {
  for (const [name, cmd, ext] of [
    ['pigz -6 | curl -T', `pigz -6 -c '${raw}'`, 'gz'], ['pigz -1 -p2 | curl -T', `pigz -1 -p2 -c '${raw}'`, 'gz'], ['zstd -3 -T2 | curl -T', `zstd -q -3 -T2 -c '${raw}'`, 'zst'],
  ] as const) {
    const file = `peer-${name.split(' ')[0]}${name.includes('-1') ? '1' : ''}.${ext}`;
    const m = best(`${cmd} | curl -sSf -o /dev/null -T - '${url}/images/${file}?overwrite=1'`);
    row(`capture: ${name}`, m, statSync(join(imagesDir, file)).size);
  }
}
for (const f of formats) {
  for (const w of workerCounts) {
    const name = `cap-${f}-${w}.img`;
    const m = best(`${node} capture -q --disk '${raw}' --upload '${url}/images/${name}' --overwrite --format ${f} --workers ${w} > /dev/null`);
    row(`capture: booty ${f}, --workers ${w}`, m, statSync(join(imagesDir, name)).size);
  }
}

// ---- deploy of the image captured with the most workers (indexed), onto a regular file
const target = join(work, 'target.img');
const fresh = () => writeFileSync(target, '');
for (const f of formats) {
  const image = `${url}/images/cap-${f}-${Math.max(...workerCounts)}.img`;
  if (!values['no-peers']) {
    const m = best(`curl -sSf '${image}' | ${f === 'gzip' ? 'pigz -dc' : 'zstd -q -dc'} > '${target}' && sync '${target}'`, fresh);
    row(`deploy: curl | ${f === 'gzip' ? 'pigz' : 'zstd'} -dc > file (same image)`, m);
  }
  for (const w of workerCounts) {
    const m = best(`${node} deploy -q --image '${image}' --disk '${target}' --workers ${w} > /dev/null`, fresh);
    row(`deploy: booty ${f} (indexed), --workers ${w}`, m);
  }
}

const widths = [0, 1, 2, 3, 4].map((i) => Math.max(...[['row', 'MB/s', 'cpu s', 'RSS MiB', 'out MB'][i], ...rows.map((r) => r[i])].map((s) => s.length)));
const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
process.stdout.write([line(['row', 'MB/s', 'cpu s', 'RSS MiB', 'out MB']), ...rows.map(line)].join('\n') + '\n');
process.exit(0);
