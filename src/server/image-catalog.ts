// The image catalog replicas share (`booty server --database postgres://...`): every replica
// mirrors the images of its own directory (DIR/images/, still where uploads land and bytes are
// served from) into the `images` table (store/image-rows.ts), with the URL of its own copy. So
// replica B lists an image uploaded through replica A (name, size, sha256, format, holder), and
// answers a download of it with a redirect (307) to A's /images/<name>: the bytes come from the
// replica that has them, and the agent checks the sha256 end to end as for any URL. The images
// directory stays the source of truth of what a replica holds: the table is rewritten from it
// after each upload, deletion and hashing pass, never the other way round.
//
// SQLite (one server) does not use it: the one server's directory already is the whole catalog,
// and a second copy in booty.db could only drift from it (images copied in by hand).
//
// A replica writes and removes only its own rows; a name another replica holds is refused for
// upload here (409), and when two uploads of one name race through two replicas the first row
// written keeps the name (the other's copy stays unlisted, `conflicts` names it for the log).
// A copy with the same sha256 is no conflict: it is served where it is, listed once. Every
// replica syncs again when it hears of another's catalog change, so when the holder of a name
// deletes its copy, a replica with a copy of its own takes the name over.
//
// Peer to peer (--p2p): each row also carries the holder's ETag of its copy and, once the holder
// has built it, the image's BitTorrent info dictionary (store/image-rows.ts). Any replica then
// serves the metainfo of an image another holds (routes/p2p.ts) and its trackers accept that
// swarm (p2p/catalog-swarms.ts): an image uploaded through one replica deploys peer to peer
// through all of them.

import { hostname } from 'node:os';
import type { ImageStore } from './image-store.ts';
import { HttpError } from './http/http-error.ts';
import type { ImageRow, ImageTorrent } from './store/image-rows.ts';
import type { StateStore } from './store/state-store.ts';

export class SharedImageCatalog {
  #self: string | undefined;
  readonly #store: StateStore;
  readonly #images: ImageStore;
  #syncing: Promise<unknown> = Promise.resolve();
  #queued: Promise<{ changed: boolean; conflicts: string[] }> | undefined;
  /** the info dictionary this replica built for its copy of `name` at `etag`, if it has (peer to peer) */
  torrentOf: (name: string, etag: string) => { infoBytes: Buffer; infoHash: string } | undefined = () => undefined;

  constructor(store: StateStore, images: ImageStore) {
    this.#store = store;
    this.#images = images;
  }

  /** This replica's own base URL, as the other replicas and the agents reach it (known once it listens). */
  get self(): string {
    if (this.#self === undefined) throw new Error('image catalog: this replica\'s URL is not known before it listens');
    return this.#self;
  }

  set self(url: string) { this.#self = url.replace(/\/+$/, ''); }

  urlOf(name: string): string { return `${this.self}/images/${encodeURIComponent(name)}`; }

  async list(): Promise<ImageRow[]> { return this.#store.images.list(); }

  /** The row of an image held by ANOTHER replica (undefined: none, or it is this replica's own). */
  async elsewhere(name: string): Promise<ImageRow | undefined> {
    const row = await this.#store.images.get(name);
    return row !== undefined && row.holder !== this.self ? row : undefined;
  }

  /** The info dictionary recorded for an image ANOTHER replica holds (undefined: none, or its holder has not built it yet). */
  async torrentElsewhere(name: string): Promise<ImageTorrent | undefined> {
    const t = await this.#store.images.torrent(name);
    return t !== undefined && t.holder !== this.self ? t : undefined;
  }

  /** Every info hash the catalog records (all replicas' images). */
  async infoHashes(): Promise<string[]> { return this.#store.images.infoHashes(); }

  /** An upload under a name another replica holds would make two different images of one name. */
  async refuseHeldElsewhere(name: string): Promise<void> {
    const row = await this.elsewhere(name);
    if (row !== undefined) throw new HttpError(409, `image "${name}" is held by replica ${row.holder}; upload (or ?overwrite=1) through that replica, or choose another name`);
  }

  /**
   * Bring this replica's rows in line with its directory (hashed images only: an image without
   * its sha256 yet joins after the hashing pass). One pass at a time. Tells the other replicas
   * (change feed) when a row changed; `changed` is true then.
   */
  sync(): Promise<{ changed: boolean; conflicts: string[] }> {
    // callers while a pass waits to start share it (a metainfo read for each image at start asks for one each)
    if (this.#queued !== undefined) return this.#queued;
    const run = () => { this.#queued = undefined; return this.#sync(); };
    const next = this.#syncing.then(run, run);
    this.#queued = next;
    this.#syncing = next.catch(() => {});
    return next;
  }

  async #sync(): Promise<{ changed: boolean; conflicts: string[] }> {
    const local = (await this.#images.list()).filter((i) => i.sha256 !== undefined && i.format !== undefined);
    const known = new Map((await this.#store.images.list()).map((r) => [r.name, r]));
    let changed = false;
    const conflicts: string[] = [];
    for (const i of local) {
      const torrent = this.torrentOf(i.name, i.etag);
      const row: ImageRow = {
        name: i.name, size: i.size, sha256: i.sha256!, format: i.format!, uncompressedSize: i.uncompressedSize,
        storedAt: i.storedAt, via: i.via, machine: i.machine, url: this.urlOf(i.name), holder: this.self, etag: i.etag, infoHash: torrent?.infoHash,
      };
      const was = known.get(i.name);
      if (was !== undefined && sameRow(was, row)) continue;
      // the same bytes under the same name on two replicas (copied to both) are one image, listed once
      if (was !== undefined && was.holder !== this.self && was.sha256 === row.sha256) continue;
      if (await this.#store.images.put(row, torrent?.infoBytes)) changed = true; else conflicts.push(i.name);
    }
    const here = new Set(local.map((i) => i.name));
    for (const name of await this.#store.images.heldBy(this.self)) {
      if (!here.has(name) && await this.#store.images.remove(name, this.self)) changed = true;
    }
    if (changed) await this.#store.publish({ type: 'images' });
    return { changed, conflicts };
  }
}

function sameRow(a: ImageRow, b: ImageRow): boolean {
  return a.size === b.size && a.sha256 === b.sha256 && a.format === b.format && a.uncompressedSize === b.uncompressedSize
    && a.storedAt === b.storedAt && a.via === b.via && a.machine === b.machine && a.url === b.url && a.holder === b.holder
    // an info dictionary not loaded yet here does not drop the one recorded for the same version
    && a.etag === b.etag && (b.infoHash === undefined || a.infoHash === b.infoHash);
}

/**
 * This replica's own base URL when `--replica-url` gives none: the address it listens on, or
 * for a wildcard listener (0.0.0.0, ::) the machine's host name.
 */
export function defaultReplicaUrl(scheme: 'http' | 'https', host: string, port: number): string {
  const wildcard = host === '0.0.0.0' || host === '::' || host === '';
  const h = wildcard ? hostname() : host.includes(':') ? `[${host}]` : host;
  return `${scheme}://${h}:${port}`;
}
