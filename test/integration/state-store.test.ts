// The state store (src/server/store/): ONE suite run against both backends, SQLite (booty.db in
// a temp dir) and PostgreSQL (a throwaway cluster, test/helpers/postgres.ts), then what only
// replicas can show: two or three store instances on one PostgreSQL database, racing.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { openDatabase } from '../../src/server/db.ts';
import { relayChanges } from '../../src/server/machines/change-relay.ts';
import { MachineChanges } from '../../src/server/machines/changes.ts';
import { MachineStore } from '../../src/server/machines/machine-store.ts';
import { RunSamples } from '../../src/server/machines/run-samples.ts';
import type { AgentEvent } from '../../src/config/report.ts';
import type { MachineChange } from '../../src/server/machines/changes.ts';
import { LATEST_SCHEMA } from '../../src/server/store/migrations.ts';
import { openStateStore } from '../../src/server/store/open-store.ts';
import { PostgresStore } from '../../src/server/store/postgres-store.ts';
import { parsePostgresUrl } from '../../src/server/store/postgres-url.ts';
import { SqliteStore } from '../../src/server/store/sqlite-store.ts';
import type { StateStore, StoreTx } from '../../src/server/store/state-store.ts';
import { postgresPresent, startPostgres } from '../helpers/postgres.ts';
import type { TestPostgres } from '../helpers/postgres.ts';
import { skipUnlessPresent } from '../helpers/prerequisite.ts';

const pgSkip = skipUnlessPresent(postgresPresent(), 'PostgreSQL is not installed (scripts/host-deps.sh: postgresql)');
let pg: TestPostgres | undefined;
let dbCount = 0;
const tempDirs: string[] = [];

before(async () => { if (pgSkip === false) pg = await startPostgres(); });
after(async () => {
  await pg?.stop();
  for (const d of tempDirs) await rm(d, { recursive: true, force: true });
});

/** A fresh, empty PostgreSQL database's URL. */
async function freshPgUrl(socket = false): Promise<string> {
  const name = `booty_t${++dbCount}`;
  await pg!.createDatabase(name);
  return socket ? pg!.socketUrl(name) : pg!.url(name);
}

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'booty-store-'));
  tempDirs.push(d);
  return d;
}

interface Backend {
  name: 'sqlite' | 'postgres';
  skip: string | false;
  /** a store on a new, empty database, and how to open a second one on the same database */
  fresh(): Promise<{ store: StateStore; reopen(): Promise<StateStore> }>;
}

const backends: Backend[] = [
  {
    name: 'sqlite', skip: false,
    async fresh() {
      const dir = await tempDir();
      return { store: await openStateStore({ dataDir: dir }), reopen: async () => openStateStore({ dataDir: dir }) };
    },
  },
  {
    name: 'postgres', skip: pgSkip,
    async fresh() {
      const url = await freshPgUrl();
      return { store: await openStateStore({ dataDir: '/nonexistent', database: url }), reopen: async () => openStateStore({ dataDir: '/nonexistent', database: url }) };
    },
  },
];

const T0 = '2026-12-06T10:00:00.000Z';
const T1 = '2026-12-06T10:05:00.000Z';
const T2 = '2026-12-06T10:10:00.000Z';
const mac = (i: number) => `52-54-00-21-${String(Math.floor(i / 100)).padStart(2, '0')}-${String(i % 100).padStart(2, '0')}`;

/** What a replica does with an agent's batch `booting at started, result ok at ended` (the recorder's order). */
async function recordBoot(tx: StoreTx, m: string, started: string, ended: string): Promise<{ runId: number; joined: boolean; consumed: boolean }> {
  await tx.machines.lock(m, ended);
  const run = await tx.runs.startOrJoin(m, started, 'deploy x.img', 'booting');
  await tx.runs.setPhase(run.id, 'writing', [{ phase: 'booting', time: started }, { phase: 'writing', time: started }]);
  await tx.runs.setResult(run.id, { ended, ok: true, resultAction: 'deploy', phase: 'done', phases: [{ phase: 'done', time: ended }], bytes: 1000, seconds: 12 });
  await tx.logs.add(m, run.id, [`${ended} result deploy ok`], Date.parse(ended));
  const consumed = await tx.machines.consumeOneShot(m, ended, ended);
  await tx.machines.saveState(m, JSON.stringify({ mac: m, phase: 'done', events: 3 }), ended);
  return { runId: run.id, joined: run.joined, consumed };
}

for (const b of backends) {
  describe(`state store on ${b.name}`, { skip: b.skip }, () => {
    let store: StateStore;
    let reopen: () => Promise<StateStore>;
    before(async () => { ({ store, reopen } = await b.fresh()); });
    after(async () => { await store?.close(); });

    it('is at the newest schema version, and opening it again migrates nothing', async () => {
      assert.equal(store.kind, b.name);
      assert.equal(await store.schemaVersion(), LATEST_SCHEMA);
      await store.machines.save({ mac: mac(900), persistent: false, created: T0, updated: T0 });
      const again = await reopen();
      try {
        assert.equal(await again.schemaVersion(), LATEST_SCHEMA);
        assert.equal((await again.machines.get(mac(900)))?.created, T0, 'data survives a second open');
      } finally { await again.close(); }
    });

    it('machines: save, get, list, remove; absent fields stay absent', async () => {
      const m = mac(1);
      assert.equal(await store.machines.get(m), undefined);
      await store.machines.save({ mac: m, name: 'rack1-a', action: '{"action":"deploy"}', managedBy: 'api', persistent: true, created: T0, updated: T0 });
      assert.deepEqual(await store.machines.get(m), {
        mac: m, name: 'rack1-a', action: '{"action":"deploy"}', managedBy: 'api', actionError: undefined, fileSig: undefined,
        persistent: true, oneShotDone: undefined, created: T0, updated: T0,
      });
      await store.machines.save({ mac: m, managedBy: 'file', fileSig: '1:2:3', actionError: 'bad', persistent: false, created: T1, updated: T1 });
      const r = await store.machines.get(m);
      assert.equal(r?.name, undefined);
      assert.equal(r?.created, T0, 'created is kept on update');
      assert.equal(r?.updated, T1);
      assert.equal(r?.persistent, false);
      assert.ok((await store.machines.list()).some((x) => x.mac === m));
      assert.equal(await store.machines.remove(m), true);
      assert.equal(await store.machines.remove(m), false);
      assert.equal(await store.machines.get(m), undefined);
    });

    it('a one-shot action is consumed once; persistent machines never; rearm runs it again', async () => {
      const m = mac(2);
      assert.equal(await store.machines.consumeOneShot(m, T1, T1), true, 'a machine without a row (default action) gets one');
      assert.equal((await store.machines.get(m))?.oneShotDone, T1);
      assert.equal(await store.machines.consumeOneShot(m, T2, T2), false, 'already consumed');
      assert.equal((await store.machines.get(m))?.oneShotDone, T1, 'the first time stays');
      assert.equal(await store.machines.rearm(m, T2), true);
      assert.equal(await store.machines.rearm(m, T2), false, 'nothing to rearm');
      assert.equal(await store.machines.consumeOneShot(m, T2, T2), true);
      await store.machines.save({ mac: m, name: 'edited from an older read', persistent: false, created: T0, updated: T2 });
      assert.equal((await store.machines.get(m))?.oneShotDone, T2, 'saving the inventory columns never brings a consumed action back');
      assert.equal(await store.meta.get('x'), undefined);
      await store.meta.set('x', '1');
      await store.meta.set('x', '2');
      assert.equal(await store.meta.get('x'), '2');
      const p = mac(3);
      await store.machines.save({ mac: p, persistent: true, created: T0, updated: T0 });
      assert.equal(await store.machines.consumeOneShot(p, T1, T1), false);
      assert.equal((await store.machines.get(p))?.oneShotDone, undefined);
    });

    it('reported state: saved next to the inventory columns without touching them', async () => {
      const m = mac(4);
      await store.machines.save({ mac: m, name: 'n', persistent: false, created: T0, updated: T0 });
      await store.machines.saveState(m, '{"phase":"writing"}', T1);
      assert.equal(await store.machines.state(m), '{"phase":"writing"}');
      assert.equal((await store.machines.get(m))?.name, 'n');
      await store.machines.saveState(mac(5), '{"phase":"booting"}', T1);
      assert.equal((await store.machines.get(mac(5)))?.created, T1, 'a first report creates the row');
      const states = await store.machines.states();
      assert.ok(states.some((s) => s.mac === m) && states.some((s) => s.mac === mac(5)));
    });

    it('runs: one per boot, a retried boot joins its run, the next boot closes the open one', async () => {
      const m = mac(6);
      const a = await store.transaction((tx) => tx.runs.startOrJoin(m, T0, 'deploy a.img', 'booting'));
      assert.equal(a.joined, false);
      const again = await store.transaction((tx) => tx.runs.startOrJoin(m, T0, 'deploy a.img', 'booting'));
      assert.deepEqual(again, { id: a.id, joined: true });
      await store.runs.setPhase(a.id, 'writing', [{ phase: 'booting', time: T0 }, { phase: 'writing', time: T0 }]);
      await store.runs.setProgress(a.id, { bytes: 5e9, total: 8e9, wireBytes: 2e9, rate: 123456.5 });
      const b = await store.transaction((tx) => tx.runs.startOrJoin(m, T1, 'deploy a.img', 'booting'));
      assert.notEqual(b.id, a.id);
      const first = await store.runs.get(a.id);
      assert.equal(first?.ended, T1, 'the run that never reported a result ends when the next starts');
      assert.equal(first?.ok, undefined);
      assert.equal(first?.bytes, 5e9);
      assert.equal(first?.wireBytes, 2e9);
      assert.equal(first?.rate, 123456.5);
      assert.deepEqual(first?.phases.map((p) => p.phase), ['booting', 'writing']);
      await store.runs.setResult(b.id, { ended: T2, ok: false, code: 'IMAGE_CHECKSUM', error: 'mismatch', diskState: 'unbootable', seconds: 10.5, resultAction: 'deploy', phase: 'failed', phases: [{ phase: 'failed', time: T2 }] });
      const second = await store.runs.get(b.id);
      assert.equal(second?.ok, false);
      assert.equal(second?.bytes, undefined, 'no byte count: none kept');
      assert.equal(second?.code, 'IMAGE_CHECKSUM');
      assert.equal(second?.seconds, 10.5);
      assert.deepEqual((await store.runs.list(m)).map((r) => r.id), [b.id, a.id], 'newest first');
      assert.deepEqual((await store.runs.list(m, 1)).map((r) => r.id), [b.id]);
      assert.equal(await store.runs.latestId(m), b.id);
      assert.equal(await store.runs.latestId(mac(99)), undefined);
      const totals = await store.runs.totals();
      assert.ok(totals.some((t) => t.action === 'deploy' && t.result === 'failed' && t.count === 1 && t.seconds === 10.5));
      assert.ok(totals.some((t) => t.action === 'unknown' && t.result === 'unfinished' && t.bytes === 5e9));
      assert.deepEqual(await store.runs.durations(), [{ action: 'deploy', seconds: 10.5 }]);
      assert.equal(await store.runs.removeFor(m), 2);
      assert.equal(await store.runs.latest(m), undefined);
    });

    it('logs: oldest first, the newest N, per run; pruned by age and by UTF-8 size', async () => {
      const m = mac(7);
      await store.logs.add(m, 1, ['a', 'b'], 1000);
      await store.logs.add(m, 2, ['c', 'dé'], 5000);
      await store.logs.add(m, undefined, ['e'], 9000);
      assert.deepEqual(await store.logs.lines(m), ['a', 'b', 'c', 'dé', 'e']);
      assert.deepEqual(await store.logs.lines(m, { limit: 2 }), ['dé', 'e']);
      assert.deepEqual(await store.logs.lines(m, { run: 2 }), ['c', 'dé']);
      assert.equal(await store.logs.pruneOlderThan(2000), 2);
      assert.deepEqual(await store.logs.lines(m), ['c', 'dé', 'e']);
      // 'dé' is 3 bytes in UTF-8: newest first e(1) + dé(3) = 4 fits, + c = 5 does not
      assert.equal(await store.logs.pruneToSize(4), 1);
      assert.deepEqual(await store.logs.lines(m), ['dé', 'e']);
      assert.equal(await store.logs.removeFor(m), 2);
    });

    it('inventory, operator tokens and the audit log', async () => {
      const m = mac(8);
      await store.inventory.put(m, T0, '{"cpus":2}');
      await store.inventory.put(m, T1, '{"cpus":4}');
      assert.deepEqual(await store.inventory.get(m), { mac: m, received: T1, facts: '{"cpus":4}' });
      assert.equal((await store.inventory.list()).filter((r) => r.mac === m).length, 1);
      assert.equal(await store.inventory.remove(m), true);
      assert.equal(await store.inventory.get(m), undefined);

      assert.equal(await store.tokens.add('ci', 'h1', T0), true);
      assert.equal(await store.tokens.add('ci', 'h2', T1), false, 'a taken name is refused');
      assert.equal(await store.tokens.nameOfHash('h1'), 'ci');
      assert.equal(await store.tokens.nameOfHash('h2'), undefined);
      assert.deepEqual(await store.tokens.list(), [{ name: 'ci', created: T0 }]);
      assert.equal(await store.tokens.revoke('ci'), true);
      assert.equal(await store.tokens.nameOfHash('h1'), undefined);

      const ids = [];
      for (let i = 0; i < 5; i++) ids.push(await store.audit.add({ at: T0, who: 'ci', what: `PUT /api/machines/${m}/action`, status: 200, mac: i % 2 === 0 ? m : undefined, after: `{"i":${i}}` }));
      const newest = await store.audit.list({ limit: 2 });
      assert.deepEqual(newest.map((e) => e.id), [ids[4], ids[3]]);
      assert.deepEqual((await store.audit.list({ limit: 2, beforeId: ids[3] })).map((e) => e.id), [ids[2], ids[1]]);
      assert.deepEqual((await store.audit.list({ mac: m })).map((e) => e.id), [ids[4], ids[2], ids[0]]);
      assert.equal(newest[0].after, '{"i":4}');
      assert.equal(newest[1].mac, undefined);
      assert.equal(await store.audit.trim(2), 3);
      assert.equal((await store.audit.list()).length, 2);
    });

    it('run samples: added, replaced, thinned (first and last stay), read back; gone with the machine\'s runs', async () => {
      const m = mac(12);
      const other = mac(13);
      const run = await store.transaction((tx) => tx.runs.start(m, T0, 'deploy x.img', 'booting'));
      const otherRun = await store.transaction((tx) => tx.runs.start(other, T0, 'deploy x.img', 'booting'));
      const big = 5_000_000_000_000; // past 32 bits: a 5 TB disk's byte count
      await store.transaction(async (tx) => {
        for (let i = 0; i < 7; i++) await tx.runSamples.add(run, { t: Date.parse(T0) + i * 1000, phase: 'writing', bytes: big + i, total: big * 2, wireBytes: i, rate: 1.5, resumes: 0 });
        await tx.runSamples.add(otherRun, { t: Date.parse(T0), bytes: 1 });
      });
      const tail = await store.runSamples.tail(run);
      assert.equal(tail.count, 7);
      assert.equal(tail.resolutionMs, undefined);
      assert.equal(tail.prevT, Date.parse(T0) + 5000);
      assert.deepEqual({ ...tail.last, id: 0 }, { id: 0, t: Date.parse(T0) + 6000, phase: 'writing', bytes: big + 6, total: big * 2, wireBytes: 6, rate: 1.5, resumes: 0, restarts: undefined });
      await store.transaction((tx) => tx.runSamples.replace(tail.last!.id, { t: Date.parse(T0) + 6500, bytes: big + 7 }));
      assert.equal(await store.transaction((tx) => tx.runSamples.thin(run)), 3, 'every second of 7 samples, never the last');
      await store.transaction((tx) => tx.runSamples.setResolution(run, 2000));
      await store.transaction((tx) => tx.runSamples.setResolution(run, 4000));
      assert.equal(await store.runSamples.resolution(run), 4000);
      const kept = await store.runSamples.list(run);
      assert.deepEqual(kept.map((x) => x.t - Date.parse(T0)), [0, 2000, 4000, 6500]);
      assert.deepEqual(kept.at(-1), { t: Date.parse(T0) + 6500, phase: undefined, bytes: big + 7, total: undefined, wireBytes: undefined, rate: undefined, resumes: undefined, restarts: undefined });
      assert.equal(await store.runs.isRunOf(m, run), true);
      assert.equal(await store.runs.isRunOf(other, run), false);
      await store.transaction((tx) => tx.runSamples.removeFor(m));
      assert.deepEqual(await store.runSamples.list(run), []);
      assert.equal(await store.runSamples.resolution(run), undefined);
      assert.equal((await store.runSamples.list(otherRun)).length, 1, "another machine's samples stay");
    });

    it('run samples through the rate and cap rules (RunSamples): a run past the cap halves, its result is the last sample', async () => {
      const samples = new RunSamples(store, { maxPerRun: 20 });
      const m = mac(14);
      const run = await store.transaction((tx) => tx.runs.start(m, T0, 'deploy x.img', 'booting'));
      const at = (ms: number) => new Date(Date.parse(T0) + ms).toISOString();
      await store.transaction(async (tx) => {
        for (let ms = 0; ms <= 60_000; ms += 1000) await samples.progress(tx, run, { type: 'progress', time: at(ms), phase: 'writing', bytes: ms, rate: 1 });
        await samples.result(tx, run, { type: 'result', time: at(60_500), ok: true, action: 'deploy', bytes: 70_000 });
      });
      const { resolutionMs, samples: kept } = await samples.samples(run);
      assert.ok(kept.length <= 20 && kept.length >= 10, `${kept.length} samples`);
      assert.equal(resolutionMs, 4000);
      assert.equal(kept[0].bytes, 0);
      assert.deepEqual(kept.at(-1), { time: at(60_500), phase: 'writing', bytes: 70_000 });
    });

    it('trials: one row per machine, replaced by the next trial, gone with the machine', async () => {
      const m = mac(15);
      assert.equal(await store.trials.get(m), undefined);
      await store.transaction((tx) => tx.trials.put(m, '{"state":"pending","attempt":1}'));
      await store.trials.put(m, '{"state":"failed","attempt":1}');
      assert.equal(await store.trials.get(m), '{"state":"failed","attempt":1}');
      assert.equal(await store.transaction((tx) => tx.trials.remove(m)), 1);
      assert.equal(await store.trials.get(m), undefined);
    });

    it('images: a holder adds and updates its rows; another holder never overwrites or removes them', async () => {
      const row = { name: 'ubuntu.img.zst', size: 1234, sha256: 'ab'.repeat(32), format: 'zstd', uncompressedSize: 5000, storedAt: T0, via: 'put', url: 'http://a:3000/images/ubuntu.img.zst', holder: 'http://a:3000' };
      assert.equal(await store.images.put(row), true);
      assert.deepEqual(await store.images.get(row.name), { ...row, machine: undefined, etag: undefined, infoHash: undefined });
      assert.equal(await store.transaction((tx) => tx.images.put({ ...row, size: 1300, sha256: 'cd'.repeat(32) })), true, 'its holder updates it');
      assert.equal((await store.images.get(row.name))?.size, 1300);
      const fromB = { ...row, sha256: 'ef'.repeat(32), url: 'http://b:3000/images/ubuntu.img.zst', holder: 'http://b:3000' };
      assert.equal(await store.images.put(fromB), false, 'another holder does not take the name');
      assert.equal((await store.images.get(row.name))?.holder, 'http://a:3000');
      assert.equal(await store.images.remove(row.name, 'http://b:3000'), false);
      await store.images.put({ ...fromB, name: 'debian.img' });
      assert.deepEqual((await store.images.list()).map((r) => [r.name, r.holder]), [['debian.img', 'http://b:3000'], ['ubuntu.img.zst', 'http://a:3000']]);
      assert.deepEqual(await store.images.heldBy('http://a:3000'), ['ubuntu.img.zst']);
      assert.equal(await store.images.remove(row.name, 'http://a:3000'), true);
      assert.equal(await store.images.get(row.name), undefined);
      assert.deepEqual(await store.images.heldBy('http://a:3000'), []);
    });

    it("images: the holder's info dictionary is kept for its ETag, dropped when the image changes, never written by another holder", async () => {
      const row = { name: 'p2p.img', size: 4096, sha256: 'ab'.repeat(32), format: 'raw', url: 'http://a:3000/images/p2p.img', holder: 'http://a:3000', etag: '"1000-1-2"' };
      // bytes a base64 round trip or a text column could mangle: NUL, high bytes
      const info = Buffer.concat([Buffer.from('d6:lengthi4096e4:name7:p2p.img'), Buffer.from([0, 0xff, 0x80, 10, 13]), Buffer.from('e')]);
      const infoHash = '12'.repeat(20);
      assert.equal(await store.images.put(row), true);
      assert.equal(await store.images.torrent(row.name), undefined, 'no info before the holder built it');
      assert.deepEqual(await store.images.infoHashes(), []);
      assert.equal(await store.images.put({ ...row, infoHash }, info), true);
      assert.deepEqual(await store.images.torrent(row.name), { holder: row.holder, etag: row.etag, infoHash, info });
      assert.equal((await store.images.get(row.name))?.infoHash, infoHash);
      assert.deepEqual(await store.images.infoHashes(), [infoHash]);
      // the holder syncs again without the info (it has not loaded it yet): same ETag, the info stays
      assert.equal(await store.transaction((tx) => tx.images.put({ ...row, storedAt: T1 })), true);
      assert.deepEqual((await store.images.torrent(row.name))?.info, info);
      // another holder's put changes nothing, info included
      assert.equal(await store.images.put({ ...row, holder: 'http://b:3000', etag: '"9-9-9"', infoHash: '34'.repeat(20) }, Buffer.from('de')), false);
      assert.deepEqual(await store.images.torrent(row.name), { holder: row.holder, etag: row.etag, infoHash, info });
      // the image was replaced (another ETag): its old info is not served for the new bytes
      assert.equal(await store.images.put({ ...row, sha256: 'cd'.repeat(32), etag: '"1000-2-3"' }), true);
      assert.equal(await store.images.torrent(row.name), undefined);
      assert.equal((await store.images.get(row.name))?.infoHash, undefined);
      assert.deepEqual(await store.images.infoHashes(), []);
      await assert.rejects(store.images.put({ ...row, infoHash }), /go together/);
      await store.images.remove(row.name, row.holder);
    });

    it('meta.claim: the first value written stays, also when several claim at once', async () => {
      const values = await Promise.all(['one', 'two', 'three', 'four'].map((v) => store.meta.claim('claimed-key', v)));
      assert.equal(new Set(values).size, 1, JSON.stringify(values));
      assert.equal(await store.meta.claim('claimed-key', 'five'), values[0]);
      assert.equal(await store.meta.get('claimed-key'), values[0]);
    });

    it('a transaction that throws leaves nothing behind', async () => {
      const m = mac(9);
      await assert.rejects(store.transaction(async (tx) => {
        await tx.machines.save({ mac: m, persistent: false, created: T0, updated: T0 });
        await tx.runs.start(m, T0, undefined, 'booting');
        await tx.logs.add(m, undefined, ['x'], 1);
        throw new Error('boom');
      }), /boom/);
      assert.equal(await store.machines.get(m), undefined);
      assert.equal(await store.runs.latest(m), undefined);
      assert.deepEqual(await store.logs.lines(m), []);
      // and the store still works after it
      await store.transaction((tx) => tx.machines.save({ mac: m, persistent: false, created: T0, updated: T0 }));
      assert.ok(await store.machines.get(m));
    });

    it('the store itself, called inside one of its transactions, is refused instead of waiting forever', async () => {
      const m = mac(11);
      await assert.rejects(store.transaction(async (tx) => {
        await tx.machines.lock(m, T0);
        await store.machines.get(m);
      }), /inside transaction\(\), use its tx/);
      await assert.rejects(store.transaction(async () => store.transaction(async () => {})), /inside transaction\(\), use its tx/);
      assert.equal((await store.machines.get(m)), undefined, 'rolled back');
    });

    it('concurrent transactions on one machine take turns (lock): no update is lost', async () => {
      const m = mac(10);
      const bump = () => store.transaction(async (tx) => {
        await tx.machines.lock(m, T0);
        const n = Number(JSON.parse(await tx.machines.state(m) ?? '{"n":0}').n);
        await new Promise((ok) => setTimeout(ok, 1));
        await tx.machines.saveState(m, JSON.stringify({ n: n + 1 }), T0);
      });
      await Promise.all(Array.from({ length: 40 }, bump));
      assert.equal(JSON.parse((await store.machines.state(m))!).n, 40);
    });

    it('a database written by a newer server is refused, saying so', async () => {
      const { store: s, reopen: again } = await b.fresh();
      // what a future version leaves behind
      await s.transaction(async () => {});
      if (b.name === 'sqlite') {
        const file = s.where;
        await s.close();
        const raw = new DatabaseSync(file);
        raw.prepare("UPDATE meta SET value = '99' WHERE key = 'schema'").run();
        raw.close();
      } else {
        const pgs = s as PostgresStore;
        await pgs.close();
        const url = (await again().catch((e: Error) => e));
        assert.ok(!(url instanceof Error));
        await (url as StateStore).close();
        // bump through a raw connection of the client
        const postgres = (await import('postgres')).default;
        const t = parsePostgresUrl(pg!.url(`booty_t${dbCount}`));
        const raw = postgres({ host: t.host, port: t.port, database: t.database, username: t.user, onnotice: () => {} });
        await raw.unsafe("UPDATE meta SET value = '99' WHERE key = 'schema'");
        await raw.end();
      }
      await assert.rejects(again(), /written by a newer booty server \(schema 99, this one knows \d+\)/);
    });
  });
}

describe('state store on sqlite: booty.db files of the current server', () => {
  it('opens a booty.db written by the previous server (schema 1; tokens table as trust/ made it) and reads its rows', async () => {
    const dir = await tempDir();
    const file = join(dir, 'booty.db');
    const db = openDatabase(file);
    db.prepare("INSERT INTO machines (mac, persistent, one_shot_done, created, updated) VALUES ('52-54-00-00-00-01', 0, ?, ?, ?)").run(T1, T0, T0);
    db.exec('CREATE TABLE IF NOT EXISTS operator_tokens (name TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, created TEXT NOT NULL)');
    db.prepare("INSERT INTO operator_tokens (name, hash, created) VALUES ('old', 'h', ?)").run(T0);
    db.close();
    const s = SqliteStore.open(file);
    try {
      assert.equal(await s.schemaVersion(), LATEST_SCHEMA);
      assert.equal((await s.machines.get('52-54-00-00-00-01'))?.oneShotDone, T1);
      assert.deepEqual((await s.tokens.list()).map((t) => t.name), ['old']);
    } finally { await s.close(); }
    // the migrations after 1 (run samples, trials) are past what the previous server knows: it
    // refuses the file, saying so, rather than run on tables it does not know about (back: restore a backup)
    assert.throws(() => openDatabase(file).close(), new RegExp(`written by a newer booty server \\(schema ${LATEST_SCHEMA}, this one knows 1\\)`));
  });

  it('a booty.db with the run samples tables the dashboard server made itself (schema 1) is migrated to the newest schema, its samples kept', async () => {
    const dir = await tempDir();
    const file = join(dir, 'booty.db');
    const db = openDatabase(file);
    db.prepare("INSERT INTO runs (id, mac, started, phases) VALUES (7, '52-54-00-00-00-07', ?, '[]')").run(T0);
    // the tables exactly as that server's run-samples.ts created them
    db.exec(`CREATE TABLE IF NOT EXISTS run_samples (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER NOT NULL, t INTEGER NOT NULL, phase TEXT,
      bytes INTEGER NOT NULL, total INTEGER, wire_bytes INTEGER, rate REAL, resumes INTEGER, restarts INTEGER);
      CREATE INDEX IF NOT EXISTS run_samples_by_run ON run_samples (run_id, id);
      CREATE TABLE IF NOT EXISTS run_sample_runs (run_id INTEGER PRIMARY KEY, resolution_ms INTEGER NOT NULL);`);
    db.prepare("INSERT INTO run_samples (run_id, t, phase, bytes) VALUES (7, ?, 'writing', 42)").run(Date.parse(T0));
    db.prepare('INSERT INTO run_sample_runs (run_id, resolution_ms) VALUES (7, 8000)').run();
    db.close();
    const s = SqliteStore.open(file);
    try {
      assert.equal(await s.schemaVersion(), LATEST_SCHEMA);
      assert.deepEqual((await s.runSamples.list(7)).map((x) => x.bytes), [42]);
      assert.equal(await s.runSamples.resolution(7), 8000);
    } finally { await s.close(); }
  });
});

describe('replicas: several stores on one PostgreSQL database', { skip: pgSkip }, () => {
  let a: StateStore;
  let b: StateStore;
  before(async () => {
    const url = await freshPgUrl();
    [a, b] = await Promise.all([openStateStore({ dataDir: '/x', database: url }), openStateStore({ dataDir: '/x', database: url })]);
  });
  after(async () => { await a?.close(); await b?.close(); });

  it('three replicas starting at once on an empty database: each starts, the schema is made once', async () => {
    for (const socket of [false, true]) {
      const url = await freshPgUrl(socket);
      const opened = await Promise.allSettled([0, 1, 2].map(() => PostgresStore.open(parsePostgresUrl(url), { max: 2 })));
      const stores = opened.flatMap((o) => o.status === 'fulfilled' ? [o.value] : []);
      try {
        assert.deepEqual(opened.map((o) => o.status === 'rejected' ? String(o.reason) : 'started'), ['started', 'started', 'started']);
        for (const s of stores) assert.equal(await s.schemaVersion(), LATEST_SCHEMA);
        await stores[0].machines.save({ mac: mac(1), persistent: false, created: T0, updated: T0 });
        assert.equal((await stores[2].machines.get(mac(1)))?.created, T0, 'one database behind all three');
      } finally { await Promise.all(stores.map((s) => s.close())); }
    }
  });

  it('a one-shot action is consumed exactly once when two replicas record the same result at once', async () => {
    const n = 40;
    const outcomes = await Promise.all(Array.from({ length: n }, (_, i) => Promise.all([
      a.transaction((tx) => recordBoot(tx, mac(100 + i), T0, T1)),
      b.transaction((tx) => recordBoot(tx, mac(100 + i), T0, T1)),
    ])));
    for (const [i, [x, y]] of outcomes.entries()) {
      assert.equal(Number(x.consumed) + Number(y.consumed), 1, `${mac(100 + i)}: consumed ${Number(x.consumed) + Number(y.consumed)} times`);
      assert.equal(x.runId, y.runId, 'both replicas recorded into the same run');
      assert.equal(Number(x.joined) + Number(y.joined), 1, 'one started it, the other joined it');
      const runs = await a.runs.list(mac(100 + i));
      assert.equal(runs.length, 1, `${mac(100 + i)}: ${runs.length} runs for one boot`);
      assert.equal(runs[0].ok, true);
      assert.equal((await b.machines.get(mac(100 + i)))?.oneShotDone, T1);
    }
  });

  it('the one-shot condition alone decides: two replicas consuming the same existing action at once', async () => {
    const n = 40;
    for (let i = 0; i < n; i++) await a.machines.save({ mac: mac(200 + i), action: '{"action":"deploy"}', managedBy: 'api', persistent: false, created: T0, updated: T0 });
    // no row lock taken: each transaction only runs the conditional statement (after a read, as a
    // careless recorder would), so the statement's own condition is all that stands between them
    const consume = (s: StateStore, m: string) => s.transaction(async (tx) => { await tx.machines.get(m); return tx.machines.consumeOneShot(m, T1, T1); });
    const got = await Promise.all(Array.from({ length: n }, (_, i) => Promise.all([consume(a, mac(200 + i)), consume(b, mac(200 + i))])));
    for (const [i, [x, y]] of got.entries()) assert.equal(Number(x) + Number(y), 1, `${mac(200 + i)}: consumed ${Number(x) + Number(y)} times`);
  });

  it('run records are never lost or doubled: many boots through both replicas, retries included', async () => {
    const machines = 20;
    const boots = 3;
    const jobs: Promise<unknown>[] = [];
    for (let i = 0; i < machines; i++) {
      const m = mac(300 + i);
      // each boot's batch goes to one replica, and its retry to the other, at the same time;
      // the boots of one machine follow each other as an agent's do
      jobs.push((async () => {
        for (let k = 0; k < boots; k++) {
          const started = new Date(Date.parse(T0) + k * 60_000).toISOString();
          const ended = new Date(Date.parse(started) + 30_000).toISOString();
          await Promise.all([a.transaction((tx) => recordBoot(tx, m, started, ended)), b.transaction((tx) => recordBoot(tx, m, started, ended))]);
          if (k % 2 === 0) await (k % 4 === 0 ? a : b).machines.rearm(m, ended);
        }
      })());
    }
    await Promise.all(jobs);
    const ids = new Set<number>();
    for (let i = 0; i < machines; i++) {
      const runs = await b.runs.list(mac(300 + i));
      assert.equal(runs.length, boots, `${mac(300 + i)}: ${runs.length} runs for ${boots} boots`);
      for (const r of runs) { assert.equal(r.ok, true); ids.add(r.id); }
      assert.equal((await a.logs.lines(mac(300 + i))).length, boots * 2, 'each delivery of a batch logs (the log keeps what was received)');
    }
    assert.equal(ids.size, machines * boots);
  });

  it('two replicas recording one run (each batch through both at once, as a retried one is) keep its samples as one server would', async () => {
    const m = mac(700);
    const t0 = Date.parse(T0);
    const at = (ms: number) => new Date(t0 + ms).toISOString();
    // a deploy reporting every 2 s, in batches of 25 reports, 2250 reports: past the 2000 cap
    const batches: AgentEvent[][] = [];
    for (let k = 0; k < 90; k++) {
      const batch: AgentEvent[] = k === 0 ? [{ type: 'phase', time: at(0), phase: 'booting' }, { type: 'phase', time: at(0), phase: 'writing' }] : [];
      for (let i = 0; i < 25; i++) {
        const ms = (k * 25 + i) * 2000 + 1;
        batch.push({ type: 'progress', time: at(ms), phase: 'writing', bytes: ms * 1000, wireBytes: ms * 400, rate: 1e6, resumes: ms > 2_000_000 ? 1 : 0 });
      }
      if (k === 89) batch.push({ type: 'result', time: at(90 * 25 * 2000 + 500), ok: true, action: 'deploy', bytes: 5_000_000_000 });
      batches.push(batch);
    }
    const replicaA = new MachineStore(await tempDir(), a);
    const replicaB = new MachineStore(await tempDir(), b);
    const alone = SqliteStore.open(join(await tempDir(), 'booty.db'));
    const single = new MachineStore(await tempDir(), alone);
    try {
      for (const x of [replicaA, replicaB, single]) await x.init();
      for (const batch of batches) {
        await Promise.all([replicaA.record(m, batch), replicaB.record(m, batch)]);
        await single.record(m, batch);
      }
      const runs = await a.runs.list(m);
      assert.equal(runs.length, 1, 'one run');
      const [expected] = await Promise.all([single.samples.samples((await alone.runs.latestId(m))!)]);
      const viaA = await replicaA.samples.samples(runs[0].id);
      const viaB = await replicaB.samples.samples(runs[0].id);
      assert.deepEqual(viaB, viaA);
      assert.ok(expected.samples.length >= 1000 && expected.samples.length <= 2000, `${expected.samples.length} samples`);
      assert.equal(expected.resolutionMs, 2000, 'the cap was passed once');
      assert.deepEqual(viaA, expected, 'the same samples as one server recording each batch once');
      const times = viaA.samples.map((x) => Date.parse(x.time));
      assert.ok(times.every((t, i) => i === 0 || t > times[i - 1]), 'no sample twice, in time order');
      assert.equal(viaA.samples.at(-1)!.bytes, 5_000_000_000);
    } finally {
      replicaA.close(); replicaB.close(); single.close();
      await alone.close();
    }
  });

  it("a change published in one replica's transaction reaches the other once committed, never a rolled-back one", async () => {
    const heardByB: MachineChange[] = [];
    const heardByA: MachineChange[] = [];
    const offB = b.onRemoteChange((c) => heardByB.push(c));
    const offA = a.onRemoteChange((c) => heardByA.push(c));
    try {
      await assert.rejects(a.transaction(async (tx) => {
        await tx.publish({ type: 'machine', mac: mac(500) });
        throw new Error('rolled back');
      }));
      let seenInside = -1;
      await a.transaction(async (tx) => {
        await tx.publish({ type: 'machine', mac: mac(501) });
        await new Promise((ok) => setTimeout(ok, 300));
        seenInside = heardByB.length;
      });
      assert.equal(seenInside, 0, 'nothing is heard before the commit');
      const long = Array.from({ length: 100 }, (_, i) => `line ${i} ${'é'.repeat(100)}`);
      await b.publish({ type: 'log', mac: mac(502), lines: long });
      await a.publish({ type: 'removed', mac: mac(503) });
      const deadline = Date.now() + 10_000;
      while ((heardByB.length < 2 || heardByA.length < 1) && Date.now() < deadline) await new Promise((ok) => setTimeout(ok, 20));
      assert.deepEqual(heardByB, [{ type: 'machine', mac: mac(501) }, { type: 'removed', mac: mac(503) }]);
      assert.equal(heardByA.length, 1);
      const log = heardByA[0] as Extract<MachineChange, { type: 'log' }>;
      assert.equal(log.type, 'log');
      assert.ok(log.lines.length > 0 && log.lines.length < 100, `${log.lines.length} lines fit in a notification`);
      assert.deepEqual(log.lines, long.slice(100 - log.lines.length), 'the newest lines are kept');
    } finally { offA(); offB(); }
  });

  it("relayed change feeds: a change announced on replica A's feed reaches B's feed once, and does not echo back", async () => {
    const feedA = new MachineChanges();
    const feedB = new MachineChanges();
    const errors: Error[] = [];
    const offRelayA = relayChanges(feedA, a, (e) => errors.push(e));
    const offRelayB = relayChanges(feedB, b, (e) => errors.push(e));
    const onA: MachineChange[] = [];
    const onB: MachineChange[] = [];
    const offA = feedA.on((c) => onA.push(c));
    const offB = feedB.on((c) => onB.push(c));
    try {
      feedA.emit({ type: 'machine', mac: mac(600) });
      feedB.emit({ type: 'log', mac: mac(601), lines: ['x'] });
      // the image catalog's change (image-catalog.ts publishes it) travels the same way
      feedA.emit({ type: 'images' });
      const deadline = Date.now() + 10_000;
      while ((onA.length < 3 || onB.length < 3) && Date.now() < deadline) await new Promise((ok) => setTimeout(ok, 20));
      // long enough for an echo to come back if there were one
      await new Promise((ok) => setTimeout(ok, 300));
      // (order aside: each publish outside a transaction takes any of the pool's connections)
      const sorted = (l: MachineChange[]) => l.map((c) => JSON.stringify(c)).sort();
      const all = [{ type: 'machine', mac: mac(600) }, { type: 'log', mac: mac(601), lines: ['x'] }, { type: 'images' }] as MachineChange[];
      assert.deepEqual(sorted(onB), sorted(all));
      assert.deepEqual(sorted(onA), sorted(all));
      assert.deepEqual(errors, []);
    } finally { offA(); offB(); offRelayA(); offRelayB(); }
  });
});
