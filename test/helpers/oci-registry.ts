// A real OCI registry for tests: Debian's docker-registry (distribution 2.8) on 127.0.0.1 with its
// own storage, optionally behind htpasswd (Basic) or token (Bearer) auth, and a push that speaks
// the distribution API (blob upload, manifest PUT) the way `oras push` does.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { freePort } from './free-port.ts';

export interface Registry {
  /** host:port */
  host: string;
  /** Authorization header for pushing (undefined: anonymous) */
  pushAuth?: string;
  close(): Promise<void>;
}

export interface RegistryOptions {
  dir: string;
  /** htpasswd Basic auth with this user and password */
  basic?: { username: string; password: string };
  /** token auth: the registry's `auth: token` section (realm, service, issuer, rootcertbundle) */
  token?: { realm: string; service: string; issuer: string; rootCertBundle: string };
  /** run inside this network namespace, listening on `listen` (host:port), e.g. a QEMU lab's
   *  bridge address; the storage in `dir` may be one a loopback registry was pushed to */
  netns?: { name: string; listen: string };
}

export async function startRegistry(o: RegistryOptions): Promise<Registry> {
  fs.mkdirSync(o.dir, { recursive: true });
  const port = o.netns === undefined ? await freePort() : 0;
  let auth = '';
  if (o.basic !== undefined) {
    execFileSync('htpasswd', ['-Bbc', path.join(o.dir, 'htpasswd'), o.basic.username, o.basic.password], { stdio: 'ignore' });
    auth = `auth:\n  htpasswd:\n    realm: booty-test\n    path: ${path.join(o.dir, 'htpasswd')}\n`;
  } else if (o.token !== undefined) {
    auth = `auth:\n  token:\n    realm: ${o.token.realm}\n    service: ${o.token.service}\n    issuer: ${o.token.issuer}\n    rootcertbundle: ${o.token.rootCertBundle}\n`;
  }
  const config = path.join(o.dir, 'config.yml');
  fs.writeFileSync(config, `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${path.join(o.dir, 'data')}\n  delete:\n    enabled: true\nhttp:\n  addr: ${o.netns?.listen ?? `127.0.0.1:${port}`}\n${auth}`);
  const child: ChildProcess = o.netns === undefined
    ? spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] })
    : spawn('ip', ['netns', 'exec', o.netns.name, 'docker-registry', 'serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => { err += s; });
  const host = o.netns?.listen ?? `127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited: ${err}`);
    try {
      const status = o.netns === undefined
        ? (await fetch(`http://${host}/v2/`)).status
        : Number(execFileSync('ip', ['netns', 'exec', o.netns.name, 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', `http://${host}/v2/`], { encoding: 'utf8' }));
      if (status === 200 || status === 401) break;
    } catch { /* not yet */ }
    if (i > 100) throw new Error(`docker-registry did not start on ${host}: ${err}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    host,
    pushAuth: o.basic === undefined ? undefined : `Basic ${Buffer.from(`${o.basic.username}:${o.basic.password}`).toString('base64')}`,
    close: async () => {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
    },
  };
}

/** A layer from memory, or from a file streamed to the registry (a bench image of a few hundred
 *  MB is never held in memory); `sha256` (hex) when already known, else the file is hashed first. */
export type Layer = { mediaType: string; title?: string } & ({ data: Buffer } | { file: string; sha256?: string });

export const digestOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function fileDigest(file: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(fs.createReadStream(file), h);
  return `sha256:${h.digest('hex')}`;
}

/** The blob's digest and size, without reading a file whose sha256 is given. */
async function describe(l: Layer): Promise<{ digest: string; size: number }> {
  if ('data' in l) return { digest: digestOf(l.data), size: l.data.length };
  return { digest: l.sha256 === undefined ? await fileDigest(l.file) : `sha256:${l.sha256}`, size: fs.statSync(l.file).size };
}

/** A monolithic PUT of the file's bytes with their length, read as a stream. */
function putFile(url: URL, file: string, size: number, headers: Record<string, string>): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'PUT', headers: { ...headers, 'content-type': 'application/octet-stream', 'content-length': String(size) } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (s: string) => { text += s; }).on('end', () => resolve({ status: res.statusCode ?? 0, text })).on('error', reject);
    });
    req.on('error', reject);
    pipeline(fs.createReadStream(file), req).catch(reject);
  });
}

async function pushBlob(host: string, repo: string, l: Layer, auth: string | undefined): Promise<{ digest: string; size: number }> {
  const headers: Record<string, string> = auth === undefined ? {} : { authorization: auth };
  const d = await describe(l);
  // already in this repository (a cached registry pushed to before): not sent again, as `oras push` does
  const head = await fetch(`http://${host}/v2/${repo}/blobs/${d.digest}`, { method: 'HEAD', headers });
  if (head.status === 200 && Number(head.headers.get('content-length')) === d.size) return d;
  const start = await fetch(`http://${host}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers });
  if (start.status !== 202) throw new Error(`blob upload start: ${start.status} ${await start.text()}`);
  const location = new URL(start.headers.get('location')!, `http://${host}`);
  location.searchParams.set('digest', d.digest);
  const put = 'data' in l
    ? await fetch(location, { method: 'PUT', headers: { ...headers, 'content-type': 'application/octet-stream' }, body: l.data }).then(async (r) => ({ status: r.status, text: await r.text() }))
    : await putFile(location, l.file, d.size, headers);
  if (put.status !== 201) throw new Error(`blob upload: ${put.status} ${put.text}`);
  return d;
}

/** Pushes an OCI image manifest with these layers under `tag`; returns the manifest's digest. */
export async function pushArtifact(r: Registry, repo: string, tag: string, layers: Layer[], platform?: { os: string; architecture: string }): Promise<{ digest: string; size: number }> {
  const config = Buffer.from(JSON.stringify(platform ?? { os: 'linux', architecture: 'amd64' }));
  await pushBlob(r.host, repo, { data: config, mediaType: 'application/vnd.oci.image.config.v1+json' }, r.pushAuth);
  const descriptors = [];
  for (const l of layers) {
    const { digest, size } = await pushBlob(r.host, repo, l, r.pushAuth);
    descriptors.push({ mediaType: l.mediaType, digest, size, ...(l.title === undefined ? {} : { annotations: { 'org.opencontainers.image.title': l.title } }) });
  }
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(config), size: config.length },
    layers: descriptors,
  }));
  await putManifest(r, repo, tag, manifest, 'application/vnd.oci.image.manifest.v1+json');
  return { digest: digestOf(manifest), size: manifest.length };
}

/** Pushes an OCI index of already pushed manifests under `tag`. */
export async function pushIndex(r: Registry, repo: string, tag: string, entries: Array<{ digest: string; size: number; os: string; architecture: string }>): Promise<void> {
  const index = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: entries.map((e) => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: e.digest, size: e.size, platform: { os: e.os, architecture: e.architecture } })),
  }));
  await putManifest(r, repo, tag, index, 'application/vnd.oci.image.index.v1+json');
}

async function putManifest(r: Registry, repo: string, tag: string, body: Buffer, mediaType: string): Promise<void> {
  const put = await fetch(`http://${r.host}/v2/${repo}/manifests/${tag}`, {
    method: 'PUT', headers: { 'content-type': mediaType, ...(r.pushAuth === undefined ? {} : { authorization: r.pushAuth }) }, body,
  });
  if (put.status !== 201) throw new Error(`manifest put: ${put.status} ${await put.text()}`);
}
