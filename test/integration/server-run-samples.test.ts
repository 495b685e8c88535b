// What the machine page's charts read, against the real booty server: a run's progress samples
// (GET /api/machines/<mac>/runs/<id>/samples: at most one a second, the result's byte count
// last, kept over a restart, gone with `rm --history`, 404 for another machine's run) and the
// dry run of a machine change (PUT /api/machines/<mac>?dryRun=1: the verdict of the same rules
// as the change, nothing changed, nothing audited).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { request } from 'undici';
import { startBootyServer } from '../helpers/booty-server-process.ts';
import type { BootyServerProcess } from '../helpers/booty-server-process.ts';
import type { AgentEvent } from '../../src/config/report.ts';

async function call(url: string, init: Parameters<typeof request>[1] = {}) {
  const res = await request(url, init);
  const text = await res.body.text();
  return { status: res.statusCode, text, json: () => JSON.parse(text) as Record<string, any> };
}
const json = (method: 'PUT' | 'POST', body: unknown) => ({ method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

const T0 = Date.parse('2026-12-06T09:00:00Z');
const at = (ms: number) => new Date(T0 + ms).toISOString();

describe('booty server: run samples and dry runs', () => {
  let dataDir: string;
  let srv: BootyServerProcess;
  const mac = '52-54-00-ab-00-01';
  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'booty-samples-'));
    srv = await startBootyServer({ dataDir });
  });
  after(async () => { await srv.close(); await rm(dataDir, { recursive: true, force: true }); });

  it('keeps a run\'s progress at most once a second, its result\'s bytes last, over a restart', async () => {
    const events: AgentEvent[] = [{ type: 'phase', time: at(0), phase: 'booting' }, { type: 'phase', time: at(1000), phase: 'writing' }];
    // a report every 400 ms for 6 s, then the result 300 ms after the last
    for (let ms = 1400; ms <= 7400; ms += 400) events.push({ type: 'progress', time: at(ms), phase: 'writing', bytes: (ms - 1000) * 1000, wireBytes: (ms - 1000) * 400, total: 6_700_000, rate: 1e6 });
    events.push({ type: 'result', time: at(7700), ok: true, action: 'deploy', bytes: 6_700_000, seconds: 6.7 });
    // in batches of three, as a reporter would send them
    for (let i = 0; i < events.length; i += 3) assert.equal((await call(`${srv.url}/api/machines/${mac}/events`, json('POST', events.slice(i, i + 3)))).status, 200);
    const run = (await call(`${srv.url}/api/machines/${mac}/runs`)).json().runs[0];
    const answer = (await call(`${srv.url}/api/machines/${mac}/runs/${run.id}/samples`)).json();
    assert.equal(answer.run, run.id);
    assert.equal(answer.resolutionSeconds, 1);
    const times = answer.samples.map((s: { time: string }) => Date.parse(s.time) - T0);
    const gaps = times.slice(1).map((t: number, i: number) => t - times[i]);
    assert.ok(gaps.slice(0, -1).every((g: number) => g >= 1000), `kept samples at least 1 s apart: ${times.join(', ')}`);
    assert.ok(answer.samples.length >= 6 && answer.samples.length <= 8, `${answer.samples.length} samples of 16 reports`);
    assert.deepEqual(answer.samples.at(-1), { time: at(7700), phase: 'writing', bytes: 6_700_000, total: 6_700_000 });
    assert.equal(answer.samples[0].wireBytes, 160_000);

    await srv.close({ keepData: true });
    srv = await startBootyServer({ dataDir });
    assert.deepEqual((await call(`${srv.url}/api/machines/${mac}/runs/${run.id}/samples`)).json(), answer);
  });

  it('answers 404 for another machine\'s run and 400 for a run id that is not one', async () => {
    const run = (await call(`${srv.url}/api/machines/${mac}/runs`)).json().runs[0];
    const other = await call(`${srv.url}/api/machines/52-54-00-ab-00-02/runs/${run.id}/samples`);
    assert.equal(other.status, 404);
    assert.match(other.json().error, new RegExp(`machine 52-54-00-ab-00-02 has no run ${run.id}`));
    for (const id of ['0', 'abc', '1.5', '99999999999999999999']) {
      const bad = await call(`${srv.url}/api/machines/${mac}/runs/${id}/samples`);
      assert.equal(bad.status, 400, id);
      assert.match(bad.json().error, /run id must be a positive whole number/);
    }
    assert.equal((await call(`${srv.url}/api/machines/${mac}/runs/424242/samples`)).status, 404);
  });

  it('a machine removed with its history takes its runs\' samples along', async () => {
    const gone = '52-54-00-ab-00-03';
    await call(`${srv.url}/api/machines/${gone}/events`, json('POST', [{ type: 'phase', time: at(0), phase: 'writing' }, { type: 'progress', time: at(1000), phase: 'writing', bytes: 5, rate: 5 }]));
    const run = (await call(`${srv.url}/api/machines/${gone}/runs`)).json().runs[0];
    assert.equal((await call(`${srv.url}/api/machines/${gone}/runs/${run.id}/samples`)).json().samples.length, 1);
    assert.equal((await call(`${srv.url}/api/machines/${gone}?history=1`, { method: 'DELETE' })).status, 200);
    assert.equal((await call(`${srv.url}/api/machines/${gone}/runs/${run.id}/samples`)).status, 404);
    const db = new DatabaseSync(join(dataDir, 'booty.db'), { readOnly: true });
    try { assert.equal((db.prepare('SELECT COUNT(*) AS n FROM run_samples WHERE run_id = ?').get(run.id) as { n: number }).n, 0); } finally { db.close(); }
  });

  it('a dry run answers the verdict of the change\'s own rules, changes nothing and is not audited', async () => {
    const m = '52-54-00-ab-00-04';
    const action = { action: 'deploy', image: 'http://10.0.0.1:3000/images/u.img', disk: '/dev/vda' };
    assert.equal((await call(`${srv.url}/api/machines/${m}`, json('PUT', { action, name: 'before' }))).status, 200);
    const audit = async () => (await call(`${srv.url}/api/audit?mac=${m}`)).json().entries.length;
    const audited = await audit();

    const ok = await call(`${srv.url}/api/machines/${m}?dryRun=1`, json('PUT', { action: { ...action, disk: '/dev/vdb', sha256: 'AB'.repeat(32) }, name: 'after', persistent: true }));
    assert.equal(ok.status, 200, ok.text);
    const v = ok.json();
    assert.equal(v.ok, true);
    assert.equal(v.name, 'after');
    assert.equal(v.persistent, true);
    assert.equal(v.summary, 'deploy http://10.0.0.1:3000/images/u.img -> /dev/vdb');
    // as an agent gets it: BOOTy's fields and booty's normalized action (sha256 lower-cased)
    assert.equal(v.action.destinationDevice, '/dev/vdb');
    assert.equal(v.action.booty.sha256, 'ab'.repeat(32));
    assert.equal(v.action.booty.after, 'reboot');

    for (const [change, sentence] of [
      [{ action: { ...action, disk: 'sda' } }, 'field "disk" must be an absolute /dev path (e.g. /dev/sda), got "sda"'],
      [{ action: { ...action, sha256: 'xyz' } }, /field "sha256"/],
      [{ name: 'x'.repeat(101) }, 'field "name" must be a string of at most 100 characters'],
      [{ colour: 'red' }, /field "colour" is not a known field/],
    ] as [Record<string, unknown>, string | RegExp][]) {
      const dry = await call(`${srv.url}/api/machines/${m}?dryRun=1`, json('PUT', change));
      const real = await call(`${srv.url}/api/machines/${m}`, json('PUT', change));
      assert.equal(dry.status, 200);
      assert.equal(real.status, 400, real.text);
      assert.deepEqual(dry.json(), { mac: m, dryRun: true, ok: false, error: real.json().error }, 'the same sentence as the change itself');
      if (typeof sentence === 'string') assert.equal(real.json().error, sentence); else assert.match(real.json().error, sentence);
    }
    const after = (await call(`${srv.url}/api/machines/${m}`)).json();
    assert.equal(after.name, 'before');
    assert.equal(after.configuredAction.disk, '/dev/vda');
    assert.equal(after.persistent, false);
    assert.equal(await audit(), audited, 'dry runs (and refused changes) leave no audit entry');
  });
});
