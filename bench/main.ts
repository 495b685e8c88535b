// `npm run bench`: booty's deploy and capture side by side with the tools an operator would use
// instead, and with the machine's own limits, on the same image, server and loop device, in one
// run. Rows run interleaved (round robin, rotated each round) so drifting machine load spreads
// over all of them. Prints a table and ratios to stdout, writes JSON under bench/out/.
//
// One block per image (bench/lib/image.ts: sparse, dense, debian), and every deploy row once per
// origin (bench/lib/origins.ts: booty server, nginx; the OCI rows from Debian's docker-registry,
// bench/lib/registry-origin.ts, started only when one of them is selected).
//
// Environment: BENCH_SIZE (4G; 512M for a quick run; the debian image is always 2 GiB),
// BENCH_IMAGES (comma list of sparse, dense, debian, rootfs; default all; rootfs is the rootfs
// tarball block, bench/lib/rootfs-block.ts, rows "rootfs-*"), BENCH_RUNS (3), BENCH_ONLY
// (comma list of row ids or id prefixes, e.g. "deploy,limit-dd"; deploy rows are
// "<id>@booty" / "<id>@nginx", the OCI rows "<id>@registry"), BENCH_VERIFY (last | all | none),
// BENCH_SERVER (auto | own), BENCH_BOOTY_DEPLOY_ARGS / BENCH_BOOTY_CAPTURE_ARGS (extra flags for
// booty's rows, e.g. a worker count).
import { linkSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { debianImage, ensureCompressed, ensureImage, imageDir, parseSize, sizeLabel, type ImageKind, type Manifest } from './lib/image.ts';
import { originOf, perOrigin, selects, type OriginUrls } from './lib/origins.ts';
import { startRegistryOrigin, type RegistryOrigin } from './lib/registry-origin.ts';
import { nginxBinary, startNginx, type NginxOrigin } from './vm/nginx-origin.ts';
import { ensureTestImage } from '../test/helpers/test-image.ts';
import { attachTarget, detachTarget, deviceQueueInfo, dirty, hashDevice, TAIL_BYTES } from './lib/device.ts';
import type { Target } from './lib/device.ts';
import { measure } from './lib/measure.ts';
import { rows as allRows } from './lib/peers.ts';
import type { Context, Row } from './lib/peers.ts';
import { ratios, stats, table } from './lib/report.ts';
import type { RowResult, RunRecord } from './lib/report.ts';
import { keepNextUpload, lastUpload, startBenchServer, stopServers, tryBootyServer, waitForGzipIndex } from './lib/servers.ts';
import { imageBytes, sha256OfDecompressed } from './lib/verify-upload.ts';
import { killInFlight, must, q, run } from './lib/shell.ts';
import { benchRootfs, rootfsRows } from './lib/rootfs-block.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const cacheDir = join(root, '.cache/bench');
const log = (s: string) => process.stderr.write(s + '\n');

const sizeBytes = parseSize(process.env.BENCH_SIZE ?? '4G');
const runs = Math.max(1, Number(process.env.BENCH_RUNS ?? '3') | 0);
const verifyMode = process.env.BENCH_VERIFY ?? 'last';
const only = (process.env.BENCH_ONLY ?? '').split(',').map((s) => s.trim()).filter(Boolean);
const expanded = perOrigin(allRows);
const rows = expanded.filter((r) => selects(only, r.id));
const imageKinds = (process.env.BENCH_IMAGES ?? 'sparse,dense,debian,rootfs').split(',').map((s) => s.trim()).filter(Boolean) as Array<ImageKind | 'rootfs'>;
// a block runs when BENCH_ONLY selects some of its rows
const rootfsSelected = rootfsRows.some((r) => selects(only, r.id));

// Whatever happens, leave no loop device, server or pipeline behind.
let target: Target | null = null;
let nginx: NginxOrigin | null = null;
let registry: RegistryOrigin | null = null;
process.on('exit', () => {
  killInFlight();
  stopServers();
  nginx?.kill();
  void registry?.close(); // its SIGTERM is sent before the first await
  if (target !== null) {
    spawnSync('losetup', ['-d', target.dev]);
    rmSync(target.file, { force: true });
  }
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => process.exit(130));

async function buildBootyGo(): Promise<string> {
  const out = join(cacheDir, 'bootygo');
  // Debian's go, stdlib only; caches under .cache so a fresh machine (as root) needs no $HOME setup.
  const env = { ...process.env, GOCACHE: join(cacheDir, 'go-cache'), GOPATH: join(cacheDir, 'go-path'), GOFLAGS: '', GO111MODULE: 'on', CGO_ENABLED: '0' };
  await must(`go build -o ${q(out)} .`, { cwd: join(root, 'bench/peers/booty-go'), env });
  return out;
}

async function dropCaches(): Promise<void> {
  await run('sync; echo 3 > /proc/sys/vm/drop_caches');
}

function rotate<T>(xs: T[], by: number): T[] {
  const k = xs.length ? by % xs.length : 0;
  return [...xs.slice(k), ...xs.slice(0, k)];
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    log('bench: needs root (loop devices, O_DIRECT on them, drop_caches)');
    return 2;
  }
  for (const tool of ['pigz', 'zstd', 'curl', 'go', 'losetup', 'mkfs.ext4', '/usr/bin/time']) {
    if ((await run(`command -v ${tool}`)).code !== 0) {
      log(`bench: '${tool}' is missing; run scripts/host-deps.sh`);
      return 2;
    }
  }
  mkdirSync(cacheDir, { recursive: true });
  const started = new Date();
  const load0 = loadavg();
  const bootygo = await buildBootyGo();
  // booty's rows run the esbuild bundle, the form the initramfs ships (a checkout's bin/booty runs
  // the TypeScript sources through Node's type stripping, which costs ~20-25 MiB of RSS more)
  const bundle = join(cacheDir, 'booty.mjs');
  await must(`${q(process.execPath)} ${q(join(root, 'scripts/bundle.mjs'))} ${q(bundle)}`);
  const blocks: object[] = [];
  let bad = false;
  process.stdout.write(`booty bench, ${started.toISOString()}: ${cpus().length} CPUs, load average ${load0.map((x) => x.toFixed(2)).join(' ')} at start; images: ${imageKinds.join(', ')}\n\n`);
  for (const kind of imageKinds) {
    if (!['sparse', 'dense', 'debian', 'rootfs'].includes(kind)) throw new Error(`bench: BENCH_IMAGES: unknown image '${kind}' (sparse, dense, debian, rootfs)`);
    if (kind === 'rootfs') {
      if (!rootfsSelected) continue;
      const r = await benchRootfs({ root, node: process.execPath, bundle, cacheDir, runs, only, log, dropCaches, setTarget: (t) => { target = t; } });
      process.stdout.write(r.text + '\n\n');
      blocks.push(r.block);
      bad ||= r.bad;
      continue;
    }
    if (rows.length === 0) continue;
    const r = await benchImage(kind, bootygo, bundle);
    blocks.push(r.block);
    bad ||= r.bad;
  }
  const outDir = join(root, 'bench/out');
  mkdirSync(outDir, { recursive: true });
  const json = { started: started.toISOString(), finished: new Date().toISOString(), cpus: cpus().length, runs, blocks };
  const file = join(outDir, `bench-${sizeLabel(sizeBytes)}-${started.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify(json, null, 2) + '\n');
  writeFileSync(join(outDir, 'latest.json'), JSON.stringify(json, null, 2) + '\n');
  log(`bench: wrote ${file}`);
  return bad ? 1 : 0;
}

/** One image's block: its servers, its loop device, every selected row on it, its table. */
async function benchImage(kind: ImageKind, bootygo: string, bundle: string): Promise<{ block: object; bad: boolean }> {
  const load0 = loadavg();
  let image: Manifest = kind === 'debian' ? await debianImage(cacheDir, await ensureTestImage('plain')) : await ensureImage(cacheDir, sizeBytes, log, kind);
  const wants = (suffix: string) => rows.some((r) => r.id.endsWith(suffix));
  if (wants('xz')) image = await ensureCompressed(cacheDir, image, 'xz', log);
  if (wants('bz2') || wants('lbzip2')) image = await ensureCompressed(cacheDir, image, 'bzip2', log);
  if (wants('qcow2')) image = await ensureCompressed(cacheDir, image, 'qcow2', log);

  // Images served under DATA/images/ (hard links to the cached files), as `booty server` expects.
  const sizeDir = image.dir ?? imageDir(cacheDir, image.sizeBytes, kind);
  const dataDir = join(sizeDir, 'data');
  mkdirSync(join(dataDir, 'images'), { recursive: true });
  const gzName = 'bench.img.gz';
  const zstName = 'bench.img.zst';
  const extraImages: Array<[string, string]> = [];
  if (image.xz) extraImages.push(['bench.img.xz', image.xz.file]);
  if (image.bzip2) extraImages.push(['bench.img.bz2', image.bzip2.file]);
  if (image.qcow2) extraImages.push(['bench.img.qcow2', image.qcow2.file]);
  for (const [name, file] of [[gzName, image.gzip.file], [zstName, image.zstd.file], ...extraImages] as const) {
    const link = join(dataDir, 'images', name);
    rmSync(link, { force: true });
    linkSync(file, link);
  }
  const benchServer = await startBenchServer(root, process.execPath, dataDir);
  let imageServer = benchServer;
  if ((process.env.BENCH_SERVER ?? 'auto') !== 'own') {
    const booty = await tryBootyServer(root, dataDir, `/images/${gzName}`, image.gzip.file, (why) => log(`bench: not using booty server for images: ${why}; using bench/bench-server.ts`));
    if (booty !== null) imageServer = booty;
  }
  // booty server indexes gzip images in the background (once per image version; kept in DATA)
  let gzipIndex = 'none (images served by bench/bench-server.ts)';
  if (imageServer !== benchServer) {
    const t0 = performance.now();
    log('bench: waiting for booty server to index the gzip image');
    gzipIndex = await waitForGzipIndex(imageServer.base, gzName);
    gzipIndex += ` (waited ${((performance.now() - t0) / 1000).toFixed(1)} s)`;
    log(`bench: gzip index: ${gzipIndex}`);
  }

  // the same files from Debian's nginx on loopback (bench/vm/nginx-origin.ts)
  nginx = nginxBinary() === undefined ? null : await startNginx({ serve: join(dataDir, 'images') });
  if (nginx === null) log('bench: nginx is missing (scripts/host-deps.sh): its rows are n/a');
  const urls = (base: string): OriginUrls => ({
    gzUrl: `${base}/images/${gzName}`, zstUrl: `${base}/images/${zstName}`,
    ...(image.xz ? { xzUrl: `${base}/images/bench.img.xz` } : {}),
    ...(image.bzip2 ? { bz2Url: `${base}/images/bench.img.bz2` } : {}),
  });
  // the OCI rows' registry, with this image pushed (bench/lib/registry-origin.ts)
  const wantsRegistry = rows.some((r) => originOf(r.id) === 'registry');
  registry = wantsRegistry ? await startRegistryOrigin({ imageDir: sizeDir, image, repo: `bench/${kind}`, tag: sizeLabel(image.sizeBytes), log }) : null;
  if (wantsRegistry && registry === null) log('bench: docker-registry is missing (scripts/host-deps.sh): the OCI rows are n/a');
  const nginxUrls = nginx === null ? undefined : {
    gzUrl: `${nginx.url}/${gzName}`, zstUrl: `${nginx.url}/${zstName}`,
    ...(image.xz ? { xzUrl: `${nginx.url}/bench.img.xz` } : {}),
    ...(image.bzip2 ? { bz2Url: `${nginx.url}/bench.img.bz2` } : {}),
  };

  target = await attachTarget(join(sizeDir, 'target.img'), image.sizeBytes + TAIL_BYTES);
  const ctx: Context = {
    root,
    node: process.execPath,
    bootygo,
    bundle,
    image,
    target,
    gzUrl: `${imageServer.base}/images/${gzName}`,
    zstUrl: `${imageServer.base}/images/${zstName}`,
    ...(image.xz ? { xzUrl: `${imageServer.base}/images/bench.img.xz` } : {}),
    ...(image.bzip2 ? { bz2Url: `${imageServer.base}/images/bench.img.bz2` } : {}),
    ...(image.qcow2 ? { qcow2Url: `${imageServer.base}/images/bench.img.qcow2` } : {}),
    sink: benchServer.base,
    origins: { booty: urls(imageServer.base), nginx: nginxUrls, registry: registry?.urls },
  };
  const queue = deviceQueueInfo(target);
  const what = kind === 'debian' ? 'the Debian 12 test image (scripts/build-test-image.sh: MBR, /boot + ext4 root)'
    : `ext4, ${image.fillPercent}% used`;
  const header = [
    `== IMAGE ${kind}: ${sizeLabel(image.sizeBytes)} ${what}, ${image.zeroBlockPercent.toFixed(0)}% zero 4 KiB blocks; ` +
      `gzip -6 (pigz) ${(image.gzip.bytes / 1e6).toFixed(0)} MB, zstd -3 ${(image.zstd.bytes / 1e6).toFixed(0)} MB`,
    `load average ${loadavg().map((x) => x.toFixed(2)).join(' ')} at the start of this block`,
    `target: ${target.dev} over a ${sizeLabel(image.sizeBytes)} + 16 MiB file on ${root}'s disk ` +
      `(write_zeroes_max_bytes ${queue.write_zeroes_max_bytes}, discard_max_bytes ${queue.discard_max_bytes}); ` +
      `deploy rows start from a disk filled with 0xA5`,
    `servers: deploy rows from ${imageServer.kind} (${imageServer.base}) [booty server] and from ${nginx === null ? 'no nginx (missing)' : `Debian's nginx (${nginx.url})`} [nginx]; uploads to the null sink of bench/bench-server.ts; ` +
      (wantsRegistry ? `OCI rows from ${registry === null ? 'no docker-registry (missing)' : `Debian's docker-registry (http://${registry.host}, storage ${registry.dir}, image ${registry.push})`} [docker-registry]; ` : '') +
      `${runs} run(s) per row, interleaved; page cache dropped before each run; MB/s = 10^6 uncompressed bytes per second`,
    `gzip access-point index of the gzip image (booty server builds it once per image): ${gzipIndex}`,
  ];
  log(`bench: ${header[1]}; target ${target.dev}; images from ${imageServer.base}`);

  const results = new Map<string, RowResult>(rows.map((r) => [r.id, { id: r.id, section: r.section, label: r.label, booty: r.booty, bytes: r.bytes(ctx), runs: [] }]));
  const keptFile = join(sizeDir, 'upload.kept');
  let deviceSha = '';

  async function runOne(row: Row, n: number): Promise<void> {
    const res = results.get(row.id)!;
    const cmd = row.command(ctx);
    if (typeof cmd !== 'string') {
      res.na = cmd.na;
      return;
    }
    const verifying = verifyMode === 'all' || (verifyMode === 'last' && n === runs - 1);
    if (row.dirty) await dirty(ctx.target);
    await dropCaches();
    const warm = row.warm(ctx);
    if (warm.length) await must(`cat ${warm.map(q).join(' ')} > /dev/null`);
    const before = row.verify === 'upload' ? (await lastUpload(ctx.sink))?.seq ?? 0 : 0;
    if (verifying && row.verify === 'upload') await keepNextUpload(ctx.sink, keptFile);
    const s = await measure(cmd, root);
    const rec: RunRecord = { run: n + 1, ok: s.code === 0, wallS: s.wallS, userS: s.userS, sysS: s.sysS, maxRssKiB: s.maxRssKiB, machineBusyS: s.machineBusyS, machineCpus: s.machineCpus };
    if (!rec.ok) rec.error = `exit ${s.code}: ${(s.stderr.trim() || s.stdout.trim()).slice(-300)}`;
    if (row.verify === 'upload') {
      const up = await lastUpload(ctx.sink);
      if (up !== null && up.seq > before) rec.outputBytes = up.bytes;
      else if (rec.ok) {
        rec.ok = false;
        rec.error = 'exited 0 but uploaded nothing';
      }
      if (verifying && rec.ok && up !== null) {
        try {
          const d = await sha256OfDecompressed(imageBytes(up));
          rec.verified = d.sha256 === deviceSha;
          if (!rec.verified) rec.verifyNote = `decompressed ${d.bytes} bytes (${d.format}), sha256 ${d.sha256.slice(0, 12)}… != device ${deviceSha.slice(0, 12)}…`;
        } catch (e) {
          rec.verified = false;
          rec.verifyNote = e instanceof Error ? e.message : String(e);
        }
        rmSync(keptFile, { force: true });
      }
    } else if (verifying && rec.ok && row.verify === 'device') {
      const got = await hashDevice(ctx.target, image.sizeBytes);
      rec.verified = got === image.raw.sha256;
      if (!rec.verified) rec.verifyNote = `device sha256 ${got.slice(0, 12)}… != image ${image.raw.sha256.slice(0, 12)}…`;
    }
    res.runs.push(rec);
    const mbps = res.bytes / 1e6 / rec.wallS;
    log(
      `  [${n + 1}/${runs}] ${row.label.padEnd(50)} ` +
        (rec.ok ? `${rec.wallS.toFixed(2)} s  ${mbps.toFixed(0)} MB/s  cpu ${(rec.userS + rec.sysS).toFixed(1)} s  rss ${(rec.maxRssKiB / 1024).toFixed(0)} MiB  machine ${(100 * s.machineBusyS / (rec.wallS * s.machineCpus)).toFixed(0)}% busy` : `FAILED ${rec.error}`) +
        (rec.verified === undefined ? '' : rec.verified ? '  verified' : `  VERIFY FAILED: ${rec.verifyNote}`),
    );
  }

  const writers = rows.filter((r) => r.section !== 'capture');
  const readers = rows.filter((r) => r.section === 'capture');
  for (let n = 0; n < runs && writers.length; n++) {
    log(`bench: deploy and limit rows, round ${n + 1}/${runs}`);
    for (const row of rotate(writers, n)) await runOne(row, n);
  }
  if (readers.length) {
    // Capture reads the disk as a deploy left it: the image, then the rest of the disk.
    log('bench: writing the image to the device for the capture rows');
    await dirty(ctx.target);
    await must(`dd if=${q(image.raw.file)} of=${q(ctx.target.dev)} bs=4M oflag=direct conv=fsync status=none`);
    deviceSha = await hashDevice(ctx.target, ctx.target.bytes);
    for (let n = 0; n < runs; n++) {
      log(`bench: capture rows, round ${n + 1}/${runs}`);
      for (const row of rotate(readers, n)) await runOne(row, n);
    }
  }

  const load1 = loadavg();
  const list = rows.map((r) => results.get(r.id)!);
  const text = [
    ...header,
    `load average at the end of this block ${load1.map((x) => x.toFixed(2)).join(' ')} (the machine is shared: figures are noisy)`,
    table(list, rows),
  ].join('\n');
  process.stdout.write(text + '\n\n');

  // this image's servers and loop device go; the next block starts its own
  await nginx?.close();
  nginx = null;
  const registryInfo = registry === null ? null : { host: registry.host, dir: registry.dir, push: registry.push, refs: { gzip: registry.urls.oci?.gzip.ref, zstd: registry.urls.oci?.zstd.ref } };
  await registry?.close();
  registry = null;
  stopServers();
  await detachTarget(target);
  target = null;

  const block = {
    kind,
    loadavg: { start: load0, end: load1 },
    image: { ...image, sizeLabel: sizeLabel(image.sizeBytes) },
    target: { dev: ctx.target.dev, bytes: ctx.target.bytes, queue },
    imageServer: imageServer.kind,
    nginx: nginxUrls !== undefined,
    registry: registryInfo,
    rows: list.map((r) => ({ ...r, stats: stats(r) })),
    ratios: ratios(list, rows),
  };
  const bad = list.some((r) => r.runs.some((x) => x.verified === false));
  return { block, bad };
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    log(err instanceof Error ? err.message : String(err));
    process.exit(1);
  },
);
