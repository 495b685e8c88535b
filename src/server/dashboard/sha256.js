// SHA-256 (FIPS 180-4) fed in pieces: the browser's crypto.subtle.digest() takes one whole
// buffer and cannot stream, and exists only in a secure context (https or localhost; a booty
// server reached as http://10.0.0.1:3000 is not one), so a multi-gigabyte image is hashed here,
// part by part as it is uploaded. test/unit/dashboard-sha256.test.ts compares it with
// node:crypto on the NIST vectors and random splits.

// Int32Array: values stay small integers for the JIT (a Uint32Array hands out doubles above 2^31)
const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
  0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
  0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

export class Sha256 {
  #h = new Int32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  #w = new Int32Array(64);
  /** a block not yet full */
  #tail = new Uint8Array(64);
  #tailLen = 0;
  #length = 0; // bytes fed

  /** Feed bytes (Uint8Array or ArrayBuffer). */
  update(data) {
    const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
    this.#length += bytes.length;
    let off = 0;
    if (this.#tailLen > 0) {
      const take = Math.min(64 - this.#tailLen, bytes.length);
      this.#tail.set(bytes.subarray(0, take), this.#tailLen);
      this.#tailLen += take;
      off = take;
      if (this.#tailLen < 64) return this;
      this.#blocks(this.#tail, 0, 64);
      this.#tailLen = 0;
    }
    const whole = (bytes.length - off) & ~63;
    if (whole > 0) this.#blocks(bytes, off, whole);
    off += whole;
    if (off < bytes.length) { this.#tail.set(bytes.subarray(off), 0); this.#tailLen = bytes.length - off; }
    return this;
  }

  /** The digest in hex; the object is spent after. */
  hex() {
    const bits = this.#length * 8;
    const pad = new Uint8Array(((this.#tailLen + 9 + 63) & ~63) - this.#tailLen);
    pad[0] = 0x80;
    const dv = new DataView(pad.buffer);
    dv.setUint32(pad.length - 8, Math.floor(bits / 2 ** 32));
    dv.setUint32(pad.length - 4, bits >>> 0);
    const len = this.#length;
    this.update(pad);
    this.#length = len;
    let out = '';
    for (const v of this.#h) out += (v >>> 0).toString(16).padStart(8, '0');
    return out;
  }

  #blocks(bytes, off, n) {
    const w = this.#w;
    const hh = this.#h;
    let a0 = hh[0], b0 = hh[1], c0 = hh[2], d0 = hh[3], e0 = hh[4], f0 = hh[5], g0 = hh[6], h0 = hh[7];
    for (let p = off; p < off + n; p += 64) {
      for (let i = 0, j = p; i < 16; i++, j += 4) w[i] = (bytes[j] << 24) | (bytes[j + 1] << 16) | (bytes[j + 2] << 8) | bytes[j + 3];
      for (let i = 16; i < 64; i++) {
        const x = w[i - 15], y = w[i - 2];
        const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
        const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
        w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
      }
      let a = a0, b = b0, c = c0, d = d0, e = e0, f = f0, g = g0, h = h0;
      for (let i = 0; i < 64; i++) {
        const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
        const t1 = (h + S1 + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
        const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
        const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
        h = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
      }
      a0 = (a0 + a) | 0; b0 = (b0 + b) | 0; c0 = (c0 + c) | 0; d0 = (d0 + d) | 0;
      e0 = (e0 + e) | 0; f0 = (f0 + f) | 0; g0 = (g0 + g) | 0; h0 = (h0 + h) | 0;
    }
    hh[0] = a0; hh[1] = b0; hh[2] = c0; hh[3] = d0; hh[4] = e0; hh[5] = f0; hh[6] = g0; hh[7] = h0;
  }
}

/** One buffer's sha256: the browser's own (native, fast) where it exists, else this one. */
export async function sha256Hex(buf) {
  if (globalThis.crypto?.subtle) {
    const d = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
    return [...d].map((b) => b.toString(16).padStart(2, '0')).join('');
  }
  return new Sha256().update(buf).hex();
}
