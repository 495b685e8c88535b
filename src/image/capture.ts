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
import { CAPTURE_FORMATS, type CaptureFormat } from '../config/action.ts';
import { preflightDisk } from '../disk/preflight.ts';
import { createCompressor } from './format/decompress.ts';
import { CodecPool, defaultWorkers } from './parallel/codec-pool.ts';
import { ParallelCompressor } from './parallel/parallel-compress.ts';
import { ProgressTracker, formatBytes, formatRate, startProgressTicker, type ProgressSnapshot } from './progress.ts';
import { HashTap } from './transforms.ts';
import { packTree, type PackResult } from '../rootfs/pack.ts';
import { withDiskTreeMounted, type MountedFilesystem } from '../rootfs/mount-disk-tree.ts';
import { createGcPacer } from './sink/gc-pacer.ts';
import { ReadTarget, alignedBuffer } from './sink/target.ts';
import { UploadRejected, uploadMultipart, type UploadOutcome } from './upload/upload.ts';
import { uploadToBootyServer, type ResumableTuning } from './upload/upload-resumable.ts';

export interface CaptureOptions {
  disk: string;
  /** booty server: http://host/images/<name>; BOOTy receiver: its multipart POST URL */
  upload: string;
  /** a disk image, or (tar, tar.gz, tar.zst) the tree of its filesystems as the OS mounts them */
  format?: CaptureFormat;
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

/** A rootfs capture: the files, not the disk. */
export type TreeFormat = Extract<CaptureFormat, `tar${string}`>;

export function isTreeFormat(f: CaptureFormat): f is TreeFormat {
  return f === 'tar' || f === 'tar.gz' || f === 'tar.zst';
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
  /** a rootfs capture: what was archived from which filesystems */
  tree?: PackResult & { mounted: MountedFilesystem[]; leftOut: string[] };
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
  if (!CAPTURE_FORMATS.includes(format)) {
    throw fail('config', 'BAD_FORMAT', `unknown capture format ${JSON.stringify(format)}`, undefined, `use one of ${CAPTURE_FORMATS.join(', ')}`);
  }
  if (protocol === 'multipart' && format !== 'gzip' && format !== 'raw') {
    throw fail('config', 'BAD_FORMAT', `BOOTy's multipart protocol carries raw (.img) or gzip (.zmg) disk images, not ${format}`, undefined, 'use --format gzip or --protocol put');
  }
  if (opts.level !== undefined) {
    const max = format === 'zstd' || format === 'tar.zst' ? 19 : 9;
    if (format === 'raw' || format === 'tar' || !Number.isInteger(opts.level) || opts.level < 1 || opts.level > max) {
      throw fail('config', 'BAD_LEVEL', format === 'raw' || format === 'tar' ? `--level makes no sense with --format ${format}` : `--level must be 1-${max} for ${format}`, undefined, 'see booty capture --help');
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
  const sending: Sending = { opts, log, started, target, protocol, filename };
  if (isTreeFormat(format)) {
    const compression = format === 'tar' ? 'raw' : format === 'tar.gz' ? 'gzip' : 'zstd';
    return withDiskTreeMounted(opts.disk, { log }, async (tree) => {
      log.info(`capture: the tree of ${opts.disk} (${tree.mounted.map((m) => `${m.mountPoint} ${m.device}`).join(', ')}) -> ${opts.upload} as ${format}${opts.level ? ` level ${opts.level}` : ''}`);
      const tracker = new ProgressTracker({});
      const packed = packTree(tree.dir, { log, onFileBytes: (n) => { tracker.bytes += n; } });
      // tar-stream's pack is a streamx stream: iterated into a Node one for the pipeline
      const result = await compressAndSend(sending, { source: Readable.from(packed.tar), what: `the tree of ${opts.disk}`, compression, tracker, total: undefined });
      const counts = await packed.done;
      log.info(`capture: archived ${counts.files} files (${formatBytes(counts.fileBytes)}), ${counts.directories} directories, ${counts.symlinks} symlinks, ${counts.hardLinks} hard links, ${counts.devices} devices, ${counts.fifos} FIFOs${counts.socketsSkipped > 0 ? `; ${counts.socketsSkipped} sockets skipped` : ''}${tree.leftOut.length > 0 ? `; left out: ${tree.leftOut.join('; ')}` : ''}`);
      return { ...result, tree: { ...counts, mounted: tree.mounted, leftOut: tree.leftOut } };
    });
  }
  let src: ReadTarget;
  try { src = ReadTarget.open(opts.disk); } catch (e) {
    throw fail('preflight', 'DISK_OPEN_FAILED', `cannot open ${opts.disk}: ${(e as Error).message}`, 0, 'check the device', e);
  }
  try {
    const size = src.info.size;
    log.info(`capture: ${opts.disk} (${formatBytes(size)}) -> ${opts.upload} as ${format}${opts.level ? ` level ${opts.level}` : ''} (${protocol}${filename ? `, ${filename}` : ''})`);
    const tracker = new ProgressTracker({ total: size });
    const frameBlock = FRAME_BLOCK[format === 'zstd' ? 'zstd' : 'gzip'];
    const parallel = format !== 'raw' && (opts.workers ?? defaultWorkers()) > 0;
    // with parallel frames the reader reads one frame's block at a time: each read buffer goes to
    // a worker as it is, without a copy
    const reader = new DiskReader(src, { blockSize: parallel ? frameBlock : READ_BLOCK, onBytes: (n) => { tracker.bytes += n; } });
    const result = await compressAndSend(sending, { source: reader, what: opts.disk, compression: format, tracker, total: size, ownsInput: true });
    if (reader.bytes !== size) throw fail('read', 'SHORT_READ', `read ${reader.bytes} of ${size} bytes`, reader.bytes, 'check the disk (dmesg)');
    return result;
  } finally {
    await src.close();
  }
}

/** What capture() settled before the bytes flow. */
interface Sending {
  opts: CaptureOptions;
  log: Logger;
  started: number;
  /** the upload URL, with ?overwrite=1 when asked */
  target: string;
  protocol: 'put' | 'multipart';
  filename: string;
}

/**
 * SOURCE (disk blocks or a tar stream) -> compressor -> HashTap -> upload, all in one pass.
 * OWNS_INPUT: the source's chunks are fresh frame-sized buffers the workers may take without a copy.
 */
async function compressAndSend(s: Sending, o: {
  source: Readable; what: string; compression: 'gzip' | 'zstd' | 'raw'; tracker: ProgressTracker; total: number | undefined; ownsInput?: boolean;
}): Promise<CaptureResult> {
  const { opts, log, protocol } = s;
  const format = o.compression;
  const workers = format === 'raw' ? 0 : opts.workers ?? defaultWorkers();
  const pool = workers > 0 ? new CodecPool(workers) : undefined;
  const frameBlock = FRAME_BLOCK[format === 'zstd' ? 'zstd' : 'gzip'];
  const parallel = format !== 'raw' && pool !== undefined
    ? new ParallelCompressor({ format, level: opts.level ?? DEFAULT_LEVEL[format], pool, blockSize: frameBlock, ownsInput: o.ownsInput ?? false })
    : undefined;
  const compressor = format === 'raw' ? undefined : parallel ?? createCompressor(format, { level: opts.level, pledgedSize: o.total });
  if (parallel !== undefined) log.info(`capture: compressing ${formatBytes(frameBlock)} blocks as independent ${format === 'gzip' ? 'gzip members' : 'zstd frames'} on ${workers} worker thread${workers === 1 ? '' : 's'}, level ${parallel.level}${format === 'gzip' ? ` (${pool!.deflateAt(parallel.level)})` : ''}`);
  const { tracker, source } = o;
  const hash = new HashTap({ onChunk: (n) => { tracker.wireBytes += n; } });

  let failedAt: { stage: Stage; err: Error } | undefined;
  // a stream torn down because another one failed reports 'premature close': not the cause
  const watch = (st: NodeJS.EventEmitter, stage: Stage) => st.once('error', (err: Error & { code?: string }) => {
    if (err.code !== 'ERR_STREAM_PREMATURE_CLOSE') failedAt ??= { stage, err };
  });
  watch(source, 'read');
  if (compressor) watch(compressor, 'compress');

  const stopTrim = trimMallocWhileRunning();
  const stopTicker = startProgressTicker(tracker, opts.progressIntervalMs ?? 500, (p) => opts.onProgress?.(p));
  let outcome: UploadOutcome;
  try {
    // the upload consumes `hash`; the pipeline feeds it. Both must finish.
    const flowing = compressor ? pipeline(source, compressor, hash) : pipeline(source, hash);
    const upload = protocol === 'put'
      ? uploadToBootyServer({ ...opts.resumable, url: s.target, body: hash, headers: opts.headers, imageSize: o.total, signal: opts.signal, log, sent: () => ({ size: hash.bytes, sha256: hash.digest() }) })
      : uploadMultipart({ url: s.target, body: hash, filename: s.filename, headers: opts.headers, signal: opts.signal });
    const [fed, sent] = await Promise.allSettled([flowing, upload]);
    if (sent.status === 'rejected') throw sent.reason;
    if (fed.status === 'rejected') throw fed.reason;
    outcome = sent.value;
  } catch (e) {
    source.destroy();
    const first = e instanceof UploadRejected ? { stage: 'upload' as Stage, err: e } : failedAt ?? { stage: 'upload' as Stage, err: e as Error };
    if (first.err instanceof BootyError) throw first.err;
    if (first.stage === 'read') throw fail('read', 'READ_FAILED', `reading ${o.what} failed: ${first.err.message}`, tracker.bytes, 'check the disk (dmesg shows I/O errors)', first.err);
    if (first.stage === 'compress') throw fail('compress', 'COMPRESS_FAILED', `${format} compression failed: ${first.err.message}`, tracker.bytes, 'capture again', first.err);
    const rejected = first.err instanceof UploadRejected;
    throw fail('upload', rejected ? 'UPLOAD_REJECTED' : 'UPLOAD_FAILED',
      rejected ? first.err.message : `the upload broke off after ${hash.bytes} bytes sent: ${first.err.message}`, tracker.bytes,
      rejected ? 'see the server log; nothing was stored under the final name' : 'check the server and the network, then capture again', first.err);
  } finally {
    stopTicker();
    stopTrim();
    await pool?.close();
  }
  const seconds = (performance.now() - s.started) / 1000;
  const sha256 = hash.digest();
  const frames = parallel !== undefined ? `; ${parallel.frames.count} frames (${parallel.zeroBlocks} all-zero) on ${workers} worker${workers === 1 ? '' : 's'}, frame index appended` : '';
  log.info(`capture: read ${formatBytes(tracker.bytes)}, sent ${formatBytes(hash.bytes)} in ${seconds.toFixed(1)} s (${formatRate(tracker.bytes / seconds)}); sha256 ${sha256}${frames}`);
  return {
    bytesRead: tracker.bytes, wireBytes: hash.bytes, sha256, seconds, location: outcome.location, workers,
    ...(parallel !== undefined ? { frames: parallel.frames.count, zeroBlocks: parallel.zeroBlocks } : {}),
  };
}
