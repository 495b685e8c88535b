// Every route of booty server's route table (src/server/routes/index.ts), walked: a real
// `booty server --token T` is asked each route with five kinds of credential, and the answers
// must match the access level the route declares:
//                    none   wrong   other machine's agent   right agent   operator token
//   public           ok     ok      ok                      ok            ok        (never 401/403)
//   agent            401    401     403                     ok            ok
//   fleet            401    401     ok                      ok            ok
//   operator         401    401     403                     403           ok
// ("ok": neither 401 nor 403, nor a 5xx.) A public route for a method that changes things may
// only be a fallback answering 404 or 405. Also walked: a server without any operator token,
// from loopback (everything works: the operator is at the console) and from the network
// (operator routes 401 naming the command that makes a token); what firmware and agents fetch
// before they can authenticate is declared public.
// Request paths are made from the table's own patterns with real parameters (a machine whose
// action captures into the image, the image, an upload session of it exist), and each request
// is checked to reach the route it is meant for, so a route added to the table is walked
// without touching this file (a new parameter name needs a sample below).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { agentCredentialOf, nonLoopbackAddress, startBootyServer, type BootyServerProcess } from '../helpers/booty-server-process.ts';
import { skipUnlessPresent } from '../helpers/prerequisite.ts';
import { routes } from '../../src/server/routes/index.ts';
import { Router } from '../../src/server/http/router.ts';
import { decodeSegments } from '../../src/server/http/request.ts';

type Route = (typeof routes)[number];

const TOKEN = 'route-walk-token';
const MAC = '52-54-00-77-00-01';
const OTHER_MAC = '52-54-00-77-00-02';
const IMAGE = 'walk.img';
const NETWORK_ADDRESS = nonLoopbackAddress();
/** public routes that change nothing but the caller's own cookie (the dashboard's login) */
const OWN_COOKIE_ONLY = new Set(['POST /api/login', 'POST /api/logout']);

let server: BootyServerProcess;
let open: BootyServerProcess;
let bootDir: string;

interface Answer { status: number; text: string }

interface Body { text: string; type: string }

async function call(base: string, method: string, path: string, auth?: string, body?: string | Body): Promise<Answer> {
  const b = typeof body === 'string' ? { text: body, type: 'application/json' } : body;
  const r = await request(`${base}${path}`, {
    method: method as 'GET', body: b?.text,
    headers: { ...(auth === undefined ? {} : { authorization: auth }), ...(b === undefined ? {} : { 'content-type': b.type }) },
  });
  // the live stream never ends: its status is the answer
  const text = r.headers['content-type']?.toString().startsWith('text/event-stream') ? (r.body.destroy(), '') : await r.body.text();
  return { status: r.statusCode, text };
}

/** The machine (capturing into the image), the image and an upload session the walk's paths name; made again before each route. */
async function fixtures(base: string, auth: string | undefined): Promise<{ uploadId: string }> {
  const ok = (a: Answer, what: string) => { assert.ok(a.status < 300, `${what}: ${a.status} ${a.text}`); return a; };
  ok(await call(base, 'PUT', `/images/${IMAGE}?overwrite=1`, auth, 'image bytes'), 'image');
  ok(await call(base, 'PUT', `/api/machines/${MAC}`, auth, JSON.stringify({ action: { action: 'capture', upload: `${base}/images/${IMAGE}`, disk: '/dev/vda' } })), 'machine');
  const up = ok(await call(base, 'POST', '/api/uploads', auth, JSON.stringify({ name: IMAGE, overwrite: true })), 'upload session');
  return { uploadId: (JSON.parse(up.text) as { id: string }).id };
}

/** Sample values for each parameter name used in the table's patterns. */
function samples(uploadId: string): Record<string, string> {
  return { mac: MAC, machine: `${MAC}.bty`, name: IMAGE, id: uploadId, n: '0', bootfile: 'vmlinuz', asset: 'app.js', rack: 'r1' };
}

/** The requests that exercise a route: its path with samples filled in, per method it answers. */
function requestsFor(route: Route, params: Record<string, string>): { method: string; path: string }[] {
  const path = route.path.split('/').map((s) => {
    if (s === '*') return 'x/y/z';
    if (!s.startsWith(':')) return s;
    const v = params[s.slice(1)];
    assert.ok(v !== undefined, `route ${route.method} ${route.path}: the walk has no sample for ${s}; add one to samples()`);
    return encodeURIComponent(v);
  }).join('/') + (route.query === undefined ? '' : `?${route.query}=walk1`);
  const methods = route.method === '*' ? ['PATCH'] : route.method === 'GET' && route.head !== false ? ['GET', 'HEAD'] : [route.method];
  return methods.map((method) => ({ method, path }));
}

const label = (r: Route) => `${r.method} ${r.path}${r.query === undefined ? '' : `?${r.query}`} (${r.access})`;
const BOUNDARY = 'walkboundary';
/** A body for the route: routes that learn their machine from the body (agentMac 'body') get one naming it. */
function bodyFor(route: Route, method: string): Body | undefined {
  if (method !== 'POST' && method !== 'PUT') return undefined;
  if (route.agentMac === 'body' && route.path === '/api/uploads') return { text: JSON.stringify({ name: IMAGE, overwrite: true }), type: 'application/json' };
  if (route.agentMac === 'body') {
    const text = `--${BOUNDARY}\r\nContent-Disposition: form-data; name="BootyImage"; filename="${MAC.replace(/-/g, ':')}.img"\r\n\r\nimage bytes\r\n--${BOUNDARY}--\r\n`;
    return { text, type: `multipart/form-data; boundary=${BOUNDARY}` };
  }
  return { text: '{}', type: 'application/json' };
}
/** /metrics is public unless the server runs with --metrics operator (these do not) */
const levelOf = (r: Route) => (r.access === 'metrics' ? 'public' : r.access);

before(async () => {
  bootDir = await mkdtemp(join(tmpdir(), 'booty-walk-boot-'));
  await writeFile(join(bootDir, 'vmlinuz'), 'kernel');
  await writeFile(join(bootDir, 'booty.cpio.zst'), 'initramfs');
  [server, open] = await Promise.all([
    startBootyServer({ args: ['--token', TOKEN, '--boot-dir', bootDir] }),
    startBootyServer({ args: ['--boot-dir', bootDir], listen: '0.0.0.0:0' }),
  ]);
});

after(async () => {
  await Promise.all([server?.close(), open?.close()]);
  if (bootDir !== undefined) await rm(bootDir, { recursive: true, force: true });
});

const portOf = (url: string) => new URL(url).port;

describe('route table', () => {
  it('each walk request reaches the route it is meant for', async () => {
    const router = new Router(routes);
    const params = samples('0123456789abcdef01234567');
    for (const route of routes) {
      for (const { method, path } of requestsFor(route, params)) {
        const url = new URL(path, 'http://walk.invalid');
        const m = router.match(method, url, decodeSegments(path.split('?')[0]));
        assert.equal(m?.route, route, `${method} ${path} should reach ${label(route)}, reached ${m === undefined ? 'nothing' : label(m.route)}`);
      }
    }
  });

  it('what firmware and agents fetch before they can authenticate stays public; what names machines is not', () => {
    const mustBePublic = ['GET /ipxe', 'GET /ipxe/:mac', 'GET /boot/:bootfile', 'GET /tls/cert.pem', 'GET /images/:name', 'GET /image-index/:name',
      'GET /:machine', 'GET /booty/:machine', 'GET /api/machines/:mac/action'];
    for (const key of mustBePublic) {
      const route = routes.find((r) => `${r.method} ${r.path}` === key);
      assert.equal(route?.access, 'public', `${key} must be in the table and public`);
    }
    const mustBeOperator = ['GET /api/machines', 'GET /api/machines/:mac', 'GET /api/machines/:mac/runs', 'GET /api/machines/:mac/log',
      'GET /api/events/stream', 'GET /api/images', 'GET /api/machines/:mac/credential', 'GET /api/audit'];
    for (const key of mustBeOperator) {
      const route = routes.find((r) => `${r.method} ${r.path}` === key);
      assert.equal(route?.access, 'operator', `${key} must be in the table and need an operator`);
    }
  });

  it('agent routes name the machine they speak for', () => {
    for (const route of routes.filter((r) => r.access === 'agent')) assert.ok(route.agentMac !== undefined, `${label(route)} declares no agentMac`);
  });

  it('with --token: every route answers as its access level says, for each of five credentials', async () => {
    const operator = `Bearer ${TOKEN}`;
    const right = `Bearer ${await agentCredentialOf(server.url, MAC, TOKEN)}`;
    const other = `Bearer ${await agentCredentialOf(server.url, OTHER_MAC, TOKEN)}`;
    const forged = `Bearer ${MAC}.${'0'.repeat(64)}`;
    const wrong = ['Bearer wrong', `Bearer ${TOKEN}x`, TOKEN, `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}`, forged];
    const expect: Record<'public' | 'agent' | 'fleet' | 'operator', { none: number | 'ok'; other: number | 'ok'; right: number | 'ok' }> = {
      public: { none: 'ok', other: 'ok', right: 'ok' },
      agent: { none: 401, other: 403, right: 'ok' },
      fleet: { none: 401, other: 'ok', right: 'ok' },
      operator: { none: 401, other: 403, right: 403 },
    };
    let calls = 0;
    const counted = new Map<string, number>();
    for (const route of routes) {
      const { uploadId } = await fixtures(server.url, operator);
      const want = expect[levelOf(route)];
      for (const { method, path } of requestsFor(route, samples(uploadId))) {
        const what = `${method} ${path} [${label(route)}]`;
        const cases: [string, string | undefined, number | 'ok'][] = [
          ['no credential', undefined, want.none], ...wrong.map((w): [string, string, number | 'ok'] => [`wrong ${w.slice(0, 24)}`, w, want.none]),
          ['another machine\'s agent credential', other, want.other], ['the right agent credential', right, want.right], ['the operator token', operator, 'ok'],
        ];
        for (const [kind, auth, expected] of cases) {
          const a = await call(server.url, method, path, auth, bodyFor(route, method));
          calls++;
          counted.set(kind, (counted.get(kind) ?? 0) + 1);
          if (expected === 'ok') {
            assert.ok(a.status !== 401 && a.status !== 403 && a.status < 500, `${what} with ${kind}: expected it to be allowed, got ${a.status} ${a.text}`);
          } else {
            assert.equal(a.status, expected, `${what} with ${kind}: ${a.status} ${a.text}`);
            if (method !== 'HEAD' && expected === 403 && auth === other && route.access === 'agent') assert.match(a.text, new RegExp(`credential is for ${OTHER_MAC}`));
          }
          if (levelOf(route) === 'public' && route.method !== 'GET' && !OWN_COOKIE_ONLY.has(`${route.method} ${route.path}`)) assert.ok(a.status === 404 || a.status === 405, `${what}: a public ${route.method} route may only refuse (404/405), got ${a.status} ${a.text}`);
        }
      }
    }
    assert.ok(calls > routes.length * 9, `only ${calls} calls`);
    assert.ok(routes.some((r) => r.access === 'agent') && routes.some((r) => r.access === 'operator') && routes.some((r) => r.access === 'public'));
  });

  it('without any operator token, from loopback: no route asks for a credential', async () => {
    const base = `http://127.0.0.1:${portOf(open.url)}`;
    for (const route of routes) {
      const { uploadId } = await fixtures(base, undefined);
      for (const { method, path } of requestsFor(route, samples(uploadId))) {
        const a = await call(base, method, path, undefined, bodyFor(route, method));
        assert.ok(a.status !== 401 && a.status !== 403 && a.status < 500, `${method} ${path} [${label(route)}] on a server without a token, from loopback: ${a.status} ${a.text}`);
      }
    }
  });

  it('without any operator token, from the network: operator and agent routes refused, public ones open', { skip: skipUnlessPresent(NETWORK_ADDRESS !== undefined, 'no non-loopback IPv4 address on this host') }, async () => {
    assert.ok(NETWORK_ADDRESS !== undefined, 'this host has no non-loopback IPv4 address to call the server from');
    const local = `http://127.0.0.1:${portOf(open.url)}`;
    const remote = `http://${NETWORK_ADDRESS}:${portOf(open.url)}`;
    const right = `Bearer ${await agentCredentialOf(local, MAC)}`;
    for (const route of routes) {
      const { uploadId } = await fixtures(local, undefined);
      for (const { method, path } of requestsFor(route, samples(uploadId))) {
        const what: string = `${method} ${path} [${label(route)}] from ${NETWORK_ADDRESS}`;
        const a = await call(remote, method, path, undefined, bodyFor(route, method));
        if (levelOf(route) === 'public') { assert.ok(a.status !== 401 && a.status !== 403, `${what}: ${a.status} ${a.text}`); continue; }
        assert.equal(a.status, 401, `${what}: ${a.text}`);
        if (method !== 'HEAD' && route.access === 'operator') assert.match(a.text, /booty tokens add NAME/);
        const asAgent = await call(remote, method, path, right, bodyFor(route, method));
        if (route.access === 'agent' || route.access === 'fleet') assert.ok(asAgent.status !== 401 && asAgent.status !== 403 && asAgent.status < 500, `${what} with the machine's credential: ${asAgent.status} ${asAgent.text}`);
        else assert.equal(asAgent.status, 403, `${what} with an agent credential: ${asAgent.text}`);
      }
    }
  });
});
