// POST /api/machines/validate and /api/machines/bulk against the real server process: a change
// checked by the API's own rules answers the exact action each machine would be served and
// saves nothing; a bulk change saves all (served at the next fetch, one audit entry per
// machine) or, when one change is refused, none, each refusal named with the server's sentence;
// a failure while saving (the third machine's file cannot be read) rolls back the machines saved
// before it in the same store transaction, their audit entries, and a rewritten action file.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { startBootyServer } from '../helpers/booty-server-process.ts';
import type { BootyServerProcess } from '../helpers/booty-server-process.ts';

const TOKEN = 'bulk-operator-token';
const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };

async function post(srv: BootyServerProcess, path: string, body: unknown) {
  const r = await request(`${srv.url}${path}`, { method: 'POST', headers: auth, body: JSON.stringify(body) });
  const text = await r.body.text();
  return { status: r.statusCode, text, json: JSON.parse(text) as Record<string, any> };
}
async function get(srv: BootyServerProcess, path: string) {
  const r = await request(`${srv.url}${path}`, { headers: auth });
  return { status: r.statusCode, text: await r.body.text() };
}

const macs = ['52-54-00-b1-00-01', '52-54-00-b1-00-02', '52-54-00-b1-00-03'];
const deploy = (i: number) => ({ action: 'deploy', image: 'http://10.0.0.1:3000/images/ubuntu.img', sha256: 'ab'.repeat(32), disk: '/dev/sda', post: { hostname: `web${i + 1}` } });

describe('bulk machine changes (validate, then all or none)', () => {
  let srv: BootyServerProcess;
  before(async () => { srv = await startBootyServer({ args: ['--token', TOKEN] }); });
  after(async () => { await srv?.close(); });

  it('validate answers the served action per machine and saves nothing', async () => {
    const r = await post(srv, '/api/machines/validate', { create: true, changes: macs.map((mac, i) => ({ mac, action: deploy(i), name: `rack1-u${i}` })) });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.ok, true);
    assert.deepEqual(r.json.results.map((x: any) => x.mac), macs);
    assert.equal(r.json.results[1].served.booty.action, 'deploy');
    assert.equal(r.json.results[1].served.booty.post.hostname, 'web2');
    assert.match(r.json.results[0].summary, /^deploy http:\/\/10\.0\.0\.1:3000\/images\/ubuntu\.img -> \/dev\/sda$/);
    assert.equal((await get(srv, `/api/machines/${macs[0]}`)).status, 404, 'validate saved nothing');
  });

  it('a refused change names the machine and the reason; nothing of the batch is saved', async () => {
    const changes = macs.map((mac, i) => ({ mac, action: i === 1 ? { ...deploy(i), disk: 'sda' } : deploy(i) }));
    const v = await post(srv, '/api/machines/validate', { create: true, changes });
    assert.equal(v.json.ok, false);
    assert.equal(v.json.results[0].ok, true);
    assert.equal(v.json.results[1].ok, false);
    assert.match(v.json.results[1].error, /disk/);
    const b = await post(srv, '/api/machines/bulk', { create: true, changes: [...changes, { mac: 'not-a-mac' }] });
    assert.equal(b.status, 400, b.text);
    assert.match(b.json.error, /^2 of 4 changes refused, nothing saved: 52-54-00-b1-00-02: .*disk.*; not-a-mac: "not-a-mac" is not a MAC address/);
    for (const mac of macs) assert.equal((await get(srv, `/api/machines/${mac}`)).status, 404, `${mac} was not saved`);
    const dup = await post(srv, '/api/machines/bulk', { changes: [{ mac: macs[0], persistent: true }, { mac: macs[0].replaceAll('-', ':'), persistent: false }] });
    assert.equal(dup.status, 400);
    assert.match(dup.json.error, /appears twice/);
  });

  it('a bulk change saves every machine, served at its next fetch and audited per machine', async () => {
    const b = await post(srv, '/api/machines/bulk', { create: true, changes: macs.map((mac, i) => ({ mac, action: deploy(i), name: `rack1-u${i}` })) });
    assert.equal(b.status, 200, b.text);
    assert.equal(b.json.saved, 3);
    for (const [i, mac] of macs.entries()) {
      const served = JSON.parse((await get(srv, `/${mac}`)).text) as { booty: { action: string; post: { hostname: string } } };
      assert.equal(served.booty.post.hostname, `web${i + 1}`);
    }
    const again = await post(srv, '/api/machines/bulk', { create: true, changes: [{ mac: macs[0], action: deploy(0) }] });
    assert.equal(again.status, 400);
    assert.match(again.json.error, /already exists/);
    const change = await post(srv, '/api/machines/bulk', { changes: macs.map((mac) => ({ mac, persistent: true, rearm: true })) });
    assert.equal(change.status, 200, change.text);
    assert.equal(change.json.results[2].served.booty.post.hostname, 'web3', 'an unchanged action is shown as served');
    const audit = JSON.parse((await get(srv, `/api/audit?mac=${macs[2]}`)).text) as { entries: { what: string }[] };
    assert.ok(audit.entries.some((e) => /POST \/api\/machines\/bulk \(3 machines\)/.test(e.what)), JSON.stringify(audit));
  });

  it('a failure while saving rolls back the whole change: rows, audit entries and a rewritten action file', async () => {
    const [api, file, broken] = ['52-54-00-b1-00-11', '52-54-00-b1-00-12', '52-54-00-b1-00-13'];
    const fileOf = (mac: string) => join(srv.dataDir, 'machines', `${mac}.json`);
    const original = JSON.stringify(deploy(7), null, 2) + '\n';
    await writeFile(fileOf(file), original);
    assert.equal((await get(srv, `/api/machines/${file}`)).status, 200, 'the file-managed machine is imported');
    // the third machine's action file is a directory: its import fails after the first two are saved
    await mkdir(fileOf(broken));
    let r;
    try {
      r = await post(srv, '/api/machines/bulk', { changes: [{ mac: api, action: deploy(0) }, { mac: file, action: deploy(1) }, { mac: broken, persistent: true }] });
    } finally { await rmdir(fileOf(broken)); }
    assert.equal(r.status, 500, r.text);
    assert.match(r.json.error, /^saving the changes failed \(.*EISDIR.*\); nothing saved: all 3 changes rolled back, try again$/);
    assert.equal((await get(srv, `/api/machines/${api}`)).status, 404, 'the first machine saved in the transaction is rolled back');
    assert.equal(await readFile(fileOf(file), 'utf8'), original, 'the rewritten action file is put back');
    const served = JSON.parse((await get(srv, `/${file}`)).text) as { booty: { post: { hostname: string } } };
    assert.equal(served.booty.post.hostname, 'web8', 'the file-managed machine is served its action from before');
    for (const mac of [api, file]) {
      const audit = JSON.parse((await get(srv, `/api/audit?mac=${mac}`)).text) as { entries: { what: string }[] };
      assert.ok(!audit.entries.some((e) => /bulk/.test(e.what)), `${mac}: no audit entry of a change that was not saved: ${JSON.stringify(audit)}`);
    }
  });

  it('accepts the capture, wipe and none actions the dashboard builds, with disk hints', async () => {
    const r = await post(srv, '/api/machines/validate', { changes: [
      { mac: macs[0], action: { action: 'capture', upload: `${srv.url}/images/${macs[0]}.img`, diskHints: { transport: 'nvme' } }, persistent: false },
      { mac: macs[1], action: { action: 'wipe', method: 'zero', disk: '/dev/sdb' }, rearm: true },
      { mac: macs[2], action: { action: 'none' } },
    ] });
    assert.equal(r.json.ok, true, r.text);
    assert.deepEqual(r.json.results.map((x: any) => x.served.booty.action), ['capture', 'wipe', 'none']);
    assert.equal(r.json.results[0].served.booty.diskHints.transport, 'nvme');
    const bad = await post(srv, '/api/machines/validate', { changes: [{ mac: macs[0], action: { action: 'wipe', method: 'shred' } }] });
    assert.equal(bad.json.ok, false);
    assert.match(bad.json.results[0].error, /method/);
  });

  it('only operators: without a token the routes answer 401', async () => {
    for (const path of ['/api/machines/validate', '/api/machines/bulk']) {
      const r = await request(`${srv.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"changes":[]}' });
      await r.body.dump();
      assert.equal(r.statusCode, 401, path);
    }
  });
});
