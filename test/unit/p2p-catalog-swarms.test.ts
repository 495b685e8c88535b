// The swarms a replica's trackers accept from the shared catalog (src/server/p2p/catalog-swarms.ts):
// answered from memory, read again on a change and on a miss at most once per interval, so a
// stream of announces for unknown hashes does not become a stream of database queries.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CatalogSwarms } from '../../src/server/p2p/catalog-swarms.ts';

const H1 = 'aa'.repeat(20);
const H2 = 'bb'.repeat(20);

function rig(initial: string[]) {
  let rows = initial;
  let queries = 0;
  let t = 0;
  let gate: Promise<void> | undefined;
  const swarms = new CatalogSwarms(async () => { queries++; if (gate !== undefined) await gate; return rows; }, { missRefreshMs: 5000, now: () => t });
  return {
    swarms,
    set rows(r: string[]) { rows = r; },
    get queries() { return queries; },
    advance(ms: number) { t += ms; },
    hold() { let open!: () => void; gate = new Promise((ok) => { open = ok; }); return () => { gate = undefined; open(); }; },
  };
}

describe('catalog swarms (rack trackers across replicas)', () => {
  it('answers from memory after a refresh: no query per announce', async () => {
    const r = rig([H1]);
    await r.swarms.refresh();
    assert.equal(r.queries, 1);
    for (let i = 0; i < 100; i++) assert.equal(await r.swarms.knows(H1), true);
    assert.equal(await r.swarms.knows(H1.toUpperCase()), true, 'hex in either case');
    assert.equal(r.queries, 1);
  });

  it('a miss reads the catalog again at most once per interval; a random infohash stays refused', async () => {
    const r = rig([H1]);
    await r.swarms.refresh();
    r.rows = [H1, H2];
    assert.equal(await r.swarms.knows(H2), false, 'within the interval of the last read: refused without a query');
    assert.equal(r.queries, 1);
    r.advance(5000);
    assert.equal(await r.swarms.knows(H2), true, 'past it: one read, which finds it');
    assert.equal(r.queries, 2);
    const random = 'cd'.repeat(20);
    assert.equal(await r.swarms.knows(random), false);
    for (let i = 0; i < 50; i++) { r.advance(10); assert.equal(await r.swarms.knows(random), false); }
    assert.equal(r.queries, 2, '50 announces of an unknown hash within the interval: no query');
    r.advance(5000);
    assert.equal(await r.swarms.knows(random), false);
    assert.equal(r.queries, 3);
  });

  it('a change heard while a read is under way is read again after it; callers meanwhile share that read', async () => {
    const r = rig([H1]);
    const release = r.hold();
    const first = r.swarms.refresh();
    await new Promise((ok) => setImmediate(ok));
    // the change committed after the first read began: it may not see it
    r.rows = [H1, H2];
    const second = r.swarms.refresh();
    const third = r.swarms.refresh();
    assert.equal(second, third, 'one more read, shared');
    release();
    await Promise.all([first, second, third]);
    assert.equal(r.queries, 2);
    assert.equal(r.swarms.has(H2), true);
  });

  it('a hash removed from the catalog is refused after the next read; one served from it is known at once', async () => {
    const r = rig([H1, H2]);
    await r.swarms.refresh();
    r.rows = [H1];
    await r.swarms.refresh();
    assert.equal(r.swarms.has(H2), false);
    r.swarms.add(H2.toUpperCase());
    assert.equal(await r.swarms.knows(H2), true);
  });

  it('a failed read keeps what was known and is reported', async () => {
    const errors: string[] = [];
    let fail = false;
    const swarms = new CatalogSwarms(async () => { if (fail) throw new Error('connection lost'); return [H1]; }, { onError: (e) => errors.push(e.message) });
    await swarms.refresh();
    fail = true;
    await swarms.refresh();
    assert.deepEqual(errors, ['connection lost']);
    assert.equal(swarms.has(H1), true);
  });
});
