// Machines' logs are pruned (src/server/machines/run-recorder.ts): lines received longer ago
// than the age limit go, recent ones stay; a machine over the size limit loses its oldest lines
// until its log fits, others are untouched. A real SQLite database (node:sqlite) in a temp dir,
// through the state store (SqliteStore), the recorder's clock moved by hand. Also: a database from before the `at` column gets it.
import { after, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import type { AgentEvent } from '../../src/config/report.ts';
import { openDatabase } from '../../src/server/db.ts';
import { MachineStore } from '../../src/server/machines/machine-store.ts';
import { SqliteStore } from '../../src/server/store/sqlite-store.ts';

const DAY = 24 * 3600 * 1000;
const A = '52-54-00-00-00-0a';
const B = '52-54-00-00-00-0b';
const dirs: string[] = [];

after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

let clock = 0;
async function store(): Promise<{ machines: MachineStore; db: SqliteStore }> {
  const dir = mkdtempSync(join(tmpdir(), 'booty-log-retention-'));
  dirs.push(dir);
  const db = SqliteStore.open(join(dir, 'booty.db'));
  const machines = new MachineStore(dir, db, { now: () => clock });
  await machines.init();
  return { machines, db };
}

const log = (message: string): AgentEvent => ({ type: 'log', time: new Date(clock).toISOString(), level: 'info', message });

describe('machine log retention', () => {
  beforeEach(() => { clock = Date.parse('2026-01-01T00:00:00Z'); });

  it('deletes lines older than the age limit and keeps recent ones', async () => {
    const { machines, db } = await store();
    await machines.record(A, [log('old 1'), log('old 2')]);
    await machines.record(B, [log('old b')]);
    clock += 31 * DAY;
    await machines.record(A, [log('recent 1')]);
    clock += 1 * DAY;
    await machines.record(A, [log('recent 2')]);
    const gone = await machines.recorder.pruneLogs({ maxAgeMs: 30 * DAY });
    assert.deepEqual(gone, { byAge: 3, bySize: 0 });
    assert.deepEqual((await machines.recorder.log(A)).map((l) => l.replace(/^\S+ info /, '')), ['recent 1', 'recent 2']);
    assert.deepEqual(await machines.recorder.log(B), []);
    // what the dashboard shows follows
    assert.deepEqual((await machines.summary(A))?.recentLog.map((l) => l.replace(/^\S+ info /, '')), ['recent 1', 'recent 2']);
    // runs are history, not log: they stay
    assert.equal((await machines.recorder.runs(A)).length, 1);
    assert.equal((await machines.recorder.runs(B)).length, 1);
    await db.close();
  });

  it('cuts a machine over the size limit to its newest lines, leaves the others', async () => {
    const { machines, db } = await store();
    const line = 'x'.repeat(1000);
    for (let i = 0; i < 100; i++) await machines.record(A, [log(`${i} ${line}`)]);
    await machines.record(B, [log('small')]);
    const sizeOf = async (mac: string) => (await machines.recorder.log(mac)).reduce((n, l) => n + Buffer.byteLength(l), 0);
    const before = await sizeOf(A);
    const gone = await machines.recorder.pruneLogs({ maxBytesPerMachine: 20_000 });
    const kept = await machines.recorder.log(A);
    const size = await sizeOf(A);
    assert.ok(size <= 20_000 && size > 20_000 - 1100, `kept ${size} of ${before} bytes`);
    assert.equal(gone.bySize, 100 - kept.length);
    assert.match(kept.at(-1)!, /info 99 x/, 'the newest line stays');
    assert.match(kept[0], new RegExp(`info ${100 - kept.length} x`), 'what stays is the newest, in order');
    assert.equal((await machines.recorder.log(B)).length, 1);
    assert.deepEqual(await machines.recorder.pruneLogs({ maxBytesPerMachine: 20_000 }), { byAge: 0, bySize: 0 }, 'a second pass has nothing to do');
    await db.close();
  });

  it('limits of 0 (or none) keep everything', async () => {
    const { machines, db } = await store();
    await machines.record(A, [log('old')]);
    clock += 400 * DAY;
    assert.deepEqual(await machines.recorder.pruneLogs({ maxAgeMs: 0, maxBytesPerMachine: 0 }), { byAge: 0, bySize: 0 });
    assert.deepEqual(await machines.recorder.pruneLogs({}), { byAge: 0, bySize: 0 });
    assert.equal((await machines.recorder.log(A)).length, 1);
    await db.close();
  });

  it('a database from before log times gets the column; its lines count as received at the upgrade', () => {
    const dir = mkdtempSync(join(tmpdir(), 'booty-log-retention-'));
    dirs.push(dir);
    const file = join(dir, 'booty.db');
    const old = new DatabaseSync(file);
    old.exec('CREATE TABLE logs (id INTEGER PRIMARY KEY AUTOINCREMENT, mac TEXT NOT NULL, run_id INTEGER, line TEXT NOT NULL)');
    old.prepare('INSERT INTO logs (mac, run_id, line) VALUES (?, NULL, ?)').run(A, 'a line from before');
    old.close();
    const t0 = Date.now();
    const db = openDatabase(file);
    const row = db.prepare('SELECT line, at FROM logs').get() as { line: string; at: number };
    assert.equal(row.line, 'a line from before');
    assert.ok(row.at >= t0 && row.at <= Date.now(), `at ${row.at}`);
    db.close();
  });
});
