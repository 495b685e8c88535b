// Every route of booty server's route table (src/server/routes/index.ts), walked: a real
// `booty server --token T` is asked each route with no credential, with wrong ones and with the
// token, and the answers must match the access level the route declares:
//   - operator and agent routes: 401 without the token and with a wrong one; never 401 with it;
//   - public routes: never 401, whatever is sent; a public route for a method that changes
//     things (POST, PUT, DELETE, any) may only be a fallback answering 404 or 405;
//   - without --token, nothing is ever 401 (today's trust model: no token, no checks);
//   - what firmware and agents fetch before they can authenticate (iPXE, boot files, images, an
//     agent's action) is declared public.
// Request paths are made from the table's own patterns with real parameters (a machine, an
// image, an upload session exist), and each request is checked to reach the route it is meant
// for, so a route added to the table is walked without touching this file (a new parameter name
// needs a sample below).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { startBootyServer, type BootyServerProcess } from '../helpers/booty-server-process.ts';
import { routes } from '../../src/server/routes/index.ts';
import { Router } from '../../src/server/http/router.ts';
import { decodeSegments } from '../../src/server/http/request.ts';

type Route = (typeof routes)[number];

const TOKEN = 'route-walk-token';
const MAC = '52-54-00-77-00-01';
const IMAGE = 'walk.img';

let server: BootyServerProcess;
let open: BootyServerProcess;
let bootDir: string;

interface Answer { status: number; text: string }

async function call(base: string, method: string, path: string, auth?: string, body?: string): Promise<Answer> {
  const r = await request(`${base}${path}`, {
    method: method as 'GET', body,
    headers: { ...(auth === undefined ? {} : { authorization: auth }), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
  });
  // the live stream never ends: its status is the answer
  const text = r.headers['content-type']?.toString().startsWith('text/event-stream') ? (r.body.destroy(), '') : await r.body.text();
  return { status: r.statusCode, text };
}

/** The machine, the image and an upload session the walk's paths name; made again before each call with the token. */
async function fixtures(base: string, auth: string | undefined): Promise<{ uploadId: string }> {
  const ok = (a: Answer, what: string) => { assert.ok(a.status < 300, `${what}: ${a.status} ${a.text}`); return a; };
  ok(await call(base, 'PUT', `/images/${IMAGE}?overwrite=1`, auth, 'image bytes'), 'image');
  ok(await call(base, 'PUT', `/api/machines/${MAC}`, auth, JSON.stringify({ action: { action: 'deploy', image: `${base}/images/${IMAGE}`, disk: '/dev/vda' } })), 'machine');
  const up = ok(await call(base, 'POST', '/api/uploads', auth, JSON.stringify({ name: 'walk-upload.img', overwrite: true })), 'upload session');
  return { uploadId: (JSON.parse(up.text) as { id: string }).id };
}

/** Sample values for each parameter name used in the table's patterns. */
function samples(uploadId: string): Record<string, string> {
  return { mac: MAC, machine: `${MAC}.bty`, name: IMAGE, id: uploadId, n: '0', bootfile: 'vmlinuz', asset: 'app.js' };
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
const bodyFor = (method: string) => (method === 'POST' || method === 'PUT' ? '{}' : undefined);

before(async () => {
  bootDir = await mkdtemp(join(tmpdir(), 'booty-walk-boot-'));
  await writeFile(join(bootDir, 'vmlinuz'), 'kernel');
  await writeFile(join(bootDir, 'booty.cpio.zst'), 'initramfs');
  [server, open] = await Promise.all([
    startBootyServer({ args: ['--token', TOKEN, '--boot-dir', bootDir] }),
    startBootyServer({ args: ['--boot-dir', bootDir] }),
  ]);
});

after(async () => {
  await Promise.all([server?.close(), open?.close()]);
  if (bootDir !== undefined) await rm(bootDir, { recursive: true, force: true });
});

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

  it('what firmware and agents fetch before they can authenticate stays public', () => {
    const mustBePublic = ['GET /ipxe', 'GET /ipxe/:mac', 'GET /boot/:bootfile', 'GET /tls/cert.pem', 'GET /images/:name', 'GET /image-index/:name',
      'GET /:machine', 'GET /booty/:machine', 'GET /api/machines/:mac/action'];
    for (const key of mustBePublic) {
      const route = routes.find((r) => `${r.method} ${r.path}` === key);
      assert.equal(route?.access, 'public', `${key} must be in the table and public`);
    }
  });

  it('agent routes name the machine they speak for (where a per-machine credential will be checked)', () => {
    for (const route of routes.filter((r) => r.access === 'agent')) assert.ok(route.agentMac !== undefined, `${label(route)} declares no agentMac`);
  });

  it('with --token: every route answers as its access level says', async () => {
    const wrong = ['Bearer wrong', `Bearer ${TOKEN}x`, TOKEN, `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}`];
    let calls = 0;
    for (const route of routes) {
      const { uploadId } = await fixtures(server.url, `Bearer ${TOKEN}`);
      for (const { method, path } of requestsFor(route, samples(uploadId))) {
        const what = `${method} ${path} [${label(route)}]`;
        for (const auth of [undefined, ...wrong]) {
          const a = await call(server.url, method, path, auth, bodyFor(method));
          calls++;
          if (route.access === 'public') {
            assert.ok(a.status !== 401 && a.status !== 403, `${what} with ${auth ?? 'no credential'}: public, yet ${a.status} ${a.text}`);
            if (route.method !== 'GET') assert.ok(a.status === 404 || a.status === 405, `${what}: a public ${route.method} route may only refuse (404/405), got ${a.status} ${a.text}`);
          } else {
            assert.equal(a.status, 401, `${what} with ${auth ?? 'no credential'}: ${route.access} route answered ${a.status} ${a.text}`);
            if (method !== 'HEAD') assert.match(a.text, /Authorization: Bearer/);
          }
        }
        const a = await call(server.url, method, path, `Bearer ${TOKEN}`, bodyFor(method));
        calls++;
        assert.ok(a.status !== 401 && a.status !== 403, `${what} with the token: ${a.status} ${a.text}`);
        assert.ok(a.status < 500, `${what} with the token: ${a.status} ${a.text}`);
      }
    }
    assert.ok(calls > routes.length * 5);
  });

  it('without --token: no route asks for a credential', async () => {
    for (const route of routes) {
      const { uploadId } = await fixtures(open.url, undefined);
      for (const { method, path } of requestsFor(route, samples(uploadId))) {
        const a = await call(open.url, method, path, undefined, bodyFor(method));
        assert.ok(a.status !== 401 && a.status !== 403 && a.status < 500, `${method} ${path} [${label(route)}] on a server without --token: ${a.status} ${a.text}`);
      }
    }
  });
});
