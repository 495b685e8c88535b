// deploy: image URL -> disk. The stream, in one pass and constant memory:
//   GET (undici, resumed with Range/If-Range after a drop or stall: resumable-source.ts) -> HashTap (sha256 of the bytes as served) -> gunzip/zstd (1 MiB chunks;
//   or, for images whose frames say their length (booty captures, zstd frames with a content
//   size), frames decoded in parallel on worker threads: parallel-decompress.ts)
//   -> ImageWriter (aligned 8 MiB blocks, O_DIRECT, zero runs via BLKZEROOUT, head held back)
// then: nothing left undecoded, size as announced, sha256 as expected -> fdatasync -> write the
// held-back first MiB -> fdatasync -> BLKRRPART. Every failure is a BootyError naming the stage,
// the image offset reached and what the disk holds now.
import { trimMallocWhileRunning } from '../sys/malloc.ts';
import { LIBDEFLATE } from '../sys/libdeflate.ts';
import { LIBLZMA } from '../sys/liblzma.ts';
import { LIBBZ2 } from '../sys/libbz2.ts';
import os from 'node:os';
import { pipeline } from 'node:stream/promises';
import type { Readable, Writable, Transform } from 'node:stream';
import { BootyError, type DiskState, type Stage } from '../util/errors.ts';
import { silentLogger, type Logger } from '../util/log.ts';
import { checkImageFits, preflightDisk, type DiskInfo } from '../disk/preflight.ts';
import { sectorSizeProblem } from '../disk/partition-table/sector-size.ts';
import { HEAD_BYTES, classifyHead, looksLikeMarkup, refuseRawReason, zstdFrameContentSize, type Format } from './format/detect.ts';
import { refusalReason, type UnsupportedFormat } from './format/unsupported-formats.ts';
import { isOciUrl, parseOciUrl, resolveOciImage, type OciCredentials } from './source/oci.ts';
import { createDecompressor, describeDecodeError, trailingBytes } from './format/decompress.ts';
import { CodecPool, defaultDeployWorkers } from './parallel/codec-pool.ts';
import { chooseGzipPath, needsIndexSummary, type GzipPath } from './decode-plan.ts';
import { BlockDecodePool, defaultBlockWorkers } from './parallel/block-decode-pool.ts';
import { XzBlockDecompressor, firstBlockSize, xzBlocksSplittable, MAX_BLOCK as MAX_XZ_BLOCK, PLACE_MAX_BLOCK } from './parallel/xz-block-decompress.ts';
import { PlacedBlockWriter } from './parallel/xz-placed-writer.ts';
import { BlockWriteError } from './parallel/block-decode-pool.ts';
import { Bzip2BlockDecompressor } from './parallel/bzip2-block-decompress.ts';
import { DecodeWorker, decodeWorkerSupported, dropPrestartedDecodeWorker } from './parallel/decode-worker.ts';
import { parseBootyGzipHeader, parseZstdFrameStart } from './format/frame-format.ts';
import { DEFAULT_MAX_FRAME, ParallelDecompressor } from './parallel/parallel-decompress.ts';
import { GzipIndexError, openGzipIndex, summarizeGzipIndex, type GzipIndexReader } from './source/gzip-index-source.ts';
import { SegmentInflater } from './parallel/segment-inflate.ts';
import { FetchError, type ImageResponse } from './source/fetch.ts';
import { loadP2p } from '../p2p/load.ts';
import { ImageChangedError, ResumableSource, ResumeGaveUpError, DEFAULT_RETRY_FOR_MS, DEFAULT_STALL_TIMEOUT_MS, type ImageByteStream } from './source/resumable-source.ts';
import { ProgressTracker, formatBytes, formatRate, startProgressTicker, type ProgressSnapshot } from './progress.ts';
import { HashTap, SizeLimitExceeded, peekHead } from './transforms.ts';
import { hashThreadWhyNot } from '../sys/sha256-thread.ts';
import { WriteTarget } from './sink/target.ts';
import { ImageWriter } from './sink/writer.ts';
import { deployQcow2 } from './qcow2/deploy-qcow2.ts';

export interface DeployP2p {
  /** the image's BitTorrent metainfo (booty server: /image-torrent/<name>) */
  metainfoUrl: string;
  /** for the metainfo (the agent's credential); default: the image's headers */
  metainfoHeaders?: Record<string, string>;
  rack?: string;
  /** no piece for this long: the rest comes from the origin (default 20 s) */
  stallTimeoutMs?: number;
  windowBytes?: number;
  cacheBytes?: number;
  /** keep serving peers this long after the deploy (the CLI; the agent serves until it reboots) */
  lingerMs?: number;
  port?: number;
  /** peers to connect to besides those the tracker names ("host:port") */
  peers?: string[];
  /** tests: the part added to stallTimeoutMs before this agent falls back (default: random, below stallTimeoutMs) */
  fallbackJitterMs?: number;
}

export interface DeployOptions {
  /** http(s) URL, file:// URL, absolute path, or `oci://registry/repository:tag` (oci.ts) */
  image: string;
  /** credentials for an `oci://` registry that needs them (basic, or to get a bearer token) */
  registryAuth?: OciCredentials;
  /** block device or regular file to write */
  disk: string;
  /** expected sha256 (hex) of the image as served */
  sha256?: string;
  /** refuse, before the first write, an image whose sha256 nobody gave (neither `sha256` nor the
   *  server's X-Image-Sha256): only a checksum catches a compressed image with a damaged magic,
   *  which reads as raw */
  requireChecksum?: boolean;
  format?: 'auto' | Format;
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
  /** bytes written between flushes started in the background; 0: only the final fdatasync
   *  (default FLUSH_EVERY, sink/background-flush.ts) */
  flushEvery?: number;
  /** milliseconds between onProgress calls (default 500) */
  progressIntervalMs?: number;
  /** a connection that delivers no byte for this long is dropped and resumed (default 30 s) */
  stallTimeoutMs?: number;
  /** keep reconnecting for this long without progress before failing (default 10 min) */
  retryForMs?: number;
  /** fetch the image from the peers of this machine's rack (src/p2p/swarm-source.ts); the image
   *  URL is then the origin of the fallback only */
  p2p?: DeployP2p;
  /** first backoff delay between reconnects (default 500 ms, doubling up to 15 s) */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** when the image changes on the server mid-deploy: start over from byte 0 (default: fail) */
  restartOnChange?: boolean;
  /** worker threads decoding frames in parallel, for images whose frames can be split (booty
   *  captures; zstd frames with a content size); default: cores - 1 from 4 cores up, else 0
   *  (defaultDeployWorkers); 0: decode on the main thread as a single stream. With a gzip index:
   *  threads inflating segments (default: decode-plan.ts chooses, by cores and the index's all-zero
   *  segments; fewer than 2: no index) */
  workers?: number;
  /** a gzip access-point index of the image (URL or path; gzip-index.ts), for inflating it on
   *  every core; default: the one the server announces (X-Booty-Gzip-Index); false: none */
  gzipIndex?: string | false;
}

export interface DeployResult {
  /** uncompressed bytes of the image now on the disk */
  bytesWritten: number;
  /** bytes received as served (compressed) */
  wireBytes: number;
  /** sha256 of the bytes as served */
  sha256: string;
  format: Format;
  seconds: number;
  /** bytes written as zero runs (BLKZEROOUT / holes) rather than data */
  zeroBytes?: number;
  /** why the partition table was not re-read, when it was not */
  rereadSkipped?: string;
  /** connections that continued the download after a drop, reset or stall */
  resumes: number;
  /** times the deploy started over from byte 0 because the image changed (restartOnChange) */
  restarts: number;
  /** worker threads that decoded frames in parallel (0: single-stream decoding) */
  workers: number;
  /** where decompression ran: the main thread, one decode worker (single stream, decode-worker.ts)
   *  or the frame pool (parallel-decompress.ts) */
  decodedOn: 'main' | 'worker' | 'frames' | 'segments' | 'blocks';
  /** xz / bzip2 blocks decoded on the block workers (decodedOn 'blocks') */
  blocks?: number;
  /** gzip segments decoded with the image's access-point index, and how many of them the index
   *  said were all zeros (written as zero runs without inflating) */
  segments?: number;
  zeroSegments?: number;
  /** of those, inflated by libdeflate (the rest by node:zlib) */
  libdeflateSegments?: number;
  /** said when nothing verified the bytes written (a raw image without a checksum) */
  unverified?: string;
  /** frames decoded in parallel, and whether the image's frame index was checked */
  parallelFrames?: number;
  indexChecked?: boolean;
}

/** Most restarts from zero one deploy makes (an image that keeps changing is being rewritten). */
export const MAX_RESTARTS = 3;

const HEX64 = /^[0-9a-f]{64}$/;
/** The writer's block size behind the in-order xz and bzip2 block decoders (see where it is used). */
const BLOCK_DECODER_WRITE = 2 << 20;

export async function deploy(opts: DeployOptions): Promise<DeployResult> {
  const log = opts.log ?? silentLogger;
  const started = performance.now();
  const expectedSha = opts.sha256?.trim().toLowerCase();
  if (expectedSha !== undefined && !HEX64.test(expectedSha)) {
    throw new BootyError({ stage: 'config', code: 'BAD_SHA256', message: `--sha256 must be 64 hex digits, got ${JSON.stringify(opts.sha256)}`, diskState: 'untouched' });
  }
  if (opts.workers !== undefined && (!Number.isInteger(opts.workers) || opts.workers < 0 || opts.workers > 1024)) {
    throw new BootyError({ stage: 'config', code: 'BAD_WORKERS', message: `workers must be a whole number from 0 to 1024, got ${JSON.stringify(opts.workers)}`, diskState: 'untouched' });
  }

  if (isOciUrl(opts.image)) {
    const resolved = await fromRegistry(opts, expectedSha, log);
    return deploy({ ...opts, ...resolved });
  }

  const disk = preflightDisk(opts.disk, { mode: 'write', allowPartition: opts.allowPartition });
  checkImageFits(disk, opts.imageSize, 'as configured');
  log.info(`deploy: ${opts.image} -> ${opts.disk} (${disk.kind}, ${disk.size > 0 ? formatBytes(disk.size) : 'grows'})`);

  const counters = { resumes: 0, restarts: 0 };
  const stopTrim = trimMallocWhileRunning();
  try {
    const attempt: Attempt = { xzInOrder: false };
    for (;;) {
      try {
        return await deployOnce(opts, disk, expectedSha, counters, log, started, attempt);
      } catch (e) {
        if (e instanceof XzInOrderRestart && !attempt.xzInOrder) {
          attempt.xzInOrder = true;
          log.warn(`deploy: ${e.message}: starting over from byte 0 with the blocks decoded in order, then that stream as one (nothing to do: the disk's first MiB was not written yet)`);
          continue;
        }
        if (!(e instanceof ImageChangedBootyError)) throw e;
        if (opts.restartOnChange !== true || counters.restarts >= MAX_RESTARTS) throw e.withoutRestart(opts.restartOnChange === true);
        counters.restarts++;
        log.warn(`deploy: ${e.message}; starting over from byte 0 (restart ${counters.restarts} of at most ${MAX_RESTARTS}, allowed by restartOnChange)`);
      }
    }
  } finally {
    stopTrim();
  }
}

/** An `oci://` image: the blob that holds it, with the registry's auth and its digest as sha256. */
async function fromRegistry(opts: DeployOptions, expectedSha: string | undefined, log: Logger): Promise<Pick<DeployOptions, 'image' | 'headers' | 'sha256'>> {
  const ref = parseOciUrl(opts.image);
  if (ref === undefined) {
    throw new BootyError({ stage: 'config', code: 'BAD_OCI_REFERENCE', diskState: 'untouched',
      message: `${JSON.stringify(opts.image)} is not an OCI reference`, hint: 'write it as oci://registry[:port]/repository[:tag|@sha256:digest][#layer=title] (oci+http:// for a registry without TLS)' });
  }
  const blob = await resolveOciImage(ref, { credentials: opts.registryAuth, signal: opts.signal, log });
  if (expectedSha !== undefined && expectedSha !== blob.sha256) {
    throw new BootyError({ stage: 'verify', code: 'CHECKSUM_MISMATCH', diskState: 'untouched',
      message: `the registry's layer is sha256:${blob.sha256.slice(0, 12)}…, not the expected ${expectedSha.slice(0, 12)}…`, hint: 'the tag points to another image now: deploy it by digest (@sha256:...), or update "sha256"' });
  }
  log.info(`deploy: ${opts.image} is ${blob.url} (${blob.chosen}, ${blob.mediaType}, ${blob.size} bytes, sha256 ${blob.sha256.slice(0, 12)}…: verified against its digest)`);
  return { image: blob.url, headers: { ...opts.headers, ...blob.headers }, sha256: blob.sha256 };
}

/** The rack's swarm of the image (src/p2p/swarm-source.ts); undefined when the server has no
 *  metainfo for it (404: peer to peer off there, or an image it does not hold), which is said
 *  and the image fetched from its URL as without "p2p". */
async function openSwarm(opts: DeployOptions, p2p: DeployP2p, log: Logger, resume: { stallTimeoutMs: number; retryForMs: number; backoffInitialMs?: number; backoffMaxMs?: number; onResume: () => void }): Promise<ImageByteStream | undefined> {
  try {
    return await (await loadP2p()).SwarmSource.open({ ...p2p, imageUrl: opts.image, headers: opts.headers, signal: opts.signal, log, resume });
  } catch (e) {
    if (!(e instanceof FetchError) || e.status !== 404) throw e;
    log.warn(`deploy: p2p: no metainfo for this image (${e.message}); fetching it from ${opts.image} without peers`);
    return undefined;
  }
}

/** What deploy() changes between its attempts at one image. */
interface Attempt {
  /** xz: no block written at its offset by its worker (xz-placed-writer.ts): in order, as before
   *  the restart XzInOrderRestart asks for */
  xzInOrder: boolean;
}

/** Thrown by deployOnce when an xz file whose blocks were being placed goes on with a stream
 *  whose blocks cannot be cut (a concatenation of `xz -T` and plain `xz` output): deploy() starts
 *  over with the blocks in order, a path that reads such a stream as one. The disk's first MiB is
 *  held back until the image verified, so the disk never looked deployed. */
class XzInOrderRestart extends Error {}

/** Thrown by deployOnce when the image changed on the server: deploy() restarts or reports it. */
class ImageChangedBootyError extends BootyError {
  readonly written: number;
  readonly state: DiskState;
  constructor(message: string, written: number, state: DiskState, cause: unknown) {
    super({ stage: 'fetch', code: 'IMAGE_CHANGED', message, offset: written, diskState: state, cause,
      hint: 'the image was replaced on the server while this deploy ran: deploy again (or allow starting over with --restart-on-change / "restartOnChange": true)' });
    this.written = written;
    this.state = state;
  }
  withoutRestart(allowed: boolean): BootyError {
    return new BootyError({ stage: 'fetch', code: 'IMAGE_CHANGED',
      message: `${this.message}; ${allowed ? `not starting over again: already restarted ${MAX_RESTARTS} times` : 'not starting over from byte 0 because restartOnChange is not set'}`,
      offset: this.written, diskState: this.state, hint: this.hint, cause: this.cause });
  }
}

async function deployOnce(opts: DeployOptions, disk: DiskInfo, expectedSha: string | undefined, counters: { resumes: number; restarts: number },
  log: Logger, started: number, attempt: Attempt): Promise<DeployResult> {
  const tracker = new ProgressTracker();
  tracker.restarts = counters.restarts;
  const resume = {
    stallTimeoutMs: opts.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS,
    retryForMs: opts.retryForMs ?? DEFAULT_RETRY_FOR_MS,
    backoffInitialMs: opts.backoffInitialMs, backoffMaxMs: opts.backoffMaxMs,
    onResume: () => { counters.resumes++; tracker.resumes = counters.resumes; },
  };
  // peer to peer is loaded only when asked for: the agent's start does not pay for it
  const source: ImageByteStream = (opts.p2p !== undefined ? await openSwarm(opts, opts.p2p, log, resume) : undefined)
    ?? await ResumableSource.open(opts.image, { headers: opts.headers, signal: opts.signal, log, ...resume });
  const res = source.first;
  let body: Readable = source;
  let writer: ImageWriter | PlacedBlockWriter | undefined;
  let pool: CodecPool | undefined;
  let blockPool: BlockDecodePool | undefined;
  let decodeWorker: DecodeWorker | undefined;
  let gzIndex: GzipIndexReader | undefined;
  try {
    const peeked = await peekHead(source, HEAD_BYTES).catch((e: Error) => {
      if (e instanceof ImageChangedError) throw new ImageChangedBootyError(e.message, 0, 'untouched', e);
      if (e instanceof ResumeGaveUpError) throw stageError('fetch', 'FETCH_GAVE_UP', `the download broke off and could not be resumed: ${e.message}`, 0, 'untouched', fetchHint, e);
      throw stageError('fetch', 'FETCH_FAILED', `reading the image failed: ${e.message}`, 0, 'untouched', fetchHint, e);
    });
    body = peeked.rest;
    const format = resolveFormat(opts.format ?? 'auto', peeked.head, res, log);
    if (opts.requireChecksum === true && expectedSha === undefined && res.sha256 === undefined) {
      throw stageError('verify', 'CHECKSUM_REQUIRED',
        'a checksum is required but none is known for this image (no --sha256 or action "sha256", and the server sent no X-Image-Sha256)',
        0, 'untouched', 'give the image\'s sha256 (sha256sum IMAGE where it is stored) with --sha256 or the action\'s "sha256", or serve it from booty server, which records it at upload');
    }
    if (format === 'qcow2') {
      // positional writes from one sequential download, tables read by Range (qcow2/deploy-qcow2.ts),
      // on its own workers
      dropPrestartedDecodeWorker();
      const r = await deployQcow2({
        url: opts.image, headers: opts.headers, signal: opts.signal, disk, diskPath: opts.disk, source, body, head: peeked.head, expectedSha,
        tracker, onProgress: opts.onProgress, progressIntervalMs: opts.progressIntervalMs, workers: opts.workers, log,
      });
      if (r.rereadSkipped !== undefined && disk.kind === 'block') log.warn(`deploy: partition table not re-read (${r.rereadSkipped})`);
      const seconds = (performance.now() - started) / 1000;
      log.info(`deploy: wrote ${formatBytes(r.bytesWritten)} (qcow2: ${r.clusters} clusters, ${r.compressedClusters} decompressed${r.workers > 0 ? ` on ${r.workers} worker${r.workers === 1 ? '' : 's'}` : ''}; tables ${r.rangeTables ? 'read by Range' : 'read from the stream'}; ${formatBytes(r.wireBytes)} served) in ${seconds.toFixed(1)} s, ${formatRate(r.bytesWritten / seconds)}; ${formatBytes(r.zeroBytes)} as zero runs via ${r.zeroMethod}; sha256 ${r.sha256}${(expectedSha ?? res.sha256) !== undefined ? ' (verified)' : ''}${counters.resumes > 0 ? `; ${counters.resumes} resumes after network faults` : ''}`);
      return {
        bytesWritten: r.bytesWritten, wireBytes: r.wireBytes, sha256: r.sha256, format, seconds, zeroBytes: r.zeroBytes, rereadSkipped: r.rereadSkipped,
        resumes: counters.resumes, restarts: counters.restarts, workers: r.workers, decodedOn: r.workers > 0 ? 'worker' : 'main',
      };
    }
    const indexUrl = opts.gzipIndex === false ? undefined : opts.gzipIndex ?? res.gzipIndex;
    // segments with the gzip index or one stream: decided by cost (decode-plan.ts), the reason logged
    let gzipPath: GzipPath | undefined;
    if (format === 'gzip' && indexUrl !== undefined && decodeWorkerSupported() && !framesSplittable(format, peeked.head)) {
      const cores = os.availableParallelism();
      const readAhead = needsIndexSummary(cores, opts.workers);
      gzipPath = chooseGzipPath({ cores, workers: opts.workers, index: 'not-read' });
      if (gzipPath.path === 'segments' || readAhead) {
        const indexOptions = { headers: opts.headers, signal: opts.signal, log, retryForMs: opts.retryForMs, stallTimeoutMs: opts.stallTimeoutMs };
        gzIndex = await openGzipIndex(indexUrl, { ...indexOptions, image: res, head: peeked.head });
        if (gzIndex === undefined) gzipPath = chooseGzipPath({ cores, workers: opts.workers, index: 'none' });
        else if (readAhead) gzipPath = chooseGzipPath({ cores, workers: opts.workers, index: await summarizeGzipIndex(indexUrl, gzIndex.header, indexOptions) ?? 'not-read' });
      }
      log.info(`deploy: gzip ${gzipPath.path === 'segments' ? `in segments on ${gzipPath.workers} workers with the index` : 'as one stream'} (${gzipPath.reason})`);
      if (gzipPath.path === 'stream' && gzIndex !== undefined) {
        gzIndex.close();
        gzIndex = undefined;
      }
    }
    const segmentWorkers = gzipPath?.path === 'segments' ? gzipPath.workers : 0;
    const imageSize = knownImageSize(opts.imageSize, res, format, peeked.head, disk, gzIndex?.header.totalSize);
    log.info(`deploy: format ${format}${imageSize ? `, ${formatBytes(imageSize.bytes)} uncompressed (${imageSize.source})` : ''}${res.servedSize ? `, ${formatBytes(res.servedSize)} served` : ''}`);

    let target: WriteTarget;
    try { target = WriteTarget.open(opts.disk); } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw stageError('preflight', code === 'EBUSY' ? 'DISK_IN_USE' : 'DISK_OPEN_FAILED',
        code === 'EBUSY' ? `${opts.disk} is in use (the kernel refuses an exclusive open: mounted, or held by LVM/RAID/another program)`
          : `cannot open ${opts.disk} for writing: ${(e as Error).message}`, 0, 'untouched', 'stop whatever uses the disk, then retry', e);
    }
    tracker.total = imageSize?.bytes;
    const hash = new HashTap({ onChunk: (n) => { tracker.wireBytes += n; } });
    const workers = opts.workers ?? defaultDeployWorkers();
    let decoder: (Transform & { bytesWritten: number }) | undefined;
    let decodeThread: DeployResult['decodedOn'] = 'main';
    const placeXz = format === 'xz' && !attempt.xzInOrder && gzIndex === undefined && (opts.workers ?? defaultBlockWorkers()) > 0 && LIBLZMA.forWorkers() !== undefined && xzPlaced(peeked.head);
    const framesPath = gzIndex === undefined && (format === 'gzip' || format === 'zstd') && workers > 0 && framesSplittable(format, peeked.head);
    const streamOnWorker = gzIndex === undefined && !framesPath && (format === 'gzip' || format === 'zstd') && decodeWorkerSupported() && opts.workers !== 0;
    // a decode worker the agent started ahead of time (prestartDecodeWorker) that this path does not
    // take: ended before the path's own workers start (peak RSS)
    if (!streamOnWorker) dropPrestartedDecodeWorker();
    if (gzIndex !== undefined) {
      decoder = new SegmentInflater({ index: gzIndex, workers: segmentWorkers });
      decodeThread = 'segments';
      log.info(`deploy: inflating the gzip image in ${gzIndex.header.count} segments on ${segmentWorkers} worker threads (gzip index; ${(decoder as SegmentInflater).inflate === 'libdeflate' ? 'libdeflate' : LIBDEFLATE.status()})`);
    } else if (framesPath) {
      pool = new CodecPool(workers);
      decoder = new ParallelDecompressor({ format, pool });
      decodeThread = 'frames';
      log.info(`deploy: the image's frames say their length: decoding them in parallel on ${workers} worker thread${workers === 1 ? '' : 's'}${format === 'gzip' ? ` (${LIBDEFLATE.status()})` : ''}`);
    } else if (streamOnWorker) {
      // on any number of cores, one too: a worker decoding large batches synchronously (for gzip
      // with the engine measured faster here) costs less CPU than node:zlib's stream on the main
      // thread, whose every chunk is a thread-pool round trip (README, "One core")
      decoder = decodeWorker = new DecodeWorker({ format, lend: true });
      decodeThread = 'worker';
      const ahead = decodeWorker.prestarted ? ' started ahead of time' : '';
      // which engine and why: known once the engines were timed (by the main thread in the
      // constructor, or by a prestarted worker, which says so before its first block)
      void decodeWorker.engineChoice.then((c) => {
        if (c !== undefined) log.info(`deploy: inflating one gzip stream on a worker thread${ahead} (${c.engine}${c.reason === '' ? '' : `; ${c.reason}`})`);
      });
    } else if (placeXz) {
      // xz blocks over the in-order budget (xz -T0 -6): each written at its own offset by its worker
      blockPool = new BlockDecodePool(opts.workers ?? defaultBlockWorkers());
      decodeThread = 'blocks';
      log.info(`deploy: decoding xz with ${LIBLZMA.status()}, block by block on ${blockPool.size} worker thread${blockPool.size === 1 ? '' : 's'}, each block written at its offset by its worker (${formatBytes(firstBlockSize(peeked.head, PLACE_MAX_BLOCK)!)} blocks)`);
    } else if ((format === 'xz' || format === 'bzip2') && (opts.workers ?? defaultBlockWorkers()) > 0 && (format === 'xz' ? LIBLZMA : LIBBZ2).forWorkers() !== undefined
      && (format === 'bzip2' || xzBlocksSplittable(peeked.head))) {
      // xz blocks that say their sizes (xz -T) and every bzip2 file: blocks on worker threads
      blockPool = new BlockDecodePool(opts.workers ?? defaultBlockWorkers());
      decoder = format === 'xz' ? new XzBlockDecompressor({ pool: blockPool }) : new Bzip2BlockDecompressor({ pool: blockPool });
      decodeThread = 'blocks';
      log.info(`deploy: decoding ${format} with ${(format === 'xz' ? LIBLZMA : LIBBZ2).status()}, block by block on ${blockPool.size} worker thread${blockPool.size === 1 ? '' : 's'}`);
    } else {
      decoder = createDecompressor(format);
      if (format === 'xz' && (opts.workers ?? defaultBlockWorkers()) > 0) log.info(`deploy: the xz image's first block does not say its sizes or is larger than ${MAX_XZ_BLOCK >> 20} MiB (single-threaded xz writes one such block): one stream`);
      if (format === 'xz') log.info(`deploy: decoding xz with ${LIBLZMA.status()} on up to ${os.availableParallelism()} of its threads (blocks in parallel where the file has several)`);
      if (format === 'bzip2') log.info(`deploy: decoding bzip2 with ${LIBBZ2.status()}`);
    }
    const sinkOptions = {
      target,
      limit: disk.kind === 'file' && disk.size === 0 ? undefined : Math.min(disk.size, target.info.size || disk.size),
      zeroRuns: { enabled: opts.skipZeros ?? true },
      ...(opts.flushEvery !== undefined ? { flushEvery: opts.flushEvery } : {}),
      // every image: its partition table must fit the disk's sector size (4Kn); compressed ones:
      // the decoded bytes must be a disk image
      checkHead: {
        bytes: HEAD_BYTES,
        check: (h: Buffer) => (format === 'raw' ? undefined : decodedHeadProblem(format, h)) ?? (target.info.kind === 'block' ? sectorSizeProblem(h, target.info.sectorSize, disk.path) : undefined),
      },
      onPrepare: () => log.info('deploy: first decoded bytes at the writer, head checked'),
      onBytes: (n: number) => {
        // the end of the boot's critical path: the VM bench (bench/vm.ts) reads this line's stamp
        if (tracker.bytes === 0 && n > 0) log.info(`deploy: first bytes reached the writer (${format})`);
        tracker.bytes += n;
      },
    };
    if (placeXz) {
      const placer = new PlacedBlockWriter({ ...sinkOptions, pool: blockPool! });
      writer = placer;
      decoder = new XzBlockDecompressor({ pool: blockPool!, placer });
    } else {
      // xz and bzip2 blocks in order: their decoded parts are copied into the writer's blocks at
      // a block decoder's pace (~150 MB/s), where two blocks of 2 MiB keep the disk as busy as
      // three of 4 MiB, and the difference is memory the 150 MiB bound needs (README, Memory of
      // the block decoders)
      writer = new ImageWriter({ ...sinkOptions, ...(decodeThread === 'blocks' ? { poolSize: 2, blockSize: BLOCK_DECODER_WRITE } : {}) });
    }
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
      const inOrder = placeXz ? (first.err as { xzNeedsInOrder?: { atByte: number } }).xzNeedsInOrder : undefined;
      if (inOrder !== undefined) {
        throw new XzInOrderRestart(`the xz file goes on, at byte ${inOrder.atByte}, with a stream whose first block does not say its sizes (single-threaded xz output appended to xz -T output), which blocks placed at their offsets cannot follow`);
      }
      throw pipelineError(first, format, w, hash, source);
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
          w.bytes, diskStateNow, `recreate the image file on the server (${format} -t reports the same)`);
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
    if (gzIndex !== undefined && sha256 !== gzIndex.header.sha256) {
      throw stageError('verify', 'CHECKSUM_MISMATCH',
        `the image's sha256 (${sha256.slice(0, 12)}…) is not the one its gzip index recorded (${gzIndex.header.sha256.slice(0, 12)}…): the image changed after it was indexed`,
        w.bytes, diskStateNow, 'the boot sector was never written, so the disk will not boot; deploy again (the server re-indexes a changed image), or with --no-gzip-index');
    }
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
    const faults = counters.resumes > 0 || counters.restarts > 0 ? `; ${counters.resumes} resume${counters.resumes === 1 ? '' : 's'} after network faults${counters.restarts > 0 ? `, ${counters.restarts} restart${counters.restarts === 1 ? '' : 's'} from byte 0 (image changed)` : ''}` : '';
    const parallel = decoder instanceof ParallelDecompressor ? decoder : undefined;
    const segmented = decoder instanceof SegmentInflater ? decoder : undefined;
    const blockDecoder = decoder instanceof XzBlockDecompressor || decoder instanceof Bzip2BlockDecompressor ? decoder : undefined;
    const decodedOn = decodeThread === 'worker' ? '; decoded on a worker thread'
      : blockDecoder !== undefined ? `; ${blockDecoder.blocks} blocks in ${blockDecoder.streams} stream${blockDecoder.streams === 1 ? '' : 's'} decoded on ${blockPool!.size} worker${blockPool!.size === 1 ? '' : 's'}${blockDecoder instanceof XzBlockDecompressor && blockDecoder.streamedFrom !== undefined ? ` (one stream from byte ${blockDecoder.streamedFrom})` : ''}`
      : segmented !== undefined ? `; ${segmented.segments} gzip segments (${segmented.zeroSegments} all zeros, written as zero runs without inflating; ${segmented.libdeflateSegments} by libdeflate) on ${segmented.workerCount} workers (gzip index)` : '';
    const frames = parallel !== undefined ? `; ${parallel.frames.count} frames decoded on ${pool!.size} worker${pool!.size === 1 ? '' : 's'}` +
      `${parallel.streamedFrom !== undefined ? ` (single stream from byte ${parallel.streamedFrom})` : ''}${parallel.index !== undefined ? ', frame index checked' : ''}` : '';
    const unverified = format === 'raw' && wanted === undefined
      ? 'raw image, no checksum: nothing verified these bytes (give --sha256, or serve the image from booty server, which sends its X-Image-Sha256)' : undefined;
    if (unverified !== undefined) log.warn(`deploy: ${unverified}`);
    log.info(`deploy: wrote ${formatBytes(w.bytes)} (${format}, ${formatBytes(hash.bytes)} served) in ${seconds.toFixed(1)} s, ${formatRate(w.bytes / seconds)}; ${formatBytes(w.zeroBytes)} as zero runs via ${target.zeroMethod}; sha256 ${sha256}${wanted !== undefined ? ' (verified)' : ''}${frames}${decodedOn}${w instanceof ImageWriter ? `; ${w.flusher.describe()}` : ''}${hash.offloaded > 0 ? `; sha256 of ${formatBytes(hash.offloaded)} of it on a pool thread (the main thread was busy)` : hash.canOffload ? '' : `; sha256 on the main thread only (${hashThreadWhyNot()})`}${faults}`);
    return {
      bytesWritten: w.bytes, wireBytes: hash.bytes, sha256, format, seconds, zeroBytes: w.zeroBytes, rereadSkipped, resumes: counters.resumes, restarts: counters.restarts,
      ...(unverified !== undefined ? { unverified } : {}),
      workers: parallel !== undefined ? pool!.size : segmented !== undefined ? segmented.workerCount : blockPool !== undefined ? blockPool.size : 0,
      ...(blockDecoder !== undefined ? { blocks: blockDecoder.blocks } : {}),
      decodedOn: decodeThread,
      ...(segmented !== undefined ? { segments: segmented.segments, zeroSegments: segmented.zeroSegments, libdeflateSegments: segmented.libdeflateSegments } : {}),
      ...(parallel !== undefined ? { parallelFrames: parallel.frames.count, indexChecked: parallel.index !== undefined && parallel.streamedFrom === undefined } : {}),
    };
  } finally {
    if (writer !== undefined) await writer.abort().catch(() => {});
    if (!body.destroyed) body.destroy();
    if (!source.destroyed) source.destroy();
    // (its thread ends with the stream; a failure before the stream ran must end it too)
    if (decodeWorker !== undefined && !decodeWorker.destroyed) decodeWorker.destroy();
    gzIndex?.close();
    await pool?.close();
    await blockPool?.close();
  }
}

/** Whether an xz image's blocks are written at their offsets by the block workers
 *  (xz-placed-writer.ts): its first block says its sizes (what `xz -T`, pixz write) and is at most
 *  PLACE_MAX_BLOCK. Blocks of any size: placed, a deploy peaks 12-18 MiB lower than with small
 *  blocks in order (README, Memory of the block decoders). BOOTY_XZ_PLACE=inorder keeps blocks up
 *  to 4 MiB in order (the default until 2026-12-06), =never places none (to compare the paths). */
function xzPlaced(head: Buffer): boolean {
  const mode = process.env.BOOTY_XZ_PLACE;
  if (mode === 'never') return false;
  const first = firstBlockSize(head, PLACE_MAX_BLOCK);
  return first !== undefined && (mode !== 'inorder' || first > MAX_XZ_BLOCK);
}

/** Whether the image's first frame says its length (so frames can be cut out as they arrive and
 *  decoded in parallel); a later frame that does not is decoded as a stream from there on. */
function framesSplittable(format: 'gzip' | 'zstd', head: Buffer): boolean {
  if (format === 'gzip') {
    const h = parseBootyGzipHeader(head);
    return h !== undefined && h !== 'more';
  }
  const start = parseZstdFrameStart(head);
  return start.kind === 'frame' && start.header.contentSize !== undefined && start.header.contentSize <= DEFAULT_MAX_FRAME && !start.header.hasDictionary;
}

const fetchHint = 'check the server and the network, then deploy again';
const writeHint = 'check the disk (dmesg shows I/O errors), then deploy again';

function stageError(stage: Stage, code: string, message: string, offset: number, diskState: DiskState, hint: string, cause?: unknown): BootyError {
  return new BootyError({ stage, code, message, offset, diskState, hint, cause });
}

/** Smallest raw image accepted: one sector. Anything shorter is a truncated or empty download
 *  (three bytes of a zstd magic read as "raw"), never a disk image. */
const MIN_RAW_IMAGE = 512;

function resolveFormat(wanted: 'auto' | Format, head: Buffer, res: ImageResponse, log: Logger): Format {
  const cls = classifyHead(head);
  const detected = cls.format ?? 'raw';
  const tooSmall = () => {
    // peekHead returns fewer than HEAD_BYTES only when the stream ended: this is the whole image
    if (detected === 'raw' && head.length > 0 && head.length < MIN_RAW_IMAGE) {
      throw stageError('verify', 'IMAGE_TOO_SMALL',
        `the image is only ${head.length} bytes and has no gzip/zstd magic: too small to be a disk image (a truncated download?)`,
        0, 'untouched', 'check the image file on the server');
    }
  };
  if (wanted === 'raw') {
    // the operator insists: the bytes as served go onto the disk, whatever they are
    const is = cls.unsupported?.what ?? (detected === 'raw' ? undefined : detected === 'qcow2' ? 'a qcow2 disk image' : `${detected}-compressed`);
    if (is !== undefined) log.warn(`deploy: the image is ${is} but --format raw was given: writing its bytes as they are`);
    const why = refuseRawReason(head, res.contentType, true);
    if (why !== undefined) throw stageError('fetch', head.length === 0 ? 'IMAGE_EMPTY' : 'IMAGE_NOT_AN_IMAGE', why, 0, 'untouched', 'check the image URL on the server');
    tooSmall();
    return 'raw';
  }
  const needs = detected === 'xz' ? LIBLZMA : detected === 'bzip2' ? LIBBZ2 : undefined;
  if (needs !== undefined && (wanted === 'auto' || wanted === detected) && needs.forWorkers() === undefined) {
    throw stageError('decompress', 'DECODER_UNAVAILABLE', `the image is ${detected}-compressed and booty decodes it with ${needs.spec.soname}, but ${needs.whyNot()}`,
      0, 'untouched', `install Debian's ${detected === 'xz' ? 'liblzma5' : 'libbz2-1.0'} (the initramfs ships it), or decompress the image on the server (${detected === 'xz' ? 'xz -d' : 'bzip2 -d'}) and serve a gzip, zstd or raw image`);
  }
  if (cls.unsupported !== undefined) {
    if (wanted === 'auto') throw unsupportedFormatError(cls.unsupported, `the image is ${cls.unsupported.what}`);
    throw stageError('decompress', 'FORMAT_MISMATCH', `--format ${wanted} was given but the image is ${cls.unsupported.what}`,
      0, 'untouched', cls.unsupported.advice);
  }
  if (wanted === 'auto' || wanted === detected) {
    if (detected === 'raw') {
      const why = refuseRawReason(head, res.contentType, false);
      if (why !== undefined) throw stageError('fetch', head.length === 0 ? 'IMAGE_EMPTY' : 'IMAGE_NOT_AN_IMAGE', why, 0, 'untouched', 'check the image URL on the server');
      tooSmall();
    }
    return detected;
  }
  throw stageError('decompress', 'FORMAT_MISMATCH',
    `--format ${wanted} was given but the image ${detected === 'raw' ? `has no ${wanted} magic` : `is ${detected}`}`,
    0, 'untouched', `use --format auto (booty reads the format from the first bytes)`);
}

/** Refusing a format booty recognizes but does not decode (unsupported-formats.ts): before the
 *  first write, so the disk is untouched. */
function unsupportedFormatError(u: UnsupportedFormat, subject: string): BootyError {
  return stageError('decompress', 'IMAGE_FORMAT_UNSUPPORTED', `${subject}, ${refusalReason(u)}`, 0, 'untouched', u.advice);
}

/**
 * What the decompressed stream must not start with: the first bytes of a gzip or zstd image are
 * classified like the image itself (a `.qcow2.gz`, a `.tar.zst` or a page compressed by a proxy
 * would otherwise be written raw). Checked by the writer before it touches the disk.
 */
function decodedHeadProblem(format: Format, head: Buffer): BootyError | undefined {
  const cls = classifyHead(head);
  if (cls.unsupported !== undefined) return unsupportedFormatError(cls.unsupported, `the ${format} image decompresses to ${cls.unsupported.what}`);
  if (cls.format === 'qcow2') {
    return stageError('decompress', 'IMAGE_FORMAT_UNSUPPORTED', `the ${format} image decompresses to a qcow2 disk image, which booty deploys only as served (it reads its tables by Range requests)`,
      0, 'untouched', `serve the .qcow2 itself, uncompressed (its clusters can be compressed: qemu-img convert -c -O qcow2), or convert it to raw on the server (qemu-img convert -O raw) and gzip or zstd that`);
  }
  if (cls.format !== 'raw') {
    return stageError('decompress', 'IMAGE_FORMAT_UNSUPPORTED', `the ${format} image decompresses to ${cls.format}-compressed data (compressed twice)`,
      0, 'untouched', `decompress it once on the server (${cls.format === 'gzip' ? 'gzip' : 'zstd'} -d) and serve the result`);
  }
  if (looksLikeMarkup(head)) {
    return stageError('fetch', 'IMAGE_NOT_AN_IMAGE', `the ${format} image decompresses to a web page, not a disk image`, 0, 'untouched', 'check the image URL on the server');
  }
  return undefined;
}

interface KnownSize { bytes: number; source: string; exact: boolean }

/** The uncompressed size from every source that can tell it; checks it fits the disk. */
function knownImageSize(configured: number | undefined, res: ImageResponse, format: Format, head: Buffer, disk: DiskInfo, indexed?: number): KnownSize | undefined {
  const sizes: KnownSize[] = [];
  if (indexed !== undefined) sizes.push({ bytes: indexed, source: "the image's gzip index", exact: true });
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

function pipelineError(first: { stage: Stage; err: Error }, format: Format, w: ImageWriter | PlacedBlockWriter, hash: HashTap, source: ImageByteStream): BootyError {
  const { err } = first;
  const state: DiskState = w.touched ? 'partially-written' : 'untouched';
  const res = source.first;
  if (err instanceof ImageChangedError) return new ImageChangedBootyError(err.message, w.bytes, state, err);
  if (err instanceof ResumeGaveUpError) {
    return stageError('fetch', 'FETCH_GAVE_UP',
      `the download broke off and could not be resumed: ${err.message}; ${w.bytes} image bytes were written${source.resumes > 0 ? ` (after ${source.resumes} successful resume${source.resumes === 1 ? '' : 's'})` : ''}`,
      w.bytes, state, 'check the server and the network; deploy again (it starts from byte 0: a failed deploy is never continued across runs)', err);
  }
  if (err instanceof BootyError) return err;
  if (err instanceof GzipIndexError) {
    return stageError('decompress', 'GZIP_INDEX_FAILED', `${err.message}; ${w.bytes} image bytes were written`, w.bytes, state,
      'deploy again with --no-gzip-index (or "gzipIndex": false) to decode the image as one stream, and rebuild the index on the server (booty index)', err);
  }
  const wire = `after ${hash.bytes} bytes received`;
  if (err instanceof SizeLimitExceeded) {
    return stageError('write', 'IMAGE_LARGER_THAN_DISK',
      `the image is larger than the disk (${err.limit} bytes): stopped before writing past its end`, w.bytes, state,
      'use a larger disk or a smaller image; nothing was truncated silently');
  }
  if (err.name === 'AbortError') {
    return stageError(first.stage === 'write' ? 'write' : 'fetch', 'ABORTED', 'deploy aborted', w.bytes, state, 'deploy again');
  }
  // a block worker's own write (xz blocks written at their offsets)
  if (err instanceof BlockWriteError) return stageError('write', 'WRITE_FAILED', `writing ${w.target.info.path} failed: ${err.message}`, w.bytes, state, writeHint, err);
  switch (first.stage) {
    case 'decompress': {
      const d = describeDecodeError(format, err as Error & { code?: string });
      // decoded in segments with the server's index: the image or the index may be the damaged one
      const hint = d.code === 'DECODER_FAILED'
        ? `a fault in booty, not in the image: deploy again; if it repeats, report it with the full log (/tmp/booty.log on the agent)`
        : err.name === 'SegmentCorrupt'
          ? 'the image or its gzip index on the server is damaged: deploy again with --no-gzip-index ("gzipIndex": false) to tell which (gzip -t checks the image there; booty index rebuilds the index)'
          : `the image file on the server is damaged: recreate or re-upload it (${format} -t checks it there)`;
      return stageError('decompress', d.code, `${d.what} (${wire})`, w.bytes, state, hint, err);
    }
    case 'write':
      return stageError('write', 'WRITE_FAILED', `writing ${w.target.info.path} failed: ${err.message}`, w.bytes, state, writeHint, err);
    default: {
      const expected = res.contentLength !== undefined ? ` of ${res.contentLength}` : '';
      return stageError('fetch', 'FETCH_FAILED', `the download broke off ${wire}${expected}: ${err.message}`, w.bytes, state, fetchHint, err);
    }
  }
}
