// The agent's side of POST /api/machines/<mac>/inventory: one JSON body with the machine's
// credential, retried a few times with backoff; never throws (an inventory that cannot be sent
// is logged, and the boot goes on).
import { Agent, request } from '../net/undici.ts';
import { trustedConnect } from '../net/tls-pin.ts';
import type { MachineInventory } from '../config/inventory.ts';
import type { Logger } from '../util/log.ts';
import { sleep } from '../util/backoff.ts';

export interface SendInventoryOptions {
  /** the server's base URL (MYURL) */
  server: string;
  mac: string;
  token?: string;
  log: Logger;
  tries?: number;
}

export async function sendInventory(inv: MachineInventory, o: SendInventoryOptions): Promise<boolean> {
  const url = `${o.server.replace(/\/+$/, '')}/api/machines/${o.mac.toLowerCase().replaceAll(':', '-')}/inventory`;
  const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'booty-agent' };
  if (o.token !== undefined) headers.authorization = `Bearer ${o.token}`;
  const dispatcher = new Agent({ connect: trustedConnect({ timeout: 15_000 }) });
  try {
    const tries = o.tries ?? 5;
    for (let i = 0; i < tries; i++) {
      try {
        const res = await request(url, { method: 'POST', headers, body: JSON.stringify(inv), dispatcher, headersTimeout: 15_000, bodyTimeout: 15_000 });
        const text = await res.body.text().catch(() => '');
        if (res.statusCode >= 200 && res.statusCode < 300) return true;
        // a refusal (400, 401, 403, 404 of an older server) will not change by retrying
        if (res.statusCode < 500 && res.statusCode !== 408 && res.statusCode !== 429) {
          o.log.warn(`inventory: the server refused it (${res.statusCode}: ${text.slice(0, 300)})`);
          return false;
        }
        o.log.debug(`inventory: server answered ${res.statusCode}; retrying`);
      } catch (e) {
        o.log.debug(`inventory: ${(e as Error).message}; retrying`);
      }
      await sleep(Math.min(1000 * 2 ** i, 8000));
    }
    o.log.warn(`inventory: not delivered to ${url} after ${tries} tries`);
    return false;
  } finally {
    await dispatcher.close().catch(() => undefined);
  }
}
