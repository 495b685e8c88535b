// sha256 on or off the main thread (src/sys/sha256-thread.ts): node's own OpenSSL through koffi,
// called in place or on libuv's pool, must give node:crypto's digest for any chunking (empty
// chunks, chunks across and larger than its 1 MiB slabs) and when moved between the two at any
// chunk, must not be fooled by a caller that overwrites or moves its chunk the moment update()
// returns (the deploy's decoders transfer buffers to workers), must let a stream wait while it
// lags, and must fall back to node:crypto on the calling thread with BOOTY_HASH_THREAD=0.
// HashTap (transforms.ts) moves it as its placer says (hash-placement.ts, whose rule is tested
// here too): a long stream comes out whole and hashed right.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { hashThreadWhyNot, streamSha256 } from '../../src/sys/sha256-thread.ts';
import { HashTap } from '../../src/image/transforms.ts';
import { HashPlacer, OFFLOAD_AT, RETURN_BELOW, WINDOW_MS, placeHash } from '../../src/image/hash-placement.ts';
import type { EventLoopUtilization } from 'node:perf_hooks';

const MiB = 1 << 20;

test('this process can hash on the pool: node\'s OpenSSL found and the load-time check passed', () => {
  assert.equal(hashThreadWhyNot(), '');
  assert.equal(streamSha256().canOffload, true);
});

test('the digest of node:crypto for any chunking, in place, offloaded, and moved back and forth at any chunk', async () => {
  const data = randomBytes(5 * MiB + 12345);
  const want = createHash('sha256').update(data).digest('hex');
  const cuts: number[][] = [[0, data.length], [1, 2, 3, 4096, MiB - 1, MiB, MiB + 1, 3 * MiB + 7, 3 * MiB + 8, 4 * MiB], [2 * MiB + 5]];
  for (const mode of ['in place', 'offloaded', 'alternating'] as const) {
    for (const c of cuts) {
      const h = streamSha256();
      h.offload = mode === 'offloaded';
      let at = 0;
      let i = 0;
      for (const end of [...c, data.length]) {
        if (mode === 'alternating') h.offload = i++ % 2 === 1;
        h.update(data.subarray(at, Math.max(at, end)));
        h.update(Buffer.alloc(0));
        at = Math.max(at, end);
      }
      assert.equal(await h.digest(), want, `${mode}, cuts ${c.join(',')}`);
      if (mode === 'in place') assert.equal(h.offloaded, 0, 'nothing went to the pool');
      if (mode === 'offloaded') assert.equal(h.offloaded, data.length, 'all of it went to the pool');
      if (mode === 'alternating' && c.length > 2) assert.ok(h.offloaded > 0 && h.offloaded < data.length, `partly on the pool (${h.offloaded})`);
    }
  }
  for (const offload of [false, true]) {
    const empty = streamSha256();
    empty.offload = offload;
    assert.equal(await empty.digest(), createHash('sha256').digest('hex'), 'nothing hashed: the empty digest');
    const small = streamSha256();
    small.offload = offload;
    for (const b of Buffer.from('abc')) small.update(Buffer.from([b]));
    assert.equal(await small.digest(), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad', 'FIPS 180-2 "abc"');
  }
});

test('a chunk overwritten or moved away right after update() does not change the digest', async () => {
  const parts = [randomBytes(3 * MiB), randomBytes(700_000), randomBytes(2 * MiB + 1)];
  const want = createHash('sha256').update(Buffer.concat(parts)).digest('hex');
  const h = streamSha256();
  h.offload = true;
  for (const p of parts) {
    const mine = Buffer.from(p);
    h.update(mine);
    mine.fill(0xee);
    // the memory moves on (as a transfer to a worker would), and is freed
    (mine.buffer as ArrayBuffer).transfer(0);
  }
  assert.equal(await h.digest(), want);
});

test('below(): resolves once the hash caught up; queued counts what is not hashed yet', async () => {
  const h = streamSha256();
  h.offload = true;
  const data = randomBytes(8 * MiB);
  h.update(data);
  assert.ok(h.queued > 0, 'just given: not hashed yet');
  await h.below(0);
  assert.equal(h.queued, 0, 'whole slabs hashed');
  h.update(data.subarray(0, 1000));
  assert.equal(h.queued, 1000, 'a partial slab waits for more or for the end');
  await h.below(0);
  assert.equal(await h.digest(), createHash('sha256').update(data).update(data.subarray(0, 1000)).digest('hex'));
});

/** A placer that moves the hash every third chunk. */
class EveryThirdChunk extends HashPlacer {
  private n = 0;
  override tick(offloaded: boolean): boolean | undefined {
    return this.n++ % 3 === 2 ? !offloaded : undefined;
  }
}

test('HashTap: moved between the threads while a long stream passes, which overwrites each chunk downstream: whole and hashed right', async () => {
  const chunks: Buffer[] = [];
  for (let i = 0; i < 96; i++) chunks.push(randomBytes(64 * 1024 + i * 997));
  const all = Buffer.concat(chunks);
  const tap = new HashTap({ placer: new EveryThirdChunk() });
  const got: Buffer[] = [];
  await pipeline(Readable.from(chunks), tap, new Writable({ write(c, _e, cb) { got.push(Buffer.from(c as Buffer)); (c as Buffer).fill(0); cb(); } }));
  assert.ok(Buffer.concat(got).equals(all));
  assert.equal(tap.bytes, all.length);
  assert.ok(tap.offloaded > 0 && tap.offloaded < all.length, `part of it on the pool (${tap.offloaded} of ${all.length})`);
  assert.equal(tap.digest(), createHash('sha256').update(all).digest('hex'));
});

test('the placement rule: to the pool when the main thread is saturated, back when it has room, not back and forth in between', () => {
  assert.equal(placeHash(false, 0.32), false, 'a real CPU\'s deploy: the main thread idles, the hash stays');
  assert.equal(placeHash(false, 0.98), true, 'an emulator\'s: the main thread is the bottleneck');
  assert.equal(placeHash(true, 0.75), true, 'freed by the move but still busy: stays on the pool');
  assert.equal(placeHash(true, 0.3), false, 'room again (zeros decoding): back, no copies');
  assert.equal(placeHash(false, (OFFLOAD_AT + RETURN_BELOW) / 2), false, 'in the gap: where it is');
  assert.equal(placeHash(true, (OFFLOAD_AT + RETURN_BELOW) / 2), true, 'in the gap: where it is');
});

test('the placer: a decision per complete window of the main thread\'s event loop utilization', () => {
  let active = 0, idle = 0;
  const clock = {
    eventLoopUtilization(prev?: EventLoopUtilization): EventLoopUtilization {
      if (prev === undefined) return { active, idle, utilization: 0 };
      const a = active - prev.active, i = idle - prev.idle;
      return { active: a, idle: i, utilization: a / (a + i) };
    },
  };
  const p = new HashPlacer(clock);
  let now = 100;
  assert.equal(p.tick(false, now), undefined, 'the first chunk opens a window');
  active += 0.95 * 200; idle += 0.05 * 200; now += 200;
  assert.equal(p.tick(false, now), undefined, 'the window is not complete');
  active += 0.95 * WINDOW_MS; idle += 0.05 * WINDOW_MS; now += WINDOW_MS;
  assert.equal(p.tick(false, now), true, 'a saturated window: offload');
  active += 0.7 * WINDOW_MS; idle += 0.3 * WINDOW_MS; now += WINDOW_MS;
  assert.equal(p.tick(true, now), true, 'still busy: stays');
  active += 0.2 * WINDOW_MS; idle += 0.8 * WINDOW_MS; now += WINDOW_MS;
  assert.equal(p.tick(true, now), false, 'room: back');
});

test('BOOTY_HASH_THREAD=0: node:crypto on the calling thread, the same digest', () => {
  const script = `
    import { streamSha256, hashThreadWhyNot } from './src/sys/sha256-thread.ts';
    const h = streamSha256(); h.offload = true; h.update(Buffer.from('abc'));
    console.log(h.canOffload + '|' + h.offloaded + '|' + hashThreadWhyNot() + '|' + await h.digest());`;
  const out = execFileSync(process.execPath, ['--input-type=module', '--disable-warning=ExperimentalWarning', '-e', script], { env: { ...process.env, BOOTY_HASH_THREAD: '0' }, encoding: 'utf8' }).trim();
  assert.equal(out, 'false|0|turned off by BOOTY_HASH_THREAD=0|ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
});
