// Step 5: ask the server what this machine should do. `GET ${MYURL}/<aa-bb-cc-dd-ee-ff>`, or
// BOOTy's `GET ${BOOTYURL}/<aa-bb-cc-dd-ee-ff>.bty` with `User-Agent: BOOTy-client`. A server
// that is down, restarting or does not know the machine yet is retried with backoff (each retry
// logged with its reason); an answer that is not a valid action fails at once, before any disk
// is touched: retrying cannot fix it, the operator must. With `booty.ca=` the connection goes only
// to a server whose certificate is pinned (src/net/tls-pin.ts); a server that fails the pin is
// refused at once, naming the certificate it showed.
import { Agent, request, type Dispatcher } from '../net/undici.ts';
import { loadTrustedCa, pooledDispatcher, serverTrust, trustErrorOf, trustedConnect } from '../net/tls-pin.ts';
import type { Action } from '../config/action.ts';
import { parseAction } from '../config/parse.ts';
import { BootyError, isBootyError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';
import { backoffDelay, defaultBackoff, sleep, withinBudget, type BackoffOptions } from '../util/backoff.ts';
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
  /** `booty.ca=https://...`: CA certificates to fetch over the pinned connection before the action */
  caUrls?: string[];
}

export interface FetchedAction {
  action: Action;
  url: string;
  attempts: number;
}

const maxActionBytes = 1 << 20;

function actionDispatcher(): Dispatcher {
  return pooledDispatcher('action', () => new Agent({ connect: trustedConnect({ timeout: 15_000 }) }));
}

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

/** The OpenSSL/Node code when the TLS certificate failed verification (retrying will not help). */
function certificateProblem(e: unknown): string | undefined {
  const err = e as { code?: string; cause?: { code?: string } };
  const code = err.code ?? err.cause?.code;
  return code !== undefined && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ALTNAME/.test(code) ? code : undefined;
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
    res = await request(url, { method: 'GET', headers, headersTimeout: timeout, bodyTimeout: timeout, dispatcher: actionDispatcher() });
  } catch (e) {
    const untrusted = trustErrorOf(e);
    if (untrusted !== undefined) {
      return { retry: false, error: new BootyError({ stage: 'server', code: 'server-untrusted', diskState: 'untouched', message: `action server ${url}: ${untrusted.message}`, hint: 'check booty.ca= on the kernel command line against the server\'s certificate (booty server prints its pin at start)', cause: e }) };
    }
    const certCode = certificateProblem(e);
    if (certCode !== undefined) {
      return { retry: false, error: new BootyError({ stage: 'server', code: 'server-untrusted', diskState: 'untouched', message: `action server ${url}: its TLS certificate is not trusted (${certCode})`, hint: 'pin the server with booty.ca=sha256:<hex> on the kernel command line (booty server prints it at start)', cause: e }) };
    }
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

/** Fetch the CA certificates of booty.ca= URLs (over the pinned connection), retrying within the budget. */
async function loadCa(opts: FetchActionOptions): Promise<void> {
  const urls = opts.caUrls ?? [];
  if (urls.length === 0 || serverTrust() === undefined) return;
  const started = performance.now();
  for (let attempt = 0; ; attempt++) {
    try {
      const n = await loadTrustedCa(urls, { timeoutMs: opts.requestTimeoutMs ?? 15_000 });
      opts.log.info(`trusting ${n} CA certificate${n === 1 ? '' : 's'} from ${urls.join(', ')} (fetched over the pinned connection)`);
      return;
    } catch (e) {
      const untrusted = trustErrorOf(e);
      if (untrusted !== undefined) {
        throw new BootyError({ stage: 'server', code: 'server-untrusted', diskState: 'untouched', message: `CA certificates ${urls.join(', ')}: ${untrusted.message}`, hint: 'check booty.ca= on the kernel command line', cause: e });
      }
      const delay = backoffDelay(attempt, opts.backoff ?? defaultBackoff);
      const elapsed = performance.now() - started;
      if (!withinBudget(elapsed, delay, opts.budgetMs)) {
        throw new BootyError({ stage: 'server', code: 'ca-fetch-failed', diskState: 'untouched', message: `cannot fetch the CA certificates of booty.ca= (${(e as Error).message})`, hint: 'check the URL in booty.ca= and the server' });
      }
      opts.log.warn(`cannot fetch the CA certificates of booty.ca= (${(e as Error).message}); retrying in ${(delay / 1000).toFixed(1)} s`);
      await sleep(delay);
    }
  }
}

export async function fetchAction(opts: FetchActionOptions): Promise<FetchedAction> {
  const url = actionUrl(opts.server, opts.mac);
  await loadCa(opts);
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
    await sleep(delay);
  }
}
