// Step 5: ask the server what this machine should do. `GET ${MYURL}/<aa-bb-cc-dd-ee-ff>`, or
// BOOTy's `GET ${BOOTYURL}/<aa-bb-cc-dd-ee-ff>.bty` with `User-Agent: BOOTy-client`. A server
// that is down, restarting or does not know the machine yet is retried with backoff (each retry
// logged with its reason); an answer that is not a valid action fails at once, before any disk
// is touched: retrying cannot fix it, the operator must.
import { request } from 'undici';
import type { Action } from '../config/action.ts';
import { parseAction } from '../config/parse.ts';
import { BootyError, isBootyError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';
import { backoffDelay, defaultBackoff, withinBudget, type BackoffOptions } from './backoff.ts';
import type { ServerRef } from './boot-params.ts';

/** `52:54:00:AB:cd:01` -> `52-54-00-ab-cd-01` (the form URLs and the server use). */
export function macForUrl(mac: string): string {
  return mac.toLowerCase().replaceAll(':', '-');
}

export function actionUrl(server: ServerRef, mac: string): string {
  const m = macForUrl(mac);
  return server.style === 'bootyurl' ? `${server.base}/${m}.bty` : `${server.base}/${m}`;
}

export interface FetchActionOptions {
  server: ServerRef;
  mac: string;
  token?: string;
  /** total time to keep retrying; 0 = forever */
  budgetMs: number;
  log: Logger;
  backoff?: BackoffOptions;
  /** per-request limit for headers and for each body chunk */
  requestTimeoutMs?: number;
}

export interface FetchedAction {
  action: Action;
  url: string;
  attempts: number;
}

const maxActionBytes = 1 << 20;

/** Why a try failed, and whether trying again can help. */
type Outcome = { retry: true; reason: string } | { retry: false; error: BootyError };

function firstLine(body: string): string {
  const line = body.split('\n').map((l) => l.trim()).find((l) => l !== '') ?? '';
  return line.length > 160 ? `${line.slice(0, 157)}...` : line;
}

function networkReason(e: unknown): string {
  const err = e as { code?: string; message?: string; cause?: { code?: string } };
  const code = err.code ?? err.cause?.code;
  return `server not reachable (${code ?? err.message ?? String(e)})`;
}

async function tryOnce(url: string, opts: FetchActionOptions): Promise<{ action: Action } | Outcome> {
  const headers: Record<string, string> = {
    'user-agent': opts.server.style === 'bootyurl' ? 'BOOTy-client' : 'booty-agent',
    accept: 'application/json',
  };
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  const timeout = opts.requestTimeoutMs ?? 15_000;
  let res;
  try {
    res = await request(url, { method: 'GET', headers, headersTimeout: timeout, bodyTimeout: timeout });
  } catch (e) {
    return { retry: true, reason: networkReason(e) };
  }
  let body: string;
  try {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of res.body) {
      const b = c as Buffer;
      size += b.length;
      if (size > maxActionBytes) {
        res.body.destroy();
        return { retry: false, error: new BootyError({ stage: 'config', code: 'action-too-large', diskState: 'untouched', message: `the action at ${url} is larger than ${maxActionBytes} bytes`, hint: 'check that MYURL points at booty server' }) };
      }
      chunks.push(b);
    }
    body = Buffer.concat(chunks).toString('utf8');
  } catch (e) {
    return { retry: true, reason: `answer cut off (${networkReason(e)})` };
  }
  const status = res.statusCode;
  if (status === 200) {
    try {
      return { action: parseAction(body) };
    } catch (e) {
      if (isBootyError(e)) {
        return { retry: false, error: new BootyError({ stage: 'config', code: e.code, diskState: 'untouched', message: `the action from ${url} is invalid: ${e.message}`, hint: 'fix the action on the server, then reboot this machine', cause: e }) };
      }
      throw e;
    }
  }
  if (status === 404) return { retry: true, reason: `the server has no action for this machine yet (404${firstLine(body) === '' ? '' : `: ${firstLine(body)}`})` };
  if (status === 408 || status === 425 || status === 429 || status >= 500) return { retry: true, reason: `the server answered ${status}${firstLine(body) === '' ? '' : ` (${firstLine(body)})`}` };
  if (status === 401 || status === 403) {
    return { retry: false, error: new BootyError({ stage: 'server', code: 'action-unauthorized', diskState: 'untouched', message: `the server refused the action request (${status}) at ${url}`, hint: 'set the server\'s token with booty.token= on the kernel command line' }) };
  }
  return { retry: false, error: new BootyError({ stage: 'server', code: 'action-http-status', diskState: 'untouched', message: `the server answered ${status} to ${url}${firstLine(body) === '' ? '' : `: ${firstLine(body)}`}`, hint: 'check that MYURL / BOOTYURL points at the provisioning server' }) };
}

export async function fetchAction(opts: FetchActionOptions): Promise<FetchedAction> {
  const url = actionUrl(opts.server, opts.mac);
  const started = performance.now();
  for (let attempt = 0; ; attempt++) {
    opts.log.info(attempt === 0 ? `fetching the action: GET ${url}` : `fetching the action: GET ${url} (try ${attempt + 1})`);
    const r = await tryOnce(url, opts);
    if ('action' in r) return { action: r.action, url, attempts: attempt + 1 };
    if (!r.retry) throw r.error;
    const delay = backoffDelay(attempt, opts.backoff ?? defaultBackoff);
    const elapsed = performance.now() - started;
    if (!withinBudget(elapsed, delay, opts.budgetMs)) {
      throw new BootyError({
        stage: 'server', code: 'action-timeout', diskState: 'untouched',
        message: `no action from ${url} after ${Math.round(elapsed / 1000)} s and ${attempt + 1} tries; last: ${r.reason}`,
        hint: 'check the server and this machine\'s entry on it; booty.timeout= sets how long to wait',
      });
    }
    opts.log.warn(`${r.reason}; retrying in ${(delay / 1000).toFixed(1)} s`);
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}
