// decode-plan.ts: which gzip path deploy takes (segments with the index, or one stream), and why.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chooseGzipPath, needsIndexSummary, TWO_CORE_ZERO_SHARE, type GzipIndexSummary } from '../../src/image/decode-plan.ts';

const MiB = 1 << 20;
/** an index of `segments` 4 MiB segments, `zeros` of them all zeros */
function summary(segments: number, zeros: number): GzipIndexSummary {
  return { segments, zeroSegments: zeros, totalBytes: segments * 4 * MiB, zeroBytes: zeros * 4 * MiB };
}

describe('chooseGzipPath', () => {
  it('without an index: one stream, whatever the cores or workers', () => {
    for (const cores of [1, 2, 8]) {
      for (const workers of [undefined, 0, 2, 4]) {
        const p = chooseGzipPath({ cores, workers, index: 'none' });
        assert.equal(p.path, 'stream');
        assert.match(p.reason, /no gzip index/);
      }
    }
  });

  it("the operator's --workers wins: 2 or more is segments on that many, fewer is one stream", () => {
    assert.deepEqual(chooseGzipPath({ cores: 1, workers: 3, index: 'not-read' }), { path: 'segments', workers: 3, reason: '--workers 3' });
    assert.deepEqual(chooseGzipPath({ cores: 2, workers: 2, index: summary(100, 0) }), { path: 'segments', workers: 2, reason: '--workers 2' });
    const one = chooseGzipPath({ cores: 8, workers: 1, index: summary(100, 90) });
    assert.equal(one.path, 'stream');
    assert.match(one.reason, /--workers 1: fewer than 2/);
    assert.equal(chooseGzipPath({ cores: 8, workers: 0, index: 'not-read' }).path, 'stream');
  });

  it('one core: one stream (segments only add copies)', () => {
    const p = chooseGzipPath({ cores: 1, index: summary(100, 99) });
    assert.equal(p.path, 'stream');
    assert.match(p.reason, /1 core: segments would only add copies/);
  });

  it('3 cores and more: segments, one worker per core up to 32', () => {
    assert.deepEqual(chooseGzipPath({ cores: 3, index: 'not-read' }), { path: 'segments', workers: 3, reason: "3 cores: a core for each segment worker beside the main thread's share" });
    const p = chooseGzipPath({ cores: 64, index: summary(10, 0) });
    assert.equal(p.path, 'segments');
    assert.equal(p.path === 'segments' ? p.workers : 0, 32);
  });

  it("2 cores: segments when at least half the bytes are in all-zero segments, else one stream", () => {
    // the bench's sparse image: 653 of 1024 segments all zeros
    const sparse = chooseGzipPath({ cores: 2, index: summary(1024, 653) });
    assert.equal(sparse.path, 'segments');
    assert.equal(sparse.path === 'segments' ? sparse.workers : 0, 2);
    assert.match(sparse.reason, /653 of 1024 segments \(64 %.*all zeros: the index spares inflating them/);
    // the bench's dense image: 18 of 128
    const dense = chooseGzipPath({ cores: 2, index: summary(128, 18) });
    assert.equal(dense.path, 'stream');
    assert.match(dense.reason, /18 of 128 segments \(14 %.*too few/);
    // the boundary, in bytes (a short last segment counts for what it holds)
    assert.equal(chooseGzipPath({ cores: 2, index: summary(10, 5) }).path, 'segments');
    assert.equal(chooseGzipPath({ cores: 2, index: { segments: 10, zeroSegments: 5, totalBytes: 100, zeroBytes: 49 } }).path, 'stream');
    assert.equal(TWO_CORE_ZERO_SHARE, 0.5);
  });

  it("2 cores, the records not read (or an empty image): one stream", () => {
    const p = chooseGzipPath({ cores: 2, index: 'not-read' });
    assert.equal(p.path, 'stream');
    assert.match(p.reason, /could not be read ahead/);
    assert.equal(chooseGzipPath({ cores: 2, index: { segments: 0, zeroSegments: 0, totalBytes: 0, zeroBytes: 0 } }).path, 'stream');
  });
});

describe('needsIndexSummary', () => {
  it('only on 2 cores, and only when the operator did not give --workers', () => {
    assert.equal(needsIndexSummary(2, undefined), true);
    assert.equal(needsIndexSummary(2, 2), false);
    assert.equal(needsIndexSummary(1, undefined), false);
    assert.equal(needsIndexSummary(4, undefined), false);
  });
});
