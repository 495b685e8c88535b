// Disk images as OCI artifacts in a real registry (Debian's docker-registry, on loopback): deploy
// `oci+http://127.0.0.1:PORT/os/debian:12` resolves the manifest (an index picks linux/amd64),
// picks the layer, streams the blob and checks it against the layer's digest; anonymous, with
// Basic credentials (htpasswd) and with a Bearer token from a token service (the registry's own
// JWT validation, x5c-signed by a test CA made with openssl).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createSign, createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { runBooty } from '../helpers/booty-cli.ts';
import { seededRandom } from '../helpers/seeded-random.ts';
import { pushArtifact, pushIndex, startRegistry, type Registry } from '../helpers/oci-registry.ts';

const skip = process.getuid?.() !== 0 ? 'needs root (docker-registry and htpasswd installed by scripts/host-deps.sh)' : false;
const MiB = 1 << 20;
const DISK_TYPE = 'application/vnd.booty.disk.image.v1';

let dir: string;
let open: Registry;
let basic: Registry;
let tokened: Registry;
let tokenServer: http.Server;
let tokenRequests = 0;
let amd64: Buffer;
let arm64: Buffer;

function image(seed: number): Buffer {
  const rand = seededRandom(seed);
  const b = Buffer.alloc(4 * MiB);
  for (let i = 0; i < MiB; i++) b[i] = Math.floor(rand() * 256);
  b.write(`booty oci test image ${seed}\n`.repeat(40_000), 2 * MiB, 'latin1');
  b[510] = 0x55; b[511] = 0xaa;
  return b;
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

before(async () => {
  if (skip) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-oci-'));
  amd64 = image(1);
  arm64 = image(2);
  open = await startRegistry({ dir: path.join(dir, 'open') });
  const amd = await pushArtifact(open, 'os/debian', 'amd64-only', [{ data: zlib.gzipSync(amd64), mediaType: `${DISK_TYPE}+gzip`, title: 'debian.img.gz' }]);
  const arm = await pushArtifact(open, 'os/debian', 'arm64-only', [{ data: zlib.zstdCompressSync(arm64), mediaType: `${DISK_TYPE}+zstd`, title: 'debian.img.zst' }], { os: 'linux', architecture: 'arm64' });
  await pushIndex(open, 'os/debian', '12', [{ ...arm, os: 'linux', architecture: 'arm64' }, { ...amd, os: 'linux', architecture: 'amd64' }]);
  await pushArtifact(open, 'os/multi', 'v1', [
    { data: Buffer.from('# how this image was built\n'), mediaType: 'text/markdown', title: 'README.md' },
    { data: zlib.zstdCompressSync(amd64), mediaType: `${DISK_TYPE}+zstd`, title: 'disk.img.zst' },
  ]);
  await pushArtifact(open, 'os/two', 'v1', [
    { data: zlib.gzipSync(amd64), mediaType: `${DISK_TYPE}+gzip`, title: 'a.img.gz' },
    { data: zlib.gzipSync(arm64), mediaType: `${DISK_TYPE}+gzip`, title: 'b.img.gz' },
  ]);

  basic = await startRegistry({ dir: path.join(dir, 'basic'), basic: { username: 'booty', password: 's3:cret' } });
  await pushArtifact(basic, 'os/debian', '12', [{ data: zlib.gzipSync(amd64), mediaType: `${DISK_TYPE}+gzip` }]);

  // token auth: a CA the registry trusts signs the service's JWTs (x5c), issued only with Basic credentials
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(dir, 'token.key'), '-out', path.join(dir, 'token.pem'),
    '-days', '2', '-subj', '/CN=booty test token issuer'], { stdio: 'ignore' });
  const key = fs.readFileSync(path.join(dir, 'token.key'));
  const certDer = Buffer.from(fs.readFileSync(path.join(dir, 'token.pem'), 'utf8').replace(/-----[^-]+-----|\s/g, ''), 'base64');
  tokenServer = http.createServer((req, res) => {
    tokenRequests++;
    const u = new URL(req.url ?? '/', 'http://x');
    if (req.headers.authorization !== `Basic ${Buffer.from('booty:tok').toString('base64')}`) { res.writeHead(401).end(); return; }
    const scope = u.searchParams.get('scope') ?? '';
    const [, name, actions] = /^repository:([^:]+):(.+)$/.exec(scope) ?? [];
    const now = Math.floor(Date.now() / 1000);
    const header = b64url(JSON.stringify({ typ: 'JWT', alg: 'RS256', x5c: [certDer.toString('base64')] }));
    const claims = b64url(JSON.stringify({ iss: 'booty-test-issuer', sub: 'booty', aud: u.searchParams.get('service'), exp: now + 300, nbf: now - 10, iat: now,
      jti: createHash('sha256').update(String(Math.random())).digest('hex'), access: name === undefined ? [] : [{ type: 'repository', name, actions: actions.split(',') }] }));
    const sig = createSign('RSA-SHA256').update(`${header}.${claims}`).sign(key).toString('base64url');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: `${header}.${claims}.${sig}` }));
  });
  await new Promise<void>((ok) => tokenServer.listen(0, '127.0.0.1', ok));
  const realm = `http://127.0.0.1:${(tokenServer.address() as net.AddressInfo).port}/token`;
  tokened = await startRegistry({ dir: path.join(dir, 'token'), token: { realm, service: 'booty-registry', issuer: 'booty-test-issuer', rootCertBundle: path.join(dir, 'token.pem') } });
  // push with a token the service issues for push
  const t = await (await fetch(`${realm}?service=booty-registry&scope=repository:os/debian:pull,push`, { headers: { authorization: `Basic ${Buffer.from('booty:tok').toString('base64')}` } })).json() as { token: string };
  tokened.pushAuth = `Bearer ${t.token}`;
  await pushArtifact(tokened, 'os/debian', '12', [{ data: zlib.zstdCompressSync(arm64), mediaType: `${DISK_TYPE}+zstd` }]);
});

after(async () => {
  await open?.close();
  await basic?.close();
  await tokened?.close();
  tokenServer?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function disk(name: string): string {
  const p = path.join(dir, `${name}.disk`);
  fs.writeFileSync(p, Buffer.alloc(8 * MiB, 0xa5));
  return p;
}

async function deploy(url: string, name: string, extra: string[] = []) {
  const target = disk(name);
  const r = await runBooty(['deploy', '-q', '--image', url, '--disk', target, ...extra]);
  return { ...r, bytes: fs.readFileSync(target) };
}

test('a tag that names an index: the linux/amd64 image, verified against its layer digest', { skip }, async () => {
  const r = await deploy(`oci+http://${open.host}/os/debian:12`, 'index');
  assert.equal(r.status, 0, r.err);
  assert.ok(r.bytes.subarray(0, amd64.length).equals(amd64), 'the amd64 image, bit-exact');
  assert.match(r.err, /is http:\/\/127\.0\.0\.1:\d+\/v2\/os\/debian\/blobs\/sha256:[0-9a-f]{64} \(the only layer, application\/vnd\.booty\.disk\.image\.v1\+gzip/);
  assert.match(r.out, /OK: 4194304 bytes .*gzip/);
  assert.match(r.err, /\(verified\)/);
});

test('by manifest digest; a single-architecture tag; a wrong --sha256 is refused before writing', { skip }, async () => {
  const tags = await (await fetch(`http://${open.host}/v2/os/debian/manifests/arm64-only`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } }));
  const digest = tags.headers.get('docker-content-digest')!;
  const r = await deploy(`oci+http://${open.host}/os/debian@${digest}`, 'digest');
  assert.equal(r.status, 0, r.err);
  assert.ok(r.bytes.subarray(0, arm64.length).equals(arm64));
  const wrong = await deploy(`oci+http://${open.host}/os/debian:amd64-only`, 'wrong-sha', ['--sha256', 'ab'.repeat(32)]);
  assert.equal(wrong.status, 6, wrong.err);
  assert.match(wrong.err, /the registry's layer is sha256:[0-9a-f]{12}…, not the expected abababababab…; the disk was not written/);
  assert.ok(wrong.bytes.equals(Buffer.alloc(8 * MiB, 0xa5)));
});

test('several layers: the one titled like a disk image, #layer= to choose, and a clear error when unclear', { skip }, async () => {
  const r = await deploy(`oci+http://${open.host}/os/multi:v1`, 'multi');
  assert.equal(r.status, 0, r.err);
  assert.match(r.err, /the layer titled disk\.img\.zst/);
  assert.ok(r.bytes.subarray(0, amd64.length).equals(amd64));
  const unclear = await deploy(`oci+http://${open.host}/os/two:v1`, 'two');
  assert.equal(unclear.status, 4, unclear.err);
  assert.match(unclear.err, /has 2 layers and none is clearly the disk image \(a\.img\.gz, b\.img\.gz\).*#layer=/);
  const chosen = await deploy(`oci+http://${open.host}/os/two:v1#layer=b.img.gz`, 'two-b');
  assert.equal(chosen.status, 0, chosen.err);
  assert.ok(chosen.bytes.subarray(0, arm64.length).equals(arm64));
  const missing = await deploy(`oci+http://${open.host}/os/debian:13`, 'missing');
  assert.equal(missing.status, 4);
  assert.match(missing.err, /no manifest 13 in/);
});

test('Basic credentials: refused without, deployed with --registry-auth', { skip }, async () => {
  const without = await deploy(`oci+http://${basic.host}/os/debian:12`, 'basic-none');
  assert.equal(without.status, 4, without.err);
  assert.match(without.err, /needs credentials \(Basic\).*registryAuth/);
  const wrong = await deploy(`oci+http://${basic.host}/os/debian:12`, 'basic-wrong', ['--registry-auth', 'booty:nope']);
  assert.equal(wrong.status, 4, wrong.err);
  assert.match(wrong.err, /refused access to os\/debian \(401\)/);
  const ok = await deploy(`oci+http://${basic.host}/os/debian:12`, 'basic-ok', ['--registry-auth', 'booty:s3:cret']);
  assert.equal(ok.status, 0, ok.err);
  assert.ok(ok.bytes.subarray(0, amd64.length).equals(amd64));
});

test('Bearer token flow: the realm from WWW-Authenticate, credentials there, the token to the registry', { skip }, async () => {
  const before = tokenRequests;
  const r = await deploy(`oci+http://${tokened.host}/os/debian:12`, 'token', ['--registry-auth', 'booty:tok']);
  assert.equal(r.status, 0, r.err);
  assert.match(r.err, /authenticated to 127\.0\.0\.1:\d+ with a bearer token/);
  assert.ok(tokenRequests > before);
  assert.ok(r.bytes.subarray(0, arm64.length).equals(arm64));
  const refused = await deploy(`oci+http://${tokened.host}/os/debian:12`, 'token-none');
  assert.equal(refused.status, 4, refused.err);
  assert.match(refused.err, /the token service 127\.0\.0\.1:\d+ answered 401/);
});

test('a layer pushed from a file (streamed, as the bench pushes its images): the registry takes its digest and size, a second push sends nothing again, deploy is bit-exact', { skip }, async () => {
  const file = path.join(dir, 'from-file.img.zst');
  fs.writeFileSync(file, zlib.zstdCompressSync(amd64));
  const hex = createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  // hashed by the helper
  await pushArtifact(open, 'os/file', 'v1', [{ file, mediaType: `${DISK_TYPE}+zstd`, title: 'disk.img.zst' }]);
  // then with its sha256 given: the repository holds the blob, so the file is not read (a file of
  // the same length with other bytes goes through; sent, the registry would refuse its digest)
  const other = path.join(dir, 'other.img.zst');
  fs.writeFileSync(other, Buffer.alloc(fs.statSync(file).size, 0x11));
  await pushArtifact(open, 'os/file', 'v2', [{ file: other, sha256: hex, mediaType: `${DISK_TYPE}+zstd`, title: 'disk.img.zst' }]);
  const blob = await fetch(`http://${open.host}/v2/os/file/blobs/sha256:${hex}`);
  assert.equal(blob.status, 200);
  assert.ok(Buffer.from(await blob.arrayBuffer()).equals(fs.readFileSync(file)), 'the registry serves the file\'s bytes');
  const r = await deploy(`oci+http://${open.host}/os/file:v2`, 'from-file');
  assert.equal(r.status, 0, r.err);
  assert.ok(r.bytes.subarray(0, amd64.length).equals(amd64));
  // a file whose bytes are not its given sha256, sent: the registry refuses the upload
  await assert.rejects(pushArtifact(open, 'os/file', 'v3', [{ file: other, sha256: 'ab'.repeat(32), mediaType: `${DISK_TYPE}+zstd` }]), /blob upload: 400/);
});
