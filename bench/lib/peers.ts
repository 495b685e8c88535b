// Every row of the bench: what it runs, on how many uncompressed bytes, what state the device must
// be in first, and how its result is checked. Peers are what an operator would use instead of
// booty; limits are the machine's own ceilings measured the same way.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { q } from './shell.ts';
import type { Manifest } from './image.ts';
import type { Target } from './device.ts';
import { baseId, originOf, type OciBlob, type OriginUrls } from './origins.ts';

export type Section = 'deploy' | 'limit' | 'capture' | 'rootfs';

/** What the report needs of a row (the rootfs block's rows have their own command type). */
export type RowKey = Pick<Row, 'id' | 'section' | 'booty'>;

export type Context = {
  root: string;
  node: string;
  bootygo: string;
  /** booty's esbuild bundle (what the initramfs runs), built at the start of the run */
  bundle: string;
  image: Manifest;
  target: Target;
  gzUrl: string; // the gzip image on the image server
  zstUrl: string;
  /** the xz / bzip2 image, when a selected row needs it */
  xzUrl?: string;
  bz2Url?: string;
  /** the qcow2 image (qemu-img convert -c), when a qcow2 row is selected */
  qcow2Url?: string;
  /** the registry origin's blobs of the gzip and zstd image (registry-origin.ts): set only in the
   *  commands of rows run from that origin */
  oci?: { gzip: OciBlob; zstd: OciBlob };
  sink: string; // base URL of the upload sink
  /** each origin's URLs of the images (deploy rows run once per origin: origins.ts) */
  origins: Record<string, OriginUrls | undefined>;
};

export type Row = {
  id: string;
  section: Section;
  label: string;
  booty: boolean;
  /** The pipeline to run, or a reason it cannot run in this checkout. */
  command: (c: Context) => string | { na: string };
  /** Uncompressed bytes that go through it (the MB/s numerator). */
  bytes: (c: Context) => number;
  /** Fill the device with a pattern first (deploys: the disk must end bit-exact anyway). */
  dirty: boolean;
  /** Files read once before the timed run, so they come from the page cache. */
  warm: (c: Context) => string[];
  verify: 'device' | 'upload' | 'none';
  /** deploy rows: the origins (slugs, origins.ts) it runs from; default every origin not opt-in */
  origins?: string[];
};

const DD_OUT = 'bs=4M oflag=direct iflag=fullblock conv=fsync status=none';
const DD_IN = 'bs=4M iflag=direct status=none';

const img = (c: Context) => c.image.sizeBytes;
const disk = (c: Context) => c.target.bytes;
const gz = (c: Context) => [c.image.gzip.file];
const zst = (c: Context) => [c.image.zstd.file];
const nothing = () => [];

function bootyCli(c: Context, sub: string): string | null {
  return existsSync(join(c.root, `src/cli/${sub}.ts`)) ? `${q(c.node)} ${q(c.bundle)}` : null;
}

/** booty's CLI when its subcommand has `flag` (older checkouts lack some), else why not. */
function bootyWithFlag(c: Context, sub: 'deploy' | 'capture', flag: string): string | { na: string } {
  const b = bootyCli(c, sub);
  if (b === null) return { na: `src/cli/${sub}.ts missing` };
  if (!readFileSync(join(c.root, `src/cli/${sub}.ts`), 'utf8').includes(`'${flag}'`)) return { na: `booty ${sub} has no --${flag}` };
  return b;
}

/** booty's deploy of the gzip or zstd image with only the final flush (background-flush.ts):
 *  the default's side-by-side peer. */
function noFlushRow(format: 'gzip' | 'zstd'): Row {
  return {
    id: `deploy-booty-${format}-noflush`, section: 'deploy', label: `booty deploy (${format}, --flush-every 0)`, booty: true,
    command: (c) => {
      const b = bootyWithFlag(c, 'deploy', 'flush-every');
      if (typeof b !== 'string') return b;
      return `${b} deploy --image ${q(format === 'gzip' ? c.gzUrl : c.zstUrl)} --disk ${q(c.target.dev)} --flush-every 0${extra('BENCH_BOOTY_DEPLOY_ARGS')}`;
    },
    bytes: img, dirty: true, warm: format === 'gzip' ? gz : zst, verify: 'device',
  };
}

/** The image as operators keep it in an OCI registry (registry-origin.ts): `curl -L` of the
 *  layer's blob URL piped to the decompressor, and booty deploying the `oci+http://` reference
 *  (manifest, layer, then the same blob, checked against its digest). Run from the registry only. */
function ociRows(format: 'gzip' | 'zstd'): Row[] {
  const tool = format === 'gzip' ? 'pigz -dc' : 'zstd -dc';
  const warm = (c: Context) => (c.oci === undefined ? [] : [c.oci[format].file]);
  return [
    {
      id: `deploy-oci-${format}`, section: 'deploy', label: `curl -L BLOB | ${tool} | dd oflag=direct`, booty: false, origins: ['registry'],
      command: (c) => c.oci === undefined ? { na: 'no registry origin' } : `curl -sSfL ${q(c.oci[format].url)} | ${tool} | dd of=${q(c.target.dev)} ${DD_OUT}`,
      bytes: img, dirty: true, warm, verify: 'device',
    },
    {
      id: `deploy-booty-oci-${format}`, section: 'deploy', label: `booty deploy (oci+http://, ${format})`, booty: true, origins: ['registry'],
      command: (c) => {
        if (c.oci === undefined) return { na: 'no registry origin' };
        const b = bootyCli(c, 'deploy');
        return b === null ? { na: 'src/cli/deploy.ts missing' } : `${b} deploy --image ${q(c.oci[format].ref)} --disk ${q(c.target.dev)}${extra('BENCH_BOOTY_DEPLOY_ARGS')}`;
      },
      bytes: img, dirty: true, warm, verify: 'device',
    },
  ];
}

/** Extra arguments for booty's own rows (e.g. a worker count), from the environment. */
function extra(name: string): string {
  return process.env[name] ? ` ${process.env[name]}` : '';
}

export const rows: Row[] = [
  // ---- deploy: HTTP -> decompress -> device, fsynced
  {
    id: 'deploy-pigz', section: 'deploy', label: 'curl | pigz -dc | dd oflag=direct', booty: false,
    command: (c) => `curl -sSf ${q(c.gzUrl)} | pigz -dc | dd of=${q(c.target.dev)} ${DD_OUT}`,
    bytes: img, dirty: true, warm: gz, verify: 'device',
  },
  {
    id: 'deploy-zstd', section: 'deploy', label: 'curl | zstd -dc | dd oflag=direct', booty: false,
    command: (c) => `curl -sSf ${q(c.zstUrl)} | zstd -dc | dd of=${q(c.target.dev)} ${DD_OUT}`,
    bytes: img, dirty: true, warm: zst, verify: 'device',
  },
  {
    id: 'deploy-bootygo', section: 'deploy', label: "BOOTy's Go path (GET > gzip.NewReader > io.Copy)", booty: false,
    command: (c) => `${q(c.bootygo)} deploy ${q(c.gzUrl)} ${q(c.target.dev)}`,
    bytes: img, dirty: true, warm: gz, verify: 'device',
  },
  {
    id: 'deploy-booty-gzip', section: 'deploy', label: 'booty deploy (gzip)', booty: true,
    command: (c) => {
      const b = bootyCli(c, 'deploy');
      return b === null ? { na: 'src/cli/deploy.ts missing' } : `${b} deploy --image ${q(c.gzUrl)} --disk ${q(c.target.dev)}${extra('BENCH_BOOTY_DEPLOY_ARGS')}`;
    },
    bytes: img, dirty: true, warm: gz, verify: 'device',
  },
  {
    // The same image inflated as one stream (on one worker thread), without the server's gzip
    // index: shows what the index gains (the row above uses it when booty server serves images).
    id: 'deploy-booty-gzip-noindex', section: 'deploy', label: 'booty deploy (gzip, --no-gzip-index)', booty: true,
    command: (c) => {
      const b = bootyWithFlag(c, 'deploy', 'no-gzip-index');
      if (typeof b !== 'string') return b;
      return `${b} deploy --image ${q(c.gzUrl)} --disk ${q(c.target.dev)} --no-gzip-index${extra('BENCH_BOOTY_DEPLOY_ARGS')}`;
    },
    bytes: img, dirty: true, warm: gz, verify: 'device',
  },
  {
    // The row above with node:zlib instead of ISA-L's igzip on the decode worker (src/sys/isal.ts)
    id: 'deploy-booty-gzip-noindex-noisal', section: 'deploy', label: 'booty deploy (gzip, --no-gzip-index --no-isal)', booty: true,
    command: (c) => {
      const b = bootyWithFlag(c, 'deploy', 'no-isal');
      if (typeof b !== 'string') return b;
      return `${b} deploy --image ${q(c.gzUrl)} --disk ${q(c.target.dev)} --no-gzip-index --no-isal${extra('BENCH_BOOTY_DEPLOY_ARGS')}`;
    },
    bytes: img, dirty: true, warm: gz, verify: 'device',
  },
  {
    // The same without writing zero runs as write-zeroes: shows what zero skipping gains.
    id: 'deploy-booty-gzip-noskip', section: 'deploy', label: 'booty deploy (gzip, --no-skip-zeros)', booty: true,
    command: (c) => {
      const b = bootyWithFlag(c, 'deploy', 'no-skip-zeros');
      if (typeof b !== 'string') return b;
      return `${b} deploy --image ${q(c.gzUrl)} --disk ${q(c.target.dev)} --no-skip-zeros${extra('BENCH_BOOTY_DEPLOY_ARGS')}`;
    },
    bytes: img, dirty: true, warm: gz, verify: 'device',
  },
  {
    // The first row without libdeflate (node:zlib's inflate in the same segment workers): shows
    // what libdeflate gains (src/sys/libdeflate.ts)
    id: 'deploy-booty-gzip-zlib', section: 'deploy', label: 'booty deploy (gzip, --no-libdeflate)', booty: true,
    command: (c) => {
      const b = bootyWithFlag(c, 'deploy', 'no-libdeflate');
      if (typeof b !== 'string') return b;
      return `${b} deploy --image ${q(c.gzUrl)} --disk ${q(c.target.dev)} --no-libdeflate${extra('BENCH_BOOTY_DEPLOY_ARGS')}`;
    },
    bytes: img, dirty: true, warm: gz, verify: 'device',
  },
  {
    id: 'deploy-booty-zstd', section: 'deploy', label: 'booty deploy (zstd)', booty: true,
    command: (c) => {
      const b = bootyCli(c, 'deploy');
      return b === null ? { na: 'src/cli/deploy.ts missing' } : `${b} deploy --image ${q(c.zstUrl)} --disk ${q(c.target.dev)}${extra('BENCH_BOOTY_DEPLOY_ARGS')}`;
    },
    bytes: img, dirty: true, warm: zst, verify: 'device',
  },
  noFlushRow('gzip'),
  noFlushRow('zstd'),
  // ---- from an OCI registry (the same blobs for curl and booty)
  ...ociRows('zstd'),
  ...ociRows('gzip'),
  // ---- xz and bzip2 (the image made once by xz -T2 -6 and lbzip2 -9)
  {
    id: 'deploy-xz', section: 'deploy', label: 'curl | xz -dc -T2 | dd oflag=direct', booty: false,
    command: (c) => c.xzUrl === undefined ? { na: 'no xz image' } : `curl -sSf ${q(c.xzUrl)} | xz -dc -T2 | dd of=${q(c.target.dev)} ${DD_OUT}`,
    bytes: img, dirty: true, warm: (c) => (c.image.xz ? [c.image.xz.file] : []), verify: 'device',
  },
  {
    id: 'deploy-pixz', section: 'deploy', label: 'curl | pixz -d -p 2 | dd oflag=direct', booty: false,
    command: (c) => c.xzUrl === undefined ? { na: 'no xz image' } : `command -v pixz >/dev/null || { echo 'pixz missing: scripts/host-deps.sh' >&2; exit 2; }; curl -sSf ${q(c.xzUrl)} | pixz -d -p 2 | dd of=${q(c.target.dev)} ${DD_OUT}`,
    bytes: img, dirty: true, warm: (c) => (c.image.xz ? [c.image.xz.file] : []), verify: 'device',
  },
  {
    id: 'deploy-booty-xz', section: 'deploy', label: 'booty deploy (xz)', booty: true,
    command: (c) => c.xzUrl === undefined ? { na: 'no xz image' } : `${q(c.node)} ${q(c.bundle)} deploy --image ${q(c.xzUrl)} --disk ${q(c.target.dev)}${extra('BENCH_BOOTY_DEPLOY_ARGS')}`,
    bytes: img, dirty: true, warm: (c) => (c.image.xz ? [c.image.xz.file] : []), verify: 'device',
  },
  {
    id: 'deploy-lbzip2', section: 'deploy', label: 'curl | lbzip2 -dc -n 2 | dd oflag=direct', booty: false,
    command: (c) => c.bz2Url === undefined ? { na: 'no bzip2 image' } : `curl -sSf ${q(c.bz2Url)} | lbzip2 -dc -n 2 | dd of=${q(c.target.dev)} ${DD_OUT}`,
    bytes: img, dirty: true, warm: (c) => (c.image.bzip2 ? [c.image.bzip2.file] : []), verify: 'device',
  },
  {
    id: 'deploy-booty-bz2', section: 'deploy', label: 'booty deploy (bzip2)', booty: true,
    command: (c) => c.bz2Url === undefined ? { na: 'no bzip2 image' } : `${q(c.node)} ${q(c.bundle)} deploy --image ${q(c.bz2Url)} --disk ${q(c.target.dev)}${extra('BENCH_BOOTY_DEPLOY_ARGS')}`,
    bytes: img, dirty: true, warm: (c) => (c.image.bzip2 ? [c.image.bzip2.file] : []), verify: 'device',
  },
  // ---- qcow2 (made once by qemu-img convert -c -O qcow2): what operators do today (IPA's way:
  // download to a file, then qemu-img convert onto the device), qemu-img reading the URL itself
  // (only with QEMU's curl block driver, Debian's qemu-block-extra), and booty
  {
    id: 'deploy-qemu-img-qcow2', section: 'deploy', label: 'curl -o FILE && qemu-img convert -O raw -n FILE DEV', booty: false,
    command: (c) => c.qcow2Url === undefined ? { na: 'no qcow2 image' }
      : `f=$(mktemp -p /var/tmp bench-qcow2.XXXXXX) && curl -sSf -o "$f" ${q(c.qcow2Url)} && qemu-img convert -f qcow2 -O raw -n -t none "$f" ${q(c.target.dev)}; rc=$?; rm -f "$f"; exit $rc`,
    bytes: img, dirty: true, warm: (c) => (c.image.qcow2 ? [c.image.qcow2.file] : []), verify: 'device',
  },
  {
    id: 'deploy-qemu-img-http-qcow2', section: 'deploy', label: 'qemu-img convert -O raw -n http://URL DEV (curl block driver)', booty: false,
    command: (c) => c.qcow2Url === undefined ? { na: 'no qcow2 image' }
      : !existsSync('/usr/lib/x86_64-linux-gnu/qemu/block-curl.so') ? { na: "QEMU's curl block driver is not installed (Debian package qemu-block-extra)" }
      : `qemu-img convert -f qcow2 -O raw -n -t none ${q(c.qcow2Url)} ${q(c.target.dev)}`,
    bytes: img, dirty: true, warm: (c) => (c.image.qcow2 ? [c.image.qcow2.file] : []), verify: 'device',
  },
  {
    id: 'deploy-booty-qcow2', section: 'deploy', label: 'booty deploy (qcow2)', booty: true,
    command: (c) => c.qcow2Url === undefined ? { na: 'no qcow2 image' } : `${q(c.node)} ${q(c.bundle)} deploy --image ${q(c.qcow2Url)} --disk ${q(c.target.dev)}${extra('BENCH_BOOTY_DEPLOY_ARGS')}`,
    bytes: img, dirty: true, warm: (c) => (c.image.qcow2 ? [c.image.qcow2.file] : []), verify: 'device',
  },
  {
    // qcow2 decoded alone: qemu-img into a sparse file in RAM (zero clusters become holes)
    id: 'limit-qcow2', section: 'limit', label: 'qemu-img convert -O raw FILE /dev/shm/FILE', booty: false,
    command: (c) => c.image.qcow2 === undefined ? { na: 'no qcow2 image' }
      : `f=$(mktemp -p /dev/shm bench-qcow2.XXXXXX) && qemu-img convert -f qcow2 -O raw ${q(c.image.qcow2.file)} "$f"; rc=$?; rm -f "$f"; exit $rc`,
    bytes: img, dirty: false, warm: (c) => (c.image.qcow2 ? [c.image.qcow2.file] : []), verify: 'none',
  },
  {
    id: 'limit-xz', section: 'limit', label: 'xz -dc -T2 > /dev/null', booty: false,
    command: (c) => c.image.xz === undefined ? { na: 'no xz image' } : `xz -dc -T2 ${q(c.image.xz.file)} > /dev/null`,
    bytes: img, dirty: false, warm: (c) => (c.image.xz ? [c.image.xz.file] : []), verify: 'none',
  },
  {
    id: 'limit-lbzip2', section: 'limit', label: 'lbzip2 -dc -n 2 > /dev/null', booty: false,
    command: (c) => c.image.bzip2 === undefined ? { na: 'no bzip2 image' } : `lbzip2 -dc -n 2 ${q(c.image.bzip2.file)} > /dev/null`,
    bytes: img, dirty: false, warm: (c) => (c.image.bzip2 ? [c.image.bzip2.file] : []), verify: 'none',
  },
  // ---- the machine's limits, measured the same way
  {
    id: 'limit-dd', section: 'limit', label: 'dd raw image > device (O_DIRECT 4 MiB)', booty: false,
    command: (c) => `dd if=${q(c.image.raw.file)} of=${q(c.target.dev)} ${DD_OUT}`,
    bytes: img, dirty: true, warm: (c) => [c.image.raw.file], verify: 'device',
  },
  {
    id: 'limit-pigz', section: 'limit', label: 'pigz -dc > /dev/null', booty: false,
    command: (c) => `pigz -dc ${q(c.image.gzip.file)} > /dev/null`,
    bytes: img, dirty: false, warm: gz, verify: 'none',
  },
  {
    id: 'limit-go-gunzip', section: 'limit', label: 'Go gzip.NewReader > io.Discard', booty: false,
    command: (c) => `${q(c.bootygo)} inflate ${q(c.image.gzip.file)} > /dev/null`,
    bytes: img, dirty: false, warm: gz, verify: 'none',
  },
  {
    id: 'limit-node-gunzip', section: 'limit', label: 'Node zlib gunzip, 1 MiB chunks', booty: false,
    command: (c) => `${q(c.node)} ${q(join(c.root, 'bench/peers/node-decompress.ts'))} gzip ${q(c.image.gzip.file)} > /dev/null`,
    bytes: img, dirty: false, warm: gz, verify: 'none',
  },
  {
    id: 'limit-zstd', section: 'limit', label: 'zstd -dc > /dev/null', booty: false,
    command: (c) => `zstd -dc ${q(c.image.zstd.file)} > /dev/null`,
    bytes: img, dirty: false, warm: zst, verify: 'none',
  },
  {
    id: 'limit-node-zstd', section: 'limit', label: 'Node zlib zstd, 1 MiB chunks', booty: false,
    command: (c) => `${q(c.node)} ${q(join(c.root, 'bench/peers/node-decompress.ts'))} zstd ${q(c.image.zstd.file)} > /dev/null`,
    bytes: img, dirty: false, warm: zst, verify: 'none',
  },
  // ---- capture: device -> compress -> HTTP upload (to the null sink)
  {
    id: 'capture-pigz6', section: 'capture', label: 'dd | pigz -6 | curl -T', booty: false,
    command: (c) => `dd if=${q(c.target.dev)} ${DD_IN} | pigz -6 | curl -sSf -o /dev/null -T - ${q(`${c.sink}/images/bench-pigz6.img.gz`)}`,
    bytes: disk, dirty: false, warm: nothing, verify: 'upload',
  },
  {
    id: 'capture-pigz1', section: 'capture', label: 'dd | pigz -1 -p2 | curl -T', booty: false,
    command: (c) => `dd if=${q(c.target.dev)} ${DD_IN} | pigz -1 -p2 | curl -sSf -o /dev/null -T - ${q(`${c.sink}/images/bench-pigz1.img.gz`)}`,
    bytes: disk, dirty: false, warm: nothing, verify: 'upload',
  },
  {
    id: 'capture-zstd', section: 'capture', label: 'dd | zstd -3 -T2 | curl -T', booty: false,
    command: (c) => `dd if=${q(c.target.dev)} ${DD_IN} | zstd -3 -T2 -q -c | curl -sSf -o /dev/null -T - ${q(`${c.sink}/images/bench-zstd.img.zst`)}`,
    bytes: disk, dirty: false, warm: nothing, verify: 'upload',
  },
  {
    id: 'capture-bootygo', section: 'capture', label: "BOOTy's Go path (read > gzip -6 > multipart POST)", booty: false,
    command: (c) => `${q(c.bootygo)} capture ${q(c.target.dev)} ${q(`${c.sink}/image`)}`,
    bytes: disk, dirty: false, warm: nothing, verify: 'upload',
  },
  {
    id: 'capture-booty-gzip', section: 'capture', label: 'booty capture (gzip)', booty: true,
    command: (c) => {
      const b = bootyCli(c, 'capture');
      return b === null ? { na: 'src/cli/capture.ts missing' } : `${b} capture --disk ${q(c.target.dev)} --upload ${q(`${c.sink}/images/bench-booty.img.gz`)} --format gzip${extra('BENCH_BOOTY_CAPTURE_ARGS')}`;
    },
    bytes: disk, dirty: false, warm: nothing, verify: 'upload',
  },
  {
    // gzip at level 1, for the comparison with `pigz -1 -p2` at equal or smaller output
    id: 'capture-booty-gzip1', section: 'capture', label: 'booty capture (gzip --level 1)', booty: true,
    command: (c) => {
      const b = bootyCli(c, 'capture');
      return b === null ? { na: 'src/cli/capture.ts missing' } : `${b} capture --disk ${q(c.target.dev)} --upload ${q(`${c.sink}/images/bench-booty1.img.gz`)} --format gzip --level 1${extra('BENCH_BOOTY_CAPTURE_ARGS')}`;
    },
    bytes: disk, dirty: false, warm: nothing, verify: 'upload',
  },
  {
    // gzip level 1 without ISA-L's igzip: libdeflate's level 1 (src/sys/isal.ts)
    id: 'capture-booty-gzip1-noisal', section: 'capture', label: 'booty capture (gzip --level 1, --no-isal)', booty: true,
    command: (c) => {
      const b = bootyWithFlag(c, 'capture', 'no-isal');
      if (typeof b !== 'string') return b;
      return `${b} capture --disk ${q(c.target.dev)} --upload ${q(`${c.sink}/images/bench-booty1-noisal.img.gz`)} --format gzip --level 1 --no-isal${extra('BENCH_BOOTY_CAPTURE_ARGS')}`;
    },
    bytes: disk, dirty: false, warm: nothing, verify: 'upload',
  },
  {
    // the two gzip rows above with node:zlib's deflate instead of libdeflate's
    id: 'capture-booty-gzip-zlib', section: 'capture', label: 'booty capture (gzip, --no-libdeflate)', booty: true,
    command: (c) => {
      const b = bootyWithFlag(c, 'capture', 'no-libdeflate');
      if (typeof b !== 'string') return b;
      return `${b} capture --disk ${q(c.target.dev)} --upload ${q(`${c.sink}/images/bench-booty-zlib.img.gz`)} --format gzip --no-libdeflate${extra('BENCH_BOOTY_CAPTURE_ARGS')}`;
    },
    bytes: disk, dirty: false, warm: nothing, verify: 'upload',
  },
  {
    id: 'capture-booty-gzip1-zlib', section: 'capture', label: 'booty capture (gzip --level 1, --no-libdeflate --no-isal)', booty: true,
    command: (c) => {
      const b = bootyWithFlag(c, 'capture', 'no-libdeflate');
      if (typeof b !== 'string') return b;
      return `${b} capture --disk ${q(c.target.dev)} --upload ${q(`${c.sink}/images/bench-booty1-zlib.img.gz`)} --format gzip --level 1 --no-libdeflate --no-isal${extra('BENCH_BOOTY_CAPTURE_ARGS')}`;
    },
    bytes: disk, dirty: false, warm: nothing, verify: 'upload',
  },
  {
    id: 'capture-booty-zstd', section: 'capture', label: 'booty capture (zstd)', booty: true,
    command: (c) => {
      const b = bootyCli(c, 'capture');
      return b === null ? { na: 'src/cli/capture.ts missing' } : `${b} capture --disk ${q(c.target.dev)} --upload ${q(`${c.sink}/images/bench-booty.img.zst`)} --format zstd${extra('BENCH_BOOTY_CAPTURE_ARGS')}`;
    },
    bytes: disk, dirty: false, warm: nothing, verify: 'upload',
  },
];

/** Which booty row is compared with which others (median MB/s over median MB/s). */
export function comparedWith<R extends RowKey>(row: R, all: R[]): R[] {
  // deploy rows: only with the peers fetching from the same origin (origins.ts)
  const id = baseId(row.id);
  const origin = originOf(row.id);
  const sameOrigin = (r: RowKey) => r.section !== 'deploy' || originOf(r.id) === origin;
  // rootfs rows (bench/lib/rootfs-block.ts): with the other rootfs rows of the same origin
  if (row.section === 'rootfs') return all.filter((r) => !r.booty && r.section === 'rootfs' && originOf(r.id) === origin);
  if (row.section === 'deploy' && id.endsWith('-qcow2')) {
    return all.filter((r) => !r.booty && sameOrigin(r) && (baseId(r.id).endsWith('-qcow2') || r.id === 'limit-dd'));
  }
  if (row.section === 'deploy' && /-oci-(gzip|zstd)$/.test(id)) {
    // the registry rows against curl of the same blob and the limits of the same format
    const own = id.endsWith('-zstd') ? ['deploy-oci-zstd', 'limit-zstd', 'limit-node-zstd'] : ['deploy-oci-gzip', 'limit-pigz', 'limit-go-gunzip', 'limit-node-gunzip'];
    return all.filter((r) => !r.booty && sameOrigin(r) && (own.includes(baseId(r.id)) || r.id === 'limit-dd'));
  }
  if (row.section === 'deploy' && (id.endsWith('-xz') || id.endsWith('-bz2'))) {
    // xz and bzip2 against their own peers and limits
    const own = id.endsWith('-xz') ? ['deploy-xz', 'deploy-pixz', 'limit-xz'] : ['deploy-lbzip2', 'limit-lbzip2'];
    return all.filter((r) => !r.booty && sameOrigin(r) && (own.includes(baseId(r.id)) || r.id === 'limit-dd'));
  }
  if (row.section === 'deploy') {
    const limits = id.endsWith('zstd') ? ['limit-zstd', 'limit-node-zstd'] : ['limit-pigz', 'limit-go-gunzip', 'limit-node-gunzip'];
    // the gzip and zstd deploy peers (not those of xz, bzip2, qcow2 or the registry, which have
    // their own rules above), and the limits of the row's own format plus the device's
    const otherFormat = (r: RowKey) => /-(xz|bz2|lbzip2|pixz|qcow2)$/.test(baseId(r.id)) || /-oci-/.test(baseId(r.id));
    return all.filter((r) => !r.booty && sameOrigin(r) && ((r.section === 'deploy' && !otherFormat(r)) || r.id === 'limit-dd' || limits.includes(r.id)));
  }
  if (row.section === 'capture') return all.filter((r) => !r.booty && r.section === 'capture');
  return [];
}
