// Resumable uploads (booty capture's protocol): an upload is a session of fixed-size parts, each
// sent with its own sha256 and acknowledged once it is on disk, so a broken connection costs at
// most the part in flight. The commit checks the whole size and sha256 and makes the image
// visible atomically through ImageStore.commit() (link/rename in the images directory, fsync).
//
// Layout (DIR/images/.uploads/<id>/, same filesystem as the images so the final rename is atomic):
//   session.json               {id, name, overwrite, partSize, created, ...}
//   data                       the image being assembled: part n at offset n * partSize (sparse)
//   part-<n>-<size>-<sha256>   empty marker, created after part n's bytes were verified and synced
// A part's marker is removed before its region is written again, so a marker always describes
// bytes that are on disk. Nothing here is ever served; sessions idle longer than the TTL are
// deleted, and so is a session whose part hits a full disk (it cannot make progress).

import { createHash, randomBytes } from 'node:crypto';
import type { Hash } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { mkdir, open, readdir, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { FORMAT_HEAD_BYTES } from './image-store.ts';
import { HttpError } from './http/http-error.ts';
import type { ImageMeta, ImageStore } from './image-store.ts';

export const MIN_PART_SIZE = 64 * 1024;
export const MAX_PART_SIZE = 64 * 1024 * 1024;
export const DEFAULT_PART_SIZE = 16 * 1024 * 1024;
const MAX_PARTS = 1_000_000;
const WRITE_BATCH = 1 << 20;

export interface UploadSession {
  id: string;
  name: string;
  overwrite: boolean;
  partSize: number;
  created: string;
  /** total bytes announced at creation, when the client knew it */
  size?: number;
  machine?: string;
  remote?: string;
}

export interface StoredPart { n: number; size: number; sha256: string }

interface LiveState {
  session: UploadSession;
  dir: string;
  /** sha256 over parts 0..hashedParts-1, fed while they were received in order */
  hash: Hash;
  hashedParts: number;
  /** parts being received: a newer request for the same part stops the older one first */
  active: Map<number, { stop: () => void; done: Promise<void> }>;
  committing: boolean;
  lastActivity: number;
}

function isErrno(e: unknown, ...codes: string[]): boolean {
  return codes.includes((e as NodeJS.ErrnoException).code ?? '');
}

function diskFull(e: unknown): boolean { return isErrno(e, 'ENOSPC', 'EDQUOT', 'EFBIG'); }

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
  try { await fh.sync(); } finally { await fh.close(); }
}

const MARKER = /^part-(\d{1,7})-(\d{1,12})-([0-9a-f]{64})$/;

export function isSessionId(id: string): boolean { return /^[0-9a-f]{24}$/.test(id); }

export class UploadSessions {
  readonly root: string;
  readonly ttlMs: number;
  readonly #images: ImageStore;
  readonly #live = new Map<string, LiveState>();

  constructor(images: ImageStore, opts: { ttlMs?: number } = {}) {
    this.#images = images;
    this.root = join(images.dir, '.uploads');
    this.ttlMs = opts.ttlMs ?? 24 * 3600 * 1000;
  }

  /** Expire what a previous run left; the directory itself is made with the first upload. */
  async init(): Promise<void> {
    await this.expire();
  }

  async create(o: { name: string; overwrite: boolean; partSize?: number; size?: number; machine?: string; remote?: string }): Promise<{ session: UploadSession; parts: StoredPart[] }> {
    const max = this.#images.maxUploadBytes;
    if (o.size !== undefined && o.size > max) throw new HttpError(413, `upload of ${o.size} bytes is larger than the server's limit of ${max} bytes`);
    if (!o.overwrite && await this.#images.exists(o.name)) throw new HttpError(409, `image "${o.name}" already exists; add "overwrite": true to replace it`);
    const partSize = Math.min(MAX_PART_SIZE, Math.max(MIN_PART_SIZE, o.partSize ?? DEFAULT_PART_SIZE));
    const id = randomBytes(12).toString('hex');
    const session: UploadSession = {
      id, name: o.name, overwrite: o.overwrite, partSize, created: new Date().toISOString(), size: o.size, machine: o.machine, remote: o.remote,
    };
    const dir = join(this.root, id);
    try {
      await mkdir(this.root, { recursive: true });
      await mkdir(dir);
      await writeFile(join(dir, 'data'), '');
      await writeFile(join(dir, 'session.json'), JSON.stringify(session) + '\n');
      await fsyncDir(dir);
    } catch (e) {
      await rm(dir, { recursive: true, force: true });
      if (diskFull(e)) throw new HttpError(507, 'the server\'s data disk is full; nothing was stored');
      throw e;
    }
    this.#live.set(id, { session, dir, hash: createHash('sha256'), hashedParts: 0, active: new Map(), committing: false, lastActivity: Date.now() });
    return { session, parts: [] };
  }

  /** The session and its acknowledged parts; undefined when unknown, committed, aborted or expired. */
  async get(id: string): Promise<{ session: UploadSession; parts: StoredPart[]; expiresAt: string } | undefined> {
    const st = await this.#state(id);
    if (st === undefined) return undefined;
    return { session: st.session, parts: await this.#parts(st), expiresAt: new Date(st.lastActivity + this.ttlMs).toISOString() };
  }

  /**
   * Receive part `n` into its region of the data file, hashing as it goes; keep it only when its
   * length is right and its sha256 is `expectSha256`. A failed part leaves no marker (the client
   * sends it again); a full disk ends the whole session.
   */
  async putPart(id: string, n: number, expectSha256: string, source: AsyncIterable<Buffer | string>, stopSource: () => void): Promise<StoredPart> {
    const st = await this.#state(id);
    if (st === undefined) throw new HttpError(404, `no upload "${id}" (never created, committed, aborted or expired)`);
    if (st.committing) throw new HttpError(409, `upload "${id}" is being committed`);
    if (!Number.isSafeInteger(n) || n < 0 || n >= MAX_PARTS) throw new HttpError(400, `part number must be 0-${MAX_PARTS - 1}`);
    const { partSize } = st.session;
    const offset = n * partSize;
    const max = this.#images.maxUploadBytes;
    if (offset >= max && max !== Number.MAX_SAFE_INTEGER) throw new HttpError(413, `part ${n} starts at byte ${offset}, beyond the server's limit of ${max} bytes`);

    // The same part again (the client timed out and retried): stop the older request first, so
    // two writers never share a region.
    const older = st.active.get(n);
    if (older !== undefined) { older.stop(); await older.done; }
    let finished!: () => void;
    const done = new Promise<void>((ok) => { finished = ok; });
    st.active.set(n, { stop: stopSource, done });
    st.lastActivity = Date.now();

    // Feed the running whole-file hash only when this part continues it; a copy, so a part that
    // fails does not spoil it.
    const extendsHash = n === st.hashedParts;
    const whole = extendsHash ? st.hash.copy() : undefined;
    const partHash = createHash('sha256');
    let fh: FileHandle | undefined;
    let size = 0;
    try {
      const previous = await this.#markersOf(st, n);
      for (const m of previous) await unlink(join(st.dir, m)).catch(() => {});
      const wasHashed = n < st.hashedParts;
      fh = await open(join(st.dir, 'data'), 'r+');
      let batch: Buffer[] = [];
      let batchLen = 0;
      let at = offset;
      for await (const c of source) {
        const chunk = typeof c === 'string' ? Buffer.from(c) : c;
        size += chunk.length;
        if (size > partSize) throw new HttpError(413, `part ${n} is larger than the part size of ${partSize} bytes`);
        if (offset + size > max) throw new HttpError(413, `upload "${st.session.name}" is larger than the server's limit of ${max} bytes`);
        partHash.update(chunk);
        whole?.update(chunk);
        batch.push(chunk);
        batchLen += chunk.length;
        if (batchLen >= WRITE_BATCH) { await fh.writev(batch, at); at += batchLen; batch = []; batchLen = 0; st.lastActivity = Date.now(); }
      }
      if (batchLen > 0) await fh.writev(batch, at);
      const sha256 = partHash.digest('hex');
      if (sha256 !== expectSha256) {
        throw new HttpError(422, `part ${n} of upload "${id}": sha256 mismatch (client sent ${expectSha256.slice(0, 12)}…, server received ${size} bytes with ${sha256.slice(0, 12)}…); send the part again`);
      }
      await fh.datasync();
      await fh.close();
      fh = undefined;
      await writeFile(join(st.dir, `part-${n}-${size}-${sha256}`), '');
      if (whole !== undefined && st.hashedParts === n) { st.hash = whole; st.hashedParts = n + 1; } else if (wasHashed && !previous.includes(`part-${n}-${size}-${sha256}`)) {
        // a part that was already in the running hash was written again: the hash no longer
        // vouches for the file; the commit re-reads it
        st.hash = createHash('sha256');
        st.hashedParts = 0;
      }
      st.lastActivity = Date.now();
      return { n, size, sha256 };
    } catch (e) {
      await fh?.close().catch(() => {});
      if (diskFull(e) || (e instanceof HttpError && e.status === 507)) {
        await this.#drop(st);
        throw new HttpError(507, `the server's data disk is full (part ${n} of "${st.session.name}"); the upload was deleted, nothing was stored`);
      }
      if (n < st.hashedParts) { st.hash = createHash('sha256'); st.hashedParts = 0; }
      throw e;
    } finally {
      if (st.active.get(n)?.done === done) st.active.delete(n);
      finished();
    }
  }

  /**
   * Check that parts 0..parts-1 are all there, full-sized but the last, `size` bytes in all with
   * the whole-file `sha256`, then hand the data file to ImageStore.commit(). The session is gone
   * afterwards whatever the outcome (a mismatch cannot be repaired by sending parts again).
   */
  async commit(id: string, o: { size: number; sha256: string; parts: number; uncompressedSize?: number; via: string; remote?: string; machine?: string }): Promise<ImageMeta> {
    const st = await this.#state(id);
    if (st === undefined) throw new HttpError(404, `no upload "${id}" to commit (never created, already committed, aborted or expired)`);
    if (st.committing) throw new HttpError(409, `upload "${id}" is already being committed`);
    if (st.active.size > 0) throw new HttpError(409, `upload "${id}" is still receiving part(s) ${[...st.active.keys()].join(', ')}`);
    st.committing = true;
    const { name, partSize } = st.session;
    try {
      const have = new Map((await this.#parts(st)).map((p) => [p.n, p]));
      const missing: number[] = [];
      for (let n = 0; n < o.parts; n++) if (!have.has(n)) missing.push(n);
      if (missing.length > 0) {
        st.committing = false;
        throw new HttpError(409, `upload "${id}" lacks part(s) ${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ', …' : ''}; send them, then commit again`);
      }
      let total = 0;
      for (let n = 0; n < o.parts; n++) {
        const p = have.get(n)!;
        if (n < o.parts - 1 && p.size !== partSize) throw new HttpError(409, `part ${n} of "${name}" has ${p.size} bytes; every part but the last must have ${partSize}`);
        total += p.size;
      }
      if (total !== o.size) throw new HttpError(409, `upload of "${name}": size mismatch (client sent ${o.size} bytes, server holds ${total} in ${o.parts} parts); nothing was stored`);
      const dataPath = join(st.dir, 'data');
      const fh = await open(dataPath, 'r+');
      let sha256: string;
      const head = Buffer.alloc(FORMAT_HEAD_BYTES);
      try {
        await fh.truncate(total);
        const hash = st.hashedParts <= o.parts ? st.hash : createHash('sha256');
        const from = st.hashedParts <= o.parts ? st.hashedParts * partSize : 0;
        if (from < total) {
          for await (const chunk of fh.createReadStream({ start: from, end: total - 1, highWaterMark: WRITE_BATCH, autoClose: false }) as AsyncIterable<Buffer>) hash.update(chunk);
        }
        sha256 = hash.digest('hex');
        const { bytesRead } = await fh.read(head, 0, FORMAT_HEAD_BYTES, 0);
        await fh.sync();
        if (sha256 !== o.sha256) throw new HttpError(409, `upload of "${name}": sha256 mismatch (client sent ${o.sha256}, server holds ${sha256}); nothing was stored`);
        return await this.#images.commit(name, { tempPath: dataPath, size: total, sha256, head: head.subarray(0, bytesRead) }, {
          expectSize: o.size, expectSha256: o.sha256, overwrite: st.session.overwrite, uncompressedSize: o.uncompressedSize,
          via: o.via, remote: o.remote, machine: o.machine ?? st.session.machine,
        });
      } finally { await fh.close().catch(() => {}); }
    } catch (e) {
      if (st.committing) { await this.#drop(st); }
      if (diskFull(e)) throw new HttpError(507, 'the server\'s data disk is full; nothing was stored');
      throw e;
    } finally {
      if (st.committing) await this.#drop(st);
    }
  }

  /** Delete a session (client abort); false when there was none. */
  async abort(id: string): Promise<boolean> {
    const st = await this.#state(id);
    if (st === undefined) return false;
    for (const a of st.active.values()) a.stop();
    await Promise.all([...st.active.values()].map((a) => a.done));
    await this.#drop(st);
    return true;
  }

  /** Delete sessions idle for longer than the TTL (never one receiving or committing right now). */
  async expire(now = Date.now()): Promise<string[]> {
    const removed: string[] = [];
    let ids: string[];
    try { ids = await readdir(this.root); } catch { return removed; }
    for (const id of ids) {
      const live = this.#live.get(id);
      if (live !== undefined && (live.active.size > 0 || live.committing)) continue;
      const last = live?.lastActivity ?? await this.#lastActivityOnDisk(join(this.root, id));
      if (now - last < this.ttlMs) continue;
      this.#live.delete(id);
      await rm(join(this.root, id), { recursive: true, force: true }).catch(() => {});
      removed.push(id);
    }
    return removed;
  }

  async #lastActivityOnDisk(dir: string): Promise<number> {
    let last = 0;
    try {
      for (const f of await readdir(dir)) last = Math.max(last, (await stat(join(dir, f))).mtimeMs);
    } catch { /* vanished */ }
    return last;
  }

  /** The live state of a session, loading it from disk after a restart; undefined when gone or expired. */
  async #state(id: string): Promise<LiveState | undefined> {
    if (!isSessionId(id)) return undefined;
    let st = this.#live.get(id);
    if (st === undefined) {
      const dir = join(this.root, id);
      let session: UploadSession;
      try { session = JSON.parse(await readFile(join(dir, 'session.json'), 'utf8')) as UploadSession; } catch { return undefined; }
      if (session.id !== id) return undefined;
      const last = await this.#lastActivityOnDisk(dir);
      // the running hash did not survive the restart: the commit re-reads the data file
      st = { session, dir, hash: createHash('sha256'), hashedParts: 0, active: new Map(), committing: false, lastActivity: last };
      this.#live.set(id, st);
    }
    if (Date.now() - st.lastActivity >= this.ttlMs && st.active.size === 0 && !st.committing) {
      await this.#drop(st);
      return undefined;
    }
    return st;
  }

  async #markersOf(st: LiveState, n: number): Promise<string[]> {
    return (await readdir(st.dir)).filter((f) => f.startsWith(`part-${n}-`));
  }

  async #parts(st: LiveState): Promise<StoredPart[]> {
    const out: StoredPart[] = [];
    for (const f of await readdir(st.dir)) {
      const m = MARKER.exec(f);
      if (m !== null) out.push({ n: Number(m[1]), size: Number(m[2]), sha256: m[3] });
    }
    return out.sort((a, b) => a.n - b.n);
  }

  async #drop(st: LiveState): Promise<void> {
    st.committing = false;
    this.#live.delete(st.session.id);
    await rm(st.dir, { recursive: true, force: true }).catch(() => {});
  }
}
