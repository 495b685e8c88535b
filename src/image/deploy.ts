// deploy: image URL -> disk. The stream, in one pass and constant memory:
//   GET (undici) -> HashTap (sha256 of the bytes as served) -> gunzip/zstd (1 MiB chunks)
//   -> ImageWriter (aligned 8 MiB blocks, O_DIRECT, zero runs via BLKZEROOUT, head held back)
// then: nothing left undecoded, size as announced, sha256 as expected -> fdatasync -> write the
// held-back first MiB -> fdatasync -> BLKRRPART. Every failure is a BootyError naming the stage,
// the image offset reached and what the disk holds now.
import { pipeline } from 'node:stream/promises';
import type { Readable, Writable, Transform } from 'node:stream';
import { BootyError, type DiskState, type Stage } from '../util/errors.ts';
import { silentLogger, type Logger } from '../util/log.ts';
import { checkImageFits, preflightDisk, type DiskInfo } from '../disk/preflight.ts';
import { HEAD_BYTES, detectFormat, refuseRawReason, zstdFrameContentSize, type Format } from './detect.ts';
import { createDecompressor, describeDecodeError, trailingBytes } from './decompress.ts';
import { openImage, type ImageResponse } from './fetch.ts';
import { ProgressTracker, formatBytes, formatRate, startProgressTicker, type ProgressSnapshot } from './progress.ts';
import { HashTap, SizeLimitExceeded, peekHead } from './transforms.ts';
import { WriteTarget } from './target.ts';
import { ImageWriter } from './writer.ts';

export interface DeployOptions {
  /** http(s) URL, file:// URL or absolute path of the image */
  image: string;
  /** block device or regular file to write */
  disk: string;
  /** expected sha256 (hex) of the image as served */
  sha256?: string;
  format?: 'auto' | 'gzip' | 'zstd' | 'raw';
  /** uncompressed size, when known: checked against the disk before the first write and
   *  against the stream at the end */
  imageSize?: number;
  headers?: Record<string, string>;
  log?: Logger;
  onProgress?: (p: ProgressSnapshot) => void;
  signal?: AbortSignal;
  /** accept a partition as the target */
  allowPartition?: boolean;
  /** false: write zero runs as data (default: BLKZEROOUT / punch hole) */
  skipZeros?: boolean;
  /** milliseconds between onProgress calls (default 500) */
  progressIntervalMs?: number;
}

export interface DeployResult {
  /** uncompressed bytes of the image now on the disk */
  bytesWritten: number;
  /** bytes received as served (compressed) */
  wireBytes: number;
  /** sha256 of the bytes as served */
  sha256: string;
  format: 'gzip' | 'zstd' | 'raw';
  seconds: number;
  /** bytes written as zero runs (BLKZEROOUT / holes) rather than data */
  zeroBytes?: number;
  /** why the partition table was not re-read, when it was not */
  rereadSkipped?: string;
}

const HEX64 = /^[0-9a-f]{64}$/;

export async function deploy(opts: DeployOptions): Promise<DeployResult> {
  const log = opts.log ?? silentLogger;
  const started = performance.now();
  const expectedSha = opts.sha256?.trim().toLowerCase();
  if (expectedSha !== undefined && !HEX64.test(expectedSha)) {
    throw new BootyError({ stage: 'config', code: 'BAD_SHA256', message: `--sha256 must be 64 hex digits, got ${JSON.stringify(opts.sha256)}`, diskState: 'untouched' });
  }

  const disk = preflightDisk(opts.disk, { mode: 'write', allowPartition: opts.allowPartition });
  checkImageFits(disk, opts.imageSize, 'as configured');
  log.info(`deploy: ${opts.image} -> ${opts.disk} (${disk.kind}, ${disk.size > 0 ? formatBytes(disk.size) : 'grows'})`);

  const res = await openImage(opts.image, { headers: opts.headers, signal: opts.signal });
  let body: Readable = res.body;
  let writer: ImageWriter | undefined;
  try {
    const peeked = await peekHead(res.body, HEAD_BYTES).catch((e: Error) => {
      throw stageError('fetch', 'FETCH_FAILED', `reading the image failed: ${e.message}`, 0, 'untouched', fetchHint, e);
    });
    body = peeked.rest;
    const format = resolveFormat(opts.format ?? 'auto', peeked.head, res, log);
    const imageSize = knownImageSize(opts.imageSize, res, format, peeked.head, disk);
    log.info(`deploy: format ${format}${imageSize ? `, ${formatBytes(imageSize.bytes)} uncompressed (${imageSize.source})` : ''}${res.servedSize ? `, ${formatBytes(res.servedSize)} served` : ''}`);

    let target: WriteTarget;
    try { target = WriteTarget.open(opts.disk); } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw stageError('preflight', code === 'EBUSY' ? 'DISK_IN_USE' : 'DISK_OPEN_FAILED',
        code === 'EBUSY' ? `${opts.disk} is in use (the kernel refuses an exclusive open: mounted, or held by LVM/RAID/another program)`
          : `cannot open ${opts.disk} for writing: ${(e as Error).message}`, 0, 'untouched', 'stop whatever uses the disk, then retry', e);
    }
    const tracker = new ProgressTracker({ total: imageSize?.bytes });
    const hash = new HashTap({ onChunk: (n) => { tracker.wireBytes += n; } });
    const decoder = createDecompressor(format);
    writer = new ImageWriter({
      target,
      limit: disk.kind === 'file' && disk.size === 0 ? undefined : Math.min(disk.size, target.info.size || disk.size),
      zeroRuns: { enabled: opts.skipZeros ?? true },
      onBytes: (n) => { tracker.bytes += n; },
    });
    const w = writer;

    // the first stream to fail names the stage (pipeline reports whichever error it saw first)
    let failedAt: { stage: Stage; err: Error } | undefined;
    // a stream torn down because another one failed reports 'premature close': not the cause
    const watch = (s: Readable | Writable | Transform, stage: Stage) => s.once('error', (err: Error & { code?: string }) => {
      if (err.code !== 'ERR_STREAM_PREMATURE_CLOSE') failedAt ??= { stage, err };
    });
    watch(body, 'fetch');
    watch(hash, 'fetch');
    if (decoder) watch(decoder, 'decompress');
    watch(w, 'write');

    const stopTicker = startProgressTicker(tracker, opts.progressIntervalMs ?? 500, (p) => opts.onProgress?.(p));
    try {
      if (decoder) await pipeline(body, hash, decoder, w, { signal: opts.signal });
      else await pipeline(body, hash, w, { signal: opts.signal });
    } catch (e) {
      const first = failedAt ?? { stage: 'fetch' as Stage, err: e as Error };
      throw pipelineError(first, format, w, hash, res);
    } finally {
      stopTicker();
    }

    // the stream ended: was it all image, the whole image, the right image?
    const diskStateNow: DiskState = 'written-unverified';
    if (decoder) {
      const extra = trailingBytes(decoder, hash.bytes);
      if (extra > 0) {
        throw stageError('decompress', 'IMAGE_TRAILING_GARBAGE',
          `${extra} bytes after the end of the ${format} data (garbage or padding appended to the image)`,
          w.bytes, diskStateNow, 'recreate the image file on the server (gzip -t / zstd -t report the same)');
      }
    }
    if (w.bytes === 0) {
      throw stageError('verify', 'IMAGE_EMPTY', 'the image decompresses to 0 bytes', 0, w.touched ? diskStateNow : 'untouched', 'check the image file on the server');
    }
    if (imageSize !== undefined && imageSize.exact && w.bytes !== imageSize.bytes) {
      throw stageError('verify', 'IMAGE_SIZE_MISMATCH',
        `the image is ${w.bytes} bytes but ${imageSize.source} said ${imageSize.bytes}`, w.bytes, diskStateNow,
        'the image on the server is truncated or not the expected one: check it, then deploy again');
    }
    const sha256 = hash.digest();
    // the operator's checksum, else the one the server recorded when the image was uploaded
    const wanted = expectedSha ?? res.sha256;
    if (wanted !== undefined && sha256 !== wanted) {
      const whose = expectedSha !== undefined ? 'expected' : "server's X-Image-Sha256";
      throw stageError('verify', 'CHECKSUM_MISMATCH',
        `image checksum mismatch (${whose} ${wanted.slice(0, 12)}…, got ${sha256.slice(0, 12)}…, over ${hash.bytes} bytes served)`,
        w.bytes, diskStateNow, 'the boot sector was never written, so the disk will not boot; check --sha256 against `sha256sum` of the file on the server, or re-upload the image');
    }

    let rereadSkipped: string | undefined;
    try {
      rereadSkipped = await w.commit();
    } catch (e) {
      throw stageError('write', 'WRITE_FAILED', `writing the boot sector failed: ${(e as Error).message}`, w.bytes, 'partially-written', writeHint, e);
    }
    if (rereadSkipped !== undefined && disk.kind === 'block') log.warn(`deploy: partition table not re-read (${rereadSkipped})`);
    await w.close();
    writer = undefined;
    const seconds = (performance.now() - started) / 1000;
    log.info(`deploy: wrote ${formatBytes(w.bytes)} (${format}, ${formatBytes(hash.bytes)} served) in ${seconds.toFixed(1)} s, ${formatRate(w.bytes / seconds)}; ${formatBytes(w.zeroBytes)} as zero runs via ${target.zeroMethod}; sha256 ${sha256}${wanted !== undefined ? ' (verified)' : ''}`);
    return { bytesWritten: w.bytes, wireBytes: hash.bytes, sha256, format, seconds, zeroBytes: w.zeroBytes, rereadSkipped };
  } finally {
    if (writer !== undefined) await writer.abort().catch(() => {});
    if (!body.destroyed) body.destroy();
    if (!res.body.destroyed) res.body.destroy();
  }
}

const fetchHint = 'check the server and the network, then deploy again';
const writeHint = 'check the disk (dmesg shows I/O errors), then deploy again';

function stageError(stage: Stage, code: string, message: string, offset: number, diskState: DiskState, hint: string, cause?: unknown): BootyError {
  return new BootyError({ stage, code, message, offset, diskState, hint, cause });
}

function resolveFormat(wanted: 'auto' | Format, head: Buffer, res: ImageResponse, log: Logger): Format {
  const detected = detectFormat(head);
  if (wanted === 'auto' || wanted === detected) {
    if (detected === 'raw') {
      const why = refuseRawReason(head, res.contentType, wanted === 'raw');
      if (why !== undefined) throw stageError('fetch', head.length === 0 ? 'IMAGE_EMPTY' : 'IMAGE_NOT_AN_IMAGE', why, 0, 'untouched', 'check the image URL on the server');
    }
    return detected;
  }
  if (wanted === 'raw') {
    log.warn(`deploy: the image starts with ${detected} magic but --format raw was given: writing it as it is`);
    const why = refuseRawReason(head, res.contentType, true);
    if (why !== undefined) throw stageError('fetch', 'IMAGE_NOT_AN_IMAGE', why, 0, 'untouched', 'check the image URL on the server');
    return 'raw';
  }
  throw stageError('decompress', 'FORMAT_MISMATCH',
    `--format ${wanted} was given but the image ${detected === 'raw' ? `has no ${wanted} magic` : `is ${detected}`}`,
    0, 'untouched', `use --format auto (booty reads the format from the first bytes)`);
}

interface KnownSize { bytes: number; source: string; exact: boolean }

/** The uncompressed size from every source that can tell it; checks it fits the disk. */
function knownImageSize(configured: number | undefined, res: ImageResponse, format: Format, head: Buffer, disk: DiskInfo): KnownSize | undefined {
  const sizes: KnownSize[] = [];
  if (configured !== undefined) sizes.push({ bytes: configured, source: 'the configured image size', exact: true });
  if (res.imageSize !== undefined) sizes.push({ bytes: res.imageSize, source: "the server's X-Image-Size", exact: true });
  if (format === 'raw' && res.servedSize !== undefined) sizes.push({ bytes: res.servedSize, source: 'Content-Length', exact: true });
  if (format === 'zstd') {
    const fcs = zstdFrameContentSize(head);
    if (fcs !== undefined) sizes.push({ bytes: fcs, source: 'the zstd frame header', exact: false });
  }
  for (const s of sizes) checkImageFits(disk, s.bytes, s.source);
  return sizes.find((s) => s.exact) ?? sizes[0];
}

function pipelineError(first: { stage: Stage; err: Error }, format: Format, w: ImageWriter, hash: HashTap, res: ImageResponse): BootyError {
  const { err } = first;
  if (err instanceof BootyError) return err;
  const state: DiskState = w.touched ? 'partially-written' : 'untouched';
  const wire = `after ${hash.bytes} bytes received`;
  if (err instanceof SizeLimitExceeded) {
    return stageError('write', 'IMAGE_LARGER_THAN_DISK',
      `the image is larger than the disk (${err.limit} bytes): stopped before writing past its end`, w.bytes, state,
      'use a larger disk or a smaller image; nothing was truncated silently');
  }
  if (err.name === 'AbortError') {
    return stageError(first.stage === 'write' ? 'write' : 'fetch', 'ABORTED', 'deploy aborted', w.bytes, state, 'deploy again');
  }
  switch (first.stage) {
    case 'decompress': {
      const d = describeDecodeError(format, err as Error & { code?: string });
      return stageError('decompress', d.code, `${d.what} (${wire})`, w.bytes, state,
        'the image file on the server is damaged: recreate or re-upload it (gzip -t / zstd -t check it there)', err);
    }
    case 'write':
      return stageError('write', 'WRITE_FAILED', `writing ${w.target.info.path} failed: ${err.message}`, w.bytes, state, writeHint, err);
    default: {
      const expected = res.contentLength !== undefined ? ` of ${res.contentLength}` : '';
      return stageError('fetch', 'FETCH_FAILED', `the download broke off ${wire}${expected}: ${err.message}`, w.bytes, state, fetchHint, err);
    }
  }
}
