// BitTorrent metainfo (BEP 3, v1: SHA-1 pieces) for one image file: computed by create-torrent,
// read and written with bencode. The info dictionary (name, length, piece length, piece hashes,
// private) is what identifies the swarm (its SHA-1 is the infohash); the outer dictionary
// (announce URL, web seed) depends on who asks and is put around it when served.
//
// v1 because create-torrent writes v1 only; the SHA-1 piece hashes guard each piece against a bad
// peer, and the image's sha256 over all bytes, checked by deploy as always, stays the authority.
import { createHash } from 'node:crypto';
import bencode from 'bencode';
import createTorrent from 'create-torrent';

export interface Metainfo {
  /** hex SHA-1 of the bencoded info dictionary */
  infoHash: string;
  name: string;
  /** bytes of the file (the image as served) */
  length: number;
  pieceLength: number;
  pieceCount: number;
  /** 20 bytes per piece */
  pieceHashes: Buffer;
  /** the info dictionary, bencoded as received (what infoHash hashes) */
  infoBytes: Buffer;
  announce?: string;
  /** web seeds (BEP 19): the origin's URL of the file */
  urlList: string[];
}

/** Pieces of 1 MiB up to 8 GiB of image (8192 pieces, 160 KiB of hashes), 4 MiB above. */
export function pieceLengthFor(size: number): number {
  return size <= 8 * 2 ** 30 ? 2 ** 20 : 4 * 2 ** 20;
}

/** The info dictionary of `path` (bencoded), hashed by create-torrent with booty's piece length. */
export async function computeInfo(path: string, name: string, size: number): Promise<Buffer> {
  const torrent = await new Promise<Uint8Array>((resolve, reject) => {
    createTorrent(path, { name, pieceLength: pieceLengthFor(size), private: true, announceList: [], createdBy: 'booty' },
      (err, t) => (err !== null ? reject(err) : resolve(t)));
  });
  const top = bencode.decode(torrent) as { info?: unknown };
  if (top.info === undefined) throw new Error('create-torrent wrote no info dictionary');
  return Buffer.from(bencode.encode(top.info));
}

/** A .torrent file: `info` (bencoded, kept byte for byte) with an announce URL and web seeds. */
export function torrentFile(infoBytes: Buffer, announce: string | undefined, urlList: string[]): Buffer {
  const info = bencode.decode(infoBytes);
  const top: Record<string, unknown> = { info, 'created by': 'booty' };
  if (announce !== undefined) top.announce = announce;
  if (urlList.length > 0) top['url-list'] = urlList;
  const out = Buffer.from(bencode.encode(top));
  // re-encoding a decoded dictionary is canonical bencode: the infohash must not move
  if (infoHashOf(Buffer.from(bencode.encode(info))) !== infoHashOf(infoBytes)) throw new Error('the info dictionary is not canonical bencode');
  return out;
}

export function infoHashOf(infoBytes: Buffer): string {
  return createHash('sha1').update(infoBytes).digest('hex');
}

function bytesOf(v: unknown): Buffer | undefined {
  return v instanceof Uint8Array ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : undefined;
}

/** Reads a .torrent of one file; throws naming what is wrong with it. */
export function parseTorrentFile(data: Buffer): Metainfo {
  let top: Record<string, unknown>;
  try { top = bencode.decode(data) as Record<string, unknown>; } catch (e) { throw new Error(`the metainfo is not bencoded: ${(e as Error).message}`); }
  const info = top?.info as Record<string, unknown> | undefined;
  if (info === undefined || typeof info !== 'object') throw new Error('the metainfo has no info dictionary');
  const infoBytes = Buffer.from(bencode.encode(info));
  const length = info.length;
  const pieceLength = info['piece length'];
  const pieces = bytesOf(info.pieces);
  const name = bytesOf(info.name)?.toString('utf8') ?? '';
  if (typeof length !== 'number' || !Number.isSafeInteger(length) || length <= 0) throw new Error('the metainfo is not of one file with a length (multi-file torrents are not images)');
  if (typeof pieceLength !== 'number' || pieceLength < 16384 || pieceLength > 64 * 2 ** 20) throw new Error(`the metainfo's piece length ${String(pieceLength)} is out of range (16 KiB - 64 MiB)`);
  const pieceCount = Math.ceil(length / pieceLength);
  if (pieces === undefined || pieces.length !== pieceCount * 20) throw new Error(`the metainfo holds ${pieces?.length ?? 0} bytes of piece hashes, ${pieceCount * 20} expected`);
  const urlList = Array.isArray(top['url-list']) ? top['url-list'].map((u) => bytesOf(u)?.toString('utf8')).filter((u): u is string => u !== undefined)
    : bytesOf(top['url-list']) !== undefined ? [bytesOf(top['url-list'])!.toString('utf8')] : [];
  return {
    infoHash: infoHashOf(infoBytes), name, length, pieceLength, pieceCount, pieceHashes: Buffer.from(pieces), infoBytes,
    announce: bytesOf(top.announce)?.toString('utf8'), urlList,
  };
}

/** Bytes of piece `i` (the last one is shorter). */
export function pieceSize(m: Pick<Metainfo, 'length' | 'pieceLength'>, i: number): number {
  return Math.min(m.pieceLength, m.length - i * m.pieceLength);
}

/** Does `data` hash to piece `i`'s SHA-1? */
export function pieceMatches(m: Pick<Metainfo, 'pieceHashes'>, i: number, data: Uint8Array): boolean {
  const want = m.pieceHashes.subarray(i * 20, i * 20 + 20);
  return createHash('sha1').update(data).digest().equals(want);
}
