// The tracker booty server runs when peer to peer is on (--p2p): bittorrent-tracker's server,
// HTTP announce only (no UDP, no WebSocket), answering through booty's own listener and route
// table (GET /p2p/<rack>/announce). One tracker per rack: a rack is an announce scope, so peers
// only ever learn of peers of their own rack. The rack is the one the announce URL names; the
// rack "auto" is the announcing machine's IPv4 /24 (its IPv6 /64), as the tracker sees its address.
// Only swarms of images this server holds, or with replicas of images the shared catalog lists
// (catalog-swarms.ts), are tracked (the filter), so the tracker is no open tracker for anything else.
import type { IncomingMessage, ServerResponse } from 'node:http';
import Server from 'bittorrent-tracker/server';

/** The scope of rack "auto": the peer's /24 (IPv4) or /64 (IPv6). */
export function subnetScope(address: string): string {
  const v4 = /^(?:::ffff:)?(\d+)\.(\d+)\.(\d+)\.\d+$/.exec(address);
  if (v4 !== null) return `subnet-${v4[1]}.${v4[2]}.${v4[3]}.0/24`;
  const groups = address.split(':').slice(0, 4).join(':');
  return `subnet-${groups}::/64`;
}

export class RackTracker {
  private readonly racks = new Map<string, Server>();
  private readonly knows: (infoHash: string) => boolean | Promise<boolean>;
  /** seconds between announces the tracker asks of peers */
  private readonly intervalMs: number;

  constructor(knows: (infoHash: string) => boolean | Promise<boolean>, o: { intervalMs?: number } = {}) {
    this.knows = knows;
    // every peer announces again this often: a tracker that lost its memory (its replica died and
    // the load balancer moved the rack to another) knows the rack's peers again within one interval,
    // before agents waiting for pieces give up on the swarm (their stall timeout, 20 s by default)
    this.intervalMs = o.intervalMs ?? 10_000;
  }

  private trackerOf(scope: string): Server {
    let t = this.racks.get(scope);
    if (t === undefined) {
      t = new Server({
        http: false, udp: false, ws: false, stats: false, trustProxy: false, interval: this.intervalMs,
        filter: (infoHash, _params, cb) => {
          const refuse = new Error('this tracker serves the images of its booty server only');
          Promise.resolve(this.knows(infoHash)).then((ok) => cb(ok ? null : refuse), () => cb(refuse));
        },
      });
      // errors are answered to the announcing peer as a bencoded failure reason
      t.on('error', () => {});
      t.on('warning', () => {});
      this.racks.set(scope, t);
    }
    return t;
  }

  announce(rack: string, remote: string, req: IncomingMessage, res: ServerResponse): void {
    const scope = rack === 'auto' ? subnetScope(remote) : `rack-${rack}`;
    // bittorrent-tracker reads the peer's address from the socket, or with trustProxy from the
    // first X-Forwarded-For entry: hand it exactly the address decided here (the socket's, or
    // what a trusted proxy appended: routes/p2p.ts), nothing a client wrote
    const fromSocket = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    if (remote.replace(/^::ffff:/, '') === fromSocket) {
      delete req.headers['x-forwarded-for'];
      this.trackerOf(scope).onHttpRequest(req, res, { action: 'announce' });
    } else {
      req.headers['x-forwarded-for'] = remote;
      this.trackerOf(scope).onHttpRequest(req, res, { action: 'announce', trustProxy: true });
    }
  }

  /** Peers per rack and swarm (for the log and tests). */
  peers(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [scope, t] of this.racks) for (const [h, s] of Object.entries(t.torrents)) out[`${scope} ${h}`] = s?.peers.length ?? 0;
    return out;
  }

  close(): void {
    for (const t of this.racks.values()) t.close();
    this.racks.clear();
  }
}
