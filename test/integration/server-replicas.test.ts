// Two real `booty server` processes on one PostgreSQL (`--database`, a throwaway cluster from
// test/helpers/postgres.ts), each with its own data directory and the same secret (as replicas
// behind a load balancer are set up): a token made once works on both, a change through replica
// A's API appears on replica B's live stream (/api/events/stream), an agent's reports through B
// show on A, and a one-shot deploy reported done through B is not served again by A. Last, A is
// killed with SIGKILL in the middle of a deploy behind haproxy (Debian's, test/helpers/haproxy.ts:
// health checks on /ipxe, redispatch): what the agent's reporter got answers for is kept, and its
// reports go on through B.
// The image catalog is shared: an image uploaded through A is listed by B and its download
// through B is redirected to A's copy (bit-exact, its sha256). The server secret is shared
// through the database: a third replica without DIR/secret takes it, one with a different
// DIR/secret refuses to start.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { startBootyServer } from '../helpers/booty-server-process.ts';
import type { BootyServerProcess } from '../helpers/booty-server-process.ts';
import { runBooty } from '../helpers/booty-cli.ts';
import { createReporter } from '../../src/report/client.ts';
import { openImage } from '../../src/image/source/fetch.ts';
import { postgresPresent, startPostgres } from '../helpers/postgres.ts';
import type { TestPostgres } from '../helpers/postgres.ts';
import { skipUnlessPresent } from '../helpers/prerequisite.ts';
import { haproxyPresent, startHaproxy } from '../helpers/haproxy.ts';

const MAC = '52-54-00-21-77-01';
const skip = skipUnlessPresent(postgresPresent(), 'PostgreSQL is not installed (scripts/host-deps.sh: postgresql)');

/** An open /api/events/stream: everything received so far, and a wait for some text in it. */
async function openStream(url: string, token: string): Promise<{ text(): string; waitFor(re: RegExp, ms?: number): Promise<string>; close(): void }> {
  const controller = new AbortController();
  const res = await request(`${url}/api/events/stream`, { headers: { authorization: `Bearer ${token}` }, signal: controller.signal });
  assert.equal(res.statusCode, 200);
  let buf = '';
  const waiters = new Set<() => void>();
  void (async () => {
    try { for await (const c of res.body) { buf += String(c); for (const w of waiters) w(); } } catch { /* closed */ }
  })();
  return {
    text: () => buf,
    waitFor: (re, ms = 15_000) => new Promise<string>((ok, fail) => {
      const check = () => {
        const m = re.exec(buf);
        if (m !== null) { waiters.delete(check); clearTimeout(t); ok(m[0]); }
      };
      const t = setTimeout(() => { waiters.delete(check); fail(new Error(`not seen on the stream within ${ms} ms: ${re}\n--- stream so far:\n${buf.slice(-3000)}`)); }, ms);
      waiters.add(check);
      check();
    }),
    close: () => controller.abort(),
  };
}

describe('booty server replicas on one PostgreSQL', { skip }, () => {
  let pg: TestPostgres;
  let a: BootyServerProcess;
  let b: BootyServerProcess;
  let token: string;
  const dirs: string[] = [];

  before(async () => {
    pg = await startPostgres();
    await pg.createDatabase('booty');
    const database = pg.url('booty');
    const dirA = await mkdtemp(join(tmpdir(), 'booty-replica-a-'));
    const dirB = await mkdtemp(join(tmpdir(), 'booty-replica-b-'));
    dirs.push(dirA, dirB);
    a = await startBootyServer({ dataDir: dirA, args: ['--database', database] });
    // replicas share the server secret: agent credentials and dashboard logins are valid on each
    await copyFile(join(dirA, 'secret'), join(dirB, 'secret'));
    // B through the unix socket: both URL forms reach the same database
    b = await startBootyServer({ dataDir: dirB, args: ['--database', pg.socketUrl('booty')] });
    const made = await runBooty(['tokens', 'add', 'ci', '--database', database]);
    assert.equal(made.status, 0, made.err);
    token = made.out.trim();
  });

  after(async () => {
    await a?.close();
    await b?.close();
    await pg?.stop();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  const op = (url: string, path: string, init: { method?: string; body?: unknown } = {}) => fetch(`${url}${path}`, {
    method: init.method ?? 'GET', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });

  it('a token made once (booty tokens --database) is an operator on both replicas', async () => {
    for (const s of [a, b]) assert.equal((await op(s.url, '/api/machines')).status, 200, s.url);
    // and without it, from this host, neither treats the caller as an operator any more
    for (const s of [a, b]) assert.equal((await fetch(`${s.url}/api/machines`)).status, 401, s.url);
  });

  it("a change through replica A's API appears on replica B's live stream", async () => {
    const stream = await openStream(b.url, token);
    try {
      const put = await op(a.url, `/api/machines/${MAC}/action`, { method: 'PUT', body: { action: 'deploy', image: `${a.url}/images/fleet.img`, after: 'reboot' } });
      assert.equal(put.status, 200, await put.text());
      const event = await stream.waitFor(new RegExp(`event: machine\\ndata: \\{[^\\n]*"mac":"${MAC}"[^\\n]*\\n`));
      assert.match(event, /deploy/, 'the summary B sends names the action set through A');
    } finally { stream.close(); }
    const onB = await (await op(b.url, `/api/machines/${MAC}`)).json() as { configuredAction?: { action: string } };
    assert.equal(onB.configuredAction?.action, 'deploy');
  });

  it("an agent's reports through B reach A's stream; the one-shot deploy it finished is not served again by A", async () => {
    const credential = (await (await op(a.url, `/api/machines/${MAC}/credential`)).json() as { credential?: string; token?: string });
    const agentToken = credential.credential ?? credential.token;
    assert.ok(typeof agentToken === 'string', JSON.stringify(credential));
    const servedBefore = await (await fetch(`${a.url}/${MAC}`)).json() as { booty?: { action: string } };
    assert.equal(servedBefore.booty?.action ?? (servedBefore as { action?: string }).action, 'deploy');
    const stream = await openStream(a.url, token);
    try {
      const at = (s: number) => new Date(Date.parse('2026-12-06T12:00:00Z') + s * 1000).toISOString();
      const events = [
        { type: 'phase', time: at(0), phase: 'booting' },
        { type: 'phase', time: at(1), phase: 'writing' },
        { type: 'log', time: at(2), level: 'info', message: 'written through replica B' },
        { type: 'result', time: at(4), ok: true, action: 'deploy', bytes: 1000, seconds: 1 },
      ];
      const post = (url: string) => fetch(`${url}/api/machines/${MAC}/events`, { method: 'POST', headers: { authorization: `Bearer ${agentToken}`, 'content-type': 'application/json' }, body: JSON.stringify(events) });
      const res = await post(b.url);
      assert.equal(res.status, 200, await res.text());
      await stream.waitFor(/event: log\ndata: [^\n]*written through replica B/);
      // the agent's retry of the same batch, through the other replica: no second run
      assert.equal((await post(a.url)).status, 200);
      // nor of its tail alone (progress, log, result: the run had already ended when it came again)
      const tail = [{ type: 'progress', time: at(3), phase: 'writing', bytes: 1000, total: 1000, rate: 1000 }, ...events.slice(2)];
      for (const url of [b.url, a.url]) {
        const again = await fetch(`${url}/api/machines/${MAC}/events`, { method: 'POST', headers: { authorization: `Bearer ${agentToken}`, 'content-type': 'application/json' }, body: JSON.stringify(tail) });
        assert.equal(again.status, 200);
      }
    } finally { stream.close(); }
    const runs = await (await op(a.url, `/api/machines/${MAC}/runs`)).json() as { runs: { ok?: boolean }[] };
    assert.equal(runs.runs.length, 1, JSON.stringify(runs));
    assert.equal(runs.runs[0].ok, true);
    for (const s of [a, b]) {
      const served = await (await fetch(`${s.url}/${MAC}`)).json() as { booty?: { action: string }; action?: string };
      assert.equal(served.booty?.action ?? served.action, 'none', `${s.url} serves the consumed one-shot action as none`);
    }
  });

  it("an image uploaded through A is listed by B (size, sha256, format, holder) and served through B bit-exact; B's stream hears of it", async () => {
    // a zstd image made by the real zstd from incompressible and repetitive halves
    const work = await mkdtemp(join(tmpdir(), 'booty-replica-img-'));
    dirs.push(work);
    await writeFile(join(work, 'fleet.raw'), Buffer.concat([randomBytes(3 << 20), Buffer.alloc(2 << 20, 0x5a)]));
    const { execFileSync } = await import('node:child_process');
    execFileSync('zstd', ['-q', '-3', join(work, 'fleet.raw'), '-o', join(work, 'fleet.img.zst')]);
    const bytes = await readFile(join(work, 'fleet.img.zst'));
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const stream = await openStream(b.url, token);
    try {
      const put = await fetch(`${a.url}/images/fleet.img.zst`, { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'x-booty-sha256': sha256 }, body: bytes });
      assert.equal(put.status, 201, await put.text());
      await stream.waitFor(/event: images\n/);
    } finally { stream.close(); }
    const listed = (await (await op(b.url, '/api/images')).json() as { images: { name: string; size: number; sha256?: string; format?: string; heldBy?: string; uncompressedSize?: number }[] }).images;
    const entry = listed.find((i) => i.name === 'fleet.img.zst');
    assert.ok(entry !== undefined, JSON.stringify(listed));
    assert.equal(entry.size, bytes.length);
    assert.equal(entry.sha256, sha256);
    assert.equal(entry.format, 'zstd');
    assert.equal(entry.uncompressedSize, 5 << 20);
    assert.equal(entry.heldBy, a.url);
    // B answers with a redirect to A's copy...
    const moved = await fetch(`${b.url}/images/fleet.img.zst`, { redirect: 'manual' });
    assert.equal(moved.status, 307);
    assert.equal(moved.headers.get('location'), `${a.url}/images/fleet.img.zst`);
    assert.equal(moved.headers.get('x-image-sha256'), sha256);
    // ...which a client follows to the bytes, whole and by Range
    const got = Buffer.from(await (await fetch(`${b.url}/images/fleet.img.zst`)).arrayBuffer());
    assert.equal(createHash('sha256').update(got).digest('hex'), sha256);
    const part = await fetch(`${b.url}/images/fleet.img.zst`, { headers: { range: 'bytes=1000-1999' } });
    assert.equal(part.status, 206);
    assert.deepEqual(Buffer.from(await part.arrayBuffer()), bytes.subarray(1000, 2000));
    // the agent's own download client (src/image/source/fetch.ts) through B, from the start and resumed
    const whole = await openImage(`${b.url}/images/fleet.img.zst`);
    const hash = createHash('sha256');
    for await (const c of whole.body) hash.update(c as Buffer);
    assert.equal(hash.digest('hex'), sha256);
    assert.equal(whole.sha256, sha256, 'the sha256 the agent checks against');
    assert.equal(whole.imageSize, 5 << 20);
    const resumed = await openImage(`${b.url}/images/fleet.img.zst`, { start: bytes.length - 4096, ifRange: whole.etag });
    const tail: Buffer[] = [];
    for await (const c of resumed.body) tail.push(c as Buffer);
    assert.equal(resumed.rangeStart, bytes.length - 4096);
    assert.deepEqual(Buffer.concat(tail), bytes.subarray(bytes.length - 4096));
  });

  it('an image name another replica holds: B refuses an upload under it and its deletion; deleted through A it leaves the catalog', async () => {
    const put = await fetch(`${b.url}/images/fleet.img.zst?overwrite=1&force=1`, { method: 'PUT', headers: { authorization: `Bearer ${token}` }, body: Buffer.from('other bytes') });
    assert.equal(put.status, 409);
    assert.match(await put.text(), new RegExp(`held by replica ${a.url.replace(/[.:/]/g, '\\$&')}`));
    const delB = await op(b.url, '/api/images/fleet.img.zst', { method: 'DELETE' });
    assert.equal(delB.status, 409);
    assert.match(await delB.text(), /held by replica .*delete it through that replica/);
    assert.equal((await op(a.url, '/api/images/fleet.img.zst', { method: 'DELETE' })).status, 200);
    const listed = (await (await op(b.url, '/api/images')).json() as { images: { name: string }[] }).images;
    assert.deepEqual(listed.filter((i) => i.name === 'fleet.img.zst'), []);
    assert.equal((await fetch(`${b.url}/images/fleet.img.zst`, { redirect: 'manual' })).status, 404);
  });

  it('the same image copied by hand onto both replicas is listed once and served where it is; deleted on its holder, the other copy takes the name', async () => {
    const bytes = randomBytes(256 << 10);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    type Listed = { name: string; sha256?: string; heldBy?: string };
    const listOf = async (url: string) => (await (await op(url, '/api/images')).json() as { images: Listed[] }).images.filter((i) => i.name === 'copied.img');
    const until = async (what: string, ok: () => Promise<boolean>) => {
      for (let i = 0; i < 200 && !await ok(); i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(await ok(), what);
    };
    await writeFile(join(a.dataDir, 'images', 'copied.img'), bytes);
    assert.equal((await op(a.url, '/api/reload', { method: 'POST' })).status, 200);
    await until('A hashed its copy and B lists it as held by A', async () => (await listOf(b.url))[0]?.heldBy === a.url);
    await writeFile(join(b.dataDir, 'images', 'copied.img'), bytes);
    assert.equal((await op(b.url, '/api/reload', { method: 'POST' })).status, 200);
    await until('B hashed its own copy', async () => (await listOf(b.url))[0]?.sha256 === sha256);
    assert.deepEqual((await listOf(a.url)).map((i) => i.heldBy), [a.url], 'one entry, no conflict');
    assert.equal((await fetch(`${b.url}/images/copied.img`, { redirect: 'manual' })).status, 200, 'B serves its own copy');
    assert.ok(!b.stderr().includes('not listed from here'), 'the same sha256 is not reported as a conflict');
    assert.equal((await op(a.url, '/api/images/copied.img', { method: 'DELETE' })).status, 200);
    await until("A lists B's copy once A's is gone", async () => (await listOf(a.url))[0]?.heldBy === b.url);
    const moved = await fetch(`${a.url}/images/copied.img`, { redirect: 'manual' });
    assert.equal(moved.status, 307);
    assert.equal(moved.headers.get('location'), `${b.url}/images/copied.img`);
    assert.deepEqual(Buffer.from(await (await fetch(`${a.url}/images/copied.img`)).arrayBuffer()), bytes);
  });

  it('the server secret is shared through the database: a replica without DIR/secret takes it; one with another secret refuses to start', async () => {
    const dirC = await mkdtemp(join(tmpdir(), 'booty-replica-c-'));
    const dirD = await mkdtemp(join(tmpdir(), 'booty-replica-d-'));
    dirs.push(dirC, dirD);
    const c = await startBootyServer({ dataDir: dirC, args: ['--database', pg.url('booty')] });
    try {
      assert.equal(await readFile(join(dirC, 'secret'), 'utf8'), await readFile(join(a.dataDir, 'secret'), 'utf8'), "C's DIR/secret is the shared one");
      // an agent credential A hands out is valid on C
      const credential = ((await (await op(a.url, `/api/machines/${MAC}/credential`)).json()) as { credential: string }).credential;
      const post = await fetch(`${c.url}/api/machines/${MAC}/events`, { method: 'POST', headers: { authorization: `Bearer ${credential}`, 'content-type': 'application/json' }, body: '[]' });
      assert.equal(post.status, 200, await post.text());
    } finally { await c.close(); }
    await writeFile(join(dirD, 'secret'), randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
    const refused = await startBootyServer({ dataDir: dirD, args: ['--database', pg.url('booty')] }).then(() => undefined, (e: Error) => e.message);
    assert.ok(refused !== undefined, 'a replica with another secret must not start');
    assert.match(refused, /cannot start: .*secret holds a different secret than the replicas sharing postgres:\/\/.*Move .* away/);
  });

  it('a replica killed with SIGKILL mid-deploy behind haproxy: what the agent got answers for is kept, its reports go on through the other', { skip: skipUnlessPresent(haproxyPresent(), 'haproxy is not installed (scripts/host-deps.sh: haproxy)') }, async () => {
    const mac = '52-54-00-21-77-02';
    assert.equal((await op(a.url, `/api/machines/${mac}/action`, { method: 'PUT', body: { action: 'deploy', image: `${a.url}/images/fleet.img` } })).status, 200);
    const agentToken = ((await (await op(a.url, `/api/machines/${mac}/credential`)).json()) as { credential: string }).credential;
    const lb = await startHaproxy({ backends: [a.url, b.url].map((u) => new URL(u).host) });
    await lb.waitUp();
    const rep = createReporter({ server: lb.url, mac, token: agentToken, batchDelayMs: 10, requestTimeoutMs: 3000, log: { warn: () => {} } });
    try {
      const t = () => new Date().toISOString();
      rep.event({ type: 'phase', time: t(), phase: 'booting' });
      rep.event({ type: 'phase', time: t(), phase: 'writing' });
      rep.event({ type: 'progress', time: t(), phase: 'writing', bytes: 400e6, total: 1e9, rate: 1e8 });
      rep.event({ type: 'log', time: t(), level: 'info', message: 'before the kill' });
      assert.equal(await rep.flush(10_000), true, 'answered');
      // (A logs a request when its response is done: give the log line a moment)
      for (let i = 0; i < 50 && !a.stderr().includes(`/api/machines/${mac}/events`); i++) await new Promise((ok) => setTimeout(ok, 20));
      // haproxy balances round robin: send batches until one went to A (the one to be killed)
      for (let i = 0; i < 10 && !a.stderr().includes(`/api/machines/${mac}/events`); i++) {
        rep.event({ type: 'log', time: t(), level: 'info', message: `before the kill, batch ${i + 2}` });
        assert.equal(await rep.flush(10_000), true);
        for (let j = 0; j < 25 && !a.stderr().includes(`/api/machines/${mac}/events`); j++) await new Promise((ok) => setTimeout(ok, 20));
      }
      assert.ok(a.stderr().includes(`/api/machines/${mac}/events`), 'reports went to A');
      a.child.kill('SIGKILL');
      await new Promise((ok) => a.child.once('exit', ok));
      rep.event({ type: 'progress', time: t(), phase: 'writing', bytes: 1e9, total: 1e9, rate: 1e8 });
      rep.event({ type: 'log', time: t(), level: 'info', message: 'after the kill' });
      rep.event({ type: 'result', time: t(), ok: true, action: 'deploy', bytes: 1e9, seconds: 10 });
      assert.equal(await rep.flush(30_000), true, 'the reporter got through to B');
      // haproxy's own health checks saw A go
      for (let i = 0; i < 50 && !/DOWN/.test((await lb.serverStates())['replicas/r1']); i++) await new Promise((ok) => setTimeout(ok, 100));
      assert.match((await lb.serverStates())['replicas/r1'], /DOWN/, 'haproxy marks the killed replica down');
    } finally {
      await rep.close(1000);
      await lb.stop();
    }
    const runs = (await (await op(b.url, `/api/machines/${mac}/runs`)).json() as { runs: { ok?: boolean; bytes?: number; phases: { phase: string }[] }[] }).runs;
    assert.equal(runs.length, 1, JSON.stringify(runs));
    assert.equal(runs[0].ok, true);
    assert.equal(runs[0].bytes, 1e9);
    assert.deepEqual(runs[0].phases.map((p) => p.phase), ['booting', 'writing', 'done']);
    const log = await (await op(b.url, `/api/machines/${mac}/log`)).text();
    assert.match(log, /before the kill[\s\S]*after the kill[\s\S]*result deploy ok/);
    const served = await (await fetch(`${b.url}/${mac}`)).json() as { booty?: { action: string }; action?: string };
    assert.equal(served.booty?.action ?? served.action, 'none', 'the one-shot deploy is done');
  });
});
