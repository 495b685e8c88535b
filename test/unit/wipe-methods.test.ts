// The wipe methods on regular files (no root, no device): what each writes, what its verification
// reads, and that a method that cannot run is refused before writing (fallback "none") or
// replaced by zero and named so (fallback "zero"). The NVMe passthrough's command layout and the
// decoding of Identify data, against the NVMe base specification's offsets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runWipeMethod } from '../../src/agent/wipe-methods.ts';
import { VERIFY_RANDOM_BLOCKS, verifyPlan, verifyZero } from '../../src/agent/wipe-verify.ts';
import { encodePassthru, formatCdw10, parseIdentifyController, parseIdentifyNamespace, PASSTHRU_CMD_SIZE } from '../../src/sys/nvme.ts';
import { isBootyError } from '../../src/util/errors.ts';
import { validators } from '../../src/config/schema.ts';
import type { Logger } from '../../src/util/log.ts';

const MiB = 1 << 20;
const lines: string[] = [];
const log = { debug: (m: string) => { lines.push(m); }, info: (m: string) => { lines.push(m); }, warn: (m: string) => { lines.push(m); }, error: (m: string) => { lines.push(m); } } as unknown as Logger;

const dirs: string[] = [];
process.on('exit', () => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });

function randomFile(bytes: number): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-wipe-'));
  dirs.push(dir);
  const p = path.join(dir, 'disk.img');
  fs.writeFileSync(p, crypto.randomBytes(bytes));
  return p;
}
const zeroCount = (b: Buffer) => b.reduce((n, x) => n + (x === 0 ? 1 : 0), 0);

test('verifyPlan: head, tail and N random aligned blocks, inside the given ranges', () => {
  const size = 1024 * MiB;
  const plan = verifyPlan(size);
  assert.deepEqual(plan.slice(0, 2), [{ offset: 0, length: MiB, what: 'head' }, { offset: size - MiB, length: MiB, what: 'tail' }]);
  const random = plan.filter((p) => p.what === 'random');
  assert.equal(random.length, VERIFY_RANDOM_BLOCKS);
  for (const r of random) { assert.equal(r.offset % 4096, 0); assert.equal(r.length, 4096); assert.ok(r.offset + r.length <= size); }
  // quick: only inside the zeroed ranges
  const ranges: [number, number][] = [[0, 100 * MiB], [size - MiB, MiB]];
  const q = verifyPlan(size, { within: ranges });
  for (const r of q) assert.ok(ranges.some(([o, l]) => r.offset >= o && r.offset + r.length <= o + l), JSON.stringify(r));
  assert.deepEqual(q[1], { offset: size - MiB, length: MiB, what: 'tail' });
  // a disk smaller than the edges
  assert.deepEqual(verifyPlan(8192, { count: 0 }), [{ offset: 0, length: 8192, what: 'head' }, { offset: 0, length: 8192, what: 'tail' }]);
});

test('verifyZero finds one non-zero byte in a sampled block, and says where', () => {
  const p = randomFile(4 * MiB);
  fs.writeFileSync(p, Buffer.alloc(4 * MiB));
  assert.equal(verifyZero(p, verifyPlan(4 * MiB)).zero, true);
  const fd = fs.openSync(p, 'r+');
  fs.writeSync(fd, Buffer.from([7]), 0, 1, 4 * MiB - 10);
  fs.closeSync(fd);
  const v = verifyZero(p, verifyPlan(4 * MiB));
  assert.equal(v.zero, false);
  assert.deepEqual(v.nonZeroAt, [4 * MiB - 10]);
  assert.match(v.summary, /NOT all zero \(first non-zero bytes at byte 4194294\)/);
});

test('zero: the whole file zeroed (written zeros: a file has no BLKZEROOUT), verified', async () => {
  const p = randomFile(12 * MiB);
  const progress: number[] = [];
  const r = await runWipeMethod({ disk: p, method: 'zero', fallback: 'none', log, onProgress: (b) => progress.push(b) });
  assert.equal(r.method, 'zero (written zeros)');
  assert.equal(r.verified, true);
  assert.match(r.verification, /^head 1 MiB, tail 1 MiB, 64 random 4 KiB blocks read back as zeros/);
  assert.equal(zeroCount(fs.readFileSync(p)), 12 * MiB);
  assert.deepEqual(progress, [12 * MiB]);
});

test('quick: first 100 MiB and last MiB zeroed, the middle kept; verified inside those ranges only', async () => {
  const p = randomFile(110 * MiB);
  const before = fs.readFileSync(p).subarray(100 * MiB, 109 * MiB);
  const r = await runWipeMethod({ disk: p, method: 'quick', fallback: 'none', log });
  assert.equal(r.method, 'quick (first 100 MiB and last MiB zeroed)');
  assert.equal(r.verified, true);
  assert.match(r.verification, /of the zeroed ranges \(first 100 MiB, last MiB\) read back as zeros/);
  const after = fs.readFileSync(p);
  assert.equal(zeroCount(after.subarray(0, 100 * MiB)), 100 * MiB);
  assert.equal(zeroCount(after.subarray(109 * MiB)), MiB);
  assert.ok(after.subarray(100 * MiB, 109 * MiB).equals(before), 'the middle is not touched');
});

test('secure on something that is not NVMe: refused before writing, or zero named as the fallback', async () => {
  const p = randomFile(4 * MiB);
  const before = fs.readFileSync(p);
  await assert.rejects(runWipeMethod({ disk: p, method: 'secure', fallback: 'none', log }), (e: unknown) =>
    isBootyError(e) && e.code === 'wipe-method-unavailable' && e.diskState === 'untouched' && /is not an NVMe namespace/.test(e.message) && /"fallback": "zero"/.test(e.hint ?? ''));
  assert.ok(fs.readFileSync(p).equals(before), 'nothing written');
  const r = await runWipeMethod({ disk: p, method: 'secure', fallback: 'zero', log });
  assert.match(r.method, /^secure not available \(.* is not an NVMe namespace\); fallback: zero \(written zeros\)$/);
  assert.equal(r.verified, true);
  // the result event carrying it passes the server's schema (a refused batch would lose the result)
  const event = { type: 'result', time: new Date().toISOString(), ok: true, action: 'wipe', method: `${r.method} (ATA Secure Erase and SCSI SANITIZE are not implemented by booty)`, verification: r.verification, verified: r.verified };
  assert.equal(validators.agentEvent(event), true, JSON.stringify(validators.agentEvent.errors));
  assert.equal(zeroCount(fs.readFileSync(p)), 4 * MiB);
});

test('discard where BLKDISCARD is refused (a file): refused before writing, or the zero fallback', async () => {
  const p = randomFile(2 * MiB);
  await assert.rejects(runWipeMethod({ disk: p, method: 'discard', fallback: 'none', log }), (e: unknown) =>
    isBootyError(e) && e.code === 'wipe-method-unavailable' && /refuses BLKDISCARD/.test(e.message));
  const r = await runWipeMethod({ disk: p, method: 'discard', fallback: 'zero', log });
  assert.match(r.method, /^discard not available .*; fallback: zero/);
});

test('NVMe passthrough: struct nvme_passthru_cmd layout (72 bytes) and Format NVM CDW10', () => {
  const data = Buffer.alloc(4096);
  const b = encodePassthru({ opcode: 0x06, nsid: 1, cdw10: 1, data, timeoutMs: 5000 }, 0x1122334455667788n);
  assert.equal(b.length, PASSTHRU_CMD_SIZE);
  assert.equal(b[0], 0x06);
  assert.equal(b.readUInt32LE(4), 1);
  assert.equal(b.readBigUInt64LE(24), 0x1122334455667788n);
  assert.equal(b.readUInt32LE(36), 4096);
  assert.equal(b.readUInt32LE(40), 1);
  assert.equal(b.readUInt32LE(64), 5000);
  // LBA format 0, no metadata, no PI, SES=1 -> 0x200; LBAF 17 (upper bits), PI type 1 first, extended metadata, SES 2
  assert.equal(formatCdw10({ lbaf: 0, metadataExtended: false, pi: 0, pil: false, blockSize: 512 }, 1), 0x200);
  assert.equal(formatCdw10({ lbaf: 17, metadataExtended: true, pi: 1, pil: true, blockSize: 4096 }, 2), 0x1 | 0x10 | 0x20 | 0x100 | 0x400 | 0x1000);
});

test('NVMe Identify decoding: OACS format bit, FNA, SANICAP, NN; FLBAS and the LBA size in use', () => {
  const c = Buffer.alloc(4096);
  c.write('SER123'.padEnd(20), 4, 'latin1');
  c.write('QEMU NVMe Ctrl'.padEnd(40), 24, 'latin1');
  c.writeUInt16LE(0x0002 | 0x0008, 256);
  c.writeUInt32LE(0x2, 328);
  c.writeUInt32LE(1, 516);
  c[524] = 0x4;
  assert.deepEqual(parseIdentifyController(c), {
    serial: 'SER123', model: 'QEMU NVMe Ctrl', formatSupported: true, formatAllNamespaces: false, eraseAllNamespaces: false,
    cryptoEraseSupported: true, sanitize: { crypto: false, block: true, overwrite: false }, namespaces: 1,
  });
  c.writeUInt16LE(0x0008, 256);
  assert.equal(parseIdentifyController(c).formatSupported, false);
  const n = Buffer.alloc(4096);
  n[26] = 0x11; // LBA format 1, extended metadata
  n[29] = 0x09; // PI type 1, first
  n[128 + 4 + 2] = 12; // LBAF1: 4096-byte blocks
  assert.deepEqual(parseIdentifyNamespace(n), { lbaf: 1, metadataExtended: true, pi: 1, pil: true, blockSize: 4096 });
});
