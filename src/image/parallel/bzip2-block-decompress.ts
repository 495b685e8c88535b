// Deploy's bzip2 decoder on several cores: a Transform from the .bz2 file (as served, in order) to
// the disk's bytes (in order). bzip2 blocks are bit-aligned and say nothing of their length, so,
// as lbzip2 does, the main thread scans every bit position for the block magic and the
// end-of-stream magic (bzip2-bits.ts) and cuts the input between consecutive magics; each piece
// is re-aligned into a one-block stream and decoded by libbz2 on a block worker
// (block-decode-worker-entry.ts), which checks the block's CRC; pieces decode up to `maxInflight`
// at once and are emitted in order.
//
// A magic can also occur by chance inside a block's compressed data (48 bits: about once per 35
// TB of random data, more often in a crafted file). Pieces are decoded speculatively, and each is
// accepted only in order, starting where the previous one ended: a piece that starts at a real
// block and fails to decode ended at a false magic, so it is cut again up to the magic after that
// (and the piece that started at the false magic is dropped), up to MAX_MERGES times or
// MAX_PIECE bytes; a piece that still fails is a corrupt block. The stream's combined CRC is
// checked against the block CRCs after the end-of-stream magic, as bzip2 -d does; streams in a
// row (pbzip2 writes one per chunk, `cat a.bz2 b.bz2`) are read one after the other, and bytes
// after the last stream that start no stream are left unconsumed (deploy reports trailing bytes).
//
// Memory: the input from the block being resolved on, plus at most `maxInflight` pieces
// (compressed, and their output less its all-zero 4 MiB parts).
import { BlockDecodeError, type BlockDecodePool, type BlockPart } from './block-decode-pool.ts';
import { BlockDecompressTransform } from './block-decompress-transform.ts';
import { createGcPacer } from '../sink/gc-pacer.ts';
import { MagicScanner, combineCrc, readBits, type Magic } from '../format/bzip2-bits.ts';

/** A piece (one block, or blocks merged after false magics) longer than this is corrupt: a
 *  bzip2 block holds at most 900 kB before compression and barely grows when compressed. */
const MAX_PIECE = 2 << 20;
/** False magics tolerated inside one block before it is called corrupt. */
const MAX_MERGES = 16;

interface Piece { start: number; end: number; crc: number; level: number; parts?: BlockPart[]; err?: Error; settled: boolean; done: Promise<void> }

function decodeError(message: string, code: 'Z_DATA_ERROR' | 'Z_BUF_ERROR' | 'DECODER_LIMIT'): Error & { code: string } {
  return Object.assign(new Error(message), { code });
}

const isLevel = (b: number) => b >= 0x31 && b <= 0x39;

export interface Bzip2BlockDecompressOptions {
  pool: BlockDecodePool;
  /** pieces decoding or waiting at once (default: as many as the workers: one more held 3-5 MiB
   *  more at the peak) */
  maxInflight?: number;
  /** what finds the magics (tests give one that also reports magics inside compressed data, as
   *  a crafted file would have them) */
  scanner?: MagicScanner;
}

export class Bzip2BlockDecompressor extends BlockDecompressTransform {
  /** blocks decoded on the workers */
  blocks = 0;
  /** streams read */
  streams = 0;
  /** magics found inside compressed data (pieces cut again) */
  falseMagics = 0;
  private readonly pool: BlockDecodePool;
  private readonly maxInflight: number;
  private readonly pace = createGcPacer(8 << 20, 'major');
  private readonly scanner: MagicScanner;
  /** magics not yet behind `cur`, in order */
  private cands: Magic[] = [];
  /** the input from byte `chunks[0].at` on (what resolving `cur` onwards may still need) */
  private chunks: Array<{ at: number; buf: Buffer }> = [];
  private phase: 'header' | 'element' | 'done' = 'header';
  /** where the next stream header is expected (byte), in phase 'header' */
  private headerAt = 0;
  /** the next block or end-of-stream magic (bit), in phase 'element' */
  private cur = 0;
  private level = 0x39;
  private combined = 0;
  /** pieces handed to the workers, in input order; the first starts at `cur` when it is real */
  private pieces: Piece[] = [];
  private merges = 0;
  private firstFailure: { err: Error; at: number } | undefined;
  private consumed = 0;

  constructor(o: Bzip2BlockDecompressOptions) {
    super();
    this.pool = o.pool;
    this.maxInflight = Math.max(2, o.maxInflight ?? o.pool.size);
    this.scanner = o.scanner ?? new MagicScanner();
  }

  /** Input bytes consumed (for trailingBytes()): up to the end of the last stream, once it ended. */
  override get bytesWritten(): number {
    return this.consumed;
  }

  protected override async accept(chunk: Buffer): Promise<void> {
    if (this.phase === 'done') return;
    this.chunks.push({ at: this.scanner.bytes, buf: chunk });
    for (const m of this.scanner.push(chunk)) this.cands.push(m);
    return this.advance(false);
  }

  protected override finish(): Promise<void> {
    return this.advance(true);
  }

  private get inputBits(): number {
    return this.scanner.bytes * 8;
  }

  private truncated(): Error {
    return decodeError(`unexpected end of input at byte ${this.scanner.bytes} (the stream ends early)`, 'Z_BUF_ERROR');
  }

  /** Resolves what the input so far allows, in order; `final`: no more input comes. */
  private async advance(final: boolean): Promise<void> {
    for (;;) {
      if (this.phase === 'done') return;
      if (this.phase === 'header') {
        const available = this.scanner.bytes - this.headerAt;
        if (available < 4) {
          if (!final) return;
          if (this.streams === 0) throw this.truncated();
          return this.stop(); // nothing, or a few bytes that start no stream: trailing
        }
        const h = this.bytes(this.headerAt, this.headerAt + 4);
        if (h.toString('latin1', 0, 3) !== 'BZh' || !isLevel(h[3])) {
          if (this.streams === 0) throw decodeError('not a bzip2 stream (bad magic)', 'Z_DATA_ERROR');
          return this.stop();
        }
        this.level = h[3];
        this.combined = 0;
        this.streams++;
        this.cur = (this.headerAt + 4) * 8;
        this.consumed = this.headerAt + 4;
        this.phase = 'element';
        continue;
      }
      while (this.cands.length > 0 && this.cands[0].bit < this.cur) this.cands.shift();
      while (this.pieces.length > 0 && this.pieces[0].start < this.cur) this.pieces.shift();
      this.release();
      const c = this.cands[0];
      if (c === undefined || c.bit !== this.cur) {
        if (c !== undefined || this.scanner.scannedBits > this.cur) {
          throw decodeError(`no bzip2 block or end-of-stream magic where the ${this.blocks === 0 ? 'stream header ends' : 'block before ends'} (byte ${this.cur >>> 3}): corrupt data`, 'Z_DATA_ERROR');
        }
        if (final) throw this.truncated();
        return;
      }
      if (c.eos) {
        if (this.cur + 80 > this.inputBits) {
          if (final) throw this.truncated();
          return;
        }
        const stored = readBits(this.bytes(this.cur >>> 3, ((this.cur + 80) >>> 3) + 1), (this.cur & 7) + 48, 32);
        if (stored !== this.combined) {
          throw decodeError(`the stream's combined CRC at byte ${this.cur >>> 3} does not match its blocks (stored ${stored.toString(16)}, blocks ${this.combined.toString(16)}): corrupt data`, 'Z_DATA_ERROR');
        }
        this.headerAt = Math.ceil((this.cur + 80) / 8);
        this.consumed = this.headerAt;
        this.phase = 'header';
        continue;
      }
      this.dispatchMore();
      const p = this.pieces[0];
      if (p === undefined || p.start !== this.cur) {
        // the magic after this block is not in yet
        if (final) throw this.truncated();
        return;
      }
      if (!p.settled) {
        if (!final && this.pieces.length < this.maxInflight) return;
        await p.done;
      }
      if (p.err !== undefined) {
        if (!(p.err instanceof BlockDecodeError)) throw p.err;
        this.firstFailure ??= { err: p.err, at: this.cur };
        const next = this.cands.find((m) => m.bit > p.end);
        if (next === undefined) {
          if (final) throw this.corrupt();
          return;
        }
        if (this.merges >= MAX_MERGES || next.bit - this.cur > MAX_PIECE * 8) throw this.corrupt();
        // p ended at a false magic: cut again up to the next one, dropping what started inside
        this.merges++;
        while (this.pieces.length > 0 && this.pieces[0].start < next.bit) this.pieces.shift();
        this.pieces.unshift(this.piece(this.cur, next.bit, this.level));
        continue;
      }
      this.pieces.shift();
      this.pace(await this.emitParts(p.parts!));
      if (this.merges > 0) this.falseMagics += this.merges;
      this.merges = 0;
      this.firstFailure = undefined;
      this.blocks++;
      this.combined = combineCrc(this.combined, p.crc);
      this.cur = p.end;
      this.consumed = this.cur >>> 3;
    }
  }

  private corrupt(): Error {
    const f = this.firstFailure!;
    return decodeError(`the bzip2 block at byte ${f.at >>> 3} (bit ${f.at & 7}): ${f.err.message}`, (f.err as BlockDecodeError).kind === 'limits' ? 'DECODER_LIMIT' : 'Z_DATA_ERROR');
  }

  /** Bytes after the last stream that start no stream: not consumed (deploy reports them). */
  private stop(): void {
    this.phase = 'done';
    this.chunks = [];
    this.cands = [];
    this.pieces = [];
  }

  /** Hands the workers the pieces between the magics known, in order, speculatively. */
  private dispatchMore(): void {
    const last = this.pieces.length > 0 ? this.pieces[this.pieces.length - 1] : undefined;
    let s = last?.end ?? this.cur;
    let level = last?.level ?? this.level;
    let i = this.cands.findIndex((m) => m.bit === s);
    while (i >= 0 && this.pieces.length < this.maxInflight) {
      const m = this.cands[i];
      if (m.eos) {
        // the next stream's first block, if a stream follows where this one would end
        const headerAt = Math.ceil((s + 80) / 8);
        if (headerAt + 4 > this.scanner.bytes) return;
        const h = this.bytes(headerAt, headerAt + 4);
        if (h.toString('latin1', 0, 3) !== 'BZh' || !isLevel(h[3])) return;
        level = h[3];
        s = (headerAt + 4) * 8;
        i = this.cands.findIndex((x) => x.bit === s);
        continue;
      }
      const next = this.cands[i + 1];
      if (next === undefined || next.bit - s > MAX_PIECE * 8) return;
      this.pieces.push(this.piece(s, next.bit, level));
      s = next.bit;
      i++;
    }
  }

  private piece(start: number, end: number, level: number): Piece {
    const from = start >>> 3;
    const data = this.bytes(from, Math.ceil(end / 8), true);
    const bit = start & 7;
    const crc = data.length * 8 >= bit + 80 ? readBits(data, bit + 48, 32) : 0;
    const p: Piece = { start, end, crc, level, settled: false, done: Promise.resolve() };
    p.done = this.pool.run({ op: 'bz2', data, bit, bits: end - start, level: level - 0x30, crc }).then((parts) => {
      p.parts = parts;
      p.settled = true;
    }, (e: Error) => {
      p.err = e;
      p.settled = true;
    });
    return p;
  }

  /** Input bytes [from, to) (all received), copied into a buffer of their own when `own`. */
  private bytes(from: number, to: number, own = false): Buffer {
    to = Math.min(to, this.scanner.bytes);
    const out = own || to - from > 64 ? Buffer.allocUnsafeSlow(to - from) : Buffer.allocUnsafe(to - from);
    let filled = 0;
    for (const c of this.chunks) {
      const cEnd = c.at + c.buf.length;
      if (cEnd <= from) continue;
      if (c.at >= to) break;
      const a = Math.max(from, c.at) - c.at;
      const b = Math.min(to, cEnd) - c.at;
      c.buf.copy(out, filled, a, b);
      filled += b - a;
    }
    return out;
  }

  /** Drops input before the byte `cur` is in: nothing before it is needed again. */
  private release(): void {
    const keep = this.cur >>> 3;
    while (this.chunks.length > 0 && this.chunks[0].at + this.chunks[0].buf.length <= keep) this.chunks.shift();
  }
}
