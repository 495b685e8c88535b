// Peer to peer inside a rack (booty server --p2p): an image's BitTorrent metainfo for the agents
// and rack seeds that fetch it from peers (fleet: any machine's credential, or an operator; it
// names no machine), and the rack trackers' announce (public: BitTorrent clients announce
// without credentials; a tracker answers only for images this server holds, and a peer it lists
// can send nothing that passes the metainfo's piece hashes and the image's sha256 unless it is
// the image).
import { HttpError } from '../http/http-error.ts';
import { note, remoteOf } from '../http/respond.ts';
import { RACK_NAME } from '../../p2p/metainfo-url.ts';
import type { AppContext, AppRequest, AppRoute } from './context.ts';
import type { IncomingMessage } from 'node:http';

function baseUrlOf(app: AppContext, req: IncomingMessage): string {
  if (app.boot?.publicUrl !== undefined) return app.boot.publicUrl.replace(/\/+$/, '');
  const host = req.headers.host;
  if (host === undefined || !/^[A-Za-z0-9.:[\]-]+$/.test(host)) throw new HttpError(400, 'a Host header is needed to write the tracker and web seed URLs into the metainfo (or start the server with --public-url)');
  return `${app.tlsCert === undefined ? 'http' : 'https'}://${host}`;
}

function p2pOf(app: AppContext): NonNullable<AppContext['p2p']> {
  if (app.p2p === undefined) throw new HttpError(404, 'peer to peer is off on this server (start booty server with --p2p, or --p2p-tracker URL)');
  return app.p2p;
}

async function serveMetainfo({ app, req, res, url, params: { name } }: AppRequest): Promise<void> {
  const p2p = p2pOf(app);
  const rack = url.searchParams.get('rack') ?? 'auto';
  if (!RACK_NAME.test(rack)) throw new HttpError(400, `rack ${JSON.stringify(rack)}: a rack name is 1-64 of A-Z a-z 0-9 . _ - (or "auto": the machine's subnet)`);
  const img = await app.images.openForRead(name);
  if (img === undefined) throw new HttpError(404, `no image named ${JSON.stringify(name)}`);
  await img.fh.close();
  const s = await p2p.metainfo.ready(name, img.etag);
  if (s.state === 'failed') throw new HttpError(500, `the metainfo of ${JSON.stringify(name)} could not be computed: ${s.reason}`);
  if (s.state !== 'ready') throw new HttpError(503, `the metainfo of ${JSON.stringify(name)} is being computed (${s.state}); try again shortly`, { headers: { 'Retry-After': '5' } });
  const base = baseUrlOf(app, req);
  const announce = p2p.trackerUrl ?? `${base}/p2p/${encodeURIComponent(rack)}/announce`;
  const body = p2p.torrentFile(s.infoBytes, announce, [`${base}/images/${encodeURIComponent(name)}`]);
  const headers: Record<string, string | number> = {
    'Content-Type': 'application/x-bittorrent', 'Content-Length': body.length, 'Cache-Control': 'no-store',
    'X-Image-Etag': img.etag, 'X-Image-Format': img.format, 'X-Booty-Infohash': s.infoHash,
  };
  if (img.meta?.sha256 !== undefined) headers['X-Image-Sha256'] = img.meta.sha256;
  if (img.uncompressedSize !== undefined) headers['X-Image-Size'] = img.uncompressedSize;
  note(res, 'infohash', s.infoHash);
  res.writeHead(200, headers);
  res.end(req.method === 'HEAD' ? undefined : body);
}

function announce({ app, req, res, params: { rack } }: AppRequest): void {
  const p2p = p2pOf(app);
  if (p2p.tracker === undefined) throw new HttpError(404, `this server runs no tracker: peers announce to ${p2p.trackerUrl ?? '(none)'}`);
  if (!RACK_NAME.test(rack)) throw new HttpError(400, `rack ${JSON.stringify(rack)}: a rack name is 1-64 of A-Z a-z 0-9 . _ - (or "auto")`);
  p2p.tracker.announce(rack, peerAddressOf(req, remoteOf(req), p2p.trustedProxies), req, res);
}

/**
 * The announcing peer's address. Behind a load balancer (haproxy) every announce comes from the
 * balancer's address, which peers cannot dial: from a proxy named by --p2p-trusted-proxy the
 * address is the last X-Forwarded-For entry (the one that proxy appended; entries before it are
 * whatever the client sent). From anyone else the header is ignored.
 */
export function peerAddressOf(req: IncomingMessage, remote: string, trusted: readonly string[] | undefined): string {
  const bare = remote.replace(/^::ffff:/, '');
  const header = req.headers['x-forwarded-for'];
  if (trusted === undefined || !trusted.includes(bare) || typeof header !== 'string') return remote;
  const last = header.split(',').at(-1)!.trim();
  return /^[0-9a-fA-F.:]{2,45}$/.test(last) ? last : remote;
}

export const p2pRoutes: AppRoute[] = [
  { method: 'GET', path: '/image-torrent/:name', access: 'fleet', handle: serveMetainfo },
  { method: 'GET', path: '/p2p/:rack/announce', access: 'public', head: false, handle: announce },
];
