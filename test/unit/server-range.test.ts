import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { etagFor, ifRangeAllows, noneMatch, parseRange } from '../../src/server/range.ts';
import type { RangeDecision } from '../../src/server/range.ts';

describe('parseRange (file of 1000 bytes)', () => {
  const full: RangeDecision = { kind: 'full' };
  const none: RangeDecision = { kind: 'unsatisfiable' };
  const part = (start: number, end: number): RangeDecision => ({ kind: 'partial', start, end });
  const table: [string | undefined, RangeDecision][] = [
    [undefined, full],
    ['bytes=0-99', part(0, 99)],
    ['bytes=100-', part(100, 999)],
    ['bytes=999-', part(999, 999)],
    ['bytes=0-0', part(0, 0)],
    ['bytes=500-5000', part(500, 999)],
    ['bytes=-100', part(900, 999)],
    ['bytes=-5000', part(0, 999)],
    ['BYTES = 10 - 20', part(10, 20)],
    ['bytes=1000-', none],
    ['bytes=1000-2000', none],
    ['bytes=-0', none],
    ['bytes=20-10', full],           // invalid: ignored
    ['bytes=0-1,5-6', full],         // multi-range: whole file
    ['items=0-1', full],
    ['bytes=abc', full],
    ['bytes=-', full],
    ['bytes=99999999999999999999-', full],
  ];
  for (const [h, want] of table) it(String(h), () => assert.deepStrictEqual(parseRange(h, 1000), want));
  it('an empty file satisfies no range', () => {
    assert.deepStrictEqual(parseRange('bytes=0-', 0), none);
    assert.deepStrictEqual(parseRange('bytes=-1', 0), none);
  });
});

describe('validators', () => {
  const st = { size: 1000, mtimeMs: 1700000000123.456, ino: 42 };
  const etag = etagFor(st);
  it('ETag is strong, stable, and changes with size, mtime or inode', () => {
    assert.match(etag, /^"[0-9a-f-]+"$/);
    assert.equal(etagFor({ ...st }), etag);
    assert.notEqual(etagFor({ ...st, size: 1001 }), etag);
    assert.notEqual(etagFor({ ...st, mtimeMs: st.mtimeMs + 0.01 }), etag);
    assert.notEqual(etagFor({ ...st, ino: 43 }), etag);
  });
  const lm = 'Tue, 14 Nov 2023 22:13:20 GMT';
  it('If-Range', () => {
    assert.equal(ifRangeAllows(undefined, etag, lm), true);
    assert.equal(ifRangeAllows(etag, etag, lm), true);
    assert.equal(ifRangeAllows('"other"', etag, lm), false);
    assert.equal(ifRangeAllows(`W/${etag}`, etag, lm), false); // weak never matches
    assert.equal(ifRangeAllows(lm, etag, lm), true);
    assert.equal(ifRangeAllows('Wed, 15 Nov 2023 22:13:20 GMT', etag, lm), false);
  });
  it('If-None-Match', () => {
    assert.equal(noneMatch(undefined, etag), false);
    assert.equal(noneMatch(`"x", ${etag}`, etag), true);
    assert.equal(noneMatch(`W/${etag}`, etag), true);
    assert.equal(noneMatch('*', etag), true);
    assert.equal(noneMatch('"x"', etag), false);
  });
});
