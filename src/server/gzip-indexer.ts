// The server's gzip access-point indexes (src/image/format/gzip-index.ts): built once per gzip image, in
// the background, one image at a time, and announced on its downloads (X-Booty-Gzip-Index) so
// agents inflate it on every core. An index belongs to one version of its image: it records the
// image's ETag (size, mtime, inode), and one whose ETag is not the image's current one is neither
// served nor kept. Images that get no index (gzip(1) output has no byte-aligned block ends; more
// than one member) are remembered with the reason, per ETag, so they are not decoded again.
//
// Files, next to the image sidecars (DIR/images/.meta/):
//   <name>.gzidx           the index
//   <name>.gzidx.refused   "<etag>\n<reason>"
// A build writes <name>.gzidx.tmp-<pid> and renames it into place when complete (gzip-index-file.ts).
//
// The build decodes the whole image twice (sequentially and, per segment, from its point), on the
// server's main thread in 1 MiB steps that yield to the event loop between them, so downloads go
// on meanwhile (slower); about 10 s per 4 GiB of image on one core of the machine it was measured on.
import type { Stats } from 'node:fs';
import { open, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HEADER_BYTES, IndexRefused, decodeHeader, type GzipIndexHeader } from '../image/format/gzip-index.ts';
import { buildGzipIndexFile } from '../image/format/gzip-index-file.ts';
import type { ImageStore } from './image-store.ts';
import { etagFor } from './range.ts';

export type IndexState =
  | { state: 'ready'; header: GzipIndexHeader; path: string }
  | { state: 'queued' | 'building' }
  | { state: 'refused'; reason: string };

export class GzipIndexer {
  private readonly store: ImageStore;
  private readonly log: (msg: string, fields?: Record<string, string | number | boolean | undefined>) => void;
  /** by image name: what is known for which ETag */
  private readonly known = new Map<string, { etag: string; s: IndexState }>();
  private readonly queue: string[] = [];
  private running = false;
  private stopped = false;
  /** resolves when the queue is empty (tests, the bench's wait) */
  private idle: Promise<void> = Promise.resolve();
  private markIdle: (() => void) | undefined;
  /** called when an image's index state changes (the dashboard's catalog) */
  onChange: (() => void) | undefined;

  constructor(store: ImageStore, log: (msg: string, fields?: Record<string, string | number | boolean | undefined>) => void = () => {}) {
    this.store = store;
    this.log = log;
  }

  private indexPath(name: string): string { return join(this.store.metaDir, `${name}.gzidx`); }
  private refusedPath(name: string): string { return join(this.store.metaDir, `${name}.gzidx.refused`); }

  /** The state of `name`'s index for the image version `etag` (reading what is on disk once). */
  async state(name: string, etag: string): Promise<IndexState | undefined> {
    const k = this.known.get(name);
    if (k !== undefined && k.etag === etag) return k.s;
    const found = await this.fromDisk(name, etag);
    if (found !== undefined) this.known.set(name, { etag, s: found });
    return found;
  }

  private async fromDisk(name: string, etag: string): Promise<IndexState | undefined> {
    try {
      const fh = await open(this.indexPath(name), 'r');
      try {
        const b = Buffer.alloc(HEADER_BYTES);
        await fh.read(b, 0, HEADER_BYTES, 0);
        const header = decodeHeader(b);
        if (header.etag === etag) return { state: 'ready', header, path: this.indexPath(name) };
      } finally { await fh.close(); }
    } catch { /* none, or unreadable: rebuilt */ }
    try {
      const [e, ...reason] = (await readFile(this.refusedPath(name), 'utf8')).split('\n');
      if (e === etag) return { state: 'refused', reason: reason.join('\n').trim() };
    } catch { /* none */ }
    return undefined;
  }

  /** The ready index of `name` at version `etag`, asking for a build when there is none yet. */
  async ready(name: string, etag: string): Promise<{ header: GzipIndexHeader; path: string } | undefined> {
    const s = await this.state(name, etag);
    if (s === undefined) { this.want(name); return undefined; }
    return s.state === 'ready' ? { header: s.header, path: s.path } : undefined;
  }

  /** Queues a build of `name`'s index (done only if the image is gzip and has none for its version). */
  want(name: string): void {
    if (this.stopped || this.queue.includes(name)) return;
    // what is known may be of the image's previous version: looked at again by the build
    this.known.delete(name);
    this.queue.push(name);
    if (!this.running) {
      this.running = true;
      this.idle = new Promise((resolve) => { this.markIdle = resolve; });
      void this.drain();
    }
  }

  /** For the catalog: 'ready', 'queued', 'building', 'refused: <why>', or undefined (not gzip, or not looked at yet). */
  describe(name: string): string | undefined {
    if (this.queue.includes(name)) return 'queued';
    const k = this.known.get(name);
    if (k === undefined) return undefined;
    return k.s.state === 'refused' ? `refused: ${k.s.reason}` : k.s.state;
  }

  /** Queues every gzip image of the store that has no index for its current version. */
  async scan(): Promise<void> {
    for (const i of await this.store.list()) {
      if (i.format === 'gzip' || i.format === undefined) this.want(i.name);
    }
  }

  /** Resolves once no build is queued or running. */
  whenIdle(): Promise<void> { return this.idle; }

  stop(): void {
    this.stopped = true;
    this.queue.length = 0;
  }

  /** Forgets `name` (the image was removed) and deletes its index files. */
  async forget(name: string): Promise<void> {
    this.known.delete(name);
    await unlink(this.indexPath(name)).catch(() => {});
    await unlink(this.refusedPath(name)).catch(() => {});
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0 && !this.stopped) {
        const name = this.queue.shift()!;
        try { await this.build(name); } catch (e) {
          this.log('gzip index build failed', { image: name, error: (e as Error).message });
        }
      }
    } finally {
      this.running = false;
      this.markIdle?.();
    }
  }

  private async build(name: string): Promise<void> {
    let st: Stats;
    try { st = await stat(this.store.pathOf(name)); } catch { this.known.delete(name); return; }
    if (!st.isFile()) return;
    const etag = etagFor(st);
    if (await this.state(name, etag) !== undefined) return;
    const started = performance.now();
    try {
      const fh = await open(this.store.pathOf(name), 'r');
      const magic = Buffer.alloc(2);
      try { await fh.read(magic, 0, 2, 0); } finally { await fh.close(); }
      if (magic[0] !== 0x1f || magic[1] !== 0x8b) return; // not gzip: nothing to index
      this.known.set(name, { etag, s: { state: 'building' } });
      this.onChange?.();
      const h = await buildGzipIndexFile(this.store.pathOf(name), this.indexPath(name), { etag, shouldStop: () => this.stopped, yieldBetween: true });
      await unlink(this.refusedPath(name)).catch(() => {});
      this.known.set(name, { etag, s: { state: 'ready', header: h, path: this.indexPath(name) } });
      this.log('gzip index built', { image: name, segments: h.count, bytes: h.indexBytes, seconds: +((performance.now() - started) / 1000).toFixed(1) });
    } catch (e) {
      if (!(e instanceof IndexRefused)) { this.known.delete(name); throw e; }
      await writeFile(this.refusedPath(name), `${etag}\n${e.message}\n`);
      this.known.set(name, { etag, s: { state: 'refused', reason: e.message } });
      this.log('no gzip index', { image: name, reason: e.message });
    } finally {
      this.onChange?.();
    }
  }
}
