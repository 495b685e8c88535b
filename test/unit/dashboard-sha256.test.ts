// The dashboard's incremental SHA-256 (src/server/dashboard/sha256.js, used to hash an image
// the browser uploads) against node:crypto: the FIPS 180-4 examples, every length around the
// block and padding boundaries, and random data fed in random pieces.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
// @ts-expect-error plain JavaScript served to browsers, without types
import { Sha256, sha256Hex } from '../../src/server/dashboard/sha256.js';

const nodeSha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const ours = (b: Uint8Array) => new Sha256().update(b).hex() as string;

describe('dashboard sha256.js', () => {
  it('gives the FIPS 180-4 example digests', () => {
    assert.equal(ours(Buffer.from('abc')), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    assert.equal(ours(Buffer.from('')), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    assert.equal(ours(Buffer.from('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')), '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1');
  });
  it('matches node:crypto for every length from 0 to 300 bytes', () => {
    const data = randomBytes(300);
    for (let n = 0; n <= 300; n++) assert.equal(ours(data.subarray(0, n)), nodeSha(data.subarray(0, n)), `length ${n}`);
  });
  it('matches node:crypto when fed in random pieces (as parts of a file are)', () => {
    for (let round = 0; round < 20; round++) {
      const data = randomBytes(1 + Math.floor(Math.random() * 200_000));
      const h = new Sha256();
      for (let off = 0; off < data.length;) {
        const n = Math.min(data.length - off, Math.floor(Math.random() * 5000));
        h.update(data.subarray(off, off + n));
        off += n;
      }
      assert.equal(h.hex(), nodeSha(data), `round ${round}, ${data.length} bytes`);
    }
  });
  it('hashes an ArrayBuffer, and one buffer through crypto.subtle the same', async () => {
    const data = randomBytes(70_000);
    const ab = data.buffer.slice(data.byteOffset, data.byteOffset + data.length);
    assert.equal(new Sha256().update(ab).hex(), nodeSha(data));
    assert.equal(await sha256Hex(ab), nodeSha(data));
  });
});
