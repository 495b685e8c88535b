// bzip2's framing at the bit level, for decoding its blocks on several workers
// (bzip2-block-decompress.ts): a stream is "BZh" and a level digit, then blocks, each starting
// with the 48-bit magic 0x314159265359 and its 32-bit CRC, then the 48-bit end-of-stream magic
// 0x177245385090 and the 32-bit combined CRC, padded to a byte. Blocks are not byte-aligned and
// say nothing of their length, so they are found as lbzip2 finds them: by scanning every bit
// position for the two magics (MagicScanner). The magics can also occur by chance inside a
// block's compressed data; the caller tells the real ones from the false by decoding
// (bzip2-block-decompress.ts). standaloneBlock() re-aligns one block into a one-block stream that
// libbz2 decodes and checks on its own.
// Worker-safe (a worker entry imports standaloneBlock): no imports.

export const BLOCK_MAGIC = 0x314159265359;
export const EOS_MAGIC = 0x177245385090;

/** A magic found in the input: its first bit (from the start of the input) and which one. */
export interface Magic { bit: number; eos: boolean }

const MAGICS = [BLOCK_MAGIC, EOS_MAGIC];
const hi16 = (m: number) => Math.floor(m / 2 ** 32);
const lo32 = (m: number) => m % 2 ** 32;

/**
 * For each magic and each bit `shift` it may start at inside a 7-byte window's first byte, the
 * window's bytes 1..5, which the magic then covers whole and which are fixed: searching for these
 * sixteen 5-byte strings with Buffer.indexOf (native) finds every candidate window, and only those
 * are checked bit by bit. (A JavaScript look at every byte was the bzip2 deploy's main-thread cost.)
 */
const PATTERNS = MAGICS.flatMap((m, which) => Array.from({ length: 8 }, (_, shift) => ({
  which,
  shift,
  bytes: Buffer.from(Array.from({ length: 5 }, (_, i) => Math.floor(m / 2 ** (32 - 8 * i + shift)) % 256)),
})));

/** Finds every bit position where a block or end-of-stream magic starts, across chunk boundaries. */
export class MagicScanner {
  /** input bytes seen */
  bytes = 0;
  /** the last bytes of the input, not yet the start of a full 7-byte window */
  private tail: Buffer = Buffer.alloc(0);

  /** All magics starting before bit 8 * (bytes - 6) are reported once the bytes are in. */
  get scannedBits(): number {
    return Math.max(0, this.bytes - 6) * 8;
  }

  /** Scans `chunk` (the input's next bytes); returns the magics found, in order. */
  push(chunk: Buffer): Magic[] {
    const data = this.tail.length === 0 ? chunk : Buffer.concat([this.tail, chunk]);
    const base = this.bytes - this.tail.length; // input offset of data[0]
    this.bytes += chunk.length;
    const found: Magic[] = [];
    const last = data.length - 7;
    for (const { which, shift, bytes } of PATTERNS) {
      const m = MAGICS[which];
      // bytes 1..5 of the window at b are the pattern: it is found at b + 1
      for (let i = data.indexOf(bytes, 1); i !== -1 && i - 1 <= last; i = data.indexOf(bytes, i + 1)) {
        const b = i - 1;
        const y = (data[b] << 16) | (data[b + 1] << 8) | data[b + 2];
        const x = data[b + 2] * 2 ** 32 + (((data[b + 3] << 24) | (data[b + 4] << 16) | (data[b + 5] << 8) | data[b + 6]) >>> 0);
        if (((y >> (8 - shift)) & 0xffff) === hi16(m) && Math.floor(x / 2 ** (8 - shift)) % 2 ** 32 === lo32(m)) {
          found.push({ bit: (base + b) * 8 + shift, eos: which === 1 });
        }
      }
    }
    this.tail = Buffer.from(data.subarray(Math.max(0, data.length - 6)));
    return found.sort((a, b) => a.bit - b.bit);
  }
}

/** `n` (<= 32) bits of `b` starting at bit `at`, most significant first, as bzip2 writes them. */
export function readBits(b: Uint8Array, at: number, n: number): number {
  let v = 0;
  for (let i = 0; i < n; i++) {
    const bit = at + i;
    v = v * 2 + ((b[bit >>> 3] >> (7 - (bit & 7))) & 1);
  }
  return v;
}

function writeBits(b: Uint8Array, at: number, value: number, n: number): void {
  for (let i = 0; i < n; i++) {
    const bit = at + i;
    const one = Math.floor(value / 2 ** (n - 1 - i)) % 2;
    if (one) b[bit >>> 3] |= 0x80 >> (bit & 7);
    else b[bit >>> 3] &= ~(0x80 >> (bit & 7));
  }
}

/** The combined CRC after one more block (bzip2's rule: rotate left by one, xor the block's CRC). */
export function combineCrc(combined: number, blockCrc: number): number {
  return (((combined << 1) | (combined >>> 31)) ^ blockCrc) >>> 0;
}

/**
 * Bits [bit, bit + bits) of `src` (one block: its magic up to where the next magic starts) as a
 * stream of its own: "BZh" and `level`, the block moved to byte 4, the end-of-stream magic and the
 * combined CRC of a one-block stream (the block's own CRC, `crc`), zero padding.
 */
export function standaloneBlock(src: Uint8Array, bit: number, bits: number, level: number, crc: number): Buffer {
  const total = 32 + bits + 80;
  const out = Buffer.alloc((total + 7) >>> 3);
  out.write(`BZh${level}`, 0, 'latin1');
  const from = bit >>> 3;
  const s = bit & 7;
  const n = (bits + 7) >>> 3;
  if (s === 0) out.set(src.subarray(from, from + n), 4);
  else {
    // four bytes at a time from the five they straddle (the block's worker spends a tenth of its
    // time here with a byte loop), then the rest byte by byte
    const inv = new DataView(src.buffer, src.byteOffset, src.byteLength);
    const outv = new DataView(out.buffer, out.byteOffset, out.byteLength);
    const r = 8 - s;
    let i = 0;
    for (; i + 4 <= n && from + i + 5 <= src.length; i += 4) {
      const j = from + i;
      outv.setUint32(4 + i, (inv.getUint32(j) << s) | (src[j + 4] >>> r));
    }
    for (; i < n; i++) {
      const j = from + i;
      out[4 + i] = ((src[j] << s) | ((j + 1 < src.length ? src[j + 1] : 0) >> r)) & 0xff;
    }
  }
  writeBits(out, 32 + bits, hi16(EOS_MAGIC), 16);
  writeBits(out, 32 + bits + 16, lo32(EOS_MAGIC), 32);
  writeBits(out, 32 + bits + 48, crc, 32);
  // the padding after the CRC: zeros
  const end = 32 + bits + 80;
  if (end & 7) out[end >>> 3] &= 0xff << (8 - (end & 7));
  return out;
}
