// The image as one byte stream in order, fetched from the peers of this machine's rack: the
// deploy pipeline's source when peer to peer is on (deploy.ts takes it instead of the HTTP
// ResumableSource; everything after it, sha256, decoder, writer, is the same).
//
// Pieces arrive in any order; they wait in a reorder window of `windowBytes` (default 64 MiB of
// RAM, the pieces from the next one to push on) and leave it, in order, into the pipeline. Only
// pieces inside the window are asked for, so the window is the bound. Pieces already pushed stay
// in a serve cache of `cacheBytes` (default 64 MiB; the lowest pieces go first) so the peers
// behind this one can fetch them here: this peer serves what it holds until the swarm is closed
// (the deploy ended, plus `lingerMs`; the agent's process ends at reboot; without `lingerMs`, until
// the process exits, at most 10 s after the stream's end). A peer that asks for a piece gone from
// the cache is refused (BEP 6 reject) and asks another.
//
// Ordinary agents never read the origin while the swarm moves. When no piece arrived for
// `stallTimeoutMs` (plus a random part of up to as much again, drawn per agent, so that agents
// stalled together go to the origin one after the other) while the pipeline waited for one (no peer, or none that has the next piece),
// the source falls back to the origin: the resumable HTTP fetch (Range from the first byte not
// yet pushed, If-Range the ETag the metainfo was served with) to the end of the image; the bytes
// it brings are cut into pieces, checked against the metainfo's SHA-1 and served to peers as well.
// Every byte pushed has passed its piece's SHA-1; deploy's sha256 over all of them stays the
// authority.
import { Readable } from 'node:stream';
import type { Logger } from '../util/log.ts';
import { silentLogger } from '../util/log.ts';
import type { ImageResponse } from '../image/source/fetch.ts';
import type { ResumableSource } from '../image/source/resumable-source.ts';
import { http as door } from './http-door.ts';
import { parseTorrentFile, pieceMatches, pieceSize, type Metainfo } from './metainfo.ts';
import { Swarm } from './swarm.ts';
import { sleep } from '../util/backoff.ts';

export const DEFAULT_WINDOW_BYTES = 64 * 2 ** 20;
export const DEFAULT_CACHE_BYTES = 64 * 2 ** 20;
export const DEFAULT_P2P_STALL_MS = 20_000;
const MAX_METAINFO_BYTES = 16 * 2 ** 20;
/** without lingerMs, the swarm serves this long at most after the stream's end (or until the
 *  process exits, whichever comes first) */
const RELEASE_MS = 10_000;

export interface SwarmSourceOptions {
  /** the image's metainfo (booty server: /image-torrent/<name>) */
  metainfoUrl: string;
  /** the origin's URL of the image, for the fallback */
  imageUrl: string;
  /** sent to the origin (the fallback) */
  headers?: Record<string, string>;
  /** sent with the metainfo request (the agent's credential); default `headers` */
  metainfoHeaders?: Record<string, string>;
  /** the rack (tracker announce scope) to ask the metainfo for; default "auto" (the subnet) */
  rack?: string;
  windowBytes?: number;
  cacheBytes?: number;
  stallTimeoutMs?: number;
  /** keep serving this long after the stream is closed (the booty deploy CLI; default 0) */
  lingerMs?: number;
  port?: number;
  signal?: AbortSignal;
  log?: Logger;
  /** the fallback's own resume settings (deploy's) */
  resume?: { stallTimeoutMs?: number; retryForMs?: number; backoffInitialMs?: number; backoffMaxMs?: number; onResume?: () => void };
  /** tests: peers to connect to besides the tracker's */
  peers?: string[];
  /** tests: the part added to stallTimeoutMs before falling back (default: random in [0, stallTimeoutMs)) */
  fallbackJitterMs?: number;
}

/** The metainfo as the server serves it, with what its headers say of the image. */
export interface ServedMetainfo { meta: Metainfo; etag?: string; sha256?: string; imageSize?: number; format?: string }

async function readAll(body: Readable, max: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    n += (c as Buffer).length;
    if (n > max) { body.destroy(); throw new Error(`the metainfo is larger than ${max} bytes`); }
    parts.push(c as Buffer);
  }
  return Buffer.concat(parts);
}

/** GETs the metainfo, waiting while the server is still computing it (503, Retry-After). */
export async function fetchMetainfo(url: string, o: { headers?: Record<string, string>; signal?: AbortSignal; log?: Logger; waitMs?: number }): Promise<ServedMetainfo> {
  const until = performance.now() + (o.waitMs ?? 5 * 60_000);
  for (;;) {
    try {
      const { openImage } = door();
      const res = await openImage(url, { headers: o.headers, signal: o.signal, stallTimeoutMs: 30_000 });
      const data = await readAll(res.body, MAX_METAINFO_BYTES);
      return { meta: parseTorrentFile(data), etag: res.imageEtag, sha256: res.sha256, imageSize: res.imageSize };
    } catch (e) {
      if (!(e instanceof door().FetchError) || !e.transient || performance.now() > until || o.signal?.aborted) throw e;
      o.log?.info(`p2p: metainfo not ready (${e.message}); asking again in 5 s`);
      await sleep(5000, o.signal);
    }
  }
}

export class SwarmSource extends Readable {
  readonly first: ImageResponse;
  readonly total: number;
  /** bytes pushed downstream */
  received = 0;
  /** resumes of the HTTP fallback */
  resumes = 0;
  /** bytes that came from the origin (the fallback) */
  originBytes = 0;
  /** the byte the HTTP fallback started at, when it had to */
  fellBackAt: number | undefined;
  readonly swarm: Swarm;
  readonly meta: Metainfo;

  private readonly o: SwarmSourceOptions;
  private readonly log: Logger;
  private readonly served: ServedMetainfo;
  private next = 0;
  /** verified, not yet pushed (the reorder window) */
  private readonly pending = new Map<number, Buffer>();
  /** pushed, kept for peers (the serve cache) */
  private readonly cache = new Map<number, Buffer>();
  private cacheBytes = 0;
  private readonly windowPieces: number;
  private wanting = false;
  private lastPiece = performance.now();
  /** the swarm's state was logged in this stall (once per stall: at half its timeout) */
  private stallDescribed = false;
  private readonly watchdog: NodeJS.Timeout;
  private http: ResumableSource | undefined;
  private ended = false;
  /** the swarm stalled: from now on every byte comes from the origin (set before the request is
   *  made, so neither a second fallback nor a late piece can slip in meanwhile) */
  private fallingBack = false;
  /** the HTTP fallback's bytes of the piece being cut */
  private cut: Buffer[] = [];
  private cutBytes = 0;
  /**
   * Added to the stall timeout, drawn once per agent in [0, stall timeout). When a rack's seed
   * dies, all its agents wait at the same piece: falling back together, each would fetch the rest
   * from the origin (agents x the rest over the uplink). Staggered, the first one's origin pieces
   * reach the others (it serves them) before their own timeout, so they go on from peers.
   */
  private readonly fallbackJitterMs: number;

  private constructor(o: SwarmSourceOptions, served: ServedMetainfo) {
    super({ highWaterMark: 1 << 20 });
    this.o = o;
    this.log = o.log ?? silentLogger;
    this.served = served;
    this.meta = served.meta;
    this.total = served.meta.length;
    this.fallbackJitterMs = o.fallbackJitterMs ?? Math.floor(Math.random() * (o.stallTimeoutMs ?? DEFAULT_P2P_STALL_MS));
    this.windowPieces = Math.max(2, Math.floor((o.windowBytes ?? DEFAULT_WINDOW_BYTES) / served.meta.pieceLength));
    // what deploy reads of a first response: the image's size, checksum and validators, as the
    // metainfo was served (no image byte has been fetched from the origin)
    this.first = {
      url: o.imageUrl, body: Readable.from([]), status: 200, contentLength: served.meta.length, servedSize: served.meta.length,
      etag: served.etag, rangeStart: 0, acceptRanges: true, imageSize: served.imageSize, sha256: served.sha256,
    };
    this.swarm = new Swarm({
      meta: served.meta, announce: served.meta.announce ?? '', port: o.port, log: this.log, peers: o.peers,
      pieces: { has: (i) => i < this.next ? this.cache.has(i) : this.pending.has(i), read: (i, off, len) => (this.cache.get(i) ?? this.pending.get(i))?.subarray(off, off + len) },
      onPiece: (i, data) => this.onPiece(i, data),
    });
    this.watchdog = setInterval(() => this.checkStall(), 1000);
  }

  static async open(o: SwarmSourceOptions): Promise<SwarmSource> {
    const url = new URL(o.metainfoUrl);
    if (o.rack !== undefined) url.searchParams.set('rack', o.rack);
    const served = await fetchMetainfo(url.toString(), { headers: o.metainfoHeaders ?? o.headers, signal: o.signal, log: o.log });
    const s = new SwarmSource(o, served);
    await s.swarm.start();
    s.log.info(`p2p: swarm ${served.meta.infoHash.slice(0, 12)}… of ${served.meta.name} (${served.meta.pieceCount} pieces of ${served.meta.pieceLength >> 10} KiB), listening on port ${s.swarm.port}, tracker ${served.meta.announce ?? '(none)'}; reorder window ${s.windowPieces} pieces, serve cache ${(o.cacheBytes ?? DEFAULT_CACHE_BYTES) >> 20} MiB`);
    s.plan();
    return s;
  }

  override _read(): void {
    this.wanting = true;
    if (this.fallingBack) { if (this.http?.isPaused() === true) this.http.resume(); return; }
    this.drain();
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    clearInterval(this.watchdog);
    this.http?.destroy();
    this.log.info(`p2p: ${this.swarm.downloaded} bytes from peers, ${this.originBytes} from the origin${this.fellBackAt !== undefined ? ` (fell back at byte ${this.fellBackAt})` : ''}, ${this.swarm.uploaded} served to peers so far${this.swarm.banned.size > 0 ? `; banned ${[...this.swarm.banned].join(', ')} (${this.swarm.badPieces} bad pieces)` : ''}`);
    const linger = this.o.lingerMs ?? 0;
    if (linger > 0 && err === null) {
      this.log.info(`p2p: serving peers for ${Math.round(linger / 1000)} s more`);
      lingering.push(sleep(linger).then(() => this.swarm.close()));
    } else if (err === null) {
      // the stream has ended, the deploy has not (decoder, writes, sync): serve the peers behind
      // meanwhile, above all what came last, and let the process end when it is done
      this.swarm.release(RELEASE_MS);
    } else this.swarm.close();
    cb(err);
  }

  private onPiece(i: number, data: Buffer): void {
    if (i < this.next || this.pending.has(i) || this.fallingBack) return;
    this.pending.set(i, data);
    this.lastPiece = performance.now();
    this.stallDescribed = false;
    this.swarm.have(i);
    this.drain();
  }

  /** Pushes the pieces that are next, in order, while downstream wants them. */
  private drain(): void {
    while (this.wanting && this.pending.has(this.next)) {
      const data = this.pending.get(this.next)!;
      this.pending.delete(this.next);
      this.keep(this.next, data);
      this.next++;
      this.received += data.length;
      this.wanting = this.push(data);
    }
    if (this.next >= this.meta.pieceCount && !this.fallingBack) {
      if (!this.ended) { this.ended = true; this.push(null); }
      return;
    }
    this.plan();
  }

  /** Keeps a pushed piece for peers, within the cache's bytes (the lowest pieces go first). */
  private keep(i: number, data: Buffer): void {
    this.cache.set(i, data);
    this.cacheBytes += data.length;
    const max = this.o.cacheBytes ?? DEFAULT_CACHE_BYTES;
    for (const [j, b] of this.cache) {
      if (this.cacheBytes <= max) break;
      this.cache.delete(j);
      this.cacheBytes -= b.length;
    }
  }

  private plan(): void {
    if (this.fallingBack) { this.swarm.want([]); return; }
    const want: number[] = [];
    for (let i = this.next; i < Math.min(this.meta.pieceCount, this.next + this.windowPieces); i++) if (!this.pending.has(i)) want.push(i);
    this.swarm.want(want);
  }

  private checkStall(): void {
    if (this.fallingBack || this.destroyed || !this.wanting || this.pending.has(this.next)) {
      if (!this.wanting) { this.lastPiece = performance.now(); this.stallDescribed = false; }
      return;
    }
    const quiet = performance.now() - this.lastPiece;
    const limit = this.o.stallTimeoutMs ?? DEFAULT_P2P_STALL_MS;
    if (quiet > limit / 2) {
      this.swarm.reannounce();
      if (!this.stallDescribed) {
        this.stallDescribed = true;
        this.log.warn(`p2p: no piece for ${Math.round(quiet / 1000)} s while waiting for piece ${this.next}; ${this.swarm.describe(this.next)}`);
      }
    }
    if (quiet < limit + this.fallbackJitterMs) return;
    void this.fallBack().catch((e: Error) => this.destroy(e));
  }

  /** The swarm stalled: the rest comes from the origin, resumable, from the first byte not pushed. */
  private async fallBack(): Promise<void> {
    this.fallingBack = true;
    const at = this.next * this.meta.pieceLength;
    this.fellBackAt = at;
    this.log.warn(`p2p: no piece from ${this.swarm.peerCount} peer${this.swarm.peerCount === 1 ? '' : 's'} for ${Math.round(((this.o.stallTimeoutMs ?? DEFAULT_P2P_STALL_MS) + this.fallbackJitterMs) / 1000)} s; fetching the rest from the origin with HTTP Range from byte ${at} of ${this.total} (still serving peers what this machine holds)`);
    this.log.warn(`p2p: at the fallback: ${this.swarm.describe(this.next)}`);
    this.pending.clear();
    const http = await door().ResumableSource.open(this.o.imageUrl, {
      headers: this.o.headers, signal: this.o.signal, log: this.log, startAt: at, startIfRange: this.served.etag,
      ...this.o.resume, onResume: () => { this.resumes++; this.o.resume?.onResume?.(); },
    });
    if (this.destroyed) { http.destroy(); return; }
    this.http = http;
    this.plan();
    http.on('data', (chunk: Buffer) => this.fromOrigin(chunk));
    http.once('end', () => {
      if (this.cutBytes > 0 || this.next < this.meta.pieceCount) {
        this.destroy(new (door().ImageChangedError)(`the origin's image ended at byte ${this.next * this.meta.pieceLength + this.cutBytes}, the metainfo says ${this.total}`, this.received));
        return;
      }
      this.push(null);
    });
    http.once('error', (e: Error) => this.destroy(e));
    if (!this.wanting) http.pause();
  }

  private fromOrigin(chunk: Buffer): void {
    this.originBytes += chunk.length;
    while (chunk.length > 0 && this.next < this.meta.pieceCount) {
      const need = pieceSize(this.meta, this.next) - this.cutBytes;
      const take = chunk.subarray(0, need);
      this.cut.push(take);
      this.cutBytes += take.length;
      chunk = chunk.subarray(take.length);
      if (this.cutBytes < pieceSize(this.meta, this.next)) break;
      const piece = Buffer.concat(this.cut);
      this.cut = [];
      this.cutBytes = 0;
      if (!pieceMatches(this.meta, this.next, piece)) {
        this.destroy(new (door().ImageChangedError)(`the origin's piece ${this.next} does not match the metainfo's SHA-1: the image on the server is not the one the metainfo describes`, this.received));
        return;
      }
      this.keep(this.next, piece);
      this.swarm.have(this.next);
      this.next++;
      this.received += piece.length;
      this.wanting = this.push(piece);
    }
    if (chunk.length > 0) {
      this.destroy(new (door().ImageChangedError)(`the origin sent more than the metainfo's ${this.total} bytes`, this.received));
      return;
    }
    if (!this.wanting) this.http?.pause();
  }
}

const lingering: Promise<void>[] = [];

/** Resolves once every swarm kept open after its deploy (lingerMs) has closed. */
export async function swarmsLingering(): Promise<void> {
  await Promise.all(lingering);
}
