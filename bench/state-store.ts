// The state store's cost per agent report, side by side: what booty server did before the store (node:sqlite
// DatabaseSync, synchronous, run-recorder.ts's statements), the same work through the async
// SqliteStore (src/server/store/sqlite-store.ts), and PostgresStore on a throwaway local cluster
// (test/helpers/postgres.ts; TCP on loopback, one report at a time and 16 at once from two
// store instances, as two replicas would). One "report" = what a phase event costs the recorder:
// a transaction that locks the machine's row, updates its run's phase, adds a log line and saves
// the machine's state. The `recorder` rows run the server's own path instead: MachineStore.record
// with one progress event (what most reports are), on SQLite and on PostgreSQL. Prints reports/s
// per peer (median of --rounds rounds).
//
// Usage: node bench/state-store.ts [--reports 2000] [--rounds 3] [--machines 200]
// As root, or as a user that can run initdb (the cluster runs as `postgres` under root).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openDatabase } from '../src/server/db.ts';
import { inTransaction } from '../src/server/db.ts';
import { PostgresStore } from '../src/server/store/postgres-store.ts';
import { parsePostgresUrl } from '../src/server/store/postgres-url.ts';
import { SqliteStore } from '../src/server/store/sqlite-store.ts';
import type { StateStore } from '../src/server/store/state-store.ts';
import { MachineStore } from '../src/server/machines/machine-store.ts';
import { postgresPresent, startPostgres } from '../test/helpers/postgres.ts';

const { values } = parseArgs({ options: { reports: { type: 'string', default: '2000' }, rounds: { type: 'string', default: '3' }, machines: { type: 'string', default: '200' } } });
const reports = Number(values.reports);
const rounds = Number(values.rounds);
const machines = Number(values.machines);
const macOf = (i: number) => `52-54-00-99-${String(Math.floor((i % machines) / 100)).padStart(2, '0')}-${String(i % 100).padStart(2, '0')}`;
const log = (s: string) => process.stderr.write(s + '\n');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function report(store: StateStore, runIds: Map<string, number>, i: number): Promise<void> {
  const mac = macOf(i);
  const now = new Date().toISOString();
  await store.transaction(async (tx) => {
    await tx.machines.lock(mac, now);
    let id = runIds.get(mac);
    if (id === undefined) { id = (await tx.runs.startOrJoin(mac, now, 'deploy x', 'booting')).id; runIds.set(mac, id); }
    await tx.runs.setPhase(id, 'writing', [{ phase: 'booting', time: now }, { phase: 'writing', time: now }]);
    await tx.logs.add(mac, id, [`${now} phase writing`], Date.now());
    await tx.machines.saveState(mac, JSON.stringify({ mac, phase: 'writing', events: i }), now);
  });
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return reports / (Number(process.hrtime.bigint() - t) / 1e9);
}

const results: { peer: string; perSecond: number[] }[] = [];
const work = mkdtempSync(join(tmpdir(), 'booty-bench-store-'));
const pg = postgresPresent() ? await startPostgres() : undefined;
try {
  for (let r = 0; r < rounds; r++) {
    // before the store: synchronous DatabaseSync, the recorder's statements in one transaction
    {
      const db = openDatabase(join(work, `today-${r}.db`));
      const st = {
        ensure: db.prepare('INSERT INTO machines (mac, created, updated) VALUES (?, ?, ?) ON CONFLICT (mac) DO NOTHING'),
        start: db.prepare("INSERT INTO runs (mac, started, action, phase, phases) VALUES (?, ?, ?, ?, '[]')"),
        phase: db.prepare('UPDATE runs SET phase = ?, phases = ? WHERE id = ?'),
        addLog: db.prepare('INSERT INTO logs (mac, run_id, line, at) VALUES (?, ?, ?, ?)'),
        state: db.prepare('INSERT INTO machines (mac, created, updated, state) VALUES (:mac, :now, :now, :state) ON CONFLICT (mac) DO UPDATE SET state = :state'),
      };
      const runIds = new Map<string, number>();
      const v = await timed(async () => {
        for (let i = 0; i < reports; i++) {
          const mac = macOf(i);
          const now = new Date().toISOString();
          inTransaction(db, () => {
            st.ensure.run(mac, now, now);
            let id = runIds.get(mac);
            if (id === undefined) { id = Number(st.start.run(mac, now, 'deploy x', 'booting').lastInsertRowid); runIds.set(mac, id); }
            st.phase.run('writing', JSON.stringify([{ phase: 'booting', time: now }, { phase: 'writing', time: now }]), id);
            st.addLog.run(mac, id, `${now} phase writing`, Date.now());
            st.state.run({ mac, now, state: JSON.stringify({ mac, phase: 'writing', events: i }) });
          });
        }
      });
      db.close();
      (results.find((x) => x.peer === 'before the store: DatabaseSync (sync)') ?? results[results.push({ peer: 'before the store: DatabaseSync (sync)', perSecond: [] }) - 1]).perSecond.push(v);
    }
    const peers: { peer: string; open: () => Promise<StateStore[]>; concurrent: number }[] = [
      { peer: 'SqliteStore (async)', open: async () => [SqliteStore.open(join(work, `store-${r}.db`))], concurrent: 1 },
    ];
    if (pg !== undefined) {
      await pg.createDatabase(`bench_a_${r}`);
      await pg.createDatabase(`bench_b_${r}`);
      peers.push({ peer: 'PostgresStore, 1 at a time', open: async () => [await PostgresStore.open(parsePostgresUrl(pg.url(`bench_a_${r}`)))], concurrent: 1 });
      peers.push({ peer: 'PostgresStore, 2 replicas x 8 at once', open: async () => Promise.all([0, 1].map(() => PostgresStore.open(parsePostgresUrl(pg.url(`bench_b_${r}`))))), concurrent: 16 });
    }
    // the server's own recorder: a progress report per call
    const recorderPeers: { peer: string; open: () => Promise<StateStore> }[] = [
      { peer: 'recorder: MachineStore.record on SQLite', open: async () => SqliteStore.open(join(work, `rec-${r}.db`)) },
    ];
    if (pg !== undefined) {
      await pg.createDatabase(`bench_r_${r}`);
      recorderPeers.push({ peer: 'recorder: MachineStore.record on PostgreSQL', open: async () => PostgresStore.open(parsePostgresUrl(pg.url(`bench_r_${r}`))) });
    }
    for (const p of recorderPeers) {
      const store = await p.open();
      const dir = join(work, `rec-dir-${r}-${results.length}`);
      const machinesStore = new MachineStore(dir, store);
      await machinesStore.init();
      const v = await timed(async () => {
        for (let i = 0; i < reports; i++) {
          const now = new Date().toISOString();
          await machinesStore.record(macOf(i), [{ type: 'progress', time: now, phase: 'writing', bytes: i * 1e6, total: 8e9, rate: 1e8 }]);
        }
      });
      machinesStore.close();
      await store.close();
      (results.find((x) => x.peer === p.peer) ?? results[results.push({ peer: p.peer, perSecond: [] }) - 1]).perSecond.push(v);
    }
    for (const p of peers) {
      const stores = await p.open();
      const runIds = new Map<string, number>();
      let next = 0;
      const v = await timed(async () => {
        await Promise.all(Array.from({ length: p.concurrent }, async (_, w) => {
          for (let i = next++; i < reports; i = next++) await report(stores[w % stores.length], runIds, i);
        }));
      });
      await Promise.all(stores.map((s) => s.close()));
      (results.find((x) => x.peer === p.peer) ?? results[results.push({ peer: p.peer, perSecond: [] }) - 1]).perSecond.push(v);
    }
    log(`round ${r + 1}/${rounds} done`);
  }
} finally {
  await pg?.stop();
  rmSync(work, { recursive: true, force: true });
}
if (pg === undefined) log('PostgreSQL not installed: its rows are missing (scripts/host-deps.sh)');
process.stdout.write(`| peer | reports/s (median of ${rounds}) | all rounds |\n|---|---:|---|\n`);
for (const r of results) process.stdout.write(`| ${r.peer} | ${Math.round(median(r.perSecond))} | ${r.perSecond.map((x) => Math.round(x)).join(', ')} |\n`);
