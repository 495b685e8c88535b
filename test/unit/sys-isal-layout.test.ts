// ISA-L's structs as src/sys/isal-worker.ts declares them, and the load-time check that keeps a
// library which disagrees away from the workers (node:zlib instead, and the log says why).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { koffi } from '../../src/sys/libc.ts';
import { ISAL_FUNCTIONS, KNOWN_MEMBER, isalApi, isalSelfCheck, isalStructs, knownText } from '../../src/sys/isal-worker.ts';
import { ISAL } from '../../src/sys/isal.ts';
import { NativeCodecLib } from '../../src/sys/native-codec-lib.ts';
import type { Koffi } from '../../src/sys/native-codec-worker.ts';

test('the declared structs give the offsets offsetof() gave on ISA-L 2.30\'s igzip_lib.h (x86-64)', () => {
  const k = koffi();
  const { zstream, inflateState } = isalStructs(k);
  const z = Object.fromEntries(['next_in', 'avail_in', 'next_out', 'avail_out', 'total_out', 'level', 'level_buf_size', 'level_buf', 'end_of_stream', 'flush', 'gzip_flag', 'hist_bits'].map((f) => [f, k.offsetof(zstream, f)]));
  assert.deepEqual(z, { next_in: 0, avail_in: 8, next_out: 16, avail_out: 24, total_out: 28, level: 40, level_buf_size: 44, level_buf: 48, end_of_stream: 56, flush: 58, gzip_flag: 60, hist_bits: 62 });
  assert.equal(k.sizeof(zstream), 82384);
  const s = Object.fromEntries(['next_out', 'avail_out', 'next_in', 'avail_in', 'block_state', 'crc_flag', 'crc'].map((f) => [f, k.offsetof(inflateState, f)]));
  assert.deepEqual(s, { next_out: 0, avail_out: 8, next_in: 16, avail_in: 32, block_state: 21160, crc_flag: 21172, crc: 21176 });
  assert.equal(k.sizeof(inflateState), 87368);
});

test('the known member is gzip of the known text (checked by node:zlib)', () => {
  assert.deepEqual(zlib.gunzipSync(KNOWN_MEMBER), knownText());
});

function loaded(k: Koffi = koffi()): ReturnType<typeof isalApi> {
  const lib = koffi().load('libisal.so.2');
  return isalApi(k, ISAL_FUNCTIONS.map((f) => lib.func(f)));
}

test('libisal2 passes the load-time check, and the workers get it', () => {
  assert.equal(isalSelfCheck(loaded()), '');
  assert.equal(ISAL.status(), 'ISA-L (libisal.so.2)', 'libisal2 is installed by scripts/host-deps.sh');
});

test('a layout that disagrees with the library is caught by the check', () => {
  // the same declarations with one field's offset moved by 4 bytes, as a changed header would
  for (const [field, expect] of [['crc', /wrong ISIZE/], ['avail_in', /./], ['block_state', /./], ['total_out', /known text/]] as const) {
    const real = koffi();
    const moved = new Proxy(real, {
      get: (t, p) => p === 'offsetof' ? (ty: never, name: string) => real.offsetof(ty, name) + (name === field ? 4 : 0) : Reflect.get(t, p),
    });
    let why: string;
    try { why = isalSelfCheck(loaded(moved)); } catch (e) { why = (e as Error).message; }
    assert.match(why, expect, `${field} moved`);
    assert.notEqual(why, '', `${field} moved`);
  }
});

test('a failed check keeps node:zlib, and status() / whyNot() say why (the log line)', () => {
  const lib = new NativeCodecLib({ name: 'ISA-L', soname: 'libisal.so.2', flag: '--no-isal', env: 'BOOTY_ISAL_TEST', functions: ISAL_FUNCTIONS, check: () => 'a known gzip member decoded to 3 other bytes than its 1702' });
  assert.equal(lib.forWorkers(), undefined);
  assert.equal(lib.whyNot(), "libisal.so.2 failed booty's load-time check (a known gzip member decoded to 3 other bytes than its 1702)");
  assert.equal(lib.status(), "node:zlib (libisal.so.2 failed booty's load-time check (a known gzip member decoded to 3 other bytes than its 1702))");
  const throwing = new NativeCodecLib({ name: 'ISA-L', soname: 'libisal.so.2', flag: '--no-isal', env: 'BOOTY_ISAL_TEST', functions: ISAL_FUNCTIONS, check: () => { throw new Error('boom\nmore'); } });
  assert.equal(throwing.whyNot(), "libisal.so.2 failed booty's load-time check (boom)");
});
