import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { actionUrl, fetchAction, macForUrl } from '../../src/agent/fetch-action.ts';
import { isBootyError } from '../../src/util/errors.ts';
import { createLogger, type Level } from '../../src/util/log.ts';

const fast = { initialMs: 5, factor: 2, maxMs: 20, jitter: 0 };

function capture() {
  const lines: string[] = [];
  const log = createLogger({ level: 'debug', sinks: [(l: Level, m: string) => { lines.push(`${l}: ${m}`); }] });
  return { log, lines };
}

/** A real HTTP server on loopback answering from a script of responses, recording requests. */
async function scriptedServer(script: Array<{ status: number; body: string }>) {
  const seen: Array<{ url: string; ua: string | undefined; auth: string | undefined }> = [];
  let i = 0;
  const server = http.createServer((req, res) => {
    seen.push({ url: req.url ?? '', ua: req.headers['user-agent'], auth: req.headers.authorization });
    const r = script[Math.min(i++, script.length - 1)];
    res.writeHead(r.status, { 'content-type': 'application/json' });
    res.end(r.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { base, seen, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

const deploy = JSON.stringify({ action: 'deploy', image: 'http://10.0.0.1/images/debian.img.gz', disk: '/dev/vda' });

test('URL forms: MYURL gets /<mac>, BOOTYURL gets /<mac>.bty', () => {
  assert.equal(macForUrl('52:54:00:AB:cd:01'), '52-54-00-ab-cd-01');
  assert.equal(actionUrl({ base: 'http://s:3000', style: 'myurl' }, '52:54:00:ab:cd:01'), 'http://s:3000/52-54-00-ab-cd-01');
  assert.equal(actionUrl({ base: 'http://s:3000/booty', style: 'bootyurl' }, '52:54:00:ab:cd:01'), 'http://s:3000/booty/52-54-00-ab-cd-01.bty');
});

test('retries while the server is down or does not know the machine, logging each reason', async () => {
  const s = await scriptedServer([
    { status: 503, body: 'starting up' },
    { status: 404, body: 'no action for 52-54-00-12-34-56\n' },
    { status: 200, body: deploy },
  ]);
  const { log, lines } = capture();
  try {
    const r = await fetchAction({ server: { base: s.base, style: 'myurl' }, mac: '52:54:00:12:34:56', token: 'tok', budgetMs: 0, log, backoff: fast });
    assert.equal(r.attempts, 3);
    assert.equal(r.action.action, 'deploy');
    assert.equal(r.action.action === 'deploy' && r.action.disk, '/dev/vda');
    assert.deepEqual(s.seen.map((x) => x.url), ['/52-54-00-12-34-56', '/52-54-00-12-34-56', '/52-54-00-12-34-56']);
    assert.equal(s.seen[0].auth, 'Bearer tok');
    const warns = lines.filter((l) => l.startsWith('warn: '));
    assert.equal(warns.length, 2);
    assert.match(warns[0], /the server answered 503 \(starting up\); retrying in 0\.0 s/);
    assert.match(warns[1], /no action for this machine yet \(404: no action for 52-54-00-12-34-56\)/);
  } finally {
    await s.close();
  }
});

test('BOOTYURL: .bty path and the BOOTy-client user agent; BOOTy JSON is accepted', async () => {
  const s = await scriptedServer([{ status: 200, body: JSON.stringify({ action: 'writeImage', sourceImage: 'http://h/i.img.gz', compressed: true, destinationDevice: '/dev/sda' }) }]);
  const { log } = capture();
  try {
    const r = await fetchAction({ server: { base: `${s.base}/booty`, style: 'bootyurl' }, mac: 'AA:BB:CC:DD:EE:FF', budgetMs: 0, log, backoff: fast });
    assert.equal(s.seen[0].url, '/booty/aa-bb-cc-dd-ee-ff.bty');
    assert.equal(s.seen[0].ua, 'BOOTy-client');
    assert.equal(r.action.action, 'deploy');
  } finally {
    await s.close();
  }
});

test('an invalid action fails at once, naming the field; nothing is retried', async () => {
  const s = await scriptedServer([{ status: 200, body: JSON.stringify({ action: 'deploy', image: 42 }) }]);
  const { log } = capture();
  try {
    await assert.rejects(fetchAction({ server: { base: s.base, style: 'myurl' }, mac: '52:54:00:12:34:56', budgetMs: 0, log, backoff: fast }), (e: unknown) =>
      isBootyError(e) && e.stage === 'config' && /is invalid: .*"image"/.test(e.message) && e.diskState === 'untouched');
    assert.equal(s.seen.length, 1);
  } finally {
    await s.close();
  }
});

test('401 fails with a hint about booty.token; other 4xx fail at once', async () => {
  const s = await scriptedServer([{ status: 401, body: 'token required' }]);
  const { log } = capture();
  try {
    await assert.rejects(fetchAction({ server: { base: s.base, style: 'myurl' }, mac: '52:54:00:12:34:56', budgetMs: 0, log, backoff: fast }), (e: unknown) =>
      isBootyError(e) && e.code === 'action-unauthorized' && /booty\.token=/.test(e.hint ?? ''));
  } finally {
    await s.close();
  }
  const t = await scriptedServer([{ status: 400, body: 'bad mac' }]);
  try {
    await assert.rejects(fetchAction({ server: { base: t.base, style: 'myurl' }, mac: '52:54:00:12:34:56', budgetMs: 0, log, backoff: fast }), /answered 400 .*bad mac/);
    assert.equal(t.seen.length, 1);
  } finally {
    await t.close();
  }
});

test('a server that never comes up: gives up after the budget, saying why', async () => {
  // a port nobody listens on: bind, learn the port, close
  const s = await scriptedServer([{ status: 200, body: '' }]);
  await s.close();
  const { log, lines } = capture();
  await assert.rejects(fetchAction({ server: { base: s.base, style: 'myurl' }, mac: '52:54:00:12:34:56', budgetMs: 60, log, backoff: fast }), (e: unknown) =>
    isBootyError(e) && e.code === 'action-timeout' && /server not reachable \(ECONNREFUSED\)/.test(e.message));
  assert.ok(lines.some((l) => /server not reachable \(ECONNREFUSED\); retrying/.test(l)));
});
