// The `images` table: the image catalog replicas share (image-catalog.ts). One row per image
// name: what a download checks (size, sha256, format, uncompressed size), where its bytes are
// (`url`: the /images/<name> of the replica whose directory holds them) and which replica that is
// (`holder`, that replica's own base URL). A replica writes and removes only its own rows, so
// two replicas never overwrite each other's image under one name: the first holder keeps it.
// On SQLite (one server) the server reads its directory, not this table (image-catalog.ts says why).
//
// Peer to peer (migration 5): `etag` is the holder's ETag of its copy, and `info_hash`/`info` the
// BitTorrent info dictionary the holder built for that version (base64 of the bencoded bytes), so
// any replica serves the image's metainfo and tracks its swarm. The info belongs to one version:
// a row written for another ETag drops it, unless it carries a new one.

import type { Sql } from './sql.ts';
import { num, str } from './sql.ts';

export interface ImageRow {
  name: string;
  size: number;
  sha256: string;
  format: string;
  uncompressedSize?: number;
  storedAt?: string;
  via?: string;
  machine?: string;
  /** where the bytes are served (the holding replica's /images/<name>) */
  url: string;
  /** the replica whose directory holds them (its base URL) */
  holder: string;
  /** the holder's ETag of its copy (what If-Range against it must name) */
  etag?: string;
  /** hex SHA-1 of the info dictionary the holder built for `etag` (peer to peer), once it has */
  infoHash?: string;
}

/** The BitTorrent info dictionary of an image, as its holder recorded it. */
export interface ImageTorrent {
  holder: string;
  etag: string;
  infoHash: string;
  /** the bencoded info dictionary */
  info: Buffer;
}

function rowOf(r: Record<string, string | number | null>): ImageRow {
  return {
    name: String(r.name), size: Number(r.size), sha256: String(r.sha256), format: String(r.format),
    uncompressedSize: num(r.uncompressed_size), storedAt: str(r.stored_at), via: str(r.via), machine: str(r.machine),
    url: String(r.url), holder: String(r.holder), etag: str(r.etag), infoHash: str(r.info_hash),
  };
}

// without `info` (up to a few hundred KB per image): torrent() reads it for one image
const COLUMNS = 'name, size, sha256, format, uncompressed_size, stored_at, via, machine, url, holder, etag, info_hash';

export class ImageRows {
  readonly #sql: Sql;
  constructor(sql: Sql) { this.#sql = sql; }

  /**
   * Add or update `row`; false when another holder already has an image of that name (its row is
   * left as it is: the conflict is decided by the statement, not a read before it). `info` is the
   * info dictionary of `row.etag` (its SHA-1 is `row.infoHash`); without one, the info already
   * recorded stays if it is of the same ETag and is dropped otherwise.
   */
  async put(row: ImageRow, info?: Buffer): Promise<boolean> {
    if ((row.infoHash === undefined) !== (info === undefined)) throw new Error('image row: infoHash and info go together');
    if (info !== undefined && row.etag === undefined) throw new Error('image row: the info dictionary belongs to an ETag');
    return await this.#sql.run(
      `INSERT INTO images (${COLUMNS}, info) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET size = excluded.size, sha256 = excluded.sha256, format = excluded.format,
         uncompressed_size = excluded.uncompressed_size, stored_at = excluded.stored_at, via = excluded.via,
         machine = excluded.machine, url = excluded.url, etag = excluded.etag,
         info_hash = CASE WHEN excluded.info_hash IS NOT NULL THEN excluded.info_hash WHEN images.etag = excluded.etag THEN images.info_hash ELSE NULL END,
         info = CASE WHEN excluded.info IS NOT NULL THEN excluded.info WHEN images.etag = excluded.etag THEN images.info ELSE NULL END
       WHERE images.holder = excluded.holder`,
      [row.name, row.size, row.sha256, row.format, row.uncompressedSize ?? null, row.storedAt ?? null, row.via ?? null, row.machine ?? null, row.url, row.holder,
        row.etag ?? null, row.infoHash ?? null, info?.toString('base64') ?? null],
    ) > 0;
  }

  /** The info dictionary recorded for `name` (undefined: no such image, or its holder has not built it yet). */
  async torrent(name: string): Promise<ImageTorrent | undefined> {
    const r = await this.#sql.get('SELECT holder, etag, info_hash, info FROM images WHERE name = ? AND info IS NOT NULL AND etag IS NOT NULL', [name]);
    if (r === undefined) return undefined;
    return { holder: String(r.holder), etag: String(r.etag), infoHash: String(r.info_hash), info: Buffer.from(String(r.info), 'base64') };
  }

  /** Every info hash the catalog records (the rack trackers' swarms). */
  async infoHashes(): Promise<string[]> {
    return (await this.#sql.all('SELECT info_hash FROM images WHERE info_hash IS NOT NULL')).map((r) => String(r.info_hash));
  }

  async get(name: string): Promise<ImageRow | undefined> {
    const r = await this.#sql.get(`SELECT ${COLUMNS} FROM images WHERE name = ?`, [name]);
    return r === undefined ? undefined : rowOf(r);
  }

  async list(): Promise<ImageRow[]> {
    return (await this.#sql.all(`SELECT ${COLUMNS} FROM images ORDER BY name`)).map(rowOf);
  }

  /** Remove `holder`'s row of `name` (another holder's is never touched); false when none. */
  async remove(name: string, holder: string): Promise<boolean> {
    return await this.#sql.run('DELETE FROM images WHERE name = ? AND holder = ?', [name, holder]) > 0;
  }

  /** The names `holder` has rows for. */
  async heldBy(holder: string): Promise<string[]> {
    return (await this.#sql.all('SELECT name FROM images WHERE holder = ? ORDER BY name', [holder])).map((r) => String(r.name));
  }
}
