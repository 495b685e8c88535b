// Issue 22's attacks on booty server, each tried the way an attacker on the provisioning network
// (or a web page in an operator's browser) would, against real `booty server` processes, and
// each shown to do no harm now:
//   - the credential scraped from /ipxe/<mac> cannot change an action, nor speak for another machine;
//   - a forged result for another MAC is refused and the one-shot deploy survives;
//   - without an operator token (the default), the network can neither change nor read, while
//     agents keep reporting with their credential;
//   - a cross-site text/plain (or foreign-Origin) POST is refused (CSRF), also via a DNS name
//     rebound to 127.0.0.1;
//   - an image that actions deploy cannot be overwritten (409 naming them) unless forced;
//   - logs, runs, the machine list and the live stream are not readable without an operator;
//   - a capture uploads with its machine's credential only to the name its action names;
//   - post.files contents go only to that machine's credential;
//   - named tokens are revocable; the operator token never appears in scripts or logs;
//   - live streams are bounded per operator.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { agentCredentialOf, nonLoopbackAddress, startBootyServer, type BootyServerProcess } from '../helpers/booty-server-process.ts';
import { runBooty } from '../helpers/booty-cli.ts';
import { skipUnlessPresent } from '../helpers/prerequisite.ts';
import { STREAM_LIMITS } from '../../src/server/event-stream.ts';

const OP = 'attack-operator-token-0123456789';
const A = '52-54-00-22-00-0a';
const B = '52-54-00-22-00-0b';
const JSON_TYPE = { 'content-type': 'application/json' };
const NETWORK_ADDRESS = nonLoopbackAddress();

interface Answer { status: number; text: string; json: () => any }

async function call(url: string, init: { method?: string; headers?: Record<string, string>; body?: string; auth?: string } = {}): Promise<Answer> {
  const headers = { ...init.headers, ...(init.auth === undefined ? {} : { authorization: `Bearer ${init.auth}` }) };
  const r = await request(url, { method: (init.method ?? 'GET') as 'GET', headers, body: init.body });
  const text = r.headers['content-type']?.toString().startsWith('text/event-stream') ? (r.body.destroy(), '') : await r.body.text();
  return { status: r.statusCode, text, json: () => JSON.parse(text) };
}

const now = () => new Date().toISOString();
const result = (ok: boolean) => JSON.stringify([{ type: 'result', time: now(), ok, action: 'deploy', bytes: 1, seconds: 1 }]);

let srv: BootyServerProcess;
let imageUrl: string;

before(async () => {
  srv = await startBootyServer({ args: ['--token', OP] });
  imageUrl = `${srv.url}/images/base.img`;
  assert.equal((await call(imageUrl, { method: 'PUT', body: 'the image everyone deploys', auth: OP })).status, 201);
  for (const mac of [A, B]) {
    const put = await call(`${srv.url}/api/machines/${mac}/action`, { method: 'PUT', headers: JSON_TYPE, auth: OP, body: JSON.stringify({ action: 'deploy', image: imageUrl, disk: '/dev/vda' }) });
    assert.equal(put.status, 200, put.text);
  }
});

after(async () => { await srv?.close(); });

/** The agent credential /ipxe/<mac> hands out, as anyone on the network can read it. */
async function scrapeIpxe(mac: string): Promise<string> {
  const script = await call(`${srv.url}/ipxe/${mac}`);
  assert.equal(script.status, 200);
  assert.ok(!script.text.includes(OP), 'the operator token is not in the iPXE script');
  const m = / booty\.token=(\S+)/.exec(script.text);
  assert.ok(m !== null, script.text);
  return m[1];
}

/** What the machine's agent is served now: 'deploy' (BOOTy's form says writeImage) or 'none' once a one-shot is done. */
async function servedAction(mac: string): Promise<{ action: string }> {
  const a = (await call(`${srv.url}/${mac}.bty`, { auth: OP })).json() as { action: string };
  return { action: a.action === 'writeImage' ? 'deploy' : a.action };
}

/** Text the server printed (stderr) once it is there: warnings come just after the listening line. */
async function printed(p: BootyServerProcess, re: RegExp): Promise<void> {
  for (let i = 0; i < 100 && !re.test(p.stderr()); i++) await new Promise((r) => setTimeout(r, 50));
  assert.match(p.stderr(), re);
}

describe('attacks on booty server', () => {
  it('the credential scraped from /ipxe/<mac> cannot change an action, delete an image, or speak for another machine', async () => {
    const scraped = await scrapeIpxe(A);
    const change = await call(`${srv.url}/api/machines/${B}/action`, { method: 'PUT', headers: JSON_TYPE, auth: scraped, body: JSON.stringify({ action: 'wipe' }) });
    assert.equal(change.status, 403, change.text);
    assert.match(change.text, new RegExp(`agent credential of ${A}.*needs an operator token`));
    const own = await call(`${srv.url}/api/machines/${A}/action`, { method: 'PUT', headers: JSON_TYPE, auth: scraped, body: JSON.stringify({ action: 'wipe' }) });
    assert.equal(own.status, 403, 'not even its own machine\'s action');
    assert.equal((await call(`${srv.url}/api/images/base.img`, { method: 'DELETE', auth: scraped })).status, 403);
    assert.equal((await call(`${srv.url}/api/reload`, { method: 'POST', auth: scraped })).status, 403);
    assert.equal((await servedAction(A)).action, 'deploy');
    assert.equal((await servedAction(B)).action, 'deploy');
    // it does speak for its own machine
    const mine = await call(`${srv.url}/api/machines/${A}/events`, { method: 'POST', headers: JSON_TYPE, auth: scraped, body: JSON.stringify({ type: 'phase', time: now(), phase: 'booting' }) });
    assert.equal(mine.status, 200, mine.text);
  });

  it('a forged result for another MAC is refused (403 naming both) and its one-shot deploy survives', async () => {
    const aCredential = await scrapeIpxe(A);
    const forged = await call(`${srv.url}/api/machines/${B}/events`, { method: 'POST', headers: JSON_TYPE, auth: aCredential, body: result(true) });
    assert.equal(forged.status, 403);
    assert.equal(forged.json().error, `this credential is for ${A}, not ${B}`);
    const anonymous = await call(`${srv.url}/api/machines/${B}/events`, { method: 'POST', headers: JSON_TYPE, body: result(true) });
    assert.equal(anonymous.status, 401);
    const madeUp = await call(`${srv.url}/api/machines/${B}/events`, { method: 'POST', headers: JSON_TYPE, auth: `${B}.${'ab'.repeat(32)}`, body: result(true) });
    assert.equal(madeUp.status, 401, 'a credential not made with the server\'s secret');
    assert.equal((await servedAction(B)).action, 'deploy', 'B still gets its deploy');
    assert.match((await call(`${srv.url}/ipxe/${B}`)).text, /^kernel /m, 'and iPXE still boots it');
    // B's own credential consumes it, as before
    const real = await call(`${srv.url}/api/machines/${B}/events`, { method: 'POST', headers: JSON_TYPE, auth: await agentCredentialOf(srv.url, B, OP), body: result(true) });
    assert.equal(real.status, 200, real.text);
    assert.equal((await servedAction(B)).action, 'none');
    assert.equal((await call(`${srv.url}/api/machines/${B}/action`, { method: 'PUT', headers: JSON_TYPE, auth: OP, body: JSON.stringify({ action: 'deploy', image: imageUrl, disk: '/dev/vda' }) })).status, 200);
  });

  it('logs, runs, the machine list, the image catalog and the live stream need an operator', async () => {
    const agent = await scrapeIpxe(A);
    for (const path of ['/api/machines', `/api/machines/${A}`, `/api/machines/${A}/log`, `/api/machines/${A}/runs`, '/api/events/stream', '/api/images', `/api/machines/${B}/credential`]) {
      const none = await call(`${srv.url}${path}`);
      assert.equal(none.status, 401, `${path} without a credential: ${none.text}`);
      assert.ok(!none.text.includes(A), `${path}: the refusal names no machine`);
      assert.equal((await call(`${srv.url}${path}`, { auth: agent })).status, 403, `${path} with an agent credential`);
      assert.equal((await call(`${srv.url}${path}`, { auth: OP })).status, 200, `${path} with the operator token`);
    }
  });

  it('a cross-site POST is refused: text/plain (415) and a foreign Origin (403); nothing changes', async () => {
    const plain = await call(`${srv.url}/api/machines`, { method: 'POST', headers: { 'content-type': 'text/plain' }, auth: OP, body: JSON.stringify({ mac: '52:54:00:22:00:99', action: { action: 'wipe' } }) });
    assert.equal(plain.status, 415, plain.text);
    const form = await call(`${srv.url}/api/machines/${A}/action`, { method: 'PUT', headers: { 'content-type': 'application/x-www-form-urlencoded' }, auth: OP, body: 'action=wipe' });
    assert.equal(form.status, 415);
    const foreign = await call(`${srv.url}/api/reload`, { method: 'POST', headers: { origin: 'https://evil.example' }, auth: OP });
    assert.equal(foreign.status, 403, foreign.text);
    assert.match(foreign.text, /cross-site request refused/);
    const multipart = await call(`${srv.url}/image`, { method: 'POST', headers: { origin: 'null', 'content-type': 'multipart/form-data; boundary=b' }, auth: OP, body: '--b--\r\n' });
    assert.equal(multipart.status, 403);
    assert.equal((await call(`${srv.url}/api/machines/52-54-00-22-00-99`, { auth: OP })).status, 404, 'no machine was made');
    assert.equal((await servedAction(A)).action, 'deploy');
    // the server's own pages may (same Origin)
    const own = await call(`${srv.url}/api/reload`, { method: 'POST', headers: { origin: srv.url }, auth: OP });
    assert.equal(own.status, 200, own.text);
  });

  it('an image that actions deploy cannot be overwritten (409 naming them) unless forced', async () => {
    const before = createHash('sha256').update(await readFile(join(srv.dataDir, 'images', 'base.img'))).digest('hex');
    const put = await call(`${imageUrl}?overwrite=1`, { method: 'PUT', auth: OP, body: 'a different image' });
    assert.equal(put.status, 409, put.text);
    assert.match(put.json().error, new RegExp(`deployed by the action of .*${A}.*${B}.*\\?force=1`));
    const session = await call(`${srv.url}/api/uploads`, { method: 'POST', headers: JSON_TYPE, auth: OP, body: JSON.stringify({ name: 'base.img', overwrite: true }) });
    assert.equal(session.status, 409, 'nor through a resumable upload');
    const twoStep = await call(`${imageUrl}?overwrite=1&upload=x1`, { method: 'PUT', auth: OP, body: 'a different image' });
    assert.equal(twoStep.status, 409, 'nor in two steps');
    assert.equal(createHash('sha256').update(await readFile(join(srv.dataDir, 'images', 'base.img'))).digest('hex'), before, 'the image is unchanged');
    // an agent cannot force, and uploads only what its capture action names
    const agent = await scrapeIpxe(A);
    const byAgent = await call(`${imageUrl}?overwrite=1&force=1`, { method: 'PUT', auth: agent, body: 'x' });
    assert.equal(byAgent.status, 403, byAgent.text);
    assert.match(byAgent.json().error, /does not capture into "base\.img"/);
    const forced = await call(`${srv.url}/images/base.img?overwrite=1&force=1`, { method: 'PUT', auth: OP, body: 'the image everyone deploys' });
    assert.equal(forced.status, 201, forced.text);
  });

  it('a rootfs tarball that a deploy-rootfs action names is in use like an image: not overwritten, not deleted', async () => {
    const R = '52-54-00-22-00-0e';
    const tarUrl = `${srv.url}/images/rootfs.tar.zst`;
    assert.equal((await call(tarUrl, { method: 'PUT', body: 'a rootfs tarball', auth: OP })).status, 201);
    const set = await call(`${srv.url}/api/machines/${R}/action`, { method: 'PUT', headers: JSON_TYPE, auth: OP, body: JSON.stringify({ action: 'deploy-rootfs', rootfs: tarUrl, disk: '/dev/vda' }) });
    assert.ok(set.status < 300, set.text);
    const put = await call(`${tarUrl}?overwrite=1`, { method: 'PUT', auth: OP, body: 'another tarball' });
    assert.equal(put.status, 409, put.text);
    assert.match(put.json().error, new RegExp(`deployed by the action of ${R}`));
    const del = await call(`${srv.url}/api/images/rootfs.tar.zst`, { method: 'DELETE', auth: OP });
    assert.equal(del.status, 409, del.text);
    assert.match(del.json().error, new RegExp(`used by the action of ${R}`));
  });

  it('a capture uploads with its machine credential to the name its action names, and nowhere else', async () => {
    const D = '52-54-00-22-00-0d';
    const target = `${srv.url}/images/capture-of-d.img`;
    assert.equal((await call(`${srv.url}/api/machines/${D}/action`, { method: 'PUT', headers: JSON_TYPE, auth: OP, body: JSON.stringify({ action: 'capture', upload: target, disk: '/dev/vda' }) })).status, 200);
    const disk = join(srv.dataDir, 'disk-of-d.raw');
    await writeFile(disk, randomBytes(300_000));
    const credential = await scrapeIpxe(D);
    // another machine's credential: refused before a byte is stored
    const stranger = await runBooty(['capture', '--disk', disk, '--upload', target, '--format', 'raw', '--token', await scrapeIpxe(A), '-q']);
    assert.notEqual(stranger.status, 0);
    assert.match(stranger.err, /403.*does not capture into "capture-of-d\.img"/);
    // its own credential, elsewhere: refused
    const elsewhere = await runBooty(['capture', '--disk', disk, '--upload', `${srv.url}/images/other.img`, '--format', 'raw', '--token', credential, '-q']);
    assert.notEqual(elsewhere.status, 0);
    assert.match(elsewhere.err, /403/);
    // its own credential, its own target: stored (resumable upload in parts), and the catalog says whose
    const own = await runBooty(['capture', '--disk', disk, '--upload', target, '--format', 'raw', '--token', credential, '-q']);
    assert.equal(own.status, 0, own.err);
    assert.ok((await readFile(join(srv.dataDir, 'images', 'capture-of-d.img'))).equals(await readFile(disk)));
    const meta = JSON.parse(await readFile(join(srv.dataDir, 'images', '.meta', 'capture-of-d.img.json'), 'utf8')) as { machine?: string; via?: string };
    assert.deepEqual([meta.machine, meta.via], [D, 'parts']);
  });

  it('post.files contents go only to that machine\'s credential (and operators)', async () => {
    const C = '52-54-00-22-00-0c';
    const action = { action: 'deploy', image: imageUrl, disk: '/dev/vda', post: { files: { '/etc/secret': 'hunter2\n' } } };
    assert.equal((await call(`${srv.url}/api/machines/${C}/action`, { method: 'PUT', headers: JSON_TYPE, auth: OP, body: JSON.stringify(action) })).status, 200);
    const anonymous = await call(`${srv.url}/${C}.bty`);
    assert.equal(anonymous.status, 401);
    assert.ok(!anonymous.text.includes('hunter2'));
    assert.match(anonymous.text, /served only with that machine's credential/);
    assert.equal((await call(`${srv.url}/api/machines/${C}/action`, { auth: await scrapeIpxe(A) })).status, 403);
    const own = await call(`${srv.url}/${C}.bty`, { auth: await scrapeIpxe(C) });
    assert.equal(own.status, 200, own.text);
    assert.match(own.text, /hunter2/);
    assert.equal((await call(`${srv.url}/${A}.bty`)).status, 200, 'an action without files stays public');
  });

  it('a DNS name rebound to 127.0.0.1 gets no loopback authority (server without a token)', async () => {
    const open = await startBootyServer();
    try {
      assert.equal((await call(`${open.url}/api/machines`)).status, 200, 'loopback, by its own name: the operator at the console');
      const rebound = await call(`${open.url}/api/machines`, { headers: { host: 'evil.example:3000' } });
      assert.equal(rebound.status, 401, rebound.text);
      await printed(open, /no operator token: .*booty tokens add NAME --data/);
    } finally { await open.close(); }
  });

  it('without an operator token, the network can neither change nor read; the machine\'s credential still reports', { skip: skipUnlessPresent(NETWORK_ADDRESS !== undefined, 'no non-loopback IPv4 address') }, async () => {
    const open = await startBootyServer({ listen: '0.0.0.0:0' });
    try {
      const local = `http://127.0.0.1:${new URL(open.url).port}`;
      const remote = `http://${NETWORK_ADDRESS}:${new URL(open.url).port}`;
      assert.equal((await call(`${local}/api/machines/${B}/action`, { method: 'PUT', headers: JSON_TYPE, body: JSON.stringify({ action: 'deploy', image: `${local}/images/x.img`, disk: '/dev/vda' }) })).status, 200);
      const forged = await call(`${remote}/api/machines/${B}/events`, { method: 'POST', headers: JSON_TYPE, body: result(true) });
      assert.equal(forged.status, 401, forged.text);
      assert.equal((await call(`${remote}/api/machines/${B}/action`, { method: 'PUT', headers: JSON_TYPE, body: JSON.stringify({ action: 'wipe' }) })).status, 401);
      const list = await call(`${remote}/api/machines`);
      assert.equal(list.status, 401);
      assert.match(list.text, /booty tokens add NAME --data DIR/);
      assert.equal((await call(`${remote}/${B}.bty`)).json().action, 'writeImage', 'the one-shot survives; firmware and agents still read');
      const ipxe = await call(`${remote}/ipxe/${B}`);
      const credential = / booty\.token=(\S+)/.exec(ipxe.text)![1];
      const report = await call(`${remote}/api/machines/${B}/events`, { method: 'POST', headers: JSON_TYPE, auth: credential, body: JSON.stringify({ type: 'phase', time: now(), phase: 'writing' }) });
      assert.equal(report.status, 200, report.text);
    } finally { await open.close(); }
  });

  it('--insecure-open keeps the old behaviour, loudly', async () => {
    const lab = await startBootyServer({ args: ['--insecure-open'] });
    try {
      await printed(lab, /WARNING: --insecure-open: ANYONE/);
      const r = await call(`${lab.url}/api/machines`, { headers: { host: 'anyone.example' } });
      assert.equal(r.status, 200);
    } finally { await lab.close(); }
  });

  it('named tokens: made once, stored hashed, listed without the token, revoked at once; the operator token is in no log', async () => {
    const made = await runBooty(['tokens', 'add', 'alice', '--data', srv.dataDir]);
    assert.equal(made.status, 0, made.err);
    const alice = made.out.trim();
    assert.match(alice, /^booty-op-[A-Za-z0-9_-]{43}$/);
    assert.equal((await call(`${srv.url}/api/machines`, { auth: alice })).status, 200);
    const db = await readFile(join(srv.dataDir, 'booty.db'));
    assert.ok(!db.includes(alice), 'the database holds no clear token');
    const list = await runBooty(['tokens', 'list', '--data', srv.dataDir]);
    assert.match(list.out, /^alice /m);
    assert.ok(!list.out.includes(alice));
    assert.equal((await runBooty(['tokens', 'add', 'alice', '--data', srv.dataDir])).status, 2, 'a name is used once');
    assert.equal((await runBooty(['tokens', 'revoke', 'alice', '--data', srv.dataDir])).status, 0);
    const revoked = await call(`${srv.url}/api/machines`, { auth: alice });
    assert.equal(revoked.status, 401);
    assert.match(revoked.text, /not an operator token of this server/);
    assert.ok(!srv.stderr().includes(OP) && !srv.stdout().includes(OP), 'the operator token is never logged');
    assert.equal((await stat(join(srv.dataDir, 'secret'))).mode & 0o777, 0o600, 'the server secret is private');
  });

  it('live streams are bounded per operator (429) and free again when closed', async () => {
    const streams = [];
    try {
      for (let i = 0; i < STREAM_LIMITS.perOperator; i++) {
        const r = await request(`${srv.url}/api/events/stream`, { headers: { authorization: `Bearer ${OP}` } });
        assert.equal(r.statusCode, 200);
        streams.push(r);
      }
      const over = await call(`${srv.url}/api/events/stream`, { auth: OP });
      assert.equal(over.status, 429, over.text);
    } finally { for (const s of streams) s.body.destroy(); }
    for (let i = 0; ; i++) {
      const again = await request(`${srv.url}/api/events/stream`, { headers: { authorization: `Bearer ${OP}` } });
      again.body.destroy();
      if (again.statusCode === 200) break;
      assert.ok(i < 50, `a stream slot never came free (${again.statusCode})`);
      await new Promise((r) => setTimeout(r, 100));
    }
  });
});
