// `booty server --machine-log-mib` reaches the run recorder: a machine's log over the limit is
// cut to its newest lines when the server starts (the pruning itself, by age and size, is
// test/unit/server-log-retention.test.ts). A real server, restarted on the same data directory.
import { after, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBootyServer, type BootyServerProcess } from '../helpers/booty-server-process.ts';

const MAC = '52-54-00-10-90-01';
let dataDir: string;
let server: BootyServerProcess | undefined;

after(async () => {
  await server?.close();
  if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true });
});

it('a machine log over --machine-log-mib keeps its newest lines after a restart', async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'booty-log-retention-'));
  server = await startBootyServer({ dataDir });
  const time = new Date().toISOString();
  const events = Array.from({ length: 50 }, (_, i) => ({ type: 'log', time, level: 'info', message: `line ${i} ${'x'.repeat(100)}` }));
  const posted = await fetch(`${server.url}/api/machines/${MAC}/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(events) });
  assert.equal(posted.status, 200, await posted.text());
  const logOf = async () => (await (await fetch(`${server!.url}/api/machines/${MAC}/log`)).text()).split('\n').filter((l) => l !== '');
  assert.equal((await logOf()).length, 50);
  await server.close();
  // 0.002 MiB = 2097 bytes: about 14 of these lines
  server = await startBootyServer({ dataDir, args: ['--machine-log-mib', '0.002'] });
  const kept = await logOf();
  assert.ok(kept.length > 5 && kept.length < 50, `${kept.length} lines kept`);
  assert.ok(kept.reduce((n, l) => n + Buffer.byteLength(l), 0) <= 2097);
  assert.match(kept.at(-1)!, /line 49 x/, 'the newest line stays');
  assert.ok(server.logRecords().some((r) => r.msg === 'machine logs pruned'), 'the server says it pruned');
});
