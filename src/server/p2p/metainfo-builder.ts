// The BitTorrent metainfo of each image (src/p2p/metainfo.ts), computed once per image version in
// the background, one image at a time, like the sha256 and the gzip index: at start, after
// reload or upload, and on the first request for an image that has none. Only while peer to peer
// is on (booty server --p2p). Kept next to the image's sidecar as DIR/images/.meta/<name>.btinfo:
// {"etag": <the image's ETag>, "info": <bencoded info dictionary, base64>}; one for another ETag
// (the image was replaced) is neither served nor kept.
import { readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { computeInfo, infoHashOf } from '../../p2p/metainfo.ts';
import type { ImageStore } from '../image-store.ts';
import { etagFor } from '../range.ts';

export type InfoState = { state: 'ready'; infoBytes: Buffer; infoHash: string } | { state: 'queued' | 'building' } | { state: 'failed'; reason: string };

export class MetainfoBuilder {
  private readonly store: ImageStore;
  private readonly log: (msg: string, fields?: Record<string, string | number>) => void;
  private readonly known = new Map<string, { etag: string; s: InfoState }>();
  /** infohash -> image name: the tracker serves swarms of these only */
  private readonly byInfoHash = new Map<string, string>();
  private readonly queue: string[] = [];
  private running = false;
  private stopped = false;
  /** an image's info dictionary became known (built, or read from its file): replicas record it in the catalog */
  onReady: (name: string) => void = () => {};

  constructor(store: ImageStore, log: MetainfoBuilder['log'] = () => {}) {
    this.store = store;
    this.log = log;
  }

  private path(name: string): string { return join(this.store.metaDir, `${name}.btinfo`); }

  /** The info dictionary of `name` at version `etag`, or undefined (a build is then queued). */
  async ready(name: string, etag: string): Promise<InfoState> {
    const k = this.known.get(name);
    if (k !== undefined && k.etag === etag) return k.s;
    try {
      const j = JSON.parse(await readFile(this.path(name), 'utf8')) as { etag: string; info: string };
      if (j.etag === etag) {
        const infoBytes = Buffer.from(j.info, 'base64');
        const s: InfoState = { state: 'ready', infoBytes, infoHash: infoHashOf(infoBytes) };
        const was = this.known.get(name);
        this.known.set(name, { etag, s });
        this.byInfoHash.set(s.infoHash, name);
        if (was?.etag !== etag || was.s.state !== 'ready') this.onReady(name);
        return s;
      }
    } catch { /* none yet, or of another version */ }
    this.want(name);
    return this.known.get(name)?.s ?? { state: 'queued' };
  }

  /** The info dictionary of `name` at version `etag` if it is known already (builds nothing, reads no file). */
  peek(name: string, etag: string): { infoBytes: Buffer; infoHash: string } | undefined {
    const k = this.known.get(name);
    return k !== undefined && k.etag === etag && k.s.state === 'ready' ? { infoBytes: k.s.infoBytes, infoHash: k.s.infoHash } : undefined;
  }

  /** Is `infoHash` (hex) the swarm of an image this server holds? */
  knows(infoHash: string): boolean { return this.byInfoHash.has(infoHash.toLowerCase()); }

  describe(name: string): string | undefined {
    const s = this.known.get(name)?.s;
    return s === undefined ? (this.queue.includes(name) ? 'queued' : undefined) : s.state === 'failed' ? `failed: ${s.reason}` : s.state;
  }

  want(name: string): void {
    if (this.stopped || this.queue.includes(name)) return;
    this.queue.push(name);
    if (!this.running) { this.running = true; void this.drain(); }
  }

  async scan(): Promise<void> {
    for (const i of await this.store.list()) this.want(i.name);
  }

  async forget(name: string): Promise<void> {
    const k = this.known.get(name);
    if (k?.s.state === 'ready') this.byInfoHash.delete(k.s.infoHash);
    this.known.delete(name);
    await unlink(this.path(name)).catch(() => {});
  }

  stop(): void { this.stopped = true; this.queue.length = 0; }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0 && !this.stopped) {
        const name = this.queue.shift()!;
        await this.build(name).catch((e: Error) => this.log('metainfo build failed', { image: name, error: e.message }));
      }
    } finally { this.running = false; }
  }

  private async build(name: string): Promise<void> {
    const path = this.store.pathOf(name);
    let st;
    try { st = await stat(path); } catch { this.known.delete(name); return; }
    if (!st.isFile() || st.size === 0) return;
    const etag = etagFor(st);
    const k = this.known.get(name);
    if (k !== undefined && k.etag === etag && k.s.state === 'ready') return;
    try {
      const j = JSON.parse(await readFile(this.path(name), 'utf8')) as { etag: string };
      if (j.etag === etag) { await this.ready(name, etag); return; }
    } catch { /* build it */ }
    this.known.set(name, { etag, s: { state: 'building' } });
    const started = performance.now();
    try {
      const infoBytes = await computeInfo(path, name, st.size);
      const after = await stat(path);
      if (etagFor(after) !== etag) { this.known.delete(name); this.want(name); return; }
      const tmp = `${this.path(name)}.tmp-${process.pid}`;
      await writeFile(tmp, JSON.stringify({ etag, info: infoBytes.toString('base64') }));
      await rename(tmp, this.path(name));
      const infoHash = infoHashOf(infoBytes);
      this.known.set(name, { etag, s: { state: 'ready', infoBytes, infoHash } });
      this.byInfoHash.set(infoHash, name);
      this.onReady(name);
      this.log('metainfo built', { image: name, infohash: infoHash, seconds: +((performance.now() - started) / 1000).toFixed(1) });
    } catch (e) {
      this.known.set(name, { etag, s: { state: 'failed', reason: (e as Error).message } });
      throw e;
    }
  }
}
