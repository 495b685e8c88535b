// booty server as agents see it: actions per MAC (both URL forms, any MAC notation), default
// action, broken action files, and setting actions through the API. Real server process.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { startBootyServer } from '../helpers/booty-server-process.ts';
import type { BootyServerProcess } from '../helpers/booty-server-process.ts';
import { parseAction } from '../../src/config/parse.ts';

async function get(url: string, init: Parameters<typeof request>[1] = {}) {
  const res = await request(url, init);
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) as Record<string, unknown> };
}

describe('booty server: actions', () => {
  let srv: BootyServerProcess;
  before(async () => {
    srv = await startBootyServer({ args: ['--default-action', 'off'] }); // unknown MACs get no action (the inspect default: server-inventory.test.ts)
    await writeFile(join(srv.dataDir, 'machines', '52-54-00-12-34-56.json'), JSON.stringify({
      action: 'writeImage', compressed: true, sourceImage: 'http://10.0.0.1:3000/images/ubuntu.img.gz',
      destinationDevice: '/dev/sda', growPartition: 1, lvmRootName: '/dev/ubuntu-vg/root', dropToShell: false, wipeDevice: false,
    }));
    await writeFile(join(srv.dataDir, 'machines', '52-54-00-00-00-bd.json'), JSON.stringify({ action: 'deploy', image: 'http://h/a', disk: 'sda' }));
  });
  after(async () => { await srv.close(); });

  it('serves the action at /<mac>.bty and /<mac>, in any MAC notation, with BOOTy and booty fields', async () => {
    const forms = ['52-54-00-12-34-56.bty', '52:54:00:12:34:56.bty', '52-54-00-12-34-56', '525400123456', '5254.0012.3456', '52%3A54%3A00%3A12%3A34%3A56.bty', 'booty/52-54-00-12-34-56.bty'];
    const bodies = new Set<string>();
    for (const f of forms) {
      const r = await get(`${srv.url}/${f}`, { headers: { 'user-agent': 'BOOTy-client' } });
      assert.equal(r.status, 200, `${f}: ${r.text}`);
      assert.match(String(r.headers['content-type']), /application\/json/);
      bodies.add(r.text);
    }
    assert.equal(bodies.size, 1, 'every URL form gives the same action');
    const j = JSON.parse([...bodies][0]) as Record<string, unknown>;
    // what an unmodified BOOTy agent reads
    assert.equal(j.action, 'writeImage');
    assert.equal(j.sourceImage, 'http://10.0.0.1:3000/images/ubuntu.img.gz');
    assert.equal(j.destinationDevice, '/dev/sda');
    assert.equal(j.compressed, true);
    assert.equal(j.growPartition, 1);
    assert.equal(j.lvmRootName, '/dev/ubuntu-vg/root');
    // what booty reads
    const a = parseAction(j);
    assert.equal(a.action, 'deploy');
    assert.deepStrictEqual(a.action === 'deploy' && a.grow, { partition: 1, lvmRoot: '/dev/ubuntu-vg/root' });
  });

  it('unknown MAC: 404 with a reason that says what to do', async () => {
    const r = await get(`${srv.url}/aa-bb-cc-dd-ee-01.bty`);
    assert.equal(r.status, 404);
    assert.match(r.text, /no action for aa-bb-cc-dd-ee-01/);
    assert.match(r.text, /machines\/aa-bb-cc-dd-ee-01\.json/);
    assert.equal(r.text.split('\n').filter((l) => l !== '').length, 1, 'the reason fits on one line');
    const notMac = await get(`${srv.url}/not-a-mac.bty`);
    assert.equal(notMac.status, 404);
  });

  it('a broken action file is never served: 500 naming the field', async () => {
    const r = await get(`${srv.url}/52:54:00:00:00:BD.bty`);
    assert.equal(r.status, 500);
    assert.match(r.text, /field \\?"disk\\?" must be an absolute \/dev path/);
    assert.match(r.text, /52-54-00-00-00-bd\.json/);
  });

  it('default.json applies to machines without their own action', async () => {
    await writeFile(join(srv.dataDir, 'default.json'), JSON.stringify({ action: 'none' }));
    try {
      const r = await get(`${srv.url}/aa-bb-cc-dd-ee-02.bty`);
      assert.equal(r.status, 200, r.text);
      assert.equal(parseAction(r.json()).action, 'none');
      // a machine's own file still wins
      assert.equal(parseAction((await get(`${srv.url}/52-54-00-12-34-56.bty`)).json()).action, 'deploy');
    } finally {
      await writeFile(join(srv.dataDir, 'default.json'), '{"action": "none", "typo": 1}');
    }
    const broken = await get(`${srv.url}/aa-bb-cc-dd-ee-02.bty`);
    assert.equal(broken.status, 500);
    assert.match(broken.text, /typo/);
  });

  it('PUT /api/machines/<mac>/action validates, stores, and serves; invalid is 400 naming the field', async () => {
    const mac = 'aa-bb-cc-dd-ee-03';
    const bad = await get(`${srv.url}/api/machines/AA:BB:CC:DD:EE:03/action`, {
      method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ action: 'capture', upload: 'ftp://x/y' }),
    });
    assert.equal(bad.status, 400);
    assert.match(bad.text, /field \\"upload\\" must be an absolute http/);
    await assert.rejects(readFile(join(srv.dataDir, 'machines', `${mac}.json`)), /ENOENT/);

    const good = await get(`${srv.url}/api/machines/AA:BB:CC:DD:EE:03/action`, {
      method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ action: 'readImage', sourceDevice: '/dev/vda', desintationAddress: 'http://h/image' }),
    });
    assert.equal(good.status, 200, good.text);
    const served = await get(`${srv.url}/${mac}.bty`);
    assert.equal(served.json().desintationAddress, 'http://h/image');
    assert.equal(parseAction(served.json()).action, 'capture');
    const list = await get(`${srv.url}/api/machines`);
    const m = (list.json().machines as { mac: string; action?: string; hasOwnAction: boolean }[]).find((x) => x.mac === mac);
    assert.ok(m?.hasOwnAction);
    assert.match(m.action ?? '', /^capture \/dev\/vda -> http:\/\/h\/image/);

    assert.equal((await get(`${srv.url}/api/machines/${mac}/action`, { method: 'DELETE' })).status, 200);
    assert.equal((await get(`${srv.url}/api/machines/${mac}/action`, { method: 'DELETE' })).status, 404);
  });

  it('the token, when set, guards changes but not action fetches', async () => {
    const dir = join(srv.dataDir, 'tokened');
    await mkdir(join(dir, 'machines'), { recursive: true });
    await writeFile(join(dir, 'machines', 'aa-bb-cc-dd-ee-04.json'), '{"action":"shell"}');
    const t = await startBootyServer({ dataDir: dir, args: ['--token', 's3cret'] });
    try {
      assert.equal((await get(`${t.url}/aa-bb-cc-dd-ee-04.bty`)).status, 200);
      const body = JSON.stringify({ action: 'none' });
      assert.equal((await get(`${t.url}/api/machines/aa-bb-cc-dd-ee-04/action`, { method: 'PUT', body })).status, 401);
      assert.equal((await get(`${t.url}/api/machines/aa-bb-cc-dd-ee-04/action`, { method: 'PUT', body, headers: { authorization: 'Bearer wrong' } })).status, 401);
      assert.equal((await get(`${t.url}/api/machines/aa-bb-cc-dd-ee-04/action`, { method: 'PUT', body, headers: { authorization: 'Bearer s3cret', 'content-type': 'application/json' } })).status, 200);
      assert.equal((await get(`${t.url}/images/x`, { method: 'PUT', body: 'abc' })).status, 401);
      assert.equal((await get(`${t.url}/api/machines/aa-bb-cc-dd-ee-04/events`, { method: 'POST', body: '[]' })).status, 401);
    } finally { await t.close(); }
  });

  it('logs each request on stderr as one JSON line (not a TTY)', () => {
    const recs = srv.logRecords().filter((r) => r.msg === 'GET /52-54-00-12-34-56.bty');
    assert.ok(recs.length > 0, srv.stderr());
    const r = recs[0];
    assert.match(String(r.time), /^\d{4}-\d\d-\d\dT/);
    assert.equal(r.level, 'info');
    assert.equal(r.status, 200);
    assert.equal(typeof r.bytes, 'number');
    assert.equal(typeof r.ms, 'number');
    assert.equal(r.remote, '127.0.0.1');
    assert.equal(r.mac, '52-54-00-12-34-56');
    assert.equal(r.action, 'deploy');
    assert.equal(r.from, 'machine');
  });

  it('--log-format human logs each request in one readable line', async () => {
    const h = await startBootyServer({ dataDir: srv.dataDir, args: ['--log-format', 'human'] });
    try {
      assert.equal((await get(`${h.url}/52-54-00-12-34-56.bty`)).status, 200);
      // the record is written when the response closes, which may come after the client has it
      const linesNow = () => h.stderr().split('\n').filter((l) => l.includes('GET /52-54-00-12-34-56.bty'));
      for (let i = 0; i < 100 && linesNow().length === 0; i++) await new Promise((r) => setTimeout(r, 50));
      const lines = linesNow();
      assert.ok(lines.length > 0, h.stderr());
      assert.match(lines[0], /^booty server: GET \/52-54-00-12-34-56\.bty status=200 bytes=\d+ ms=\d+ remote=127\.0\.0\.1 mac=52-54-00-12-34-56 action=deploy from=machine$/);
    } finally { await h.close({ keepData: true }); }
  });
});
