// src/net/undici.ts takes undici's Agent, request() and connector from undici's own modules, not
// its index (which loads all of undici: 7 MiB more RSS). These tests pin what that relies on:
// the modules still export what is used, request() behaves like undici's for booty's calls, and
// nothing in src/ loads the index.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, buildConnector, interceptors, request } from '../../src/net/undici.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

test('request(): GET, PUT with a body, query strings, a given dispatcher or the shared one', async (t) => {
  const seen: { method: string; url: string; body: string }[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => { body += c.toString(); });
    req.on('end', () => { seen.push({ method: req.method!, url: req.url!, body }); res.end(`${req.method} ${req.url}`); });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const agent = new Agent({ connect: buildConnector({ timeout: 5000 }) });
  t.after(() => agent.close());
  const a = await request(`${base}/images/x?upload=1`, { dispatcher: agent });
  assert.equal(a.statusCode, 200);
  assert.equal(await a.body.text(), 'GET /images/x?upload=1');
  const b = await request(new URL(`${base}/put`), { body: 'data', dispatcher: agent });
  assert.equal(await b.body.text(), 'PUT /put', 'a body without a method is a PUT, as in undici');
  const c = await request(`${base}/post`, { method: 'POST', body: 'x' });
  assert.equal(await c.body.text(), 'POST /post', 'no dispatcher: the shared one');
  assert.deepEqual(seen.map((s) => s.body), ['', 'data', 'x']);
  const redirecting = new Agent().compose(interceptors.redirect({ maxRedirections: 1 }));
  t.after(() => redirecting.close());
  assert.equal((await request(`${base}/r`, { dispatcher: redirecting })).statusCode, 200);
  assert.throws(() => request('ftp://example.com/x'), /not http/);
});

test('src/ never imports undici\'s index (only types from it)', () => {
  const offenders: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = path.join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith('.ts') && !p.endsWith('.d.ts') && /^import (?!type )[^;]*from 'undici';/m.test(readFileSync(p, 'utf8'))) offenders.push(path.relative(root, p));
    }
  };
  walk(path.join(root, 'src'));
  assert.deepEqual(offenders, [], 'import HTTP from src/net/undici.ts');
  // and loading the HTTP side of booty leaves the index unloaded
  const loaded = execFileSync(process.execPath, ['--disable-warning=ExperimentalWarning', '--input-type=module', '-e',
    `import { createRequire } from 'node:module'; await import(${JSON.stringify(path.join(root, 'src/image/source/fetch.ts'))}); await import(${JSON.stringify(path.join(root, 'src/image/upload/upload.ts'))});
     const r = createRequire(import.meta.url); console.log(Object.keys(r.cache).filter((k) => k.includes('/undici/')).map((k) => k.split('/undici/')[1]).join('\\n'))`], { encoding: 'utf8' });
  assert.ok(loaded.includes('lib/dispatcher/agent.js'), loaded);
  assert.ok(!loaded.split('\n').includes('index.js'), 'undici/index.js was loaded');
  assert.ok(!loaded.includes('lib/web/fetch/index.js'), 'fetch was loaded');
});
