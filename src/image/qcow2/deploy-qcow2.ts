// A qcow2 image deployed straight from its URL (deploy.ts hands over once the head says qcow2):
//   header (from the head already read) -> L1 and L2 tables by Range requests -> the map of
//   allocated clusters, checked (nothing outside the file, in the tables, overlapping) before the
//   first write -> the ONE sequential download (the resumable source, hashed like every format)
//   -> clusters to their guest offsets as they pass (compressed ones decoded on workers) -> zero
//   runs for everything else -> sha256 -> commit.
// Without Range support the tables are read from the stream itself, which works when each comes
// before the data it maps (qemu-img writes them so); checks then happen as tables arrive.
import { createHash } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { BootyError, type DiskState, type Stage } from '../../util/errors.ts';
import type { Logger } from '../../util/log.ts';
import { checkImageFits, type DiskInfo } from '../../disk/preflight.ts';
import { formatBytes, startProgressTicker, type ProgressSnapshot, type ProgressTracker } from '../progress.ts';
import { HashTap } from '../transforms.ts';
import { WriteTarget } from '../sink/target.ts';
import { ImageChangedError, ResumeGaveUpError, type ImageByteStream } from '../source/resumable-source.ts';
import { parseQcow2Header, Qcow2Refused, type Qcow2Header } from './header.ts';
import { ClusterList, GuestBitmap, HostOrderChecker, MetaRanges, parseL1, parseL2, Qcow2TableError, ENTRY_BYTES } from './cluster-map.ts';
import { coalesce, RangeUnsupported, readRange } from './table-reader.ts';
import { PositionalWriter } from './positional-writer.ts';
import { ClusterDecodePool } from './cluster-decode-pool.ts';
import { ClusterStream, Qcow2StreamError } from './cluster-stream.ts';

export interface Qcow2DeployInput {
  url: string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  disk: DiskInfo;
  diskPath: string;
  source: ImageByteStream;
  /** the stream from byte 0 (the head put back) */
  body: Readable;
  head: Buffer;
  expectedSha: string | undefined;
  tracker: ProgressTracker;
  onProgress?: (p: ProgressSnapshot) => void;
  progressIntervalMs?: number;
  /** decode workers for compressed clusters (0: one anyway: compressed clusters need a thread) */
  workers?: number;
  log: Logger;
}

export interface Qcow2DeployResult {
  bytesWritten: number;
  wireBytes: number;
  sha256: string;
  zeroBytes: number;
  rereadSkipped?: string;
  clusters: number;
  compressedClusters: number;
  rangeTables: boolean;
  workers: number;
  zeroMethod: string;
}

const damagedHint = 'the image file on the server is damaged: check it there (qemu-img check IMAGE.qcow2), recreate or re-upload it';
const fail = (stage: Stage, code: string, message: string, offset: number, diskState: DiskState, hint: string, cause?: unknown) =>
  new BootyError({ stage, code, message, offset, diskState, hint, cause });

/** What plan() found: the header, the allocated clusters in host order, the tables read by Range. */
interface Plan { h: Qcow2Header; list: ClusterList; bitmap: GuestBitmap; meta: MetaRanges; tablesRead?: Array<{ start: number; length: number; kind: 'L1' | 'L2'; sha: string }> }

/** Before the first write: header, tables, map, checks. Everything thrown leaves the disk untouched. */
async function plan(i: Qcow2DeployInput): Promise<Plan> {
  const fileSize = i.source.total;
  let h: Qcow2Header;
  try {
    h = parseQcow2Header(i.head, fileSize);
  } catch (e) {
    if (e instanceof Qcow2Refused) throw fail('decompress', e.code === 'QCOW2_BAD_HEADER' ? 'QCOW2_BAD_HEADER' : 'IMAGE_FORMAT_UNSUPPORTED', e.message, 0, 'untouched', e.advice, e);
    throw e;
  }
  checkImageFits(i.disk, h.virtualSize, 'the qcow2 header');
  if (h.snapshots > 0) i.log.info(`deploy: the qcow2 has ${h.snapshots} internal snapshot${h.snapshots === 1 ? '' : 's'}: ignored (the active L1 table is the image, as qemu-img convert writes it)`);
  if (h.dirty) i.log.warn('deploy: the qcow2 was not closed cleanly (dirty bit): its refcounts may be stale; booty reads only its L1/L2 tables, which are not');
  const meta = new MetaRanges();
  meta.add(0, h.clusterSize);
  meta.add(h.l1Offset, h.l1Offset + h.l1Size * 8);
  if (h.refcountTableOffset > 0) meta.add(h.refcountTableOffset, h.refcountTableOffset + h.refcountTableClusters * h.clusterSize);
  const list = new ClusterList();
  let bitmap: GuestBitmap;
  try {
    bitmap = new GuestBitmap(Math.ceil(h.virtualSize / h.clusterSize));
  } catch (e) {
    throw fail('decompress', 'IMAGE_FORMAT_UNSUPPORTED', (e as Error).message, 0, 'untouched', 'convert it on the server with a larger cluster size (qemu-img convert -O qcow2 -o cluster_size=2M), or to raw');
  }
  const tableError = (e: unknown) => {
    if (e instanceof Qcow2TableError) return fail('decompress', e.code, `the qcow2's tables are damaged: ${e.message}`, 0, 'untouched', damagedHint, e);
    return e;
  };
  const rangeOpts = { headers: i.headers, signal: i.signal, first: i.source.first };
  let l1: Buffer;
  try {
    l1 = await readRange(i.url, h.l1Offset, h.l1Size * 8, rangeOpts);
  } catch (e) {
    if (e instanceof RangeUnsupported) {
      i.log.warn(`deploy: ${e.message}: reading the qcow2's tables from the download itself (works when each table comes before the data it maps, as qemu-img writes them)`);
      return { h, list, bitmap, meta };
    }
    throw fail('fetch', 'FETCH_FAILED', `reading the qcow2's L1 table (bytes ${h.l1Offset}+${h.l1Size * 8}) failed: ${(e as Error).message}`, 0, 'untouched', 'check the server and the network, then deploy again', e);
  }
  const tablesRead: Array<{ start: number; length: number; kind: 'L1' | 'L2'; sha: string }> = [];
  tablesRead.push({ start: h.l1Offset, length: l1.length, kind: 'L1', sha: sha(l1) });
  try {
    const refs = parseL1(l1, h, fileSize).sort((a, b) => a.offset - b.offset);
    for (const r of refs) meta.add(r.offset, r.offset + h.clusterSize);
    for (const run of coalesce(refs.map((r) => ({ start: r.offset, length: h.clusterSize })))) {
      let bytes: Buffer;
      try {
        bytes = await readRange(i.url, run.start, run.end - run.start, rangeOpts);
      } catch (e) {
        throw fail('fetch', 'FETCH_FAILED', `reading the qcow2's L2 tables (bytes ${run.start}-${run.end}) failed: ${(e as Error).message}`, 0, 'untouched', 'check the server and the network, then deploy again', e);
      }
      for (const m of run.members) {
        const r = refs[m];
        const l2 = bytes.subarray(r.offset - run.start, r.offset - run.start + h.clusterSize);
        tablesRead.push({ start: r.offset, length: h.clusterSize, kind: 'L2', sha: sha(l2) });
        parseL2(l2, r, h, fileSize, list, bitmap);
      }
    }
    list.sort();
    // the whole map checked in host order before anything is written
    const checker = new HostOrderChecker(h, meta);
    for (let k = 0; k < list.count; k++) checker.check(list.host[k], list.guest[k], list.csize[k]);
  } catch (e) {
    throw tableError(e);
  }
  i.log.info(`deploy: format qcow2 (v${h.version}), ${formatBytes(h.virtualSize)} disk, ${h.clusterSize >> 10} KiB clusters, ${list.count} allocated (map ${formatBytes(list.count * ENTRY_BYTES)}), tables read by Range in ${tablesRead.length} parts`);
  return { h, list, bitmap, meta, tablesRead };
}

function sha(b: Buffer): string { return createHash('sha256').update(b).digest('hex'); }

/** The decode workers, started while the tables are read: a worker takes milliseconds to start
 *  here but about a second under QEMU's TCG, where the agent runs, and most qcow2 images operators
 *  download have compressed clusters (cloud images, `qemu-img convert -c`). */
function startDecodePool(workers: number | undefined): ClusterDecodePool {
  return workers === undefined ? new ClusterDecodePool() : new ClusterDecodePool(Math.max(1, workers));
}

export async function deployQcow2(i: Qcow2DeployInput): Promise<Qcow2DeployResult> {
  let pool: ClusterDecodePool | undefined = startDecodePool(i.workers);
  let p: Plan;
  let target: WriteTarget;
  try {
    p = await plan(i);
    let hasCompressed = p.tablesRead === undefined;
    for (let k = 0; k < p.list.count && !hasCompressed; k++) if (p.list.csize[k] !== 0) hasCompressed = true;
    if (!hasCompressed) {
      const unused = pool;
      pool = undefined;
      await unused.close();
    }
    try { target = WriteTarget.open(i.diskPath); } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw fail('preflight', code === 'EBUSY' ? 'DISK_IN_USE' : 'DISK_OPEN_FAILED',
        code === 'EBUSY' ? `${i.diskPath} is in use (the kernel refuses an exclusive open: mounted, or held by LVM/RAID/another program)`
          : `cannot open ${i.diskPath} for writing: ${(e as Error).message}`, 0, 'untouched', 'stop whatever uses the disk, then retry', e);
    }
  } catch (e) {
    await pool?.close();
    throw e;
  }
  const { h } = p;
  const tracker = i.tracker;
  tracker.total = h.virtualSize;
  let writer: PositionalWriter | undefined = new PositionalWriter(target, (n) => { tracker.bytes += n; });
  const w = writer;
  const hash = new HashTap({ onChunk: (n) => { tracker.wireBytes += n; } });
  const stream = new ClusterStream({ header: h, fileSize: i.source.total, writer: w, pool, list: p.list, bitmap: p.bitmap, meta: p.meta, tablesRead: p.tablesRead });
  const state = (): DiskState => (w.touched ? 'partially-written' : 'untouched');
  const stopTicker = startProgressTicker(tracker, i.progressIntervalMs ?? 500, (s) => i.onProgress?.(s));
  let failedAt: { stage: Stage; err: Error } | undefined;
  const watch = (s: NodeJS.EventEmitter, stage: Stage) => s.once('error', (err: Error & { code?: string }) => {
    if (err.code !== 'ERR_STREAM_PREMATURE_CLOSE') failedAt ??= { stage, err };
  });
  watch(i.body, 'fetch');
  watch(stream, 'decompress');
  try {
    try {
      await pipeline(i.body, hash, stream, { signal: i.signal });
      // everything no table maps to data reads as zeros
      const cs = h.clusterSize;
      for (let c = 0; c < p.bitmap.clusters;) {
        if (p.bitmap.has(c)) { c++; continue; }
        let e = c;
        while (e < p.bitmap.clusters && !p.bitmap.has(e)) e++;
        await w.zero(c * cs, Math.min(e * cs, h.virtualSize));
        c = e;
      }
      await w.finish(h.virtualSize);
    } catch (e) {
      throw streamError(failedAt ?? { stage: 'write', err: e as Error }, w, hash, i.source);
    } finally {
      stopTicker();
    }
    if (p.list.remaining > 0) {
      throw fail('decompress', 'QCOW2_TRUNCATED', `the image ended with ${p.list.remaining} mapped clusters not seen`, h.virtualSize, 'written-unverified', damagedHint);
    }
    const digest = hash.digest();
    const wanted = i.expectedSha ?? i.source.first.sha256;
    if (wanted !== undefined && digest !== wanted) {
      const whose = i.expectedSha !== undefined ? 'expected' : "server's X-Image-Sha256";
      throw fail('verify', 'CHECKSUM_MISMATCH', `image checksum mismatch (${whose} ${wanted.slice(0, 12)}…, got ${digest.slice(0, 12)}…, over ${hash.bytes} bytes served)`,
        h.virtualSize, 'written-unverified', 'the boot sector was never written, so the disk will not boot; check --sha256 against `sha256sum` of the file on the server, or re-upload the image');
    }
    let rereadSkipped: string | undefined;
    try { rereadSkipped = await w.commit(h.virtualSize); } catch (e) {
      throw fail('write', 'WRITE_FAILED', `writing the boot sector failed: ${(e as Error).message}`, h.virtualSize, 'partially-written', 'check the disk (dmesg shows I/O errors), then deploy again', e);
    }
    await w.close();
    writer = undefined;
    if (wanted === undefined) i.log.warn('deploy: qcow2 image without a checksum: its tables and compressed clusters were checked, but nothing verified the data clusters (give --sha256)');
    return {
      bytesWritten: h.virtualSize, wireBytes: hash.bytes, sha256: digest, zeroBytes: w.zeroBytes, rereadSkipped,
      clusters: stream.clusters, compressedClusters: stream.compressed, rangeTables: p.tablesRead !== undefined, workers: pool?.size ?? 0, zeroMethod: target.zeroMethod,
    };
  } finally {
    if (writer !== undefined) await writer.abort().catch(() => {});
    await pool?.close();
  }
}

function streamError(first: { stage: Stage; err: Error }, w: PositionalWriter, hash: HashTap, source: ImageByteStream): BootyError {
  const { err } = first;
  const state: DiskState = w.touched ? 'partially-written' : 'untouched';
  const placed = w.dataBytes + w.zeroBytes;
  if (err instanceof BootyError) return err;
  if (err instanceof ImageChangedError) {
    return fail('fetch', 'IMAGE_CHANGED', err.message, hash.bytes, state, 'the image was replaced on the server while this deploy ran: deploy again', err);
  }
  if (err instanceof ResumeGaveUpError) {
    return fail('fetch', 'FETCH_GAVE_UP', `the download broke off and could not be resumed: ${err.message}; ${placed} disk bytes were written${source.resumes > 0 ? ` (after ${source.resumes} resumes)` : ''}`,
      hash.bytes, state, 'check the server and the network; deploy again (it starts from byte 0)', err);
  }
  if (err instanceof Qcow2StreamError) {
    const hint = err.code === 'QCOW2_NEEDS_RANGE'
      ? 'serve the image from a server that answers Range requests (nginx, booty server), or convert it on the server (qemu-img convert -O raw IMAGE.qcow2 IMAGE.raw, then gzip or zstd it)'
      : err.code === 'QCOW2_CHANGED' ? 'the image was replaced on the server while this deploy ran: deploy again' : damagedHint;
    return fail(err.stage, err.code, `${err.message} (image byte ${err.at}, after ${hash.bytes} bytes received)`, err.at, state, hint, err);
  }
  if (err instanceof Qcow2TableError) {
    return fail('decompress', err.code, `the qcow2's tables are damaged: ${err.message}`, err.at, state, damagedHint, err);
  }
  if (err.name === 'AbortError') return fail('fetch', 'ABORTED', 'deploy aborted', hash.bytes, state, 'deploy again');
  if (first.stage === 'fetch') {
    const of = source.total !== undefined ? ` of ${source.total}` : '';
    return fail('fetch', 'FETCH_FAILED', `the download broke off after ${hash.bytes} bytes received${of}: ${err.message}`, hash.bytes, state, 'check the server and the network, then deploy again', err);
  }
  return fail('write', 'WRITE_FAILED', `writing ${w.target.info.path} failed: ${err.message}`, placed, state, 'check the disk (dmesg shows I/O errors), then deploy again', err);
}

