// Where an image's BitTorrent metainfo is, for an image booty server hosts: /image-torrent/<name>
// beside /images/<name> (routes/p2p.ts). Kept apart from the swarm so the agent and the CLI know
// it without loading peer to peer.

/** A rack's name (the tracker's announce scope); "auto": the machine's subnet. */
export const RACK_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function metainfoUrlFor(imageUrl: string): string | undefined {
  let u: URL;
  try { u = new URL(imageUrl); } catch { return undefined; }
  const m = /^(.*)\/images\/([^/]+)$/.exec(u.pathname);
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || m === null) return undefined;
  return `${u.origin}${m[1]}/image-torrent/${m[2]}`;
}
