// CRC-32 (the gzip one) of two byte strings put together, from their two CRCs and the second's
// length, without the bytes: what lets a gzip image decoded in independent segments be checked
// against its member's trailer. node:zlib has crc32() but not zlib's crc32_combine(), so this is
// written here, on the construction zlib's crc32_combine uses (Mark Adler): appending n zero bytes
// to a message maps its CRC register linearly over GF(2), a 32x32 bit matrix; the matrix for n
// bytes is built from the one for a single zero bit by squaring (log2 n steps), and
//   crc32(A || B) = zeros(len(B)) applied to crc32(A), xor crc32(B).
// The matrix for a length is kept (deploy combines hundreds of 4 MiB segments: one matrix).

const POLY = 0xedb88320;

/** A 32x32 matrix over GF(2) applied to a 32-bit vector: `mat[i]` is the image of bit i. */
export function gf2Times(mat: Uint32Array, vec: number): number {
  let sum = 0;
  for (let i = 0; vec !== 0; i++, vec >>>= 1) if (vec & 1) sum ^= mat[i];
  return sum >>> 0;
}

/** b after a, as one matrix. */
function compose(b: Uint32Array, a: Uint32Array): Uint32Array<ArrayBuffer> {
  const out = new Uint32Array(32);
  for (let i = 0; i < 32; i++) out[i] = gf2Times(b, a[i]);
  return out;
}

const cache = new Map<number, Uint32Array>();

/** The operator that appends `len` zero bytes to a CRC-32 register. */
export function zerosOperator(len: number): Uint32Array {
  if (!Number.isSafeInteger(len) || len < 0) throw new RangeError(`zerosOperator: bad length ${len}`);
  const known = cache.get(len);
  if (known !== undefined) return known;
  // one zero bit: shift right, folding in the polynomial when bit 0 falls out
  let step: Uint32Array<ArrayBuffer> = new Uint32Array(32);
  step[0] = POLY;
  for (let n = 1, row = 1; n < 32; n++, row <<= 1) step[n] = row;
  for (let i = 0; i < 3; i++) step = compose(step, step); // one zero byte
  let result: Uint32Array<ArrayBuffer> | undefined;
  for (let n = len; n > 0; n = Math.floor(n / 2)) {
    if (n % 2 === 1) result = result === undefined ? step : compose(step, result);
    if (n > 1) step = compose(step, step);
  }
  if (result === undefined) {
    result = new Uint32Array(32);
    for (let i = 0; i < 32; i++) result[i] = (1 << i) >>> 0;
  }
  if (cache.size >= 8) cache.clear();
  cache.set(len, result);
  return result;
}

/** CRC-32 of A followed by B, given crc32(A), crc32(B) and B's length in bytes. */
export function crc32Combine(crc1: number, crc2: number, len2: number): number {
  if (len2 === 0) return crc1 >>> 0;
  return (gf2Times(zerosOperator(len2), crc1 >>> 0) ^ crc2) >>> 0;
}
