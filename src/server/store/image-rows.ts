// The `images` table: the image catalog replicas share (image-catalog.ts). One row per image
// name: what a download checks (size, sha256, format, uncompressed size), where its bytes are
// (`url`: the /images/<name> of the replica whose directory holds them) and which replica that is
// (`holder`, that replica's own base URL). A replica writes and removes only its own rows, so
// two replicas never overwrite each other's image under one name: the first holder keeps it.
// On SQLite (one server) the server reads its directory, not this table (image-catalog.ts says why).

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
}

function rowOf(r: Record<string, string | number | null>): ImageRow {
  return {
    name: String(r.name), size: Number(r.size), sha256: String(r.sha256), format: String(r.format),
    uncompressedSize: num(r.uncompressed_size), storedAt: str(r.stored_at), via: str(r.via), machine: str(r.machine),
    url: String(r.url), holder: String(r.holder),
  };
}

const COLUMNS = 'name, size, sha256, format, uncompressed_size, stored_at, via, machine, url, holder';

export class ImageRows {
  readonly #sql: Sql;
  constructor(sql: Sql) { this.#sql = sql; }

  /**
   * Add or update `row`; false when another holder already has an image of that name (its row is
   * left as it is: the conflict is decided by the statement, not a read before it).
   */
  async put(row: ImageRow): Promise<boolean> {
    return await this.#sql.run(
      `INSERT INTO images (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET size = excluded.size, sha256 = excluded.sha256, format = excluded.format,
         uncompressed_size = excluded.uncompressed_size, stored_at = excluded.stored_at, via = excluded.via,
         machine = excluded.machine, url = excluded.url
       WHERE images.holder = excluded.holder`,
      [row.name, row.size, row.sha256, row.format, row.uncompressedSize ?? null, row.storedAt ?? null, row.via ?? null, row.machine ?? null, row.url, row.holder],
    ) > 0;
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
