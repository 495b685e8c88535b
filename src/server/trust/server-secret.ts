// The server's own secret: DIR/secret, 32 random bytes (hex), made at first start, mode 0600.
// Every per-machine agent credential is derived from it (agent-credential.ts), as are the
// dashboard's session cookies (operator-session.ts), so booty server authenticates agents with
// no configuration at all. Rotating it (delete the file, restart) invalidates all of them at once.

import { randomBytes } from 'node:crypto';
import { chmod, readFile, writeFile } from 'node:fs/promises';

const SECRET_BYTES = 32;

export async function loadOrCreateSecret(file: string): Promise<Buffer> {
  let text: string | undefined;
  try { text = await readFile(file, 'utf8'); } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  if (text !== undefined) {
    const hex = text.trim();
    if (!/^[0-9a-f]{64,}$/.test(hex)) throw new Error(`${file} is not a booty server secret (64+ hex characters); delete it to make a new one (every agent credential and dashboard login changes)`);
    // a copy restored from a backup may have lost its mode: the secret must stay the server's
    await chmod(file, 0o600);
    return Buffer.from(hex, 'hex');
  }
  const secret = randomBytes(SECRET_BYTES);
  // 'wx': two servers starting on one directory must not each write their own
  try { await writeFile(file, secret.toString('hex') + '\n', { mode: 0o600, flag: 'wx' }); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateSecret(file);
    throw e;
  }
  return secret;
}
