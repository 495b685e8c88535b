// `build-initramfs --compression lz4`: the archive in lz4's legacy format (the only lz4 format
// the kernel's unlz4 reads), byte-identical from the same input, and what Debian's lz4 unpacks
// back to the input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { defaultLevel, writeCompressed } from '../../src/build/compress.ts';
import { skipUnlessPresent } from '../helpers/prerequisite.ts';

async function* chunks(data: Buffer): AsyncIterable<Buffer> {
  for (let o = 0; o < data.length; o += 1 << 20) yield data.subarray(o, o + (1 << 20));
}

const hasLz4 = (() => { try { execFileSync('lz4', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; } })();

test('lz4 archives: legacy magic, reproducible, unpacked by lz4 -d to the input', { skip: skipUnlessPresent(hasLz4, 'no lz4 program (Debian lz4)') }, async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'booty-lz4-'));
  try {
    // 10 MiB: more than one 8 MiB legacy block, half compressible
    const data = Buffer.concat([randomBytes(5 << 20), Buffer.alloc(5 << 20, 0x41)]);
    const a = path.join(dir, 'a.cpio.lz4');
    const b = path.join(dir, 'b.cpio.lz4');
    const ra = await writeCompressed(chunks(data), a, 'lz4', defaultLevel('lz4'));
    const rb = await writeCompressed(chunks(data), b, 'lz4', defaultLevel('lz4'));
    assert.equal(ra.rawBytes, data.length);
    assert.equal(ra.sha256, rb.sha256);
    const packed = readFileSync(a);
    assert.equal(packed.length, ra.bytes);
    assert.ok(packed.length < data.length * 0.6, `${packed.length} bytes`);
    assert.equal(packed.readUInt32LE(0), 0x184c2102, 'lz4 legacy frame magic');
    assert.ok(execFileSync('lz4', ['-d', '-c', a], { maxBuffer: 64 << 20 }).equals(data));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
