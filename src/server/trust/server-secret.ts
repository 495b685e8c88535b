// The server's own secret: DIR/secret, 32 random bytes (hex), made at first start, mode 0600.
// Every per-machine agent credential is derived from it (agent-credential.ts), as are the
// dashboard's session cookies (operator-session.ts), so booty server authenticates agents with
// no configuration at all. Rotating it (delete the file, restart) invalidates all of them at once.
//
// Replicas on PostgreSQL share one secret kept in the database (meta key `server-secret`): the
// first replica to start writes its own (DIR/secret if it has one, from its SQLite days, else a
// new one) and the key's conflict keeps every later one from writing another. Each replica then
// writes the database's secret to its DIR/secret when it has none, and refuses to start when its
// DIR/secret holds a different one: it would reject every credential the others hand out, and
// they its, which a load balancer would make look like random 401s.

import { randomBytes, timingSafeEqual } from 'node:crypto';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import type { StateStore } from '../store/state-store.ts';

const SECRET_BYTES = 32;

const SHARED_KEY = 'server-secret';

/** DIR/secret's secret, or undefined when there is no file. */
async function readSecretFile(file: string): Promise<Buffer | undefined> {
  let text: string | undefined;
  try { text = await readFile(file, 'utf8'); } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    return undefined;
  }
  const hex = text.trim();
  if (!/^[0-9a-f]{64,}$/.test(hex)) throw new Error(`${file} is not a booty server secret (64+ hex characters); delete it to make a new one (every agent credential and dashboard login changes)`);
  // a copy restored from a backup may have lost its mode: the secret must stay the server's
  await chmod(file, 0o600);
  return Buffer.from(hex, 'hex');
}

/** Write `secret` to `file` unless it exists; false when it did ('wx': two servers on one directory must not each write their own). */
async function writeSecretFile(file: string, secret: Buffer): Promise<boolean> {
  try { await writeFile(file, secret.toString('hex') + '\n', { mode: 0o600, flag: 'wx' }); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
  return true;
}

export async function loadOrCreateSecret(file: string): Promise<Buffer> {
  const known = await readSecretFile(file);
  if (known !== undefined) return known;
  const secret = randomBytes(SECRET_BYTES);
  return await writeSecretFile(file, secret) ? secret : loadOrCreateSecret(file);
}

/** The secret replicas share (PostgreSQL), mirrored to `file`; refused when `file` holds another. */
export async function loadSharedSecret(file: string, store: StateStore): Promise<Buffer> {
  const local = await readSecretFile(file);
  const shared = Buffer.from(await store.meta.claim(SHARED_KEY, (local ?? randomBytes(SECRET_BYTES)).toString('hex')), 'hex');
  if (local === undefined) {
    if (!await writeSecretFile(file, shared)) return loadSharedSecret(file, store);
  } else if (local.length !== shared.length || !timingSafeEqual(local, shared)) {
    throw new Error(`${file} holds a different secret than the replicas sharing ${store.where}: this replica would refuse their agents' credentials and dashboard logins, and they this one's. `
      + `Move ${file} away (this replica then takes the shared one), or, to make this file's secret the fleet's, stop every replica and delete the row: DELETE FROM meta WHERE key = '${SHARED_KEY}' (every credential the others gave out changes)`);
  }
  return shared;
}
