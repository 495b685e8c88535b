// `booty deploy`: write an image from a URL to a disk, from any Linux shell (the agent runs the
// same library function as PID 1). Flags in, deploy() called, progress drawn, one result line out;
// failures are thrown as BootyError and printed by main.ts with the stage's exit code.
import { LIBDEFLATE } from '../sys/libdeflate.ts';
import { ISAL } from '../sys/isal.ts';
import { BootyError, isBootyError } from '../util/errors.ts';
import { createLogger, stderrSink } from '../util/log.ts';
import { deploy, type DeployP2p } from '../image/deploy.ts';
import { metainfoUrlFor, RACK_NAME } from '../p2p/metainfo-url.ts';
import { loadP2p } from '../p2p/load.ts';
import { createProgressPrinter, formatBytes, formatRate, type ProgressSnapshot } from '../image/progress.ts';
import { openReporter, type Reporter } from './report-option.ts';
import { applyTrustOption } from '../net/tls-pin.ts';
import { parseArgsOrExplain, parseHeaders, parseWorkers } from './args.ts';
import { parseDuration } from '../util/duration.ts';

const FORMATS = ['auto', 'gzip', 'zstd', 'xz', 'bzip2', 'qcow2', 'raw'] as const;

const HELP = `usage: booty deploy --image URL --disk DEV [options]
       booty deploy --rootfs URL --disk DEV [--layout FILE] (a rootfs tarball: see booty deploy --rootfs x --help)

Streams an image (gzip, zstd, xz, bzip2, qcow2 or raw, told apart by its first bytes) from URL onto DEV (a
whole disk or a regular file), checks it, fdatasyncs, and re-reads the partition table. The disk's
first MiB is written last, only after the image verified: a failed deploy never boots.

options:
  --image URL          http(s) URL, file:// URL or absolute path of the image, or oci://REGISTRY/REPO:TAG
                       (or @sha256:...) for a disk image kept as an OCI artifact
  --disk DEV           target block device (e.g. /dev/sda) or regular file
  --sha256 HEX         expected sha256 of the image as served (what sha256sum prints on the server)
  --require-checksum   refuse an image whose sha256 is unknown (no --sha256, no X-Image-Sha256)
  --registry-auth U:P  credentials for an oci:// image's registry (also BOOTY_REGISTRY_AUTH)
  --format F           auto (default), gzip, zstd, xz, bzip2, qcow2 or raw. Images in formats booty
                       recognizes but does not decode (vmdk, vhd, lz4, zip, tar, iso, a qcow2 with a
                       backing file or encryption...) are refused before the first write; raw writes
                       any bytes as they are served
  --image-size N       uncompressed size in bytes (checked against the disk before writing)
  --allow-partition    accept a partition as DEV
  --no-skip-zeros      write zero runs as data instead of BLKZEROOUT / hole punching
  --flush-every MIB    flush the disk in the background every MIB MiB written (default 32; 0: only
                       at the end), so that a page cache beneath the disk (a loop device, a VM disk
                       with a writeback cache) writes out while booty decodes; stops by itself
                       where flushes return at once (nothing buffered beneath)
  --stall-timeout T    a connection with no byte for T is dropped and resumed (default 30s)
  --retry-for T        keep reconnecting for T without progress, then fail (default 10m)
  --workers N          threads decompressing frames in parallel when the image's frames say their
                       length (images booty captured; zstd frames with a content size); other
                       images decode as one stream on one worker thread; default: cores - 1 on
                       4+ cores, else one stream on a worker thread (one core too); 0: one
                       stream on the main thread (node:zlib). A gzip image with an index:
                       threads inflating its segments (default: one per core; below 2 the
                       index is not used)
  --gzip-index URL     access-point index of a gzip image (booty index writes one; booty server
                       builds and announces one for every pigz image it hosts: the default)
  --no-gzip-index      ignore any index: inflate the gzip image as one stream
  --no-libdeflate      inflate with node:zlib alone (default: libdeflate, about twice as fast,
                       where libdeflate.so.0 loads; also BOOTY_LIBDEFLATE=0)
  --no-isal            inflate a gzip image read as one stream with node:zlib (default: ISA-L's
                       igzip on the decode worker, about 1.2x, where libisal.so.2 loads; also
                       BOOTY_ISAL=0)
  --restart-on-change  if the image changes on the server mid-deploy, start over from byte 0
                       (default: fail, naming the change)
  --p2p                fetch the image from the peers of this machine's rack (BitTorrent; the image
                       must be on a booty server started with --p2p: its metainfo is
                       /image-torrent/<name>); the origin is read only when the swarm stalls
  --p2p-metainfo URL   the image's metainfo elsewhere (implies --p2p)
  --p2p-rack NAME      the rack (tracker announce scope; default auto: this machine's subnet)
  --p2p-stall-timeout T  no piece for T: the rest comes from the origin by HTTP Range (default 20s)
  --p2p-linger T       keep serving peers for T after the deploy (default 0)
  --p2p-port N         TCP port peers connect to (default: any free one)
  --header 'K: V'      extra request header (repeatable)
  --report URL         post progress and the result to a booty server
  --mac MAC            machine identity for --report
  --token TOKEN        bearer token for --report, and for the image's metainfo with --p2p (this
                       machine's credential, or an operator token)
  --ca PIN|URL         trust only this server: sha256:<hex> of its certificate (booty server prints
                       it), or an https URL of CA certificates fetched over the pinned connection
                       (repeatable); plain http is then refused
  -q, --quiet          no progress display
  -h, --help

durations (T): a number of seconds, or with a unit: 500ms, 30s, 10m, 1h.

A dropped, reset or stalled connection is resumed where it broke off (Range + If-Range: ETag):
the bytes already received are neither downloaded nor written again.

exit status: 0 only when the image was fully written, fdatasynced and verified;
  2 config, 3 preflight, 4 fetch, 5 decompress, 6 verify, 7 write (see the printed message).`;

export async function run(argv: string[]): Promise<number> {
  // a rootfs tarball is its own pipeline (partition, mkfs, extract, boot loader)
  if (argv.some((a) => a === '--rootfs' || a.startsWith('--rootfs='))) return (await import('./deploy-rootfs.ts')).runRootfs(argv);
  const { values } = parseArgsOrExplain({
    args: argv,
    options: {
      image: { type: 'string' }, disk: { type: 'string' }, sha256: { type: 'string' }, 'require-checksum': { type: 'boolean' }, 'registry-auth': { type: 'string' },
      format: { type: 'string', default: 'auto' }, 'image-size': { type: 'string' },
      'allow-partition': { type: 'boolean' }, 'no-skip-zeros': { type: 'boolean' }, 'flush-every': { type: 'string' },
      'stall-timeout': { type: 'string' }, workers: { type: 'string' }, 'retry-for': { type: 'string' }, 'restart-on-change': { type: 'boolean' },
      'gzip-index': { type: 'string' }, 'no-gzip-index': { type: 'boolean' }, 'no-libdeflate': { type: 'boolean' }, 'no-isal': { type: 'boolean' },
      p2p: { type: 'boolean' }, 'p2p-metainfo': { type: 'string' }, 'p2p-rack': { type: 'string' }, 'p2p-stall-timeout': { type: 'string' },
      'p2p-linger': { type: 'string' }, 'p2p-port': { type: 'string' },
      header: { type: 'string', multiple: true }, report: { type: 'string' }, mac: { type: 'string' },
      token: { type: 'string' }, ca: { type: 'string', multiple: true }, quiet: { type: 'boolean', short: 'q' }, help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  }, 'deploy');
  if (values.help) { process.stdout.write(HELP + '\n'); return 0; }
  if (values['no-libdeflate'] === true) LIBDEFLATE.disable();
  if (values['no-isal'] === true) ISAL.disable();
  const config = (message: string) => new BootyError({ stage: 'config', code: 'BAD_ARGUMENT', message, diskState: 'untouched', hint: 'see booty deploy --help' });
  if (values.image === undefined) throw config('--image is required');
  const flushMiB = values['flush-every'];
  if (flushMiB !== undefined && !/^\d+$/.test(flushMiB)) throw config(`--flush-every takes a whole number of MiB (0 for only the final flush), not "${flushMiB}"`);
  const flushEvery = flushMiB === undefined ? undefined : Number(flushMiB) * 2 ** 20;
  if (values.disk === undefined) throw config('--disk is required');
  const format = FORMATS.find((f) => f === values.format);
  if (format === undefined) throw config(`--format must be ${FORMATS.join(', ')}, not ${values.format}`);
  let imageSize: number | undefined;
  if (values['image-size'] !== undefined) {
    imageSize = Number(values['image-size']);
    if (!Number.isSafeInteger(imageSize) || imageSize <= 0) throw config(`--image-size must be a positive byte count, not ${values['image-size']}`);
  }
  const workers = parseWorkers(values.workers, config);
  const headers = parseHeaders(values.header ?? [], config);
  try { await applyTrustOption(values.ca); } catch (e) { throw config((e as Error).message); }
  const duration = (flag: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined;
    const ms = parseDuration(v);
    if (ms === undefined || ms <= 0) throw config(`--${flag} must be a duration like 30s, 10m or 45 (seconds), not ${JSON.stringify(v)}`);
    return ms;
  };
  const stallTimeoutMs = duration('stall-timeout', values['stall-timeout']);
  const retryForMs = duration('retry-for', values['retry-for']);
  let p2p: DeployP2p | undefined;
  if (values.p2p === true || values['p2p-metainfo'] !== undefined) {
    const metainfoUrl = values['p2p-metainfo'] ?? metainfoUrlFor(values.image);
    if (metainfoUrl === undefined) throw config(`--p2p: ${values.image} is not an image of a booty server (.../images/<name>); give its metainfo with --p2p-metainfo URL`);
    const port = values['p2p-port'] === undefined ? undefined : Number(values['p2p-port']);
    if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) throw config(`--p2p-port must be a TCP port, not ${values['p2p-port']}`);
    if (values['p2p-rack'] !== undefined && !RACK_NAME.test(values['p2p-rack'])) throw config('--p2p-rack must be 1-64 of A-Z a-z 0-9 . _ - (or auto)');
    p2p = {
      metainfoUrl, rack: values['p2p-rack'], port, stallTimeoutMs: duration('p2p-stall-timeout', values['p2p-stall-timeout']),
      lingerMs: duration('p2p-linger', values['p2p-linger']),
      metainfoHeaders: values.token !== undefined ? { ...headers, authorization: `Bearer ${values.token}` } : undefined,
    };
  }

  const log = createLogger({ sinks: [stderrSink('booty')] });
  const printer = values.quiet ? undefined : createProgressPrinter({ prefix: 'booty deploy: ' });
  let reporter: Reporter | undefined;
  if (values.report !== undefined) {
    reporter = openReporter({ server: values.report, mac: values.mac, token: values.token, log, action: 'deploy' });
    reporter.phase('preflight', `${values.image} -> ${values.disk}`);
  }
  let last: ProgressSnapshot | undefined;
  try {
    let writing = false;
    const result = await deploy({
      image: values.image, disk: values.disk, sha256: values.sha256, requireChecksum: values['require-checksum'], registryAuth: registryAuthOf(values['registry-auth'] ?? process.env.BOOTY_REGISTRY_AUTH, config), format, imageSize, headers, log,
      allowPartition: values['allow-partition'], skipZeros: !values['no-skip-zeros'], ...(flushEvery === undefined ? {} : { flushEvery }),
      stallTimeoutMs, retryForMs, workers, restartOnChange: values['restart-on-change'] === true,
      gzipIndex: values['no-gzip-index'] === true ? false : values['gzip-index'],
      ...(p2p === undefined ? {} : { p2p }),
      onProgress: (p) => {
        if (!writing) { writing = true; reporter?.phase('writing'); }
        last = p;
        printer?.update(p);
        reporter?.progress('writing', p);
      },
    });
    printer?.done({ bytes: result.bytesWritten, wireBytes: result.wireBytes, rate: result.bytesWritten / result.seconds, elapsed: result.seconds });
    const faults = result.resumes > 0 || result.restarts > 0 ? `; ${result.resumes} resumes after network faults${result.restarts > 0 ? `, ${result.restarts} restarts from byte 0 (the image changed)` : ''}` : '';
    process.stdout.write(`booty deploy: OK: ${result.bytesWritten} bytes (${formatBytes(result.bytesWritten)}, ${result.format}) written to ${values.disk} in ${result.seconds.toFixed(1)} s (${formatRate(result.bytesWritten / result.seconds)}), fdatasynced; sha256 ${result.sha256}${faults}${result.unverified !== undefined ? `; ${result.unverified}` : ''}\n`);
    reporter?.result({ ok: true, bytes: result.bytesWritten, seconds: result.seconds, sha256: result.sha256, resumes: result.resumes, restarts: result.restarts,
      ...(result.unverified !== undefined ? { warning: result.unverified } : {}) });
    // --p2p-linger: this machine goes on serving its rack's peers a while
    if (p2p?.lingerMs !== undefined) await (await loadP2p()).swarmsLingering();
    return 0;
  } catch (e) {
    if (last !== undefined && last.bytes > 0) printer?.done(last);
    if (isBootyError(e)) reporter?.result({ ok: false, code: e.code, message: e.describe('booty deploy'), diskState: e.diskState });
    throw e;
  } finally {
    await reporter?.close();
  }
}

/** --registry-auth USER:PASSWORD (the password may hold colons). */
function registryAuthOf(v: string | undefined, bad: (m: string) => Error): { username: string; password: string } | undefined {
  if (v === undefined || v === '') return undefined;
  const i = v.indexOf(':');
  if (i <= 0) throw bad('--registry-auth must look like USER:PASSWORD');
  return { username: v.slice(0, i), password: v.slice(i + 1) };
}
