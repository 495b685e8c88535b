// The swarms a replica's rack trackers accept besides those of its own images: the swarms of
// images other replicas hold, by the info hashes their holders recorded in the shared catalog
// (image-catalog.ts, store/image-rows.ts). A load balancer sends all of a rack's announces to one
// replica (haproxy `balance uri`), whichever holds the image, so every replica must track every
// image of the catalog.
//
// Kept in memory: loaded at start, again on every catalog change (the change feed), and on an
// announce for a hash not in memory at most once per `missRefreshMs` (a change notice lost while
// the database connection was down, or an announce racing the notice): in the steady state an
// announce costs no query, and announces for unknown hashes cost at most one per interval.

export class CatalogSwarms {
  #hashes = new Set<string>();
  readonly #load: () => Promise<string[]>;
  readonly #missRefreshMs: number;
  readonly #now: () => number;
  readonly #onError: (e: Error) => void;
  #lastRefresh = -Infinity;
  /** the refresh running now (or settled) */
  #running: Promise<void> = Promise.resolve();
  /** the refresh that starts after it, shared by everyone asking meanwhile */
  #queued: Promise<void> | undefined;

  constructor(load: () => Promise<string[]>, o: { missRefreshMs?: number; now?: () => number; onError?: (e: Error) => void } = {}) {
    this.#load = load;
    this.#missRefreshMs = o.missRefreshMs ?? 5000;
    this.#now = o.now ?? (() => performance.now());
    this.#onError = o.onError ?? (() => {});
  }

  /** Is `infoHash` (hex) in memory? No query. */
  has(infoHash: string): boolean { return this.#hashes.has(infoHash.toLowerCase()); }

  get size(): number { return this.#hashes.size; }

  /** `infoHash` was just read from the catalog (a metainfo served from it): its announces need no refresh. */
  add(infoHash: string): void { this.#hashes.add(infoHash.toLowerCase()); }

  /**
   * Read the catalog's info hashes again. A call while a read is under way is answered by one
   * more read after it (that read may have started before the change being announced committed).
   */
  refresh(): Promise<void> {
    if (this.#queued !== undefined) return this.#queued;
    const next = this.#running.then(async () => {
      this.#queued = undefined;
      this.#lastRefresh = this.#now();
      try {
        this.#hashes = new Set((await this.#load()).map((h) => h.toLowerCase()));
      } catch (e) { this.#onError(e as Error); }
    });
    this.#queued = next;
    this.#running = next;
    return next;
  }

  /** Does the catalog record `infoHash`? From memory; on a miss, from the database at most once per interval. */
  async knows(infoHash: string): Promise<boolean> {
    if (this.has(infoHash)) return true;
    if (this.#now() - this.#lastRefresh < this.#missRefreshMs) return false;
    await this.refresh();
    return this.has(infoHash);
  }
}
