// The images directory: streaming reads for downloads, and uploads that become visible under
// their final name only when complete and verified.
//
// Layout (DIR/images/):
//   <name>                      a complete image (only ever created by link()/rename())
//   .<name>.upload-<id>         an upload in progress, or received and awaiting its commit
//   .meta/<name>.json           sidecar: {size, sha256, format, uncompressedSize, ino, ...}
// Sidecars are written BEFORE the image is renamed into place and record the file's inode, which
// link()/rename() keep; a sidecar whose inode or size does not match the image is ignored, so a
// crash between the two steps can never attach a wrong checksum to an image.

import { createHash } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import type { Stats } from 'node:fs';
import { link, mkdir, open, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { HttpError } from './http/http-error.ts';
import { etagFor } from './range.ts';
import { isTempName, tempNameFor } from './names.ts';
import { zstdFileContentSize, zstdPathContentSize } from './zstd-frames.ts';
import { HEAD_BYTES, classifyHead, type Format } from '../image/format/detect.ts';

/** What the agent's own detection makes of the image: a format it decodes, or `unsupported: xz`
 *  (unsupported-formats.ts) for one it refuses: the catalog shows that before anyone deploys it. */
export type StoredFormat = Format | `unsupported: ${string}`;

/** Sidecars written before the server knew the formats booty refuses called them all 'raw'. */
const FORMAT_TABLE_VERSION = 3;

export interface ImageMeta {
  name: string;
  size: number;
  sha256: string;
  format: StoredFormat;
  /** bytes after decompression, when known (raw: the size; zstd: the sum over all frame headers; or the uploader's word) */
  uncompressedSize?: number;
  ino: number;
  storedAt: string;
  /** 'put' | 'multipart' | 'commit' */
  via: string;
  remote?: string;
  /** the machine a capture came from (BOOTy's file name, or the uploader's X-Booty-Mac) */
  machine?: string;
  /** which detection table wrote `format` (absent: before unsupported formats were told apart) */
  formats?: number;
}

export interface CatalogEntry {
  name: string; size: number; mtime: string; sha256?: string; format?: string; uncompressedSize?: number;
  storedAt?: string; via?: string; machine?: string;
  /** the ETag downloads are served with (range.ts etagFor) */
  etag: string;
}

export interface ReceivedUpload {
  tempPath: string;
  size: number;
  sha256: string;
  /** first bytes, for format detection */
  head: Buffer;
}

/** The agent's own rule (image/format/detect.ts): gzip, zstd, a refused format, or raw. */
export function detectFormat(head: Buffer): StoredFormat {
  const c = classifyHead(head);
  return c.unsupported !== undefined ? `unsupported: ${c.unsupported.id}` : c.format;
}

/** Head bytes the server reads for detectFormat. */
export const FORMAT_HEAD_BYTES = HEAD_BYTES;

const WRITE_BATCH = 1 << 20;
const STALE_TEMP_MS = 60 * 60 * 1000;

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
  try { await fh.sync(); } finally { await fh.close(); }
}

export class ImageStore {
  readonly dir: string;
  readonly metaDir: string;
  readonly maxUploadBytes: number;
  /** temp files being written right now (never swept, never committed) */
  readonly #active = new Set<string>();
  /** finished `?upload=<id>` temp files awaiting their commit: hash computed while receiving */
  readonly #received = new Map<string, ReceivedUpload>();
  /** uncompressed sizes of zstd images without a sidecar, by "ino:size:mtime" (walking every frame costs reads) */
  readonly #zstdSizes = new Map<string, number | undefined>();

  constructor(dir: string, opts: { maxUploadBytes?: number } = {}) {
    this.dir = dir;
    this.metaDir = join(dir, '.meta');
    this.maxUploadBytes = opts.maxUploadBytes ?? Number.MAX_SAFE_INTEGER;
  }

  async init(): Promise<void> {
    await mkdir(this.metaDir, { recursive: true });
    await this.sweep(STALE_TEMP_MS);
  }

  pathOf(name: string): string { return join(this.dir, name); }

  /** Delete temp files nobody is writing that were last touched more than `olderThanMs` ago. */
  async sweep(olderThanMs: number): Promise<string[]> {
    const removed: string[] = [];
    for (const f of await readdir(this.dir)) {
      if (!isTempName(f) || this.#active.has(f)) continue;
      const p = join(this.dir, f);
      try {
        const st = await stat(p);
        if (Date.now() - st.mtimeMs < olderThanMs) continue;
        await unlink(p);
        this.#received.delete(f);
        removed.push(f);
      } catch { /* raced with a commit: fine */ }
    }
    return removed;
  }

  async exists(name: string): Promise<boolean> {
    try { return (await stat(this.pathOf(name))).isFile(); } catch { return false; }
  }

  /** The sidecar, if it describes exactly this file. */
  async metaFor(name: string, st: Stats): Promise<ImageMeta | undefined> {
    try {
      const m = JSON.parse(await readFile(join(this.metaDir, `${name}.json`), 'utf8')) as ImageMeta;
      if (m.ino !== st.ino || m.size !== st.size) return undefined;
      // (a format refused by an older table may be decoded now: version 3 decodes standalone qcow2)
      const stale = (m.format === 'raw' && m.formats === undefined) || (typeof m.format === 'string' && m.format.startsWith('unsupported: ') && (m.formats ?? 0) < FORMAT_TABLE_VERSION);
      return stale ? await this.#redetect(m) : m;
    } catch { return undefined; }
  }

  /** A sidecar from before refused formats were told apart: its "raw" may be an xz or a qcow2. */
  async #redetect(m: ImageMeta): Promise<ImageMeta> {
    const fh = await open(this.pathOf(m.name), 'r');
    let format: StoredFormat;
    try {
      const head = Buffer.alloc(HEAD_BYTES);
      const { bytesRead } = await fh.read(head, 0, HEAD_BYTES, 0);
      format = detectFormat(head.subarray(0, bytesRead));
    } finally { await fh.close(); }
    const updated: ImageMeta = { ...m, format, formats: FORMAT_TABLE_VERSION, ...(format === 'raw' ? {} : { uncompressedSize: undefined }) };
    await this.#writeMeta(updated).catch(() => {});
    return updated;
  }

  /** What a download needs: an open handle plus validators and size hints. */
  async openForRead(name: string): Promise<{ fh: FileHandle; st: Stats; etag: string; meta?: ImageMeta; uncompressedSize?: number; format: StoredFormat } | undefined> {
    let fh: FileHandle;
    try { fh = await open(this.pathOf(name), 'r'); } catch { return undefined; }
    try {
      const st = await fh.stat();
      if (!st.isFile()) { await fh.close(); return undefined; }
      const meta = await this.metaFor(name, st);
      let format = meta?.format;
      let uncompressedSize = meta?.uncompressedSize;
      if (meta === undefined) {
        const head = Buffer.alloc(HEAD_BYTES);
        const { bytesRead } = await fh.read(head, 0, HEAD_BYTES, 0);
        format = detectFormat(head.subarray(0, bytesRead));
        uncompressedSize = format === 'raw' ? st.size : format === 'zstd' ? await this.#zstdSizeOf(fh, st) : undefined;
      }
      return { fh, st, etag: etagFor(st), meta, uncompressedSize, format: format ?? 'raw' };
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  async list(): Promise<CatalogEntry[]> {
    const out: CatalogEntry[] = [];
    for (const f of (await readdir(this.dir)).sort()) {
      if (f.startsWith('.')) continue;
      try {
        const st = await stat(this.pathOf(f));
        if (!st.isFile()) continue;
        const m = await this.metaFor(f, st);
        out.push({
          name: f, size: st.size, mtime: st.mtime.toISOString(), sha256: m?.sha256, format: m?.format, uncompressedSize: m?.uncompressedSize,
          storedAt: m?.storedAt, via: m?.via, machine: m?.machine, etag: etagFor(st),
        });
      } catch { /* vanished */ }
    }
    return out;
  }

  /**
   * Stream `source` into the temp file of (name, id), hashing as it goes, then fsync. On any
   * failure (client gone, body truncated, disk full, too large) the temp file is deleted.
   */
  async receive(name: string, id: string, source: AsyncIterable<Buffer | string>): Promise<ReceivedUpload> {
    const temp = tempNameFor(name, id);
    if (this.#active.has(temp)) throw new HttpError(409, `upload "${id}" of "${name}" is already in progress`);
    this.#active.add(temp);
    this.#received.delete(temp);
    const tempPath = join(this.dir, temp);
    let fh: FileHandle | undefined;
    try {
      fh = await open(tempPath, 'w', 0o644);
      const hash = createHash('sha256');
      let size = 0;
      const head: Buffer[] = [];
      let headLen = 0;
      let batch: Buffer[] = [];
      let batchLen = 0;
      for await (const c of source) {
        const chunk = typeof c === 'string' ? Buffer.from(c) : c;
        size += chunk.length;
        if (size > this.maxUploadBytes) throw new HttpError(413, `upload of "${name}" is larger than the server's limit of ${this.maxUploadBytes} bytes`);
        hash.update(chunk);
        if (headLen < HEAD_BYTES) { head.push(chunk.subarray(0, HEAD_BYTES - headLen)); headLen += Math.min(chunk.length, HEAD_BYTES - headLen); }
        // Chunks from the socket are small; write them in ~1 MiB batches (fewer syscalls).
        batch.push(chunk);
        batchLen += chunk.length;
        if (batchLen >= WRITE_BATCH) { await fh.writev(batch); batch = []; batchLen = 0; }
      }
      if (batchLen > 0) await fh.writev(batch);
      await fh.sync();
      await fh.close();
      fh = undefined;
      const r: ReceivedUpload = { tempPath, size, sha256: hash.digest('hex'), head: Buffer.concat(head) };
      this.#received.set(temp, r);
      return r;
    } catch (e) {
      await fh?.close().catch(() => {});
      await unlink(tempPath).catch(() => {});
      throw e;
    } finally {
      this.#active.delete(temp);
    }
  }

  /** A received `?upload=<id>` awaiting commit (hash from memory, or recomputed after a restart). */
  async pending(name: string, id: string): Promise<ReceivedUpload | undefined> {
    const temp = tempNameFor(name, id);
    if (this.#active.has(temp)) throw new HttpError(409, `upload "${id}" of "${name}" is still being received`);
    const known = this.#received.get(temp);
    if (known !== undefined) return known;
    const tempPath = join(this.dir, temp);
    let fh: FileHandle;
    try { fh = await open(tempPath, 'r'); } catch { return undefined; }
    try {
      const hash = createHash('sha256');
      let size = 0;
      const head = Buffer.alloc(HEAD_BYTES);
      for await (const chunk of fh.createReadStream({ highWaterMark: WRITE_BATCH, autoClose: false }) as AsyncIterable<Buffer>) {
        if (size < HEAD_BYTES) chunk.copy(head, size, 0, Math.min(chunk.length, HEAD_BYTES - size));
        size += chunk.length;
        hash.update(chunk);
      }
      return { tempPath, size, sha256: hash.digest('hex'), head: head.subarray(0, Math.min(size, HEAD_BYTES)) };
    } finally { await fh.close(); }
  }

  async discard(r: ReceivedUpload): Promise<void> {
    this.#received.delete(basename(r.tempPath));
    await unlink(r.tempPath).catch(() => {});
  }

  /**
   * Check the received bytes against what the client says it sent, then make the image visible
   * atomically. Without `overwrite`, link() fails if the name exists, so two racing uploads of
   * one name cannot both win. Mismatch or refusal deletes the temp file.
   */
  async commit(name: string, r: ReceivedUpload, opts: {
    expectSha256?: string; expectSize?: number; overwrite: boolean; uncompressedSize?: number; via: string; remote?: string; machine?: string;
  }): Promise<ImageMeta> {
    try {
      if (opts.expectSize !== undefined && opts.expectSize !== r.size) {
        throw new HttpError(409, `upload of "${name}": size mismatch (client sent ${opts.expectSize} bytes, server received ${r.size}); nothing was stored`);
      }
      if (opts.expectSha256 !== undefined && opts.expectSha256.toLowerCase() !== r.sha256) {
        throw new HttpError(409, `upload of "${name}": sha256 mismatch (client sent ${opts.expectSha256.toLowerCase()}, server received ${r.sha256}); nothing was stored`);
      }
      if (!opts.overwrite && await this.exists(name)) {
        throw new HttpError(409, `image "${name}" already exists; add ?overwrite=1 to replace it`);
      }
      const st = await stat(r.tempPath);
      const format = detectFormat(r.head);
      const meta: ImageMeta = {
        name, size: r.size, sha256: r.sha256, format, formats: FORMAT_TABLE_VERSION,
        uncompressedSize: opts.uncompressedSize ?? (format === 'raw' ? r.size : format === 'zstd' ? await zstdPathContentSize(r.tempPath) : undefined),
        ino: st.ino, storedAt: new Date().toISOString(), via: opts.via, remote: opts.remote, machine: opts.machine,
      };
      await this.#writeMeta(meta);
      const final = this.pathOf(name);
      if (opts.overwrite) {
        await rename(r.tempPath, final);
      } else {
        try { await link(r.tempPath, final); } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new HttpError(409, `image "${name}" already exists; add ?overwrite=1 to replace it`);
          throw e;
        }
        await unlink(r.tempPath);
      }
      this.#received.delete(basename(r.tempPath));
      await fsyncDir(this.dir);
      return meta;
    } catch (e) {
      await this.discard(r);
      throw e;
    }
  }

  /**
   * Images put into the directory by hand (scp, rsync) have no sidecar: hash them once, in the
   * background, one at a time, so the catalog shows their sha256 and format too. A file that
   * changes while being hashed is left for the next pass (the sidecar records size and inode).
   */
  async importUnhashed(): Promise<string[]> {
    const done: string[] = [];
    for (const f of (await readdir(this.dir)).sort()) {
      if (f.startsWith('.')) continue;
      let fh: FileHandle | undefined;
      try {
        fh = await open(this.pathOf(f), 'r');
        const st = await fh.stat();
        if (!st.isFile() || await this.metaFor(f, st) !== undefined) continue;
        const hash = createHash('sha256');
        const head = Buffer.alloc(HEAD_BYTES);
        let size = 0;
        for await (const chunk of fh.createReadStream({ highWaterMark: WRITE_BATCH, autoClose: false }) as AsyncIterable<Buffer>) {
          if (size < HEAD_BYTES) chunk.copy(head, size, 0, Math.min(chunk.length, HEAD_BYTES - size));
          size += chunk.length;
          hash.update(chunk);
        }
        const after = await fh.stat();
        if (size !== st.size || after.mtimeMs !== st.mtimeMs) continue;
        const h = head.subarray(0, Math.min(size, HEAD_BYTES));
        const format = detectFormat(h);
        await this.#writeMeta({
          name: f, size, sha256: hash.digest('hex'), format, formats: FORMAT_TABLE_VERSION, ino: st.ino, storedAt: st.mtime.toISOString(), via: 'import',
          uncompressedSize: format === 'raw' ? size : format === 'zstd' ? await zstdFileContentSize(fh, size).catch(() => undefined) : undefined,
        });
        done.push(f);
      } catch { /* vanished or unreadable: skipped */ } finally { await fh?.close().catch(() => {}); }
    }
    return done;
  }

  /** Remove an image and its sidecar; false when there was none. */
  async remove(name: string): Promise<boolean> {
    try { await unlink(this.pathOf(name)); } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw e;
    }
    await unlink(join(this.metaDir, `${name}.json`)).catch(() => {});
    await fsyncDir(this.dir);
    return true;
  }

  async #zstdSizeOf(fh: FileHandle, st: Stats): Promise<number | undefined> {
    const key = `${st.ino}:${st.size}:${st.mtimeMs}`;
    if (this.#zstdSizes.has(key)) return this.#zstdSizes.get(key);
    const n = await zstdFileContentSize(fh, st.size).catch(() => undefined);
    if (this.#zstdSizes.size > 1000) this.#zstdSizes.clear();
    this.#zstdSizes.set(key, n);
    return n;
  }

  async #writeMeta(meta: ImageMeta): Promise<void> {
    const p = join(this.metaDir, `${meta.name}.json`);
    const tmp = `${p}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    await writeFile(tmp, JSON.stringify(meta, null, 2) + '\n');
    await rename(tmp, p);
  }
}
