// The audit log against a real booty server: each operator change is recorded with who made it
// (the named token), what (method, path, query), the machine or image, and the machine's
// settings before and after; refused requests, reads and agents' reports are not changes.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { agentCredentialOf, startBootyServer, type BootyServerProcess } from '../helpers/booty-server-process.ts';
import { runBooty } from '../helpers/booty-cli.ts';

const MAC = '52-54-00-22-0a-01';
const JSON_TYPE = { 'content-type': 'application/json' };
let srv: BootyServerProcess;
let alice: string;

async function call(path: string, init: { method?: string; body?: string; auth?: string; headers?: Record<string, string> } = {}) {
  const r = await request(`${srv.url}${path}`, {
    method: (init.method ?? 'GET') as 'GET', body: init.body,
    headers: { ...init.headers, ...(init.auth === undefined ? {} : { authorization: `Bearer ${init.auth}` }) },
  });
  const text = await r.body.text();
  return { status: r.statusCode, text, json: () => JSON.parse(text) };
}

before(async () => {
  srv = await startBootyServer({ args: ['--token', 'unnamed-operator-token'] });
  const made = await runBooty(['tokens', 'add', 'alice', '--data', srv.dataDir]);
  assert.equal(made.status, 0, made.err);
  alice = made.out.trim();
});
after(async () => { await srv?.close(); });

describe('audit log', () => {
  it('records who changed what on a machine, before and after; not refusals, reads or agent reports', async () => {
    const deploy = { action: 'deploy', image: `${srv.url}/images/a.img`, disk: '/dev/vda' };
    assert.equal((await call('/api/machines', { method: 'POST', headers: JSON_TYPE, auth: alice, body: JSON.stringify({ mac: MAC, action: deploy, name: 'rack1' }) })).status, 201);
    assert.equal((await call(`/api/machines/${MAC}/action`, { method: 'PUT', headers: JSON_TYPE, auth: 'unnamed-operator-token', body: JSON.stringify({ action: 'wipe' }) })).status, 200);
    // not changes: a refused one, a read, an agent's report
    assert.equal((await call(`/api/machines/${MAC}/action`, { method: 'PUT', headers: JSON_TYPE, auth: 'wrong', body: '{"action":"none"}' })).status, 401);
    assert.equal((await call(`/api/machines/${MAC}/action`, { method: 'PUT', headers: JSON_TYPE, auth: alice, body: '{"action":"nonsense"}' })).status, 400);
    assert.equal((await call(`/api/machines/${MAC}`, { auth: alice })).status, 200);
    const credential = await agentCredentialOf(srv.url, MAC, alice);
    assert.equal((await call(`/api/machines/${MAC}/events`, { method: 'POST', headers: JSON_TYPE, auth: credential, body: JSON.stringify({ type: 'phase', time: new Date().toISOString(), phase: 'booting' }) })).status, 200);

    const all = await call(`/api/audit?mac=${MAC}`, { auth: alice });
    assert.equal(all.status, 200, all.text);
    const entries = all.json().entries as { who: string; what: string; mac: string; before?: { action?: { action: string } }; after?: { action?: { action: string }; name?: string } }[];
    assert.deepEqual(entries.map((e) => [e.who, e.what]), [
      ['server --token', `PUT /api/machines/${MAC}/action`],
      ['alice', 'POST /api/machines'],
    ]);
    assert.equal(entries[1].mac, MAC);
    assert.equal(entries[1].before, undefined);
    assert.equal(entries[1].after?.action?.action, 'deploy');
    assert.equal(entries[1].after?.name, 'rack1');
    assert.equal(entries[0].before?.action?.action, 'deploy');
    assert.equal(entries[0].after?.action?.action, 'wipe');
  });

  it('records image changes with the query that mattered; GET /api/audit needs an operator', async () => {
    assert.equal((await call('/images/b.img?overwrite=1', { method: 'PUT', auth: alice, body: 'bytes' })).status, 201);
    assert.equal((await call('/api/images/b.img', { method: 'DELETE', auth: alice })).status, 200);
    const { entries } = (await call('/api/audit?limit=2', { auth: alice })).json() as { entries: { what: string; image?: string; who: string }[] };
    assert.deepEqual(entries.map((e) => [e.who, e.what, e.image]), [['alice', 'DELETE /api/images/b.img', 'b.img'], ['alice', 'PUT /images/b.img?overwrite=1', 'b.img']]);
    assert.equal((await call('/api/audit')).status, 401);
    assert.equal((await call('/api/audit', { auth: await agentCredentialOf(srv.url, MAC, alice) })).status, 403);
  });
});
