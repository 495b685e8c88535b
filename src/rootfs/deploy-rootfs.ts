// deploy-rootfs: a rootfs tarball URL -> a bootable disk. In order:
//   preflight (a whole block device, not in use) -> plan the layout on this disk (refused before
//   any write when it does not fit) -> sfdisk (checked against booty's reader) -> kernel
//   partitions (BLKRRPART / BLKPG) -> mkfs with booty's UUIDs -> mount under a private directory
//   -> GET (resumable: Range below the decompressor) -> sha256 tap -> gunzip/zstd/xz/bzip2 ->
//   tar-stream extraction (src/rootfs/extract.ts) -> stream checks (trailing bytes, sha256) ->
//   fstab by UUID, fresh machine-id, post-deploy settings -> boot loader through chroot ->
//   unmount, fsync the disk.
// Any failure after the partition table was written unmounts what was mounted and erases the
// table's signatures (wipefs), so firmware skips the disk instead of booting half a system.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { PassThrough, Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Bootloader, RootfsLayout } from '../config/rootfs-layout.ts';
import type { PostDeploy } from '../config/action.ts';
import { formatSize } from '../config/disk-size.ts';
import { realBlockIO, type BlockIO } from '../disk/block-io.ts';
import { preflightDisk } from '../disk/preflight.ts';
import { writeInRoot, writePostDeploySettings } from '../disk/post-deploy.ts';
import { lstatInRoot } from '../disk/root-path.ts';
import { spawnToolRunner, type ToolRunner } from '../disk/tools.ts';
import { HEAD_BYTES, classifyHead, type Format } from '../image/format/detect.ts';
import { createDecompressor, describeDecodeError, trailingBytes } from '../image/format/decompress.ts';
import { ImageChangedError, ResumableSource, ResumeGaveUpError, DEFAULT_RETRY_FOR_MS, DEFAULT_STALL_TIMEOUT_MS } from '../image/source/resumable-source.ts';
import { ProgressTracker, formatBytes, startProgressTicker, type ProgressSnapshot } from '../image/progress.ts';
import { HashTap, peekHead } from '../image/transforms.ts';
import { LIBLZMA } from '../sys/liblzma.ts';
import { LIBBZ2 } from '../sys/libbz2.ts';
import { BootyError, isBootyError, type DiskState, type Stage } from '../util/errors.ts';
import { silentLogger, type Logger } from '../util/log.ts';
import { installBootloader, type BootloaderOptions, type BootloaderReport } from './bootloader.ts';
import { extractRootfs, type ExtractResult } from './extract.ts';
import { depth, renderFstab } from './fstab.ts';
import { planLayout, type LayoutPlan } from './layout-plan.ts';
import { checkCanMake, makeFilesystems, partitionDisk, type MadePartition } from './prepare-disk.ts';

export interface RootfsDeployOptions {
  /** http(s) URL, file:// URL or absolute path of the tarball */
  rootfs: string;
  /** the whole disk (a block device) */
  disk: string;
  sha256?: string;
  layout: RootfsLayout;
  bootloader: Bootloader;
  fstab: 'generate' | 'keep';
  post?: PostDeploy;
  /** the NIC the agent used, for post.network */
  nic?: { mac?: string; iface?: string };
  headers?: Record<string, string>;
  stallTimeoutMs?: number;
  retryForMs?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  log?: Logger;
  onProgress?: (p: ProgressSnapshot) => void;
  progressIntervalMs?: number;
  tools?: ToolRunner;
  io?: BlockIO;
  /** see BootloaderOptions (a UEFI boot entry hook) */
  onUefiMachine?: BootloaderOptions['onUefiMachine'];
}

export interface RootfsDeployResult extends ExtractResult {
  /** compressed bytes received */
  wireBytes: number;
  /** sha256 of the tarball as served */
  sha256: string;
  format: Format;
  seconds: number;
  resumes: number;
  partitions: Array<{ number: number; device: string; fs?: string; mountpoint?: string; uuid?: string; bytes: number }>;
  bootloader: BootloaderReport;
}

const HEX64 = /^[0-9a-f]{64}$/;

function fail(stage: Stage, code: string, message: string, diskState: DiskState, hint?: string, cause?: unknown): BootyError {
  return new BootyError({ stage, code, message, diskState, hint, cause });
}

export async function deployRootfs(o: RootfsDeployOptions): Promise<RootfsDeployResult> {
  const log = o.log ?? silentLogger;
  const tools = o.tools ?? spawnToolRunner();
  const io = o.io ?? realBlockIO();
  const started = performance.now();
  const expectedSha = o.sha256?.trim().toLowerCase();
  if (expectedSha !== undefined && !HEX64.test(expectedSha)) {
    throw fail('config', 'BAD_SHA256', `sha256 must be 64 hex digits, got ${JSON.stringify(o.sha256)}`, 'untouched');
  }
  // Nothing is written before the layout is known to fit this disk.
  const info = preflightDisk(o.disk, { mode: 'write' });
  if (info.kind !== 'block') {
    throw fail('preflight', 'NOT_A_BLOCK_DEVICE', `${o.disk} is a regular file; a rootfs deploy partitions and mounts a block device`, 'untouched',
      'attach the file as a loop device first (losetup -P -f --show FILE)');
  }
  const handle = io.openDisk(o.disk);
  const sectorSize = handle.sectorSize;
  const diskBytes = handle.sizeBytes;
  handle.close();
  const plan = planLayout(o.layout, diskBytes, sectorSize);
  checkCanMake(o.layout, tools);
  log.info(`rootfs: ${o.rootfs} -> ${o.disk} (${formatSize(diskBytes)}, ${sectorSize}-byte sectors)`);

  // The tarball is opened (and its format checked) before the disk is touched: a URL that
  // answers 404 or serves a disk image leaves the disk as it was.
  const source = await ResumableSource.open(o.rootfs, {
    headers: o.headers, log,
    stallTimeoutMs: o.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS, retryForMs: o.retryForMs ?? DEFAULT_RETRY_FOR_MS,
    backoffInitialMs: o.backoffInitialMs, backoffMaxMs: o.backoffMaxMs,
  }).catch((e: unknown) => { throw fail('fetch', 'FETCH_FAILED', `rootfs: fetching ${o.rootfs} failed: ${(e as Error).message}`, 'untouched', 'check the URL and the server', e); });
  let mountDir: string | undefined;
  const mounted: string[] = [];
  let partitioned = false;
  try {
    const peeked = await peekHead(source, HEAD_BYTES).catch((e: Error) => { throw fetchError(e, 'untouched'); });
    const format = tarballFormat(peeked.head);

    partitioned = true;
    const parts = await partitionDisk(o.disk, plan, tools, io, log);
    await makeFilesystems(parts, tools, log);
    mountDir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-rootfs-'));
    await mountLayout(parts, mountDir, tools, mounted, log);

    const tracker = new ProgressTracker();
    const stopTicker = startProgressTicker(tracker, o.progressIntervalMs ?? 2000, (p) => o.onProgress?.(p));
    // a line in the log (the serial console) now and then: the extraction of a big tree is long
    const stopLogTicker = startProgressTicker(tracker, 30_000, (p) => log.info(`rootfs: extracting: ${formatBytes(p.bytes)} of tar read, ${formatBytes(p.wireBytes)} received`));
    let extracted: ExtractResult;
    let hash: HashTap;
    try {
      ({ extracted, hash } = await streamInto(peeked.rest, format, mountDir, tracker, parts));
    } finally {
      stopTicker();
      stopLogTicker();
    }
    const sha256 = hash.digest();
    const wanted = expectedSha ?? source.first.sha256;
    if (wanted !== undefined && wanted !== sha256) {
      throw fail('verify', 'CHECKSUM_MISMATCH', `rootfs: tarball checksum mismatch (expected ${wanted.slice(0, 12)}…, got ${sha256.slice(0, 12)}…, over ${hash.bytes} bytes served)`,
        'partially-written', 'check the sha256 against `sha256sum` of the file on the server; the disk\'s partition table was erased, so it will not boot');
    }
    log.info(`rootfs: extracted ${extracted.files} files, ${extracted.directories} directories, ${extracted.symlinks} symlinks, ${extracted.hardLinks} hard links, ${extracted.devices} devices, ${extracted.fifos} FIFOs; ${formatBytes(extracted.bytesWritten)} of file data from ${formatBytes(hash.bytes)} served (${format}); sha256 ${sha256}${wanted !== undefined ? ' (verified)' : ''}`);

    const written = configureTree(mountDir, parts, o, log);
    const bootloader = await installBootloader({ root: mountDir, disk: o.disk, bootloader: o.bootloader, tools, log, onUefiMachine: o.onUefiMachine, written,
      filesystems: parts.flatMap((p) => (p.uuid === undefined ? [] : [{ uuid: p.uuid, device: p.device }])) })
      .catch((e: unknown) => { throw asWriteError(e, 'BOOTLOADER_FAILED', 'rootfs: installing the boot loader failed'); });

    await unmountAll(mounted, tools, log, true);
    syncDisk(o.disk);
    const seconds = (performance.now() - started) / 1000;
    log.info(`rootfs: ${o.disk} deployed in ${seconds.toFixed(1)} s (${bootloader.installed.join(' + ') || 'no boot loader'})`);
    return {
      ...extracted, wireBytes: hash.bytes, sha256, format, seconds, resumes: source.resumes, bootloader,
      partitions: parts.map((p) => ({ number: p.number, device: p.device, fs: p.fs, mountpoint: p.mountpoint, uuid: p.uuid, bytes: p.bytes })),
    };
  } catch (e) {
    await unmountAll(mounted, tools, log, false);
    if (partitioned) await eraseTable(o.disk, tools, log);
    const err = isBootyError(e) ? e : fail('write', 'ROOTFS_FAILED', `rootfs: ${(e as Error).message}`, 'unknown', undefined, e);
    if (!partitioned) throw err;
    // the disk was partitioned: whatever the step said, the table is gone and nothing boots
    throw new BootyError({ stage: err.stage, code: err.code, message: err.message, cause: err.cause ?? err, diskState: 'partially-written',
      hint: `${err.hint === undefined ? '' : `${err.hint}; `}the partition table was erased, so firmware skips the disk`, exitCode: err.exitCode });
  } finally {
    if (!source.destroyed) source.destroy();
    if (mountDir !== undefined && mounted.length === 0) { try { fs.rmdirSync(mountDir); } catch { /* still mounted after a lazy detach */ } }
  }
}

/** The format of a tarball from its first bytes: a plain tar, or one of the four compressors. */
function tarballFormat(head: Buffer): Format {
  const cls = classifyHead(head);
  if (cls.unsupported?.id === 'tar') return 'raw';
  const f = cls.format;
  if (f === 'gzip' || f === 'zstd') return f;
  if (f === 'xz' || f === 'bzip2') {
    const lib = f === 'xz' ? LIBLZMA : LIBBZ2;
    if (lib.forWorkers() === undefined) {
      throw fail('decompress', 'DECODER_UNAVAILABLE', `the rootfs tarball is ${f}-compressed and booty decodes it with ${lib.spec.soname}, but ${lib.whyNot()}`,
        'untouched', `install Debian's ${f === 'xz' ? 'liblzma5' : 'libbz2-1.0'}, or serve the tarball gzip- or zstd-compressed`);
    }
    return f;
  }
  const what = cls.unsupported?.what ?? (head.length === 0 ? 'empty' : 'not a tar archive (no ustar header, no gzip/zstd/xz/bzip2 magic)');
  throw fail('decompress', 'NOT_A_TARBALL', `the rootfs is ${what}`, 'untouched',
    'serve a tar archive of the root filesystem (tar, tar.gz, tar.zst, tar.xz or tar.bz2); a disk image goes through "deploy" instead');
}

/** The tarball from `body` into `root`; every stream's failure named by stage. */
async function streamInto(body: Readable, format: Format, root: string, tracker: ProgressTracker, parts: MadePartition[]):
  Promise<{ extracted: ExtractResult; hash: HashTap }> {
  const hash = new HashTap({ onChunk: (n) => { tracker.wireBytes += n; } });
  const decoder = createDecompressor(format);
  const tar = new PassThrough({ highWaterMark: 1 << 20 });
  let failedAt: { stage: Stage; err: Error } | undefined;
  const watch = (s: NodeJS.EventEmitter, stage: Stage) => s.once('error', (err: Error & { code?: string }) => {
    if (err.code !== 'ERR_STREAM_PREMATURE_CLOSE') failedAt ??= { stage, err };
  });
  watch(body, 'fetch');
  if (decoder !== undefined) watch(decoder, 'decompress');
  const fed = decoder === undefined ? pipeline(body, hash, tar) : pipeline(body, hash, decoder, tar);
  fed.catch(() => { /* reported through failedAt / the extraction below */ });
  const peeked = await peekHead(tar, HEAD_BYTES).catch((e: Error) => { throw streamError(failedAt ?? { stage: 'fetch', err: e }, format, tracker); });
  if (decoder !== undefined && classifyHead(peeked.head).unsupported?.id !== 'tar') {
    tar.destroy();
    await fed.catch(() => {});
    if (failedAt !== undefined) throw streamError(failedAt, format, tracker);
    const cls = classifyHead(peeked.head);
    throw fail('decompress', 'NOT_A_TARBALL', `the ${format} rootfs decompresses to ${cls.unsupported?.what ?? (cls.format !== undefined && cls.format !== 'raw' ? `${cls.format}-compressed data` : 'something that is not a tar archive')}`,
      'partially-written', 'serve a tar archive of the root filesystem, compressed once');
  }
  // (a Transform, not a 'data' listener: a listener would take the chunks from the extractor)
  const counting = new Transform({ highWaterMark: 1 << 20, transform(c: Buffer, _e, cb) { tracker.bytes += c.length; cb(null, c); } });
  peeked.rest.on('error', (e) => counting.destroy(e));
  peeked.rest.pipe(counting);
  let extracted: ExtractResult;
  try {
    extracted = await extractRootfs(counting, root);
  } catch (e) {
    // the extraction stopped reading: end the download too, or the pipeline waits forever
    tar.destroy();
    await fed.catch(() => {});
    if (failedAt !== undefined) throw streamError(failedAt, format, tracker);
    throw explainExtractError(e, parts, root);
  }
  await fed.catch((e: Error) => { throw streamError(failedAt ?? { stage: 'fetch', err: e }, format, tracker); });
  if (decoder !== undefined) {
    const extra = trailingBytes(decoder as typeof decoder & { bytesWritten: number }, hash.bytes);
    if (extra > 0) throw fail('decompress', 'IMAGE_TRAILING_GARBAGE', `rootfs: ${extra} bytes after the end of the ${format} data`, 'partially-written', 'recreate the tarball on the server');
  }
  return { extracted, hash };
}

function fetchError(e: Error, state: DiskState): BootyError {
  if (isBootyError(e)) return e;
  if (e instanceof ImageChangedError) return fail('fetch', 'IMAGE_CHANGED', `rootfs: ${e.message}`, state, 'the tarball was replaced on the server during the deploy: deploy again');
  if (e instanceof ResumeGaveUpError) return fail('fetch', 'FETCH_GAVE_UP', `rootfs: the download broke off and could not be resumed: ${e.message}`, state, 'check the server and the network, then deploy again');
  return fail('fetch', 'FETCH_FAILED', `rootfs: reading the tarball failed: ${e.message}`, state, 'check the server and the network, then deploy again', e);
}

function streamError(first: { stage: Stage; err: Error }, format: Format, tracker: ProgressTracker): BootyError {
  if (first.stage === 'decompress') {
    const d = describeDecodeError(format, first.err as Error & { code?: string });
    return fail('decompress', d.code, `rootfs: ${d.what} (after ${tracker.wireBytes} bytes received)`, 'partially-written', 'the tarball on the server is damaged: recreate it', first.err);
  }
  return fetchError(first.err, 'partially-written');
}

/** ENOSPC gets the layout's numbers: which filesystems were full, how big they are. */
function explainExtractError(e: unknown, parts: MadePartition[], root: string): unknown {
  if (!isBootyError(e)) return e;
  const cause = e.cause as NodeJS.ErrnoException | undefined;
  if (cause?.code !== 'ENOSPC' && cause?.code !== 'EDQUOT') return e;
  const sizes = parts.filter((p) => p.mountpoint !== undefined).map((p) => {
    let free = '';
    try {
      const st = fs.statfsSync(p.mountpoint === '/' ? root : path.join(root, p.mountpoint!));
      free = `, ${formatSize(st.bavail * st.bsize)} free`;
    } catch { /* not mounted any more */ }
    return `${p.mountpoint} ${p.fs} ${formatSize(p.bytes)}${free}`;
  }).join('; ');
  return new BootyError({ stage: 'write', code: 'ROOTFS_NO_SPACE', cause: e, diskState: 'partially-written',
    message: `rootfs: the tree does not fit the layout: no space left on device (${e.message.replace(/^rootfs: /, '')}); filesystems: ${sizes}`,
    hint: 'give the partition that holds this path more room (or "rest"), or deploy onto a larger disk' });
}

function asWriteError(e: unknown, code: string, what: string): BootyError {
  if (isBootyError(e) && e.code !== 'tool-failed') return e;
  return fail('write', code, `${what}: ${(e as Error).message}`, 'partially-written', 'see the log for the tool\'s output', e);
}

async function mountLayout(parts: MadePartition[], dir: string, tools: ToolRunner, mounted: string[], log: Logger): Promise<void> {
  const order = parts.filter((p) => p.mountpoint !== undefined && p.fs !== undefined && p.fs !== 'swap')
    .sort((a, b) => depth(a.mountpoint!) - depth(b.mountpoint!));
  for (const p of order) {
    // a fresh, empty tree: the mountpoint directories have no symlinks to follow
    const target = p.mountpoint === '/' ? dir : path.join(dir, p.mountpoint!);
    fs.mkdirSync(target, { recursive: true, mode: 0o755 });
    // vfat has no owners or modes: "quiet" lets the extraction's chown/chmod of its files succeed
    const opts = p.fs === 'vfat' ? ['-o', 'quiet'] : [];
    await tools.run('mount', ['-t', p.fs!, ...opts, p.device, target], { stage: 'write' }).catch((e: unknown) => {
      throw fail('write', 'MOUNT_FAILED', `rootfs: mounting ${p.device} (${p.fs}) at ${p.mountpoint} failed: ${(e as Error).message}`, 'partially-written');
    });
    mounted.push(target);
    log.debug(`rootfs: mounted ${p.device} at ${target}`);
  }
}

async function unmountAll(mounted: string[], tools: ToolRunner, log: Logger, strict: boolean): Promise<void> {
  while (mounted.length > 0) {
    const t = mounted[mounted.length - 1];
    try {
      await tools.run('umount', [t], { stage: 'write' });
    } catch (e) {
      if (strict) throw fail('write', 'UNMOUNT_FAILED', `rootfs: unmounting ${t} failed: ${(e as Error).message}`, 'partially-written', 'something in the deployed tree is still running or open');
      log.warn(`rootfs: umount ${t} failed (${(e as Error).message}); detaching lazily`);
      await tools.run('umount', ['-l', t]).catch(() => undefined);
    }
    mounted.pop();
  }
}

/** After a failure: no partition table, so firmware skips the disk (back to network boot). */
async function eraseTable(disk: string, tools: ToolRunner, log: Logger): Promise<void> {
  try {
    await tools.run('wipefs', ['--all', '--force', disk], { stage: 'write' });
    log.warn(`rootfs: erased the partition table of ${disk} after the failure`);
  } catch (e) {
    log.error(`rootfs: could not erase the partition table of ${disk}: ${(e as Error).message}`);
  }
}

function syncDisk(disk: string): void {
  const fd = fs.openSync(disk, 'r');
  try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
}

/** fstab, machine-id and the action's post-deploy settings, into the mounted tree; returns the paths written. */
function configureTree(root: string, parts: MadePartition[], o: RootfsDeployOptions, log: Logger): string[] {
  const written: string[] = [];
  const hasEtc = lstatInRoot(root, '/etc')?.isDirectory() === true;
  if (!hasEtc) {
    throw fail('write', 'ROOTFS_NO_ETC', 'rootfs: the tree has no /etc directory: not a root filesystem', 'partially-written',
      'pack the tarball from the root of the tree (tar -C ROOTFS -cpf FILE .)');
  }
  if (o.fstab === 'generate' || lstatInRoot(root, '/etc/fstab') === undefined) {
    if (o.fstab === 'keep') log.warn('rootfs: "fstab": "keep" but the tarball has no /etc/fstab: writing one from the layout');
    writeInRoot(root, { path: '/etc/fstab', content: renderFstab(parts), mode: 0o644 });
    written.push('/etc/fstab');
    log.info('rootfs: wrote /etc/fstab from the layout (by UUID)');
  } else {
    log.info('rootfs: kept the tarball\'s /etc/fstab ("fstab": "keep")');
  }
  // A machine-id shared by every machine deployed from one tarball breaks DHCP client ids and
  // journald; each deploy gets its own.
  writeInRoot(root, { path: '/etc/machine-id', content: randomBytes(16).toString('hex') + '\n', mode: 0o444 });
  written.push('/etc/machine-id');
  log.info('rootfs: wrote a fresh /etc/machine-id');
  if (o.post !== undefined) written.push(...writePostDeploySettings(root, o.post, o.nic ?? {}, log));
  return written;
}
