// One image's swarm inside a rack, over BitTorrent's peer wire protocol (bittorrent-protocol)
// on TCP, peers found through an HTTP tracker (bittorrent-tracker's client). What this peer holds
// is its PieceSource (a seed's file, an agent's RAM window); what it wants is set by its consumer
// (the in-order source, swarm-source.ts, or the rack seed). Every piece downloaded is checked
// against the metainfo's SHA-1 before anyone sees it; a peer that sends one that does not match
// is banned (disconnected, its address never dialled or accepted again) and the piece is fetched
// from another peer.
//
// Inside a rack every peer is unchoked (no tit-for-tat: the machines are all ours and the point
// is to spread the image); each peer downloads at most PIECES_PER_PEER pieces at a time from each
// other peer, the lowest wanted pieces first (the consumer writes in order). A piece that has
// been in flight for longer than `pieceTimeoutMs` may be asked of a second peer as well; the
// first complete, verified copy wins, and the other copies' requests are cancelled (BEP 3), so
// the peers' upload goes to what is still wanted. The most urgent piece (the one the consumer
// waits for) gets that second peer sooner, after `headTimeoutMs`: a slow or silent peer holding it
// would otherwise hold up every byte behind it until the consumer gives up on the swarm.
//
// A connection's requests can go unanswered for good while it answers others (bittorrent-protocol
// matches answers to requests by index/offset/length and drops both of two identical ones; its
// request timeout is reset by every answer, so it never fires while anything else arrives). So a
// piece is never asked twice on one connection while blocks of it are still open there; a piece
// that got no block for `stuckTimeoutMs` stops holding one of that peer's PIECES_PER_PEER places
// (at most OPEN_PIECES_PER_PEER pieces stay open on a connection in all), so the peer and the
// piece both go on elsewhere; and a connection with a request open for `deadTimeoutMs` is dropped.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import Wire from 'bittorrent-protocol';
import TrackerClient from 'bittorrent-tracker/client';
import type { Logger } from '../util/log.ts';
import { silentLogger } from '../util/log.ts';
import { pieceMatches, pieceSize, type Metainfo } from './metainfo.ts';
import { MessageGuard } from './message-guard.ts';

/** What this peer can serve. */
export interface PieceSource {
  has(i: number): boolean;
  /** bytes [offset, offset+length) of piece i, or undefined when no longer held */
  read(i: number, offset: number, length: number): Promise<Buffer | undefined> | Buffer | undefined;
}

export interface SwarmOptions {
  meta: Metainfo;
  /** the tracker's announce URL (the metainfo's, for this rack) */
  announce: string;
  pieces: PieceSource;
  /** a verified piece arrived from a peer */
  onPiece: (i: number, data: Buffer, from: string) => void;
  log?: Logger;
  /** TCP port to listen on (default: any free one) */
  port?: number;
  /** address to listen on (default: all) */
  host?: string;
  /** seconds between tracker announces (default: what the tracker says) */
  announceIntervalMs?: number;
  pieceTimeoutMs?: number;
  /** the same for the first wanted piece (default 2 s, at most pieceTimeoutMs) */
  headTimeoutMs?: number;
  /** a piece in flight with no block for this long no longer holds one of its peer's places
   *  (default 5 s, at most pieceTimeoutMs) */
  stuckTimeoutMs?: number;
  /** a connection with a request open this long is dropped (default 30 s) */
  deadTimeoutMs?: number;
  /** for tests: connect to these peers ("host:port") as well as those the tracker names */
  peers?: string[];
}

const BLOCK = 64 * 1024;
const PIECES_PER_PEER = 2;
/** pieces with blocks open on one connection, stuck ones included */
const OPEN_PIECES_PER_PEER = 4;
const MAX_PEERS = 40;
/** a peer asking for more than this in one request is refused (our blocks are 64 KiB) */
const MAX_REQUEST = 256 * 1024;

interface Peer {
  wire: Wire;
  socket: net.Socket;
  guard: MessageGuard;
  addr: string;
  ip: string;
  /** we dialled it (else it dialled us) */
  outgoing: boolean;
  /** pieces with blocks asked of this peer and not all answered yet */
  downloads: Map<number, Download>;
  /** what went over this connection, for the stall diagnosis (describe()) */
  stats: PeerStats;
}

/** One piece asked of one connection. */
interface Download {
  /** when it was asked, when its last block came (or when it was asked) */
  since: number; progressAt: number;
  /** offsets of its blocks not answered yet */
  open: Set<number>;
  /** active: holds one of the peer's places; stuck: no block for stuckTimeoutMs, holds none (may
   *  still complete); over: failed, cancelled or complete, late answers are ignored */
  state: 'active' | 'stuck' | 'over';
}

/** Blocks (64 KiB requests), both ways, of one connection. */
interface PeerStats {
  /** we asked, it answered with the block, it rejected (BEP 6), the request failed otherwise, we
   *  cancelled it (the piece came from another peer) */
  asked: number; got: number; rejected: number; failed: number; cancelled: number;
  /** pieces that got stuck with it (no block for stuckTimeoutMs) */
  stuck: number;
  lastBlockAt: number | undefined;
  /** it asked us, we sent the block, we refused (not held) */
  askedOfUs: number; served: number; refused: number;
  /** the last bytes of any kind read from its socket */
  lastInAt: number | undefined;
}

/** streamx's own buffers of a Wire (not in its types): our messages not yet handed to the socket,
 *  and bytes handed to the wire it has not yet parsed. A message stuck in either is a request (or
 *  an answer) both ends believe sent. */
function wireQueues(w: Wire): { out: number; in: number } {
  const x = w as unknown as { _readableState?: { buffered?: number }; _writableState?: { buffered?: number } };
  return { out: x._readableState?.buffered ?? 0, in: x._writableState?.buffered ?? 0 };
}

interface Flight { peers: Set<Peer>; since: number }

function activeDownloads(p: Peer): number {
  let n = 0;
  for (const d of p.downloads.values()) if (d.state === 'active') n++;
  return n;
}

export class Swarm {
  readonly peerId = Buffer.concat([Buffer.from('-BT0001-'), randomBytes(12)]);
  /** verified bytes received from peers */
  downloaded = 0;
  /** bytes served to peers */
  uploaded = 0;
  /** pieces that failed their hash, and the addresses banned for them */
  readonly banned = new Set<string>();
  badPieces = 0;
  port = 0;

  private readonly o: SwarmOptions;
  private readonly log: Logger;
  private readonly peers = new Set<Peer>();
  /** every connection, also those still dialling or waiting for the handshake: close() ends them
   *  all (one left open kept a finished deploy's process alive) */
  private readonly sockets = new Set<net.Socket>();
  private readonly dialled = new Set<string>();
  private readonly flights = new Map<number, Flight>();
  private wanted: number[] = [];
  private server: net.Server | undefined;
  private tracker: TrackerClient | undefined;
  private closed = false;
  /** serving on without holding the process (release()) */
  private released = false;
  private scheduling = false;
  private scheduleAgain = false;
  private readonly timer: NodeJS.Timeout;

  constructor(o: SwarmOptions) {
    this.o = o;
    this.log = o.log ?? silentLogger;
    // re-planned now and then too: a slow piece gets a second peer, a new peer gets work
    this.timer = setInterval(() => this.schedule(), 1000);
    this.timer.unref();
  }

  get peerCount(): number { return this.peers.size; }

  /** Listens for peers and announces to the rack's tracker. */
  async start(): Promise<void> {
    const server = net.createServer((socket) => this.accept(socket));
    this.server = server;
    await new Promise<void>((ok, fail) => { server.once('error', fail); server.listen(this.o.port ?? 0, this.o.host, () => { server.off('error', fail); ok(); }); });
    this.port = (server.address() as net.AddressInfo).port;
    server.on('error', (e) => this.log.warn(`p2p: listener: ${e.message}`));
    for (const p of this.o.peers ?? []) this.dial(p);
    if (this.o.announce === '') return;
    const tracker = new TrackerClient({
      infoHash: this.o.meta.infoHash, peerId: this.peerId, announce: [this.o.announce], port: this.port,
      getAnnounceOpts: () => ({ uploaded: this.uploaded, downloaded: this.downloaded, left: this.left(), numwant: MAX_PEERS }),
    });
    this.tracker = tracker;
    tracker.on('peer', (addr: string) => this.dial(addr));
    tracker.on('error', (e: Error) => this.log.warn(`p2p: tracker ${this.o.announce}: ${e.message}`));
    tracker.on('warning', (e: Error) => this.log.debug(`p2p: tracker: ${e.message}`));
    tracker.start();
    if (this.o.announceIntervalMs !== undefined) tracker.setInterval(this.o.announceIntervalMs);
  }

  private left(): number {
    let held = 0;
    for (let i = 0; i < this.o.meta.pieceCount; i++) if (this.o.pieces.has(i)) held += pieceSize(this.o.meta, i);
    return this.o.meta.length - held;
  }

  /** The pieces to fetch, most urgent first (replaces the previous list). */
  want(pieces: number[]): void {
    this.wanted = pieces;
    this.schedule();
  }

  /** Tells every peer this peer now holds piece i. */
  have(i: number): void {
    for (const p of this.peers) if (!p.wire.destroyed) p.wire.have(i);
  }

  /** Asks the tracker for peers now (e.g. when the swarm looks stalled). */
  reannounce(): void {
    try { this.tracker?.update(); } catch { /* the next interval will */ }
  }

  /**
   * One line on every connection, for the log when the consumer waits on `piece` and none comes:
   * which suspect a stall is (nobody advertises it; requests unanswered, rejected or never sent;
   * the peer choking us; the socket not read; two connections to one machine) reads off it.
   */
  describe(piece: number): string {
    const now = performance.now();
    const s = (ms: number) => `${((now - ms) / 1000).toFixed(1)} s`;
    const ids = new Map<string, number>();
    for (const p of this.peers) { const id = p.wire.peerId ?? p.addr; ids.set(id, (ids.get(id) ?? 0) + 1); }
    const twice = [...ids.values()].filter((n) => n > 1).length;
    const handshaking = [...this.sockets].length - this.peers.size;
    const f = this.flights.get(piece);
    const advertised = [...this.peers].filter((p) => p.wire.peerPieces.get(piece)).length;
    const head = `piece ${piece}: advertised by ${advertised} of ${this.peers.size}, in flight with ${f?.peers.size ?? 0}${f !== undefined && f.peers.size > 0 ? ` (last asked ${s(f.since)} ago)` : ''}`;
    const each = [...this.peers].map((p) => this.describePeer(p, piece, now));
    return `${this.peers.size} connection${this.peers.size === 1 ? '' : 's'} to ${ids.size} peer${ids.size === 1 ? '' : 's'}${twice > 0 ? ` (${twice} with two or more)` : ''}${handshaking > 0 ? `, ${handshaking} more without handshake` : ''}; ${head}${each.length > 0 ? `: ${each.join(' | ')}` : ''}`;
  }

  /** One connection's line of describe(). */
  private describePeer(p: Peer, piece: number, now: number): string {
    const s = (ms: number) => `${((now - ms) / 1000).toFixed(1)} s`;
    const st = p.stats;
    let held = 0;
    for (let i = 0; i < this.o.meta.pieceCount; i++) if (p.wire.peerPieces.get(i)) held++;
    const flying = [...p.downloads].filter(([, d]) => d.state !== 'over').map(([i, d]) => `${i} (${s(d.since)}${d.state === 'stuck' ? ', stuck' : ''})`).join(' ') || 'none';
    const q = wireQueues(p.wire);
    return `${p.addr} ${p.outgoing ? 'dialled' : 'accepted'} id …${(p.wire.peerId ?? '?').slice(-6)}: ${p.wire.peerChoking ? 'CHOKES us' : 'unchoked us'}${p.wire.amChoking ? ', we choke it' : ''}, holds ${held}/${this.o.meta.pieceCount}${p.wire.peerPieces.get(piece) ? ' with' : ' without'} ${piece}; in flight ${flying}; blocks asked ${st.asked}, got ${st.got}, rejected ${st.rejected}, failed ${st.failed}, ${st.cancelled > 0 ? `cancelled ${st.cancelled}, ` : ''}open ${p.wire.requests.length}, ${st.stuck > 0 ? `pieces stuck ${st.stuck}, ` : ''}last ${st.lastBlockAt === undefined ? 'never' : `${s(st.lastBlockAt)} ago`}; asked of us ${st.askedOfUs} (served ${st.served}, refused ${st.refused}, open ${p.wire.peerRequests.length}); socket in ${p.socket.bytesRead} B (last ${st.lastInAt === undefined ? 'never' : `${s(st.lastInAt)} ago`}), out ${p.socket.bytesWritten} B (${p.socket.writableLength} B queued${q.out > 0 ? `, ${q.out} B more in the wire` : ''}), reading ${p.socket.readableFlowing === false ? 'PAUSED' : 'on'}${p.guard.readableLength + p.guard.writableLength + q.in > 0 ? ` (${p.guard.readableLength + p.guard.writableLength + q.in} B held before the wire)` : ''}`;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    try { this.tracker?.stop(); } catch { /* going away anyway */ }
    const t = this.tracker;
    setTimeout(() => t?.destroy(), 500).unref();
    this.server?.close();
    for (const p of this.peers) this.drop(p);
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  /**
   * Goes on serving for at most `ms` without keeping the process alive: a process that ends
   * meanwhile (the booty deploy CLI after its last write) ends it. What this peer fetched last is
   * what the peers behind it still lack; closed at once, they would wait for it until their
   * stall timeout and then read it from the origin.
   */
  release(ms: number): void {
    if (this.closed || this.released) return;
    this.released = true;
    this.server?.unref();
    for (const socket of this.sockets) socket.unref();
    // bittorrent-protocol's keep-alive interval is not unref'd: left on, every connection would
    // keep the process for the whole `ms`
    for (const p of this.peers) p.wire.setKeepAlive(false);
    setTimeout(() => this.close(), ms).unref();
  }

  private track(socket: net.Socket): void {
    if (this.released) socket.unref();
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  private dial(addr: string): void {
    if (this.closed || this.peers.size >= MAX_PEERS || this.dialled.has(addr)) return;
    const m = /^\[?([^\]]+)\]?:(\d+)$/.exec(addr);
    if (m === null || this.banned.has(m[1])) return;
    this.dialled.add(addr);
    const socket = net.connect({ host: m[1], port: Number(m[2]) });
    this.track(socket);
    socket.once('connect', () => this.attach(socket, addr, m[1], true));
    socket.on('error', () => { this.dialled.delete(addr); });
    socket.setTimeout(10_000, () => socket.destroy());
  }

  private accept(socket: net.Socket): void {
    const ip = (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    if (this.closed || this.banned.has(ip) || this.peers.size >= MAX_PEERS) { socket.destroy(); return; }
    this.track(socket);
    socket.on('error', () => {});
    this.attach(socket, `${ip}:${socket.remotePort}`, ip, false);
  }

  private attach(socket: net.Socket, addr: string, ip: string, outgoing: boolean): void {
    socket.setTimeout(0);
    const wire = new Wire();
    const guard = new MessageGuard();
    const peer: Peer = { wire, socket, guard, addr, ip, outgoing, downloads: new Map(), stats: { asked: 0, got: 0, rejected: 0, failed: 0, cancelled: 0, stuck: 0, lastBlockAt: undefined, askedOfUs: 0, served: 0, refused: 0, lastInAt: undefined } };
    guard.on('error', (e: Error) => { this.log.warn(`p2p: dropped peer ${addr}: ${e.message}`); this.drop(peer); });
    socket.on('data', () => { peer.stats.lastInAt = performance.now(); });
    socket.pipe(guard).pipe(wire as unknown as NodeJS.WritableStream);
    wire.pipe(socket);
    wire.setTimeout(30_000, true);
    wire.setKeepAlive(!this.released);
    wire.on('timeout', () => this.drop(peer));
    wire.on('error', () => this.drop(peer));
    wire.on('close', () => this.drop(peer));
    socket.on('close', () => this.drop(peer));
    // a connection whose handshake does not come is not a peer: let it go
    const noHandshake = setTimeout(() => { if (!this.peers.has(peer)) this.drop(peer); }, 30_000);
    noHandshake.unref();
    socket.once('close', () => clearTimeout(noHandshake));
    wire.on('handshake', (infoHash: string, peerId: string) => {
      clearTimeout(noHandshake);
      if (this.closed || infoHash !== this.o.meta.infoHash || peerId === this.peerId.toString('hex') || this.banned.has(ip)) { this.drop(peer); return; }
      if (!outgoing) wire.handshake(this.o.meta.infoHash, this.peerId, { fast: true });
      this.peers.add(peer);
      wire.bitfield({ buffer: this.bitfield() });
      wire.unchoke();
      wire.interested();
    });
    wire.on('unchoke', () => this.schedule());
    wire.on('have', () => this.schedule());
    wire.on('bitfield', () => this.schedule());
    wire.on('request', (index: number, offset: number, length: number, respond: (e: Error | null, b?: Uint8Array) => void) => {
      peer.stats.askedOfUs++;
      void this.serve(index, offset, length).then((b) => {
        if (b === undefined) { peer.stats.refused++; respond(new Error('piece not held')); }
        else { this.uploaded += b.length; peer.stats.served++; respond(null, b); }
      }, (e: Error) => { peer.stats.refused++; respond(e); });
    });
    if (outgoing) wire.handshake(this.o.meta.infoHash, this.peerId, { fast: true });
  }

  private async serve(i: number, offset: number, length: number): Promise<Buffer | undefined> {
    if (i < 0 || i >= this.o.meta.pieceCount || length <= 0 || length > MAX_REQUEST || offset < 0 || offset + length > pieceSize(this.o.meta, i)) return undefined;
    if (!this.o.pieces.has(i)) return undefined;
    return await this.o.pieces.read(i, offset, length);
  }

  private bitfield(): Uint8Array {
    const bits = new Uint8Array(Math.ceil(this.o.meta.pieceCount / 8));
    for (let i = 0; i < this.o.meta.pieceCount; i++) if (this.o.pieces.has(i)) bits[i >> 3] |= 0x80 >> (i & 7);
    return bits;
  }

  private drop(peer: Peer): void {
    const known = this.peers.delete(peer);
    if (!peer.wire.destroyed) peer.wire.destroy();
    if (!peer.socket.destroyed) peer.socket.destroy();
    this.dialled.delete(peer.addr);
    for (const [i, d] of peer.downloads) { d.state = 'over'; this.flights.get(i)?.peers.delete(peer); }
    peer.downloads.clear();
    if (known) this.schedule();
  }

  private ban(peer: Peer, why: string): void {
    this.banned.add(peer.ip);
    this.log.warn(`p2p: banned peer ${peer.addr}: ${why}`);
    this.drop(peer);
    for (const p of [...this.peers]) if (p.ip === peer.ip) this.drop(p);
  }

  /** Gives idle peers the most urgent wanted pieces they hold (re-entered by the callbacks it
   *  causes: those only ask for one more round). */
  private schedule(): void {
    if (this.closed) return;
    if (this.scheduling) { this.scheduleAgain = true; return; }
    this.scheduling = true;
    try {
      do {
        this.scheduleAgain = false;
        this.scheduleOnce();
      } while (this.scheduleAgain && !this.closed);
    } finally {
      this.scheduling = false;
    }
  }

  private scheduleOnce(): void {
    const now = performance.now();
    const timeout = this.o.pieceTimeoutMs ?? 15_000;
    const headTimeout = Math.min(timeout, this.o.headTimeoutMs ?? 2000);
    const stuckTimeout = Math.min(timeout, this.o.stuckTimeoutMs ?? 5000);
    const deadTimeout = this.o.deadTimeoutMs ?? 30_000;
    const head = this.wanted[0];
    const dead: [Peer, string][] = [];
    for (const peer of this.peers) {
      let oldest: number | undefined;
      for (const [i, d] of peer.downloads) {
        if (d.state === 'active' && now - d.progressAt > stuckTimeout) {
          // it may still come; meanwhile neither the piece nor the peer waits for it
          d.state = 'stuck';
          peer.stats.stuck++;
          this.flights.get(i)?.peers.delete(peer);
        }
        if (d.open.size > 0 && (oldest === undefined || d.since < oldest)) oldest = d.since;
      }
      if (oldest !== undefined && now - oldest > deadTimeout) dead.push([peer, `a request unanswered for ${Math.round((now - oldest) / 1000)} s (${this.describePeer(peer, head ?? 0, now)})`]);
    }
    for (const [peer, why] of dead) { this.log.warn(`p2p: dropped peer ${peer.addr}: ${why}`); this.drop(peer); }
    for (const peer of this.peers) {
      if (peer.wire.peerChoking || peer.wire.destroyed) continue;
      for (const i of this.wanted) {
        if (peer.downloads.size >= OPEN_PIECES_PER_PEER || activeDownloads(peer) >= PIECES_PER_PEER) break;
        // never a second request of a block still open on this connection: the wire would lose both
        if (this.o.pieces.has(i) || peer.downloads.has(i) || !peer.wire.peerPieces.get(i)) continue;
        const f = this.flights.get(i);
        if (f !== undefined && f.peers.size > 0 && now - f.since < (i === head ? headTimeout : timeout)) continue;
        this.download(peer, i);
      }
    }
  }

  private download(peer: Peer, i: number): void {
    const size = pieceSize(this.o.meta, i);
    const now = performance.now();
    let f = this.flights.get(i);
    if (f === undefined) {
      f = { peers: new Set(), since: now };
      this.flights.set(i, f);
    }
    f.peers.add(peer);
    f.since = now;
    const d: Download = { since: now, progressAt: now, open: new Set(), state: 'active' };
    peer.downloads.set(i, d);
    // each peer fills its own copy: a bad peer's bytes never mix with a good one's
    const buf = Buffer.allocUnsafe(size);
    let left = Math.ceil(size / BLOCK);
    for (let off = 0; off < size; off += BLOCK) d.open.add(off);
    for (let off = 0; off < size; off += BLOCK) {
      const len = Math.min(BLOCK, size - off);
      peer.stats.asked++;
      peer.wire.request(i, off, len, (err, block) => {
        d.open.delete(off);
        const ok = err === null && block !== undefined && block.length === len;
        if (err?.message === 'request was rejected') peer.stats.rejected++;
        else if (err?.message === 'request was cancelled') peer.stats.cancelled++;
        else if (!ok) peer.stats.failed++;
        else { peer.stats.got++; peer.stats.lastBlockAt = performance.now(); }
        if (d.state === 'over') {
          if (d.open.size === 0 && peer.downloads.get(i) === d) peer.downloads.delete(i);
          return;
        }
        if (!ok) {
          d.state = 'over';
          if (d.open.size === 0) peer.downloads.delete(i);
          this.flights.get(i)?.peers.delete(peer);
          if (err?.message === 'request was rejected') peer.wire.peerPieces.set(i, false);
          this.schedule();
          return;
        }
        buf.set(block, off);
        d.progressAt = performance.now();
        if (--left === 0) {
          d.state = 'over';
          peer.downloads.delete(i);
          this.complete(peer, i, buf);
        }
      });
    }
  }

  private complete(peer: Peer, i: number, buf: Buffer): void {
    const f = this.flights.get(i);
    f?.peers.delete(peer);
    if (this.o.pieces.has(i) || f === undefined) { this.schedule(); return; }
    if (!pieceMatches(this.o.meta, i, buf)) {
      this.badPieces++;
      this.ban(peer, `piece ${i} does not match the metainfo's SHA-1`);
      this.schedule();
      return;
    }
    this.flights.delete(i);
    this.downloaded += buf.length;
    this.o.onPiece(i, buf, peer.addr);
    // the other copies asked for are not wanted any more: their peers serve what is
    this.cancelElsewhere(i);
    this.schedule();
  }

  /** Cancels the open requests of piece i on every connection (it is held now, never asked again). */
  private cancelElsewhere(i: number): void {
    const size = pieceSize(this.o.meta, i);
    for (const p of this.peers) {
      const d = p.downloads.get(i);
      if (d === undefined) continue;
      d.state = 'over';
      for (const off of [...d.open]) p.wire.cancel(i, off, Math.min(BLOCK, size - off));
      if (d.open.size === 0) p.downloads.delete(i);
    }
  }
}
