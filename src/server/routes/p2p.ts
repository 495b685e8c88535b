// Peer to peer inside a rack (booty server --p2p): an image's BitTorrent metainfo for the agents
// and rack seeds that fetch it from peers (fleet: any machine's credential, or an operator; it
// names no machine; with replicas also of an image another replica holds, from the shared
// catalog), and the rack trackers' announce (public: BitTorrent clients announce without
// credentials; a tracker answers only for images this server or its replicas hold, and a peer it lists
// can send nothing that passes the metainfo's piece hashes and the image's sha256 unless it is
// the image).
import { createHash } from 'node:crypto';
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

/** What a metainfo is served from: the info dictionary and what the headers say of the image it describes. */
interface Described { infoBytes: Buffer; infoHash: string; etag: string; format: string; sha256?: string; uncompressedSize?: number }

const computing = (name: string, state: string) => new HttpError(503, `the metainfo of ${JSON.stringify(name)} is being computed (${state}); try again shortly`, { headers: { 'Retry-After': '5' } });

/** An image of this server's directory: its metainfo builder's info dictionary. */
async function describeOwn(p2p: NonNullable<AppContext['p2p']>, img: { etag: string; format: string; meta?: { sha256: string }; uncompressedSize?: number }, name: string): Promise<Described> {
  const s = await p2p.metainfo.ready(name, img.etag);
  if (s.state === 'failed') throw new HttpError(500, `the metainfo of ${JSON.stringify(name)} could not be computed: ${s.reason}`);
  if (s.state !== 'ready') throw computing(name, s.state);
  return { infoBytes: s.infoBytes, infoHash: s.infoHash, etag: img.etag, format: img.format, sha256: img.meta?.sha256, uncompressedSize: img.uncompressedSize };
}

/**
 * Replicas: an image another replica holds, from the info dictionary its holder recorded in the
 * shared catalog. Served here rather than redirected (an agent's HTTP client drops its credential
 * on a redirect to another origin); the ETag is the holder's, which the web seed's URL here
 * redirects to, so a resume's If-Range against the holder matches.
 */
async function describeElsewhere(app: AppContext, p2p: NonNullable<AppContext['p2p']>, name: string, res: AppRequest['res']): Promise<Described | undefined> {
  const row = await app.catalog?.elsewhere(name);
  if (row === undefined) return undefined;
  note(res, 'held-by', row.holder);
  const t = await app.catalog!.torrentElsewhere(name);
  // none yet, or a row that changed between the two reads: the holder (re)builds it
  if (t === undefined || t.holder !== row.holder || t.etag !== row.etag) throw computing(name, `by replica ${row.holder}, which holds the image and must run with --p2p`);
  if (createHash('sha1').update(t.info).digest('hex') !== t.infoHash) throw new HttpError(500, `the info dictionary of ${JSON.stringify(name)} in the shared catalog does not match its infohash ${t.infoHash}; its holder ${row.holder} records it again when it rebuilds the metainfo`);
  p2p.catalogSwarms?.add(t.infoHash);
  return { infoBytes: t.info, infoHash: t.infoHash, etag: t.etag, format: row.format, sha256: row.sha256, uncompressedSize: row.uncompressedSize };
}

async function serveMetainfo({ app, req, res, url, params: { name } }: AppRequest): Promise<void> {
  const p2p = p2pOf(app);
  const rack = url.searchParams.get('rack') ?? 'auto';
  if (!RACK_NAME.test(rack)) throw new HttpError(400, `rack ${JSON.stringify(rack)}: a rack name is 1-64 of A-Z a-z 0-9 . _ - (or "auto": the machine's subnet)`);
  const img = await app.images.openForRead(name);
  await img?.fh.close();
  const d = img !== undefined ? await describeOwn(p2p, img, name) : await describeElsewhere(app, p2p, name, res);
  if (d === undefined) throw new HttpError(404, `no image named ${JSON.stringify(name)}`);
  const base = baseUrlOf(app, req);
  const announce = p2p.trackerUrl ?? `${base}/p2p/${encodeURIComponent(rack)}/announce`;
  // the web seed is this server's URL of the image also when another replica holds it (it redirects there)
  const body = p2p.torrentFile(d.infoBytes, announce, [`${base}/images/${encodeURIComponent(name)}`]);
  const headers: Record<string, string | number> = {
    'Content-Type': 'application/x-bittorrent', 'Content-Length': body.length, 'Cache-Control': 'no-store',
    'X-Image-Etag': d.etag, 'X-Image-Format': d.format, 'X-Booty-Infohash': d.infoHash,
  };
  if (d.sha256 !== undefined) headers['X-Image-Sha256'] = d.sha256;
  if (d.uncompressedSize !== undefined) headers['X-Image-Size'] = d.uncompressedSize;
  note(res, 'infohash', d.infoHash);
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
