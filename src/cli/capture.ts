// `booty capture`: read a disk, compress, stream it to a booty server (PUT + commit) or a BOOTy
// receiver (multipart POST). Flags in, capture() called, progress drawn, one result line out.
import { LIBDEFLATE } from '../sys/libdeflate.ts';
import { ISAL } from '../sys/isal.ts';
import { BootyError, isBootyError } from '../util/errors.ts';
import { createLogger, stderrSink } from '../util/log.ts';
import { capture } from '../image/capture.ts';
import { CAPTURE_FORMATS, type CaptureFormat } from '../config/action.ts';
import { createProgressPrinter, formatBytes, formatRate, type ProgressSnapshot } from '../image/progress.ts';
import { openReporter, type Reporter } from './report-option.ts';
import { applyTrustOption } from '../net/tls-pin.ts';
import { parseArgsOrExplain, parseHeaders, parseWorkers } from './args.ts';

const HELP = `usage: booty capture --disk DEV --upload URL [options]

Reads DEV (a whole disk or a regular file) front to back, compresses it and streams it to URL;
nothing is staged on local disk. The disk is only read. With --format tar, tar.gz or tar.zst it
archives the files instead: the OS root on DEV and what its fstab mounts from DEV (/boot, the
ESP, LVs), mounted read-only; a small root on a big disk gives a small tarball.

options:
  --disk DEV           block device (e.g. /dev/sda) or regular file to read
  --upload URL         booty server: http://server/images/<name> (PUT, then a commit the server
                       checks against the size and sha256 we sent); BOOTy receiver: its POST URL
  --format F           gzip (default), zstd or raw: the disk; tar, tar.gz or tar.zst: its files
                       (numeric owners, modes, hard links, devices, xattrs incl. capabilities)
  --level N            compression level (gzip 1-9, default 6; zstd 1-19, default 3); gzip
                       level 1 compresses with ISA-L's igzip where libisal.so.2 loads: about
                       2x libdeflate's level 1, output still smaller than gzip -1's
  --workers N          threads compressing 1-2 MiB blocks in parallel, each an independent
                       gzip member / zstd frame, followed by a frame index that booty deploy
                       uses to decompress in parallel (stock gunzip/pigz/zstd read the file
                       unchanged); default: one per core; 0: one stream, no index
  --no-libdeflate      compress with node:zlib alone (default: libdeflate, about twice as fast at
                       the same level and a little smaller, where libdeflate.so.0 loads; also
                       BOOTY_LIBDEFLATE=0)
  --no-isal            gzip level 1 without ISA-L (libdeflate's level 1; also BOOTY_ISAL=0)
  --protocol P         put (default, booty server) or multipart (BOOTy: form field BootyImage,
                       file <mac>.img or <mac>.zmg)
  --mac MAC            machine MAC (multipart file name, --report); default: first NIC
  --overwrite          replace an image of the same name on the server
  --allow-mounted      read the disk even while mounted (the copy may be inconsistent)
  --allow-partition    accept a partition as DEV
  --header 'K: V'      extra request header (repeatable), e.g. 'Authorization: Bearer T'
  --report URL         post progress and the result to a booty server
  --token TOKEN        bearer token for the upload and --report (a server started with --token)
  --ca PIN|URL         trust only this server: sha256:<hex> of its certificate (booty server prints
                       it), or an https URL of CA certificates fetched over the pinned connection
                       (repeatable); plain http is then refused
  -q, --quiet          no progress display
  -h, --help

exit status: 0 only when the server confirmed the stored image;
  2 config, 3 preflight, 8 read, 9 compress, 10 upload.`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgsOrExplain({
    args: argv,
    options: {
      disk: { type: 'string' }, upload: { type: 'string' }, format: { type: 'string', default: 'gzip' },
      level: { type: 'string' }, workers: { type: 'string' }, protocol: { type: 'string', default: 'put' }, mac: { type: 'string' },
      'allow-mounted': { type: 'boolean' }, 'no-libdeflate': { type: 'boolean' }, 'no-isal': { type: 'boolean' }, overwrite: { type: 'boolean' }, 'allow-partition': { type: 'boolean' },
      header: { type: 'string', multiple: true }, report: { type: 'string' }, token: { type: 'string' }, ca: { type: 'string', multiple: true },
      quiet: { type: 'boolean', short: 'q' }, help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  }, 'capture');
  if (values.help) { process.stdout.write(HELP + '\n'); return 0; }
  if (values['no-libdeflate'] === true) LIBDEFLATE.disable();
  if (values['no-isal'] === true) ISAL.disable();
  const config = (message: string) => new BootyError({ stage: 'config', code: 'BAD_ARGUMENT', message, diskState: 'intact', hint: 'see booty capture --help' });
  if (values.disk === undefined) throw config('--disk is required');
  if (values.upload === undefined) throw config('--upload is required');
  const format = values.format;
  if (!(CAPTURE_FORMATS as readonly string[]).includes(format)) throw config(`--format must be ${CAPTURE_FORMATS.join(', ')}, not ${format}`);
  const protocol = values.protocol;
  if (protocol !== 'put' && protocol !== 'multipart') throw config(`--protocol must be put or multipart, not ${protocol}`);
  let level: number | undefined;
  if (values.level !== undefined) {
    level = Number(values.level);
    if (!Number.isInteger(level)) throw config(`--level must be a number, not ${values.level}`);
  }
  const workers = parseWorkers(values.workers, config);
  const headers = parseHeaders(values.header ?? [], config);
  if (values.token !== undefined && !Object.keys(headers).some((k) => k.toLowerCase() === 'authorization')) headers.authorization = `Bearer ${values.token}`;
  try { await applyTrustOption(values.ca); } catch (e) { throw config((e as Error).message); }

  const log = createLogger({ sinks: [stderrSink('booty')] });
  const printer = values.quiet ? undefined : createProgressPrinter({ prefix: 'booty capture: ' });
  let reporter: Reporter | undefined;
  if (values.report !== undefined) {
    reporter = openReporter({ server: values.report, mac: values.mac, token: values.token, log, action: 'capture' });
    reporter.phase('capturing', `${values.disk} -> ${values.upload}`);
  }
  let last: ProgressSnapshot | undefined;
  try {
    const result = await capture({
      disk: values.disk, upload: values.upload, format: format as CaptureFormat, level, workers, protocol, mac: values.mac, headers, log,
      allowMounted: values['allow-mounted'], overwrite: values.overwrite, allowPartition: values['allow-partition'],
      onProgress: (p) => { last = p; printer?.update(p); reporter?.progress('uploading', p); },
    });
    printer?.done({ bytes: result.bytesRead, wireBytes: result.wireBytes, rate: result.bytesRead / result.seconds, elapsed: result.seconds });
    const tree = result.tree !== undefined ? ` (${result.tree.files} files from ${result.tree.mounted.map((m) => m.mountPoint).join(' ')})` : '';
    process.stdout.write(`booty capture: OK: ${result.bytesRead} bytes (${formatBytes(result.bytesRead)}) read${tree}, ${result.wireBytes} bytes sent as ${format} in ${result.seconds.toFixed(1)} s (${formatRate(result.bytesRead / result.seconds)}); sha256 ${result.sha256}${result.location ? `; stored at ${result.location}` : ''}\n`);
    reporter?.result({ ok: true, bytes: result.bytesRead, seconds: result.seconds, sha256: result.sha256 });
    return 0;
  } catch (e) {
    if (last !== undefined && last.bytes > 0) printer?.done(last);
    if (isBootyError(e)) reporter?.result({ ok: false, code: e.code, message: e.describe('booty capture'), diskState: e.diskState });
    throw e;
  } finally {
    await reporter?.close();
  }
}
