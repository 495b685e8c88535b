// `booty build-initramfs`: builds dist/initramfs/booty.cpio.zst and dist/initramfs/vmlinuz from
// the pinned inputs (initramfs/inputs.json) and prints what went in.
import path from 'node:path';
import { parseArgs } from 'node:util';
import { BootyError } from '../util/errors.ts';
import { type Compression, defaultLevel } from '../build/compress.ts';
import { buildInitramfs, findRepoRoot, mb } from '../build/initramfs.ts';
import { readPins, updatedPins, writePins } from '../build/pins.ts';

const help = `usage: booty build-initramfs [options]

Builds the booty initramfs (node as /init running the booty agent, busybox, lvm2, e2fsprogs,
xfsprogs, util-linux, kernel modules) and the matching kernel from pinned Debian 12 packages
(initramfs/inputs.json) and the pinned Node runtime. Needs apt-get, dpkg-deb, depmod and strip
(scripts/host-deps.sh installs them). Downloads are cached in .cache/initramfs/.

options:
  --out DIR             output directory (default: dist/initramfs)
  --compression KIND    zstd (default), gzip, lz4 (unpacks fastest under QEMU's TCG; legacy
                        format, Debian's lz4 program) or none
  --level N             compression level (default: 22 for zstd, window 16 MiB; 9 for gzip and lz4)
  --bundle FILE.cjs     pack this CommonJS bundle (made by 'scripts/bundle.mjs FILE.cjs') as
                        /usr/lib/booty/booty.cjs instead of building dist/booty.cjs
  --cache DIR           download and unpack cache (default: .cache/initramfs)
  --update-pins         rewrite initramfs/inputs.json to the versions apt offers now, then exit
  -h, --help            this text

Entries get the mtime SOURCE_DATE_EPOCH (default 0): the same inputs give the same bytes.`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      out: { type: 'string' }, compression: { type: 'string', default: 'zstd' }, level: { type: 'string' },
      bundle: { type: 'string' }, cache: { type: 'string' }, 'update-pins': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) { process.stdout.write(help + '\n'); return 0; }
  const root = findRepoRoot();
  const say = (l: string) => process.stdout.write(`build-initramfs: ${l}\n`);
  const pinsFile = path.join(root, 'initramfs', 'inputs.json');

  if (values['update-pins']) {
    const old = await readPins(pinsFile);
    const next = await updatedPins(old);
    await writePins(pinsFile, next);
    const changes = [`kernel ${old.kernel.package} ${old.kernel.version} -> ${next.kernel.package} ${next.kernel.version}`];
    for (const [n, v] of Object.entries(next.packages)) if (old.packages[n] !== v) changes.push(`${n} ${old.packages[n]} -> ${v}`);
    say(`updated ${path.relative(process.cwd(), pinsFile)}:`);
    for (const c of changes) say(`  ${c}`);
    return 0;
  }

  const compression = values.compression as Compression;
  if (!['zstd', 'gzip', 'lz4', 'none'].includes(compression)) {
    throw new BootyError({ stage: 'config', code: 'bad-option', message: `--compression must be zstd, gzip, lz4 or none, not '${values.compression}'` });
  }
  const level = values.level === undefined ? defaultLevel(compression) : Number(values.level);
  if (!Number.isInteger(level)) throw new BootyError({ stage: 'config', code: 'bad-option', message: `--level must be an integer, not '${values.level}'` });
  if (values.bundle !== undefined && !values.bundle.endsWith('.cjs')) {
    throw new BootyError({
      stage: 'config', code: 'bad-option',
      message: `--bundle must be the CommonJS bundle that /init loads (a .cjs file), not '${values.bundle}'`,
      hint: "make it with 'scripts/bundle.mjs FILE.cjs'",
    });
  }
  const epoch = process.env.SOURCE_DATE_EPOCH;
  const mtime = epoch === undefined || epoch === '' ? 0 : Number(epoch);
  if (!Number.isInteger(mtime) || mtime < 0) throw new BootyError({ stage: 'config', code: 'bad-option', message: `SOURCE_DATE_EPOCH must be a number of seconds, not '${epoch}'` });

  const r = await buildInitramfs({
    root,
    outDir: path.resolve(values.out ?? path.join(root, 'dist', 'initramfs')),
    cacheDir: path.resolve(values.cache ?? path.join(root, '.cache', 'initramfs')),
    compression, level, mtime,
    bundle: values.bundle === undefined ? undefined : path.resolve(values.bundle),
    log: say,
  });
  say(`contents (uncompressed, by part):`);
  for (const b of r.breakdown) say(`  ${b.part.padEnd(8)} ${mb(b.bytes).padStart(9)}  ${String(b.files).padStart(5)} files`);
  say(`  ${'total'.padEnd(8)} ${mb(r.rawBytes).padStart(9)}  (cpio, with headers)`);
  say(`${path.relative(process.cwd(), r.archive)}: ${mb(r.bytes)} (${compression}), sha256 ${r.sha256}`);
  say(`${path.relative(process.cwd(), r.kernel)}: Linux ${r.kernelRelease}`);
  say(`${path.relative(process.cwd(), r.manifest)}: every file and where it came from`);
  say(`done in ${r.seconds.toFixed(1)} s`);
  return 0;
}
