// capture: disk -> server. One pass, constant memory:
//   DiskReader (aligned O_DIRECT reads) -> ParallelCompressor (each 1 MiB (gzip) / 2 MiB (zstd) block an
//   independent gzip member / zstd frame, compressed on `workers` threads, emitted in order, then
//   the frame index: parallel-compress.ts) -> HashTap (sha256 of the uploaded bytes) -> streamed
//   HTTP upload (booty PUT + commit, or BOOTy multipart)
// The disk is only read. workers = 0 keeps the single-stream compressor on the main thread
// (createCompressor), which writes one gzip member / zstd frame without an index.
import { trimMallocWhileRunning } from '../sys/malloc.ts';
import os from 'node:os';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BootyError, type Stage } from '../util/errors.ts';
import { silentLogger, type Logger } from '../util/log.ts';
import { preflightDisk } from '../disk/preflight.ts';
import { createCompressor } from './format/decompress.ts';
import { CodecPool, defaultWorkers } from './parallel/codec-pool.ts';
import { ParallelCompressor } from './parallel/parallel-compress.ts';
import { ProgressTracker, formatBytes, formatRate, startProgressTicker, type ProgressSnapshot } from './progress.ts';
import { HashTap } from './transforms.ts';
import { createGcPacer } from './sink/gc-pacer.ts';
import { ReadTarget, alignedBuffer } from './sink/target.ts';
import { UploadRejected, uploadMultipart, type UploadOutcome } from './upload/upload.ts';
import { uploadToBootyServer, type ResumableTuning } from './upload/upload-resumable.ts';

export interface CaptureOptions {
  disk: string;
  /** booty server: http://host/images/<name>; BOOTy receiver: its multipart POST URL */
  upload: string;
  format?: 'gzip' | 'zstd' | 'raw';
  level?: number;
  protocol?: 'put' | 'multipart';
  /** the machine's MAC (multipart file name); default: first non-internal interface */
  mac?: string;
  headers?: Record<string, string>;
  log?: Logger;
  onProgress?: (p: ProgressSnapshot) => void;
  signal?: AbortSignal;
  /** read a disk even while it is mounted (the copy may be inconsistent) */
  allowMounted?: boolean;
  allowPartition?: boolean;
  progressIntervalMs?: number;
  /** replace an image of the same name on a booty server (?overwrite=1) */
  overwrite?: boolean;
  /** booty server uploads: part size, retry time, stall timeout, re-send/fallback callbacks (upload-resumable.ts) */
  resumable?: ResumableTuning;
  /** worker threads compressing blocks in parallel (default: one per core); 0: one stream on the
   *  main thread, no frame index */
  workers?: number;
}

export interface CaptureResult {
  /** uncompressed bytes read from the disk */
  bytesRead: number;
  /** bytes uploaded (compressed) */
  wireBytes: number;
  /** sha256 of the uploaded bytes */
  sha256: string;
  seconds: number;
  location?: string;
  /** worker threads that compressed (0: single stream) */
  workers: number;
  /** independent frames written (parallel compression), of which all-zero blocks */
  frames?: number;
  zeroBlocks?: number;
}

export const READ_BLOCK = 4 << 20;

/** Reads a disk front to back in large aligned blocks (a fresh buffer per block: the consumer
 *  may hold it until it is compressed; the stream's high-water mark bounds how many exist). */
export class DiskReader extends Readable {
  bytes = 0;
  private readonly src: ReadTarget;
  private readonly blockSize: number;
  private readonly onBytes: ((n: number) => void) | undefined;
  private readonly pace = createGcPacer();

  constructor(src: ReadTarget, opts: { blockSize?: number; onBytes?: (n: number) => void } = {}) {
    const blockSize = opts.blockSize ?? READ_BLOCK;
    // one block read ahead: the compressor's frames in flight are the rest of the pipeline's
    // buffer (two blocks ahead cost more peak RSS for no more speed: README, Performance)
    super({ highWaterMark: blockSize });
    this.src = src;
    this.blockSize = blockSize;
    this.onBytes = opts.onBytes;
  }

  override _read(): void {
    const buf = alignedBuffer(this.blockSize);
    this.src.readAt(buf, this.bytes).then((n) => {
      if (n === 0) { this.push(null); return; }
      this.bytes += n;
      this.onBytes?.(n);
      this.pace(n);
      this.push(buf.subarray(0, n));
    }, (e: Error) => this.destroy(e));
  }
}

/** Uncompressed bytes per independent frame. Small frames keep every buffer in flight small
 *  (capture and deploy hold a few frames per worker: peak RSS) and cost gzip nothing (its window
 *  is 32 KiB); zstd loses ~1% of ratio at 2 MiB against one long stream (5% at 1 MiB). */
export const FRAME_BLOCK = { gzip: 1 << 20, zstd: 2 << 20 } as const;

/** Compression levels when none is given (the single-stream compressor's defaults too). */
export const DEFAULT_LEVEL = { gzip: 6, zstd: 3 } as const;

function defaultMac(): string | undefined {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (!a.internal && a.mac !== '00:00:00:00:00:00') return a.mac;
  }
  return undefined;
}

function fail(stage: Stage, code: string, message: string, offset: number | undefined, hint: string, cause?: unknown): BootyError {
  return new BootyError({ stage, code, message, offset, diskState: 'intact', hint, cause });
}

export async function capture(opts: CaptureOptions): Promise<CaptureResult> {
  const log = opts.log ?? silentLogger;
  const started = performance.now();
  const format = opts.format ?? 'gzip';
  const protocol = opts.protocol ?? 'put';
  if (protocol === 'multipart' && format === 'zstd') {
    throw fail('config', 'BAD_FORMAT', "BOOTy's multipart protocol carries raw (.img) or gzip (.zmg) images, not zstd", undefined, 'use --format gzip or --protocol put');
  }
  if (opts.level !== undefined) {
    const max = format === 'zstd' ? 19 : 9;
    if (format === 'raw' || !Number.isInteger(opts.level) || opts.level < 1 || opts.level > max) {
      throw fail('config', 'BAD_LEVEL', format === 'raw' ? '--level makes no sense with --format raw' : `--level must be 1-${max} for ${format}`, undefined, 'see booty capture --help');
    }
  }
  if (opts.workers !== undefined && (!Number.isInteger(opts.workers) || opts.workers < 0 || opts.workers > 1024)) {
    throw fail('config', 'BAD_WORKERS', `--workers must be a whole number from 0 to 1024, not ${opts.workers}`, undefined, 'see booty capture --help');
  }
  let uploadUrl: URL;
  try { uploadUrl = new URL(opts.upload); } catch {
    throw fail('config', 'BAD_UPLOAD_URL', `not a URL: ${JSON.stringify(opts.upload)}`, undefined, 'give http(s)://server/images/<name>');
  }
  if (uploadUrl.protocol !== 'http:' && uploadUrl.protocol !== 'https:') {
    throw fail('config', 'BAD_UPLOAD_URL', `unsupported URL scheme ${uploadUrl.protocol}`, undefined, 'give an http(s) URL');
  }
  if (opts.overwrite === true) uploadUrl.searchParams.set('overwrite', '1');
  const target = uploadUrl.href;
  let filename = '';
  if (protocol === 'multipart') {
    const mac = (opts.mac ?? defaultMac())?.toLowerCase().replace(/-/g, ':');
    if (mac === undefined || !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(mac)) {
      throw fail('config', 'BAD_MAC', `the multipart protocol names the file after the MAC; ${mac === undefined ? 'none found' : `${mac} is not a MAC`}`, undefined, 'give --mac aa:bb:cc:dd:ee:ff');
    }
    filename = `${mac}.${format === 'gzip' ? 'zmg' : 'img'}`;
  }

  preflightDisk(opts.disk, { mode: 'read', allowMounted: opts.allowMounted, allowPartition: opts.allowPartition });
  let src: ReadTarget;
  try { src = ReadTarget.open(opts.disk); } catch (e) {
    throw fail('preflight', 'DISK_OPEN_FAILED', `cannot open ${opts.disk}: ${(e as Error).message}`, 0, 'check the device', e);
  }
  const size = src.info.size;
  log.info(`capture: ${opts.disk} (${formatBytes(size)}) -> ${opts.upload} as ${format}${opts.level ? ` level ${opts.level}` : ''} (${protocol}${filename ? `, ${filename}` : ''})`);

  const tracker = new ProgressTracker({ total: size });
  const workers = format === 'raw' ? 0 : opts.workers ?? defaultWorkers();
  const pool = workers > 0 ? new CodecPool(workers) : undefined;
  const frameBlock = FRAME_BLOCK[format === 'zstd' ? 'zstd' : 'gzip'];
  // with parallel frames the reader reads one frame's block at a time: each read buffer goes to
  // a worker as it is, without a copy
  const reader = new DiskReader(src, { blockSize: pool !== undefined ? frameBlock : READ_BLOCK, onBytes: (n) => { tracker.bytes += n; } });
  const parallel = format !== 'raw' && pool !== undefined
    ? new ParallelCompressor({ format, level: opts.level ?? DEFAULT_LEVEL[format], pool, blockSize: frameBlock, ownsInput: true })
    : undefined;
  const compressor = format === 'raw' ? undefined : parallel ?? createCompressor(format, { level: opts.level, pledgedSize: size });
  if (parallel !== undefined) log.info(`capture: compressing ${formatBytes(frameBlock)} blocks as independent ${format === 'gzip' ? 'gzip members' : 'zstd frames'} on ${workers} worker thread${workers === 1 ? '' : 's'}, level ${parallel.level}${format === 'gzip' ? ` (${pool!.deflateAt(parallel.level)})` : ''}`);
  const hash = new HashTap({ onChunk: (n) => { tracker.wireBytes += n; } });

  let failedAt: { stage: Stage; err: Error } | undefined;
  // a stream torn down because another one failed reports 'premature close': not the cause
  const watch = (s: NodeJS.EventEmitter, stage: Stage) => s.once('error', (err: Error & { code?: string }) => {
    if (err.code !== 'ERR_STREAM_PREMATURE_CLOSE') failedAt ??= { stage, err };
  });
  watch(reader, 'read');
  if (compressor) watch(compressor, 'compress');

  const stopTrim = trimMallocWhileRunning();
  const stopTicker = startProgressTicker(tracker, opts.progressIntervalMs ?? 500, (p) => opts.onProgress?.(p));
  let outcome: UploadOutcome;
  try {
    // the upload consumes `hash`; the pipeline feeds it. Both must finish.
    const flowing = compressor ? pipeline(reader, compressor, hash) : pipeline(reader, hash);
    const upload = protocol === 'put'
      ? uploadToBootyServer({ ...opts.resumable, url: target, body: hash, headers: opts.headers, imageSize: size, signal: opts.signal, log, sent: () => ({ size: hash.bytes, sha256: hash.digest() }) })
      : uploadMultipart({ url: target, body: hash, filename, headers: opts.headers, signal: opts.signal });
    const [fed, sent] = await Promise.allSettled([flowing, upload]);
    if (sent.status === 'rejected') throw sent.reason;
    if (fed.status === 'rejected') throw fed.reason;
    outcome = sent.value;
    if (reader.bytes !== size) throw fail('read', 'SHORT_READ', `read ${reader.bytes} of ${size} bytes`, reader.bytes, 'check the disk (dmesg)');
  } catch (e) {
    reader.destroy();
    const first = e instanceof UploadRejected ? { stage: 'upload' as Stage, err: e } : failedAt ?? { stage: 'upload' as Stage, err: e as Error };
    if (first.err instanceof BootyError) throw first.err;
    if (first.stage === 'read') throw fail('read', 'READ_FAILED', `reading ${opts.disk} failed: ${first.err.message}`, reader.bytes, 'check the disk (dmesg shows I/O errors)', first.err);
    if (first.stage === 'compress') throw fail('compress', 'COMPRESS_FAILED', `${format} compression failed: ${first.err.message}`, reader.bytes, 'capture again', first.err);
    const rejected = first.err instanceof UploadRejected;
    throw fail('upload', rejected ? 'UPLOAD_REJECTED' : 'UPLOAD_FAILED',
      rejected ? first.err.message : `the upload broke off after ${hash.bytes} bytes sent: ${first.err.message}`, reader.bytes,
      rejected ? 'see the server log; nothing was stored under the final name' : 'check the server and the network, then capture again', first.err);
  } finally {
    stopTicker();
    stopTrim();
    await src.close();
    await pool?.close();
  }
  const seconds = (performance.now() - started) / 1000;
  const sha256 = hash.digest();
  const frames = parallel !== undefined ? `; ${parallel.frames.count} frames (${parallel.zeroBlocks} all-zero) on ${workers} worker${workers === 1 ? '' : 's'}, frame index appended` : '';
  log.info(`capture: read ${formatBytes(reader.bytes)}, sent ${formatBytes(hash.bytes)} in ${seconds.toFixed(1)} s (${formatRate(reader.bytes / seconds)}); sha256 ${sha256}${frames}`);
  return {
    bytesRead: reader.bytes, wireBytes: hash.bytes, sha256, seconds, location: outcome.location, workers,
    ...(parallel !== undefined ? { frames: parallel.frames.count, zeroBlocks: parallel.zeroBlocks } : {}),
  };
}
