// Which servers the agent (and `booty deploy/capture --ca`) will talk to. Without a setting, any:
// plain http and https verified against Node's CA store, as before. With `booty.ca=` (or --ca):
//   - `sha256:<hex>` pins: a server is accepted when a certificate of the chain it presents (its
//     own, or the CA that signed it) has that sha256 over its DER encoding. No CA store, no host
//     name check: the pin is the identity (like an ssh host key), so a self-signed certificate on
//     an IP address works;
//   - `https://...` CA URLs: PEM certificates fetched over a pinned connection; other servers (an
//     image mirror) are then accepted when their chain verifies against them and the host name
//     matches;
//   - plain http is refused: a rogue DHCP/PXE server on the same network must not be able to feed
//     an action or an image, nor read the bearer token.
// Every undici Agent of booty takes trustedConnect() as its `connect` option; the trust is looked
// up at each connection, so the order in which modules create their Agents does not matter.

import { createHash, X509Certificate } from 'node:crypto';
import type { Socket } from 'node:net';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import type { buildConnector as BuildConnector } from 'undici';
import { Agent, buildConnector, request, type Dispatcher } from './undici.ts';

export interface ServerTrust {
  /** sha256 of certificate DERs, lowercase hex */
  pins: string[];
  /** PEM certificates (CAs) fetched over a pinned connection */
  ca?: string;
}

/** A server was refused by the trust settings; never worth retrying against the same server. */
export class TrustError extends Error {
  readonly code = 'BOOTY_TLS_UNTRUSTED';
  constructor(message: string) { super(message); this.name = 'TrustError'; }
}

export function isTrustError(e: unknown): boolean {
  for (let c: unknown = e, depth = 0; c !== undefined && c !== null && depth < 5; c = (c as { cause?: unknown }).cause, depth++) {
    if (c instanceof TrustError || (c as { code?: unknown }).code === 'BOOTY_TLS_UNTRUSTED') return true;
  }
  return false;
}

/** The TrustError inside `e` (undici may wrap it), for its message. */
export function trustErrorOf(e: unknown): TrustError | undefined {
  for (let c: unknown = e, depth = 0; c !== undefined && c !== null && depth < 5; c = (c as { cause?: unknown }).cause, depth++) {
    if (c instanceof TrustError) return c;
  }
  return undefined;
}

export function certSha256(der: Buffer): string {
  return createHash('sha256').update(der).digest('hex');
}

/** sha256 of the first certificate in a PEM text (what to put into booty.ca=sha256:...). */
export function pemSha256(pem: string | Buffer): string {
  return certSha256(new X509Certificate(pem).raw);
}

// the words of booty.ca= / --ca: their own module, so the agent reads its command line without
// loading undici (trust-spec.ts)
import { parseTrustSpec } from './trust-spec.ts';
export { parseTrustSpec, type TrustSpec } from './trust-spec.ts';

let current: ServerTrust | undefined;
let generation = 0;

/** Set (or clear, with undefined) the trust for every connection booty makes from now on. */
export function setServerTrust(t: ServerTrust | undefined): void {
  current = t === undefined || (t.pins.length === 0 && t.ca === undefined) ? undefined : { pins: [...t.pins], ca: t.ca };
  generation++;
}

const pools = new Map<string, { generation: number; dispatcher: Dispatcher }>();

/**
 * A shared dispatcher per `key`, made again after the trust changed: connections kept alive from
 * before were accepted under the old trust and must not be reused under the new one.
 */
export function pooledDispatcher(key: string, make: () => Dispatcher): Dispatcher {
  const p = pools.get(key);
  if (p !== undefined && p.generation === generation) return p.dispatcher;
  if (p !== undefined) void p.dispatcher.close().catch(() => {});
  const dispatcher = make();
  pools.set(key, { generation, dispatcher });
  return dispatcher;
}

export function serverTrust(): ServerTrust | undefined { return current; }

function chainOf(socket: TLSSocket): DetailedPeerCertificate[] {
  const out: DetailedPeerCertificate[] = [];
  let c: DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
  while (c !== undefined && c.raw !== undefined && !out.includes(c) && out.length < 10) {
    out.push(c);
    c = c.issuerCertificate === c ? undefined : c.issuerCertificate;
  }
  return out;
}

/** Why the connected server is not trusted, or undefined when it is. */
function refusal(socket: TLSSocket, where: string, t: ServerTrust): string | undefined {
  const chain = chainOf(socket);
  const fps = chain.map((c) => certSha256(c.raw));
  if (fps.some((fp) => t.pins.includes(fp))) return undefined;
  if (t.ca !== undefined && socket.authorized) return undefined;
  const subject = chain[0]?.subject?.CN;
  const expected = t.pins.length > 0 ? `sha256:${t.pins.map((p) => `${p.slice(0, 16)}…`).join(' or sha256:')}` : '';
  const caPart = t.ca !== undefined ? `${expected === '' ? '' : ' or '}a certificate signed by the fetched CA${socket.authorizationError ? ` (${String(socket.authorizationError)})` : ''}` : '';
  return `refusing ${where}: its certificate${subject ? ` (CN=${subject})` : ''} has sha256:${fps[0] ?? 'none'}, which booty.ca does not allow (expected ${expected}${caPart}); a rogue or reconfigured server?`;
}

/**
 * undici `connect` option: the plain connector while no trust is set, else one that accepts only
 * https servers passing the pins or the fetched CA (and says which certificate it saw).
 */
export function trustedConnect(base: { timeout?: number } = {}): BuildConnector.connector {
  const plain = buildConnector({ timeout: base.timeout });
  let strict: BuildConnector.connector | undefined;
  let strictFor: ServerTrust | undefined;
  return (opts, cb) => {
    const t = current;
    if (t === undefined) { plain(opts, cb); return; }
    const where = `${opts.hostname}${opts.port ? `:${opts.port}` : ''}`;
    if (opts.protocol !== 'https:') {
      cb(new TrustError(`refusing plain http to ${where}: booty.ca is set, so only https servers with a pinned or CA-signed certificate are used`), null);
      return;
    }
    if (strictFor !== t || strict === undefined) {
      // verification is done here (pins) or by Node against the fetched CA only; no session
      // cache, so every connection shows its certificate
      strict = buildConnector({ timeout: base.timeout, rejectUnauthorized: false, ca: t.ca, maxCachedSessions: 0 });
      strictFor = t;
    }
    strict(opts, (...args) => {
      const [err, socket] = args;
      if (err !== null) { cb(err, null); return; }
      const why = refusal(socket as TLSSocket, where, t);
      if (why === undefined) { cb(null, socket as Socket); return; }
      socket.destroy();
      cb(new TrustError(why), null);
    });
  };
}

/**
 * Fetch PEM certificates from `urls` over pinned connections and add them to the trust as CAs.
 * Returns how many certificates were added; throws naming the URL when one cannot be used.
 */
export async function loadTrustedCa(urls: string[], opts: { timeoutMs?: number } = {}): Promise<number> {
  if (urls.length === 0) return 0;
  const t = current;
  if (t === undefined || t.pins.length === 0) throw new TrustError('a CA URL needs a sha256: pin to be fetched over');
  const timeout = opts.timeoutMs ?? 15_000;
  // only the pins while fetching: a CA must not vouch for the server it came from
  setServerTrust({ pins: t.pins });
  const dispatcher = new Agent({ connect: trustedConnect({ timeout }) });
  const pems: string[] = [];
  try {
    for (const url of urls) {
      const res = await request(url, { dispatcher, headersTimeout: timeout, bodyTimeout: timeout, headers: { 'user-agent': 'booty' } });
      const text = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`CA certificates at ${url}: the server answered ${res.statusCode}`);
      const found = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
      if (found.length === 0 || text.length > 1 << 20) throw new Error(`CA certificates at ${url}: no PEM certificate in the answer`);
      for (const pem of found) {
        try { new X509Certificate(pem); } catch (e) { throw new Error(`CA certificates at ${url}: unreadable certificate (${(e as Error).message})`); }
        pems.push(pem);
      }
    }
  } finally {
    await dispatcher.close().catch(() => {});
    setServerTrust(t);
  }
  setServerTrust({ pins: t.pins, ca: [t.ca, ...pems].filter((p) => p !== undefined).join('\n') });
  return pems.length;
}

/**
 * `--ca` of booty deploy/capture: set the trust from the values (pins, then CA URLs fetched over
 * them). Throws an Error naming the bad value; does nothing without values.
 */
export async function applyTrustOption(values: string[] | undefined): Promise<ServerTrust | undefined> {
  if (values === undefined || values.length === 0) return undefined;
  const spec = parseTrustSpec(values);
  if (spec.problems.length > 0) throw new Error(spec.problems[0].replace(/^booty\.ca/, '--ca').replace(/booty\.ca=/g, '--ca '));
  setServerTrust({ pins: spec.pins });
  await loadTrustedCa(spec.caUrls);
  return serverTrust();
}
