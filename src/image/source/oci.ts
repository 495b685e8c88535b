// Disk images kept as OCI artifacts in a registry: `oci://registry:5000/os/debian:12` (or
// `@sha256:<digest>`) resolves through the OCI distribution API to one blob, which deploy then
// streams like any HTTP image (Range resume, redirects to object storage followed). The layer's
// digest *is* the image's sha256: deploy verifies the bytes against it.
//
//   manifest   GET /v2/<repository>/manifests/<tag|digest>, OCI and Docker media types; an index
//              (manifest list) picks linux/amd64, or its only entry
//   layer      the only layer; else the one named by `#layer=<title or digest>` in the URL; else
//              the one layer whose org.opencontainers.image.title looks like a disk image
//   auth       anonymous; a 401 with `WWW-Authenticate: Bearer realm=...,service=...,scope=...`
//              gets a token from the realm (with basic credentials when given); a 401 with
//              `Basic` takes the credentials directly
//
// `oci://` talks https; `oci+http://` plain http (a registry on a lab network or loopback).
import { createHash } from 'node:crypto';
import { Agent, interceptors, request, type Dispatcher } from '../../net/undici.ts';
import { pooledDispatcher, trustedConnect } from '../../net/tls-pin.ts';
import { BootyError } from '../../util/errors.ts';
import { silentLogger, type Logger } from '../../util/log.ts';
import { SHA256_DIGEST, type OciReference } from '../../config/oci-reference.ts';

export { isOciUrl, parseOciUrl, type OciReference } from '../../config/oci-reference.ts';

export interface OciCredentials { username: string; password: string }

export interface ResolvedOciImage {
  /** the blob's URL, to GET (with `headers`) */
  url: string;
  headers: Record<string, string>;
  /** hex sha256 of the blob (its digest) */
  sha256: string;
  size: number;
  mediaType: string;
  /** how the layer was chosen, for the log */
  chosen: string;
}

const MANIFEST_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
];
const INDEX_TYPES = new Set([MANIFEST_TYPES[0], MANIFEST_TYPES[2]]);
/** Manifests are small; a larger answer is not a manifest. */
const MAX_MANIFEST_BYTES = 4 << 20;
const DISK_IMAGE_TITLE = /\.(img|raw|bin|disk|iso|qcow2|vmdk|vhdx?)(\.(gz|zst|xz|bz2))?$/i;

function dispatcher(): Dispatcher {
  return pooledDispatcher('oci', () => new Agent({ connect: trustedConnect({ timeout: 30_000 }) }).compose(interceptors.redirect({ maxRedirections: 5 })));
}

interface Answer { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }

async function get(url: string, headers: Record<string, string>, signal: AbortSignal | undefined): Promise<Answer> {
  let res;
  try {
    res = await request(url, { method: 'GET', headers: { 'user-agent': 'booty', ...headers }, dispatcher: dispatcher(), signal, headersTimeout: 60_000, bodyTimeout: 60_000 });
  } catch (e) {
    throw ociError(`cannot reach ${new URL(url).host}: ${(e as Error).message}`, 'check the registry address and the network', e);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of res.body as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_MANIFEST_BYTES) {
      res.body.destroy();
      throw ociError(`${url} answered more than ${MAX_MANIFEST_BYTES} bytes: not a manifest`, 'check the image reference');
    }
    chunks.push(c);
  }
  return { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) };
}

function ociError(message: string, hint: string, cause?: unknown): BootyError {
  return new BootyError({ stage: 'fetch', code: 'OCI_RESOLVE_FAILED', message: `oci: ${message}`, diskState: 'untouched', hint, cause });
}

function headerText(h: Answer['headers'], name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

/** `Bearer realm="https://auth/token",service="registry",scope="repository:os/debian:pull"`. */
export function parseChallenge(text: string): { scheme: string; params: Record<string, string> } | undefined {
  const m = /^\s*(\w+)\s*(.*)$/.exec(text);
  if (m === null) return undefined;
  const params: Record<string, string> = {};
  for (const p of m[2].matchAll(/(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) params[p[1].toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3];
  return { scheme: m[1].toLowerCase(), params };
}

/** Talks to one repository of one registry, authenticating once when challenged. */
class RegistryClient {
  private auth: string | undefined;
  private readonly ref: OciReference;
  private readonly creds: OciCredentials | undefined;
  private readonly signal: AbortSignal | undefined;
  private readonly log: Logger;
  constructor(ref: OciReference, creds: OciCredentials | undefined, signal: AbortSignal | undefined, log: Logger) {
    this.ref = ref;
    this.creds = creds;
    this.signal = signal;
    this.log = log;
  }

  get base(): string { return `${this.ref.scheme}://${this.ref.registry}/v2/${this.ref.repository}`; }
  get authHeaders(): Record<string, string> { return this.auth === undefined ? {} : { authorization: this.auth }; }

  async get(url: string, headers: Record<string, string>): Promise<Answer> {
    let a = await get(url, { ...headers, ...this.authHeaders }, this.signal);
    if (a.status === 401 && this.auth === undefined) {
      this.auth = await this.authenticate(headerText(a.headers, 'www-authenticate'));
      a = await get(url, { ...headers, ...this.authHeaders }, this.signal);
    }
    if (a.status === 401 || a.status === 403) {
      throw ociError(`${this.ref.registry} refused access to ${this.ref.repository} (${a.status}${this.creds === undefined ? ', no credentials given' : ''})`,
        this.creds === undefined ? 'give the registry\'s credentials (action "registryAuth", or --registry-auth USER:PASSWORD)' : 'check the credentials and the repository\'s permissions');
    }
    return a;
  }

  private async authenticate(challenge: string | undefined): Promise<string> {
    const c = challenge === undefined ? undefined : parseChallenge(challenge);
    const basic = this.creds === undefined ? undefined : `Basic ${Buffer.from(`${this.creds.username}:${this.creds.password}`).toString('base64')}`;
    if (c?.scheme === 'basic') {
      if (basic === undefined) throw ociError(`${this.ref.registry} needs credentials (Basic)`, 'give the registry\'s credentials (action "registryAuth", or --registry-auth USER:PASSWORD)');
      return basic;
    }
    if (c?.scheme !== 'bearer' || c.params.realm === undefined) {
      throw ociError(`${this.ref.registry} answered 401 without a usable challenge (${JSON.stringify(challenge ?? '')})`, 'check that the address is an OCI registry');
    }
    const realm = new URL(c.params.realm);
    if (c.params.service !== undefined) realm.searchParams.set('service', c.params.service);
    realm.searchParams.set('scope', c.params.scope ?? `repository:${this.ref.repository}:pull`);
    const a = await get(realm.href, basic === undefined ? {} : { authorization: basic }, this.signal);
    if (a.status !== 200) throw ociError(`the token service ${realm.host} answered ${a.status}`, basic === undefined ? 'the repository may need credentials (action "registryAuth")' : 'check the credentials');
    let token: unknown;
    try {
      const j = JSON.parse(a.body.toString('utf8')) as { token?: unknown; access_token?: unknown };
      token = j.token ?? j.access_token;
    } catch { /* below */ }
    if (typeof token !== 'string' || token === '') throw ociError(`the token service ${realm.host} sent no token`, 'check the registry\'s token service');
    this.log.info(`oci: authenticated to ${this.ref.registry} with a bearer token from ${realm.host}`);
    return `Bearer ${token}`;
  }
}

interface Descriptor { mediaType?: string; digest?: string; size?: number; platform?: { os?: string; architecture?: string }; annotations?: Record<string, string> }
interface Manifest { mediaType?: string; manifests?: Descriptor[]; layers?: Descriptor[] }

/** Resolves an `oci://` reference to the blob that holds the disk image. */
export async function resolveOciImage(ref: OciReference, opts: { credentials?: OciCredentials; signal?: AbortSignal; log?: Logger } = {}): Promise<ResolvedOciImage> {
  const log = opts.log ?? silentLogger;
  const client = new RegistryClient(ref, opts.credentials, opts.signal, log);
  let manifest = await fetchManifest(client, ref.reference);
  if (INDEX_TYPES.has(manifest.mediaType ?? '') || manifest.manifests !== undefined) {
    const entries = manifest.manifests ?? [];
    const pick = entries.length === 1 ? entries[0] : entries.find((d) => d.platform?.os === 'linux' && d.platform?.architecture === 'amd64');
    if (pick?.digest === undefined) {
      const platforms = entries.map((d) => `${d.platform?.os ?? '?'}/${d.platform?.architecture ?? '?'}`).join(', ');
      throw ociError(`${ref.repository}:${ref.reference} is an index without a linux/amd64 entry (${platforms || 'empty'})`, 'push the image for linux/amd64, or name the manifest by digest');
    }
    manifest = await fetchManifest(client, pick.digest);
  }
  const layers = manifest.layers ?? [];
  const { layer, chosen } = chooseLayer(layers, ref);
  const m = SHA256_DIGEST.exec(layer.digest ?? '');
  if (m === null) throw ociError(`the layer's digest ${JSON.stringify(layer.digest)} is not a sha256 digest`, 'push the image with sha256 digests');
  if (typeof layer.size !== 'number' || !Number.isSafeInteger(layer.size) || layer.size < 0) throw ociError('the layer has no valid size', 'check the manifest');
  return { url: `${client.base}/blobs/${layer.digest}`, headers: client.authHeaders, sha256: m[1], size: layer.size, mediaType: layer.mediaType ?? 'application/octet-stream', chosen };
}

async function fetchManifest(client: RegistryClient, reference: string): Promise<Manifest> {
  const url = `${client.base}/manifests/${reference}`;
  const a = await client.get(url, { accept: MANIFEST_TYPES.join(', ') });
  if (a.status === 404) throw ociError(`no manifest ${reference} in ${url.replace(/\/manifests\/.*$/, '')}`, 'check the repository and tag (a registry lists tags at /v2/<repository>/tags/list)');
  if (a.status !== 200) throw ociError(`${url} answered ${a.status}`, 'check the registry');
  const digest = SHA256_DIGEST.exec(reference);
  if (digest !== null) {
    const got = createHash('sha256').update(a.body).digest('hex');
    if (got !== digest[1]) throw ociError(`the manifest ${reference} has the digest sha256:${got}: the registry sent a different manifest`, 'check the registry');
  }
  try {
    const j = JSON.parse(a.body.toString('utf8')) as Manifest;
    if (typeof j !== 'object' || j === null) throw new Error('not an object');
    return { ...j, mediaType: j.mediaType ?? headerText(a.headers, 'content-type')?.split(';')[0].trim() };
  } catch (e) {
    throw ociError(`${url} is not a JSON manifest (${(e as Error).message})`, 'check the image reference', e);
  }
}

function chooseLayer(layers: Descriptor[], ref: OciReference): { layer: Descriptor; chosen: string } {
  const title = (d: Descriptor) => d.annotations?.['org.opencontainers.image.title'];
  const names = layers.map((d) => title(d) ?? d.digest ?? '?').join(', ');
  if (ref.layer !== undefined) {
    const l = layers.find((d) => title(d) === ref.layer || d.digest === ref.layer);
    if (l === undefined) throw ociError(`no layer "${ref.layer}" in ${ref.repository}:${ref.reference} (layers: ${names || 'none'})`, 'name a layer by its title or digest with #layer=');
    return { layer: l, chosen: `the layer named by #layer=${ref.layer}` };
  }
  if (layers.length === 1) return { layer: layers[0], chosen: 'the only layer' };
  const disks = layers.filter((d) => DISK_IMAGE_TITLE.test(title(d) ?? ''));
  if (disks.length === 1) return { layer: disks[0], chosen: `the layer titled ${title(disks[0])}` };
  throw ociError(`${ref.repository}:${ref.reference} has ${layers.length} layers and none is clearly the disk image (${names || 'none'})`,
    'add #layer=<title or digest> to the oci:// URL');
}
