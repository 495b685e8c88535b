// Agent reports: events posted to the real booty server show up in /api/machines, survive a
// restart, and the agent's reporter client (src/report/client.ts) delivers them in batches,
// never throws, and stays bounded while the server is stopped (SIGSTOP) or gone.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { startBootyServer } from '../helpers/booty-server-process.ts';
import type { BootyServerProcess } from '../helpers/booty-server-process.ts';
import { createReporter } from '../../src/report/client.ts';
import { createLogger } from '../../src/util/log.ts';
import type { AgentEvent } from '../../src/config/report.ts';

async function call(url: string, init: Parameters<typeof request>[1] = {}) {
  const res = await request(url, init);
  const text = await res.body.text();
  return { status: res.statusCode, text, json: () => JSON.parse(text) as Record<string, any> };
}
const t = () => new Date().toISOString();

describe('booty server: agent events', () => {
  let dataDir: string;
  let srv: BootyServerProcess;
  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'booty-events-'));
    srv = await startBootyServer({ dataDir });
  });
  after(async () => { await srv.close(); await rm(dataDir, { recursive: true, force: true }); });

  it('events update the machine list and its log', async () => {
    const mac = '52-54-00-aa-00-01';
    const post = (body: unknown) => call(`${srv.url}/api/machines/52:54:00:AA:00:01/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal((await post({ type: 'phase', time: t(), phase: 'booting' })).status, 200);
    const batch: AgentEvent[] = [
      { type: 'phase', time: t(), phase: 'writing', detail: 'http://h/u.img.gz -> /dev/vda' },
      { type: 'log', time: t(), level: 'info', message: 'image is gzip, 1.2 GB' },
      { type: 'progress', time: t(), phase: 'writing', bytes: 1000, total: 4000, rate: 100, etaSeconds: 30 },
      { type: 'progress', time: t(), phase: 'writing', bytes: 3000, total: 4000, rate: 100, etaSeconds: 10 },
    ];
    assert.equal((await post(batch)).status, 200);
    let m = (await call(`${srv.url}/api/machines`)).json().machines.find((x: { mac: string }) => x.mac === mac);
    assert.equal(m.phase, 'writing');
    assert.equal(m.progress.bytes, 3000);
    assert.equal(m.result, undefined);

    assert.equal((await post({ type: 'result', time: t(), ok: false, action: 'deploy', code: 'verify-mismatch', message: 'image checksum mismatch', diskState: 'written-unverified' })).status, 200);
    m = (await call(`${srv.url}/api/machines/${mac}`)).json();
    assert.equal(m.phase, 'failed');
    assert.equal(m.result.code, 'verify-mismatch');
    assert.ok(m.log.some((l: string) => l.endsWith('info image is gzip, 1.2 GB')), m.log.join('\n'));
    assert.ok(m.log.some((l: string) => /result deploy FAILED: verify-mismatch; image checksum mismatch; disk: written-unverified/.test(l)));
    assert.ok(m.log.some((l: string) => l.endsWith('phase writing: http://h/u.img.gz -> /dev/vda')));
    assert.equal((await call(`${srv.url}/api/machines/52-54-00-aa-00-99`)).status, 404);
  });

  it('malformed events are refused with 400 naming the field, and nothing is recorded', async () => {
    const cases: [unknown, RegExp][] = [
      [{ type: 'phase', time: t(), phase: 'dancing' }, /field "phase" must be a known phase/],
      [{ type: 'progress', time: t(), phase: 'writing', bytes: -1, rate: 0 }, /field "bytes" must be a non-negative number/],
      [{ type: 'log', time: t(), level: 'info' }, /field "message" is required/],
      [{ type: 'explode', time: t() }, /field "type" must be one of/],
      [[{ type: 'log', time: t(), level: 'info', message: 'ok' }, { type: 'result', time: t(), action: 'deploy' }], /event 1: field "ok" is required/],
      [{ type: 'log', time: t(), level: 'info', message: 'x', extra: 1 }, /field "extra" is not a known field/],
    ];
    for (const [body, want] of cases) {
      const r = await call(`${srv.url}/api/machines/52-54-00-aa-00-02/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      assert.equal(r.status, 400, r.text);
      assert.match(JSON.parse(r.text).error, want);
    }
    assert.equal((await call(`${srv.url}/api/machines/52-54-00-aa-00-02/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{not json' })).status, 400);
    assert.equal((await call(`${srv.url}/api/machines/not-a-mac/events`, { method: 'POST', body: '[]' })).status, 400);
    assert.equal((await call(`${srv.url}/api/machines/52-54-00-aa-00-02`)).status, 404, 'no state from refused events');
  });

  it('state and log survive a restart', async () => {
    await srv.close({ keepData: true });
    srv = await startBootyServer({ dataDir });
    const m = (await call(`${srv.url}/api/machines/52-54-00-aa-00-01`)).json();
    assert.equal(m.phase, 'failed');
    assert.equal(m.progress.bytes, 3000);
    assert.ok(m.log.some((l: string) => l.endsWith('info image is gzip, 1.2 GB')));
    assert.match((await call(`${srv.url}/api/machines/52-54-00-aa-00-01/log`)).text, /phase booting/);
  });

  it('reporter: batches, coalesces progress, delivers logs and the result', async () => {
    const rep = createReporter({ server: srv.url + '/', mac: '52:54:00:AA:00:03' });
    const log = createLogger({ sinks: [rep.sink] });
    rep.event({ type: 'phase', time: t(), phase: 'writing' });
    for (let i = 1; i <= 2000; i++) rep.event({ type: 'progress', time: t(), phase: 'writing', bytes: i * 1000, total: 2_000_000, rate: 1e6 });
    log.info('wrote 2 MB');
    rep.event({ type: 'result', time: t(), ok: true, action: 'deploy', bytes: 2_000_000, seconds: 2 });
    assert.equal(await rep.flush(10_000), true);
    const s = rep.stats();
    assert.ok(s.coalesced > 1000, `coalesced ${s.coalesced}`);
    assert.equal(s.queued, 0);
    assert.equal(s.dropped, 0);
    await rep.close();
    const m = (await call(`${srv.url}/api/machines/52-54-00-aa-00-03`)).json();
    assert.equal(m.phase, 'done');
    assert.equal(m.progress.bytes, 2_000_000, 'the newest progress survives coalescing');
    assert.ok(m.log.some((l: string) => l.endsWith('info wrote 2 MB')));
    assert.ok(m.events < 50, `sent ${m.events} events for 2003 reported`);
  });

  it('reporter: an event the server refuses costs only itself, not the result or the log around it', async () => {
    const warnings: string[] = [];
    const rep = createReporter({ server: srv.url, mac: '52-54-00-aa-00-06', batchDelayMs: 50, log: { warn: (m) => warnings.push(m) } });
    rep.event({ type: 'log', time: t(), level: 'info', message: 'before the odd one' });
    // what a newer agent may send to an older server: a field this server does not know
    rep.event({ type: 'log', time: t(), level: 'info', message: 'odd', fromTheFuture: 1 } as never);
    rep.event({ type: 'log', time: t(), level: 'info', message: 'after the odd one' });
    rep.event({ type: 'result', time: t(), ok: true, action: 'deploy', bytes: 1000, seconds: 1 });
    assert.equal(await rep.flush(10_000), true);
    assert.equal(rep.stats().dropped, 1);
    await rep.close();
    assert.ok(warnings.some((w) => /refused an event \(.*event 1: field "fromTheFuture" is not a known field.*\); it is dropped, the other 3 are sent again/.test(w)), warnings.join('\n'));
    const m = (await call(`${srv.url}/api/machines/52-54-00-aa-00-06`)).json();
    assert.equal(m.phase, 'done', 'the result arrived');
    assert.ok(m.log.some((l: string) => l.endsWith('info before the odd one')) && m.log.some((l: string) => l.endsWith('info after the odd one')), m.log.join('\n'));
    assert.ok(!m.log.some((l: string) => l.endsWith('info odd')));
  });

  it('reporter: bounded and silent while the server is stopped, catches up after', async () => {
    const warnings: string[] = [];
    const rep = createReporter({ server: srv.url, mac: '52-54-00-aa-00-04', maxQueue: 300, requestTimeoutMs: 2000, batchDelayMs: 10, log: { warn: (m) => warnings.push(m) } });
    srv.child.kill('SIGSTOP');
    try {
      rep.event({ type: 'phase', time: t(), phase: 'writing' });
      for (let i = 1; i <= 5000; i++) {
        rep.event({ type: 'progress', time: t(), phase: 'writing', bytes: i, rate: 1 });
        rep.sink('info', `line ${i}`, new Date());
      }
      rep.event({ type: 'phase', time: t(), phase: 'verifying' });
      assert.ok(rep.stats().queued <= 300, `queue ${rep.stats().queued}`);
      assert.ok(rep.stats().dropped > 4000);
      assert.equal(await rep.flush(2500), false, 'cannot deliver to a stopped server');
    } finally {
      srv.child.kill('SIGCONT');
    }
    assert.equal(await rep.flush(20_000), true);
    await rep.close();
    const m = (await call(`${srv.url}/api/machines/52-54-00-aa-00-04?lines=1000`)).json();
    assert.equal(m.phase, 'verifying', 'phase events are never dropped');
    assert.equal(m.progress.bytes, 5000);
    const fullLog = (await call(`${srv.url}/api/machines/52-54-00-aa-00-04/log`)).text;
    assert.match(fullLog, /phase writing\n/);
    assert.ok(m.log.some((l: string) => l.endsWith('info line 5000')));
    assert.match(fullLog, /warn reporter: \d+ events were dropped/, 'the loss is reported');
    assert.ok(warnings.length >= 1 && warnings.length < 10, `warned ${warnings.length} times`);
  });

  it('reporter: a server that is not there never throws into the caller', async () => {
    const gone = await startBootyServer();
    const url = gone.url;
    await gone.close();
    const rep = createReporter({ server: url, mac: '52-54-00-aa-00-05', maxQueue: 50, requestTimeoutMs: 500 });
    for (let i = 0; i < 1000; i++) rep.event({ type: 'log', time: t(), level: 'info', message: 'x'.repeat(100_000) });
    rep.sink('error', 'y'.repeat(100_000), new Date());
    assert.ok(rep.stats().queued <= 50);
    assert.equal(await rep.flush(1000), false);
    await rep.close(200);
    rep.event({ type: 'phase', time: t(), phase: 'done' }); // after close: ignored, no throw
    assert.ok(rep.stats().failedRequests >= 1);
  });
});
