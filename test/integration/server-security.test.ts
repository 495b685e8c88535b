// Who may talk to booty server, and whom booty trusts. Real `booty server` processes on loopback
// with certificates made by `openssl` here:
//   - the bearer token: every guarded route (uploads, actions, events, machines, reload, deletes)
//     answers 401 without it or with a wrong one, and works with it; downloads stay open;
//   - TLS with a self-signed certificate: the agent's action fetch, `booty deploy` and
//     `booty capture` work with the right pin (booty.ca / --ca sha256:...), and refuse a wrong
//     pin, an unpinned self-signed server and plain http with a message naming the certificate;
//   - a CA fetched over a pinned connection (booty.ca=https://.../tls/cert.pem) makes a mirror
//     with a certificate from that CA trusted, and still refuses a stranger.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { Agent, request } from 'undici';
import { startBootyServer, type BootyServerProcess } from '../helpers/booty-server-process.ts';
import { fetchAction } from '../../src/agent/fetch-action.ts';
import { parseBootParams } from '../../src/agent/boot-params.ts';
import { openImage } from '../../src/image/source/fetch.ts';
import { applyTrustOption, pemSha256, setServerTrust, trustedConnect } from '../../src/net/tls-pin.ts';
import { isBootyError } from '../../src/util/errors.ts';
import { createLogger } from '../../src/util/log.ts';

const root = path.resolve(import.meta.dirname, '..', '..');
const TOKEN = 'test-token-' + randomBytes(8).toString('hex');
const MAC = '52-54-00-aa-bb-01';

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A P-256 key and certificate for 127.0.0.1: self-signed, or signed by ca.crt/ca.key. */
function makeCert(dir: string, name: string, signer?: string): { cert: string; key: string } {
  const key = path.join(dir, `${name}.key`);
  const cert = path.join(dir, `${name}.crt`);
  const ext = path.join(dir, `${name}.ext`);
  fs.writeFileSync(ext, 'subjectAltName=IP:127.0.0.1\n');
  if (signer === undefined) {
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '2',
      '-subj', `/CN=${name}`, '-addext', 'subjectAltName=IP:127.0.0.1'], dir);
  } else {
    const csr = path.join(dir, `${name}.csr`);
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${name}`], dir);
    openssl(['x509', '-req', '-in', csr, '-CA', `${signer}.crt`, '-CAkey', `${signer}.key`, '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', ext], dir);
  }
  return { cert, key };
}

function booty(args: string[]) {
  const r = spawnSync(path.join(root, 'bin/booty'), args, { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

const quiet = () => {
  const lines: string[] = [];
  return { lines, log: createLogger({ level: 'debug', sinks: [(l, m) => lines.push(`${l}: ${m}`)] }) };
};

let dir: string;
let plain: BootyServerProcess;      // http, --token
let selfSigned: BootyServerProcess; // https, self-signed, --token
let caServer: BootyServerProcess;   // https, leaf signed by the CA, chain served at /tls/cert.pem
let mirror: BootyServerProcess;     // https, another leaf from the same CA
let pinSelf: string;
let pinCaLeaf: string;
const raw = randomBytes(2 * 1024 * 1024 + 123);

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-security-'));
  const self = makeCert(dir, 'booty-self');
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2',
    '-subj', '/CN=booty test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  const leaf = makeCert(dir, 'booty-leaf', 'ca');
  const other = makeCert(dir, 'booty-mirror', 'ca');
  // the served chain: leaf, then the CA (what an agent fetches as booty.ca=https://.../tls/cert.pem)
  const chain = path.join(dir, 'leaf-chain.pem');
  fs.writeFileSync(chain, fs.readFileSync(leaf.cert, 'utf8') + fs.readFileSync(path.join(dir, 'ca.crt'), 'utf8'));
  pinSelf = pemSha256(fs.readFileSync(self.cert));
  pinCaLeaf = pemSha256(fs.readFileSync(leaf.cert));
  [plain, selfSigned, caServer, mirror] = await Promise.all([
    startBootyServer({ args: ['--token', TOKEN] }),
    startBootyServer({ args: ['--token', TOKEN, '--tls-cert', self.cert, '--tls-key', self.key] }),
    startBootyServer({ args: ['--tls-cert', chain, '--tls-key', leaf.key] }),
    startBootyServer({ args: ['--tls-cert', other.cert, '--tls-key', other.key] }),
  ]);
  for (const s of [plain, selfSigned, mirror]) {
    fs.writeFileSync(path.join(s.dataDir, 'images', 'disk.img.gz'), zlib.gzipSync(raw, { level: 1 }));
    fs.mkdirSync(path.join(s.dataDir, 'machines'), { recursive: true });
    fs.writeFileSync(path.join(s.dataDir, 'machines', `${MAC}.json`), JSON.stringify({ action: 'deploy', image: `${s.url}/images/disk.img.gz`, disk: '/dev/vda' }));
    await request(`${s.url}/api/reload`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, dispatcher: new Agent({ connect: { rejectUnauthorized: false } }) }).then((r) => r.body.text());
  }
});

after(async () => {
  setServerTrust(undefined);
  await Promise.all([plain, selfSigned, caServer, mirror].map((s) => s?.close()));
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('bearer token', () => {
  const guarded: Array<{ method: string; path: string; body?: string; headers?: Record<string, string> }> = [
    { method: 'POST', path: '/api/uploads', body: '{"name":"x.img"}', headers: { 'content-type': 'application/json' } },
    { method: 'GET', path: '/api/uploads/0123456789abcdef01234567' },
    { method: 'PUT', path: '/api/uploads/0123456789abcdef01234567/parts/0', body: 'data', headers: { 'x-booty-sha256': '0'.repeat(64) } },
    { method: 'POST', path: '/api/uploads/0123456789abcdef01234567/commit', body: '{}' },
    { method: 'PUT', path: '/images/x.img', body: 'data' },
    { method: 'PUT', path: '/images/x.img?upload=abc', body: 'data' },
    { method: 'POST', path: '/images/x.img?commit=abc', body: '{}' },
    { method: 'POST', path: '/image', body: '--b--\r\n', headers: { 'content-type': 'multipart/form-data; boundary=b' } },
    { method: 'DELETE', path: '/api/images/disk.img.gz' },
    { method: 'PUT', path: `/api/machines/${MAC}/action`, body: '{"action":"none"}' },
    { method: 'DELETE', path: `/api/machines/${MAC}/action` },
    { method: 'POST', path: `/api/machines/${MAC}/events`, body: '[]' },
    { method: 'POST', path: '/api/machines', body: '{"mac":"52:54:00:aa:bb:99"}' },
    { method: 'PUT', path: `/api/machines/${MAC}`, body: '{}' },
    { method: 'DELETE', path: `/api/machines/${MAC}` },
    { method: 'POST', path: '/api/reload' },
  ];

  it('every guarded route answers 401 without the token and with a wrong one, and nothing changes', async () => {
    for (const auth of [undefined, 'Bearer wrong', `Bearer ${TOKEN}x`, TOKEN]) {
      for (const g of guarded) {
        const r = await request(`${plain.url}${g.path}`, { method: g.method as 'GET', body: g.body, headers: { ...g.headers, ...(auth === undefined ? {} : { authorization: auth }) } });
        const text = await r.body.text();
        assert.equal(r.statusCode, 401, `${g.method} ${g.path} with ${auth ?? 'no token'}: ${r.statusCode} ${text}`);
        assert.match(text, /Authorization: Bearer/);
      }
    }
    assert.ok(fs.existsSync(path.join(plain.dataDir, 'images', 'disk.img.gz')), 'the image is still there');
    assert.ok(!fs.existsSync(path.join(plain.dataDir, 'images', 'x.img')));
  });

  it('reads stay open; with the token the guarded routes work', async () => {
    const img = await request(`${plain.url}/images/disk.img.gz`);
    assert.equal(img.statusCode, 200);
    await img.body.arrayBuffer();
    const act = await request(`${plain.url}/${MAC}`);
    assert.equal(act.statusCode, 200, await act.body.text());
    const auth = { authorization: `Bearer ${TOKEN}` };
    const ev = await request(`${plain.url}/api/machines/${MAC}/events`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ type: 'phase', time: new Date().toISOString(), phase: 'booting' }) });
    assert.equal(ev.statusCode, 200, await ev.body.text());
    const up = await request(`${plain.url}/images/tok.img`, { method: 'PUT', headers: auth, body: 'stored with the token' });
    assert.equal(up.statusCode, 201, await up.body.text());
  });

  it('booty capture: without --token a clear 401; with --token stored (resumable protocol)', () => {
    const disk = path.join(dir, 'cap-disk.img');
    fs.writeFileSync(disk, randomBytes(700_000));
    const url = `${plain.url}/images/cap-token.img`;
    const no = booty(['capture', '--disk', disk, '--upload', url, '--format', 'raw', '-q']);
    assert.equal(no.status, 10, no.err);
    assert.match(no.err, /401.*Authorization: Bearer/);
    assert.ok(!fs.existsSync(path.join(plain.dataDir, 'images', 'cap-token.img')));
    const yes = booty(['capture', '--disk', disk, '--upload', url, '--format', 'raw', '--token', TOKEN, '-q']);
    assert.equal(yes.status, 0, yes.err);
    assert.ok(fs.readFileSync(path.join(plain.dataDir, 'images', 'cap-token.img')).equals(fs.readFileSync(disk)));
    const meta = JSON.parse(fs.readFileSync(path.join(plain.dataDir, 'images', '.meta', 'cap-token.img.json'), 'utf8')) as { via: string };
    assert.equal(meta.via, 'parts');
  });
});

/** The action MAC's agent fetches with these boot parameters (their pins trusted, as the agent does). */
async function actionAsAgent(params: ReturnType<typeof parseBootParams>): Promise<string> {
  setServerTrust({ pins: params.trust.pins });
  try {
    const { log } = quiet();
    return (await fetchAction({ server: params.server!, mac: MAC, token: params.token, budgetMs: 5000, log })).action.action;
  } finally { setServerTrust(undefined); }
}

describe('TLS and pinning', () => {
  const server = () => ({ base: selfSigned.url, style: 'myurl' as const });

  it('booty server prints the pin agents need', () => {
    assert.ok(selfSigned.url.startsWith('https://'));
    assert.match(selfSigned.stdout(), new RegExp(`booty\\.ca=sha256:${pinSelf}`));
  });

  it('agent: booty.ca=sha256:<right> fetches the action over https; the kernel command line parses', async () => {
    const params = parseBootParams(`MYURL=${selfSigned.url} booty.token=${TOKEN} booty.ca=sha256:${pinSelf}`);
    assert.deepEqual(params.trust.pins, [pinSelf]);
    assert.equal(params.token, TOKEN);
    assert.deepEqual(params.warnings, []);
    assert.equal(await actionAsAgent(params), 'deploy');
  });

  it('the iPXE script of an https server pins its certificate and carries the machine\'s credential; with it the agent fetches its action', async () => {
    const insecure = new Agent({ connect: { rejectUnauthorized: false } });
    try {
      const r = await request(`${selfSigned.url}/ipxe/${MAC}`, { dispatcher: insecure });
      const script = await r.body.text();
      const kernel = /^kernel \S+ (.*) \|\| goto failed$/m.exec(script);
      assert.ok(kernel !== null, script);
      assert.match(kernel[1], new RegExp(` booty\\.ca=sha256:${pinSelf}( |$)`));
      const params = parseBootParams(kernel[1]);
      assert.deepEqual(params.trust.pins, [pinSelf]);
      assert.match(params.token ?? '', new RegExp(`^${MAC}\\.[0-9a-f]{64}$`), 'the machine\'s credential, not an operator token');
      assert.equal(await actionAsAgent(params), 'deploy');
    } finally { await insecure.close(); }
  });

  it('agent: a wrong pin is refused at once, naming the certificate the server showed', async () => {
    const wrong = 'ab'.repeat(32);
    setServerTrust({ pins: [wrong] });
    try {
      const { log } = quiet();
      await assert.rejects(fetchAction({ server: server(), mac: MAC, budgetMs: 60_000, log }), (e: unknown) => {
        assert.ok(isBootyError(e));
        assert.equal(e.code, 'server-untrusted');
        assert.match(e.message, new RegExp(`sha256:${pinSelf}, which booty\\.ca does not allow \\(expected sha256:abababababababab…\\)`));
        assert.match(e.message, /CN=booty-self/);
        return true;
      });
    } finally { setServerTrust(undefined); }
  });

  it('agent: with a pin set, plain http is refused (a rogue server on the PXE network)', async () => {
    setServerTrust({ pins: [pinSelf] });
    try {
      const { log } = quiet();
      await assert.rejects(fetchAction({ server: { base: plain.url, style: 'myurl' }, mac: MAC, budgetMs: 60_000, log }), /refusing plain http to 127\.0\.0\.1:\d+: booty\.ca is set/);
    } finally { setServerTrust(undefined); }
  });

  it('agent: without a pin, a self-signed server is not trusted (Node\'s CA store), and says how to pin', async () => {
    const { log } = quiet();
    await assert.rejects(fetchAction({ server: server(), mac: MAC, budgetMs: 60_000, log }), (e: unknown) => {
      assert.ok(isBootyError(e));
      assert.match(e.message, /TLS certificate is not trusted \(DEPTH_ZERO_SELF_SIGNED_CERT\)/);
      assert.match(e.hint ?? '', /booty\.ca=sha256/);
      return true;
    });
  });

  it('booty deploy --ca: right pin bit-exact; wrong pin refused with exit 4 and the reason', () => {
    const target = path.join(dir, 'deploy-target.img');
    fs.writeFileSync(target, '');
    const ok = booty(['deploy', '--image', `${selfSigned.url}/images/disk.img.gz`, '--disk', target, '--ca', `sha256:${pinSelf}`, '-q']);
    assert.equal(ok.status, 0, ok.err);
    assert.ok(fs.readFileSync(target).subarray(0, raw.length).equals(raw));
    const bad = booty(['deploy', '--image', `${selfSigned.url}/images/disk.img.gz`, '--disk', target, '--ca', `sha256:${'cd'.repeat(32)}`, '-q', '--retry-for', '5s']);
    assert.equal(bad.status, 4, bad.err);
    assert.match(bad.err, /booty\.ca does not allow/);
    const malformed = booty(['deploy', '--image', `${selfSigned.url}/images/disk.img.gz`, '--disk', target, '--ca', 'sha256:1234', '-q']);
    assert.equal(malformed.status, 2, malformed.err);
    assert.match(malformed.err, /64 hex digits/);
  });

  it('booty capture --ca --token over https: right pin stored; wrong pin refused, nothing stored', () => {
    const disk = path.join(dir, 'tls-disk.img');
    fs.writeFileSync(disk, randomBytes(400_000));
    const url = `${selfSigned.url}/images/tls-cap.img.zst`;
    const bad = booty(['capture', '--disk', disk, '--upload', url, '--format', 'zstd', '--token', TOKEN, '--ca', `sha256:${'ef'.repeat(32)}`, '-q']);
    assert.equal(bad.status, 10, bad.err);
    assert.match(bad.err, /booty\.ca does not allow/);
    assert.ok(!fs.existsSync(path.join(selfSigned.dataDir, 'images', 'tls-cap.img.zst')));
    const ok = booty(['capture', '--disk', disk, '--upload', url, '--format', 'zstd', '--token', TOKEN, '--ca', `sha256:${pinSelf}`, '-q']);
    assert.equal(ok.status, 0, ok.err);
    assert.ok(zlib.zstdDecompressSync(fs.readFileSync(path.join(selfSigned.dataDir, 'images', 'tls-cap.img.zst'))).equals(fs.readFileSync(disk)));
  });

  it('a CA fetched over the pinned connection trusts a mirror it signed, and nobody else', async () => {
    const n = await applyTrustOption([`sha256:${pinCaLeaf}`, `${caServer.url}/tls/cert.pem`]);
    try {
      assert.ok(n?.ca?.includes('BEGIN CERTIFICATE'));
      const img = await openImage(`${mirror.url}/images/disk.img.gz`);
      assert.equal(img.status, 200);
      img.body.destroy();
      await assert.rejects(openImage(`${selfSigned.url}/images/disk.img.gz`), /booty\.ca does not allow .*or a certificate signed by the fetched CA/);
    } finally { setServerTrust(undefined); }
    // a CA URL on a server that fails the pin is not fetched at all
    await assert.rejects(applyTrustOption([`sha256:${'12'.repeat(32)}`, `${caServer.url}/tls/cert.pem`]), /booty\.ca does not allow/);
    setServerTrust(undefined);
    // and the connector with no trust set is the ordinary one
    const d = new Agent({ connect: trustedConnect() });
    const r = await request(`${plain.url}/images/disk.img.gz`, { method: 'HEAD', dispatcher: d });
    assert.equal(r.statusCode, 200);
    await r.body.text();
    await d.close();
  });
});
