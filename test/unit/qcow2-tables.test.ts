// The qcow2 header parser and table checks on hand-built headers and tables (the round trips
// against qemu-img are in test/integration/deploy-qcow2.test.ts): what is refused and why, the
// compressed-cluster descriptor, host-order overlap rules, and the map's ordering.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseQcow2Header, Qcow2Refused } from '../../src/image/qcow2/header.ts';
import { ClusterList, GuestBitmap, HostOrderChecker, MetaRanges, parseL1, parseL2, Qcow2TableError } from '../../src/image/qcow2/cluster-map.ts';
import { classifyHead, detectFormat } from '../../src/image/format/detect.ts';
import { coalesce } from '../../src/image/qcow2/table-reader.ts';

const CS = 65536;

/** A v3 header: 64 KiB clusters, 1 GiB disk, L1 (2 entries) at cluster 3, refcount table at 1. */
function header(edit?: (h: Buffer) => void): Buffer {
  const h = Buffer.alloc(4096);
  h.write('QFI\xfb', 0, 'latin1');
  h.writeUInt32BE(3, 4);
  h.writeUInt32BE(16, 20);
  h.writeBigUInt64BE(1n << 30n, 24);
  h.writeUInt32BE(2, 36);
  h.writeBigUInt64BE(BigInt(3 * CS), 40);
  h.writeBigUInt64BE(BigInt(CS), 48);
  h.writeUInt32BE(1, 56);
  h.writeUInt32BE(104, 100);
  edit?.(h);
  return h;
}

test('qcow2 v2/v3 is a format booty decodes; v1, backing file and encryption stay refused by the head', () => {
  assert.equal(detectFormat(header()), 'qcow2');
  assert.equal(detectFormat(header((h) => h.writeUInt32BE(2, 4))), 'qcow2');
  assert.match(classifyHead(header((h) => h.writeUInt32BE(1, 4))).unsupported?.what ?? '', /qcow \(version 1\)/);
  const backing = classifyHead(header((h) => { h.writeBigUInt64BE(512n, 8); h.writeUInt32BE(4, 16); h.write('base', 512); })).unsupported;
  assert.match(backing?.what ?? '', /with a backing file "base"/);
  assert.match(backing?.reason ?? '', /not a whole disk/);
  assert.match(classifyHead(header((h) => h.writeUInt32BE(2, 32))).unsupported?.reason ?? '', /cannot decrypt/);
  assert.match(classifyHead(header((h) => h.writeBigUInt64BE(4n, 72))).unsupported?.what ?? '', /external data file/);
});

test('parseQcow2Header: the fields, and each refusal with its code', () => {
  const h = parseQcow2Header(header(), undefined);
  assert.deepEqual([h.version, h.clusterSize, h.virtualSize, h.l1Size, h.l1Offset, h.compression], [3, CS, 1 << 30, 2, 3 * CS, 'deflate']);
  const zstd = parseQcow2Header(header((b) => { b.writeBigUInt64BE(8n, 72); b.writeUInt32BE(112, 100); b[104] = 1; }), undefined);
  assert.equal(zstd.compression, 'zstd');
  const refused = (edit: (b: Buffer) => void, code: string, msg: RegExp) => assert.throws(() => parseQcow2Header(header(edit), 1 << 30), (e: Qcow2Refused) => {
    assert.equal(e.code, code, e.message);
    assert.match(e.message, msg);
    return true;
  });
  refused((b) => b.writeUInt32BE(40, 20), 'QCOW2_BAD_HEADER', /cluster_bits 40/);
  refused((b) => b.writeUInt32BE(1, 36), 'QCOW2_BAD_HEADER', /too few for a 1073741824-byte disk/);
  refused((b) => b.writeBigUInt64BE(12345n, 40), 'QCOW2_BAD_HEADER', /not a cluster boundary/);
  refused((b) => b.writeBigUInt64BE(1n << 31n, 40), 'QCOW2_BAD_HEADER', /past the end of the file/);
  refused((b) => b.writeBigUInt64BE(2n, 72), 'QCOW2_CORRUPT', /marked corrupt/);
  refused((b) => b.writeBigUInt64BE(16n, 72), 'QCOW2_UNSUPPORTED', /extended L2/);
  refused((b) => b.writeBigUInt64BE(1n << 40n, 72), 'QCOW2_UNSUPPORTED', /feature bits booty does not know \(0x10000000000\)/);
  refused((b) => { b.writeBigUInt64BE(8n, 72); b.writeUInt32BE(112, 100); b[104] = 7; }, 'QCOW2_UNSUPPORTED', /compression type 7/);
  refused((b) => { b.writeUInt32BE(0x0537be77, 104); b.writeUInt32BE(16, 108); }, 'QCOW2_ENCRYPTED', /encryption header/);
  refused((b) => { b.writeUInt32BE(0x44415441, 104); b.writeUInt32BE(8, 108); }, 'QCOW2_DATA_FILE', /external data file/);
  // a dirty image is accepted (only its refcounts may be stale)
  assert.equal(parseQcow2Header(header((b) => b.writeBigUInt64BE(1n, 72)), undefined).dirty, true);
});

test('L1/L2 entries: pointers checked, compressed descriptors decoded, zero and unallocated left to zero runs', () => {
  const h = parseQcow2Header(header(), 64 << 20);
  const l1 = Buffer.alloc(16);
  l1.writeBigUInt64BE((1n << 63n) | BigInt(4 * CS), 0);
  const refs = parseL1(l1, h, 64 << 20);
  assert.deepEqual(refs, [{ offset: 4 * CS, firstGuestCluster: 0, l1Index: 0 }]);
  const bad = Buffer.from(l1); bad.writeBigUInt64BE(BigInt(4 * CS + 512), 0);
  assert.throws(() => parseL1(bad, h, 64 << 20), /not a cluster boundary/);
  bad.writeBigUInt64BE(1n << 62n, 0);
  assert.throws(() => parseL1(bad, h, 64 << 20), /reserved bits/);

  const l2 = Buffer.alloc(CS);
  l2.writeBigUInt64BE((1n << 63n) | BigInt(6 * CS), 0); // data
  l2.writeBigUInt64BE(1n, 8); // zero flag, no offset
  l2.writeBigUInt64BE(BigInt(7 * CS) | 1n, 16); // preallocated zero cluster
  // compressed at byte 8*CS+700, 3 more sectors: csize = 4*512 - 700%512
  const shift = 62n - 8n;
  l2.writeBigUInt64BE((1n << 62n) | (3n << shift) | BigInt(8 * CS + 700), 24);
  const list = new ClusterList();
  const bitmap = new GuestBitmap(Math.ceil(h.virtualSize / CS));
  assert.equal(parseL2(l2, refs[0], h, 64 << 20, list, bitmap), 2);
  assert.deepEqual([...list.host.subarray(0, 2)], [6 * CS, 8 * CS + 700]);
  assert.deepEqual([...list.guest.subarray(0, 2)], [0, 3]);
  assert.deepEqual([...list.csize.subarray(0, 2)], [0, 4 * 512 - 700 % 512]);
  assert.ok(bitmap.has(0) && !bitmap.has(1) && !bitmap.has(2) && bitmap.has(3));
  const v2 = parseQcow2Header(header((b) => { b.writeUInt32BE(2, 4); }), undefined);
  assert.throws(() => parseL2(l2, refs[0], v2, undefined, new ClusterList(), new GuestBitmap(16384)), /bit 0 set, which version 2 reserves/);
  const outside = Buffer.alloc(CS); outside.writeBigUInt64BE(BigInt(2000 * CS), 0);
  assert.throws(() => parseL2(outside, refs[0], h, 64 << 20, new ClusterList(), new GuestBitmap(16384)), (e: Qcow2TableError) => e.code === 'QCOW2_BAD_L2' && /past the end of the file/.test(e.message));
});

test('HostOrderChecker: tables, partial overlaps refused; exact shares and shared compressed sectors accepted', () => {
  const h = parseQcow2Header(header(), undefined);
  const meta = new MetaRanges();
  meta.add(0, CS); meta.add(3 * CS, 3 * CS + 16); meta.add(4 * CS, 5 * CS);
  const c = new HostOrderChecker(h, meta);
  assert.throws(() => c.check(4 * CS, 0, 0), /overlaps the image's tables at bytes 262144-327680/);
  c.check(6 * CS, 0, 0);
  c.check(6 * CS, 1, 0); // the same host cluster again
  assert.throws(() => new HostOrderChecker(h, meta).check(3 * CS, 0, 0), /overlaps the image's tables/);
  const c2 = new HostOrderChecker(h, meta);
  c2.check(6 * CS, 0, 0);
  assert.throws(() => c2.check(6 * CS + 512, 1, 900), /overlaps the cluster at byte 393216/);
  const c3 = new HostOrderChecker(h, meta);
  c3.check(8 * CS, 0, 1000);
  c3.check(8 * CS + 1000, 1, 1000); // shares the sector the first one ends in
  assert.throws(() => c3.check(8 * CS + 1500, 2, 0), /overlaps compressed data/);
});

test('ClusterList sorts what is left by host offset; coalesce groups neighbouring tables', () => {
  const l = new ClusterList();
  for (let i = 0; i < 3000; i++) l.add((3000 - i) * CS, i, 0);
  l.sort();
  for (let i = 1; i < l.count; i++) assert.ok(l.host[i] > l.host[i - 1]);
  assert.equal(l.guest[0], 2999);
  assert.deepEqual(coalesce([{ start: 0, length: 10 }, { start: 100, length: 10 }, { start: 10 << 20, length: 10 }]).map((r) => [r.start, r.end, r.members]),
    [[0, 110, [0, 1]], [10 << 20, (10 << 20) + 10, [2]]]);
});
