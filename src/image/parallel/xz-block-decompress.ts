// Deploy's xz decoder on several cores: a Transform from the .xz file (as served, in order) to the
// disk's bytes (in order). What `xz -T0`/`-T2` writes is a stream of blocks whose headers say
// their compressed and uncompressed sizes; this cuts the stream at those boundaries on the main
// thread (xz-container.ts reads the framing), decodes up to `maxInflight` blocks at once on the
// block workers (block-decode-worker-entry.ts: liblzma, each block checked in full: header CRC32,
// sizes, CRC32/CRC64/SHA-256 as the stream flags say) and emits each block's bytes in order. The
// framing is checked here as xz(1) checks it: the index against the blocks seen, the index and
// footer CRC32s, backward size, flags, stream padding; concatenated streams are read one after
// the other.
//
// What cannot be cut is decoded as before (one stream through liblzma on this thread,
// native-decompress.ts): a stream whose first block does not say its sizes (single-threaded xz
// writes one block without them) or is larger than MAX_BLOCK, from that stream's header on to the
// end of the file. A stream that starts with blocks that can be cut and later has one that cannot
// (no standard tool writes that) is refused with a DECODER_LIMIT error naming --workers 0.
//
// With a `placer` (xz-placed-writer.ts) nothing comes out of this stream: each block goes to a
// worker that writes its output at the block's own offset on the disk, so blocks of any size up to
// PLACE_MAX_BLOCK (xz -T0 -6's 24 MiB) decode side by side without waiting for each other's output.
//
// Memory: the block being received, plus at most `maxInflight` blocks and INFLIGHT_BYTES of
// output (less its all-zero 4 MiB parts, which travel as counts) decoding or waiting, plus one
// block's output waiting for the reader.
import { ByteQueue } from '../byte-queue.ts';
import { BlockDecodeError, type BlockDecodePool, type BlockPart } from './block-decode-pool.ts';
import { BlockDecompressTransform } from './block-decompress-transform.ts';
import type { BlockFeed, PlacedBlockWriter } from './xz-placed-writer.ts';
import { createGcPacer } from '../sink/gc-pacer.ts';
import { NativeDecompress } from '../format/native-decompress.ts';
import { xzDecoder } from '../../sys/liblzma.ts';
import {
  XZ_FOOTER_BYTES, XZ_HEADER_BYTES, XZ_MAGIC, blockBytes, footerProblem, parseBlockHeader, parseIndex, parseStreamHeader, unpaddedSize,
  type XzBlockHeader,
} from '../format/xz-container.ts';

/** Largest block (uncompressed) decoded on a worker: the memory budget. Two 4 MiB blocks in
 *  flight keep a deploy under 150 MiB RSS; 8 MiB blocks measured 163-169 MiB and `xz -T0 -6`'s
 *  24 MiB blocks 200-240 MiB (README, Performance), so larger blocks go to liblzma's own decoder
 *  as one stream. */
export const MAX_BLOCK = 4 << 20;
/** Largest block (uncompressed) a worker decodes and writes at its offset itself (placer): what
 *  `xz -T0` writes up to -7 (3 x the dictionary: 24 MiB at -6, 48 MiB at -7). Its compressed bytes
 *  are held whole, so larger ones (xz -T0 -8/-9: 96/192 MiB) stay with liblzma's decoder. */
export const PLACE_MAX_BLOCK = 48 << 20;
/** Uncompressed bytes of the blocks decoding or waiting at once (at least one block). */
export const INFLIGHT_BYTES = 16 << 20;
/** An index longer than this is refused (4 bytes or more per block: millions of blocks). */
const MAX_INDEX = 16 << 20;

type Phase = 'header' | 'block' | 'index' | 'footer' | 'padding';
/** A placed block whose `length` bytes (header to check) are next in the input. */
interface PlacedStart { length: number; unpadded: number; uncompressed: number; at: number }
interface Slot { parts?: BlockPart[]; err?: Error; done: Promise<void>; size: number }

function decodeError(message: string, code: 'Z_DATA_ERROR' | 'Z_BUF_ERROR' | 'DECODER_LIMIT'): Error & { code: string } {
  return Object.assign(new Error(message), { code });
}

/** A worker's refusal of the block at input byte `at`, in the deploy's words (other errors as they are). */
function blockError(e: Error, at: number): Error {
  return e instanceof BlockDecodeError
    ? decodeError(`the xz block at byte ${at}: ${e.message}`, e.kind === 'limits' ? 'DECODER_LIMIT' : 'Z_DATA_ERROR')
    : e;
}

/** Whether the .xz file starting with `head` can be cut into blocks: its first block says its
 *  sizes and is at most MAX_BLOCK (false when `head` is too short to tell). */
export function xzBlocksSplittable(head: Buffer, maxBlock = MAX_BLOCK): boolean {
  return firstBlockSize(head, maxBlock) !== undefined;
}

/** The uncompressed size of the first block of the .xz file starting with `head`, when it can be
 *  cut (says its sizes, at most `maxBlock`); undefined when not, or `head` is too short to tell. */
export function firstBlockSize(head: Buffer, maxBlock = MAX_BLOCK): number | undefined {
  if (head.length < XZ_HEADER_BYTES + 1 || typeof parseStreamHeader(head.subarray(0, XZ_HEADER_BYTES)) === 'string') return undefined;
  const h = parseBlockHeader(head.subarray(XZ_HEADER_BYTES));
  return typeof h === 'object' && splittable(h, maxBlock) ? h.uncompressed : undefined;
}

function splittable(h: XzBlockHeader, maxBlock: number): h is XzBlockHeader & { compressed: number; uncompressed: number } {
  return h.compressed !== undefined && h.uncompressed !== undefined && h.uncompressed <= maxBlock && h.compressed <= maxBlock + (1 << 20);
}

export interface XzBlockDecompressOptions {
  pool: BlockDecodePool;
  /** blocks decoding or waiting at once (default: one per worker, at least 2; fewer when they
   *  would hold more than INFLIGHT_BYTES) */
  maxInflight?: number;
  /** blocks go to workers that write them at their offsets (nothing is pushed downstream) */
  placer?: PlacedBlockWriter;
}

export class XzBlockDecompressor extends BlockDecompressTransform {
  /** blocks decoded on the workers */
  blocks = 0;
  /** streams read (concatenated .xz files have several) */
  streams = 0;
  /** input offset from which the single-stream decoder took over, if it did */
  streamedFrom: number | undefined;
  private readonly pool: BlockDecodePool;
  private readonly maxInflight: number;
  private readonly placer: PlacedBlockWriter | undefined;
  private readonly maxBlock: number;
  /** where the next block's output starts in the image (placer) */
  private outOffset = 0;
  /** blocks in order: the output parts moved here from the workers are freed once the writer
   *  copied them (block-decompress-transform.ts), the download's chunks are not: a scavenge and a
   *  full GC every 8 MiB of output collect those and what else the hand-offs leave (README,
   *  "Memory of the block decoders") */
  private readonly paceMinor = createGcPacer();
  private readonly paceMajor = createGcPacer(8 << 20, 'major');
  /** placed blocks: the download's chunks are copied into the rings as they come, young garbage
   *  at once; a scavenge every 2 MiB of them (every 8 MiB left ~4 MiB more at the peak) */
  private readonly paceInput = createGcPacer(2 << 20);
  private readonly q = new ByteQueue();
  private readonly slots: Slot[] = [];
  private phase: Phase = 'header';
  private consumed = 0;
  private header: Buffer | undefined;
  private flags: Buffer = Buffer.alloc(2);
  private check = 0;
  /** the blocks of the current stream, as the index records them: unpadded and uncompressed size */
  private seen: Array<[number, number]> = [];
  private indexBytes = 0;
  private inner: NativeDecompress | undefined;
  private innerFailed: Promise<never> | undefined;
  private innerError: Error | undefined;
  private inflightBytes = 0;
  /** the placed block whose bytes are arriving: where they go, and how many are still to come */
  private feeding: { feed: BlockFeed; left: number } | undefined;

  constructor(o: XzBlockDecompressOptions) {
    super();
    this.pool = o.pool;
    this.maxInflight = Math.max(2, o.maxInflight ?? o.pool.size);
    this.placer = o.placer;
    this.maxBlock = o.placer !== undefined ? PLACE_MAX_BLOCK : MAX_BLOCK;
  }

  /** Input bytes consumed (for trailingBytes()). */
  override get bytesWritten(): number {
    return this.consumed + (this.inner?.bytesWritten ?? 0);
  }

  protected override onFailure(e: Error): void {
    this.placer?.stop(e);
  }

  protected override onRead(): void {
    this.inner?.resume();
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.inner?.destroy();
    cb(err);
  }

  protected override async accept(chunk: Buffer): Promise<void> {
    if (this.inner !== undefined) return this.feedInner([chunk]);
    this.q.push(chunk);
    if (this.placer !== undefined) this.paceInput(chunk.length);
    for (;;) {
      const f = this.feeding;
      if (f !== undefined) {
        // (no more input is read while the block's ring is full)
        const n = Math.min(this.q.length, f.left);
        if (n === 0) return;
        await f.feed.write(this.q, n);
        f.left -= n;
        this.consumed += n;
        if (f.left === 0) this.feeding = undefined;
        continue;
      }
      const step = this.next();
      if (step === 'more') return;
      if (step === 'stream') return this.switchToStream();
      if (step === 'next') continue;
      if ('data' in step) await this.dispatch(step);
      else await this.startPlaced(step);
    }
  }

  protected override async finish(): Promise<void> {
    if (this.inner === undefined) {
      if (this.phase !== 'padding' || this.q.length > 0) {
        // a few zeros that are not a whole 4-byte unit of padding are corrupt, anything else short
        const shortPadding = this.phase === 'padding' && this.q.length < 4;
        throw shortPadding ? decodeError('the stream padding is not a multiple of 4 bytes', 'Z_DATA_ERROR')
          : decodeError(`unexpected end of input at byte ${this.consumed + this.q.length} (the stream ends early)`, 'Z_BUF_ERROR');
      }
      while (this.slots.length > 0) await this.emitHead();
      await this.placer?.drain();
      return;
    }
    while (this.slots.length > 0) await this.emitHead();
    const inner = this.inner;
    const ended = new Promise<void>((resolve) => inner.once('end', resolve));
    inner.end();
    await Promise.race([ended, this.innerFailed!]);
  }

  /** The next step of reading the framing: a block to decode, 'next' after a part that needs no
   *  worker, 'more' to wait for bytes, 'stream' to hand the rest to the single-stream decoder, or
   *  (placer) a block whose bytes follow, to start before they are read. */
  private next(): { data: Buffer; unpadded: number; uncompressed: number; at: number } | PlacedStart | 'more' | 'next' | 'stream' {
    const q = this.q;
    switch (this.phase) {
      case 'header': {
        if (q.length < XZ_HEADER_BYTES) return 'more';
        const header = q.take(XZ_HEADER_BYTES);
        const h = parseStreamHeader(header);
        if (typeof h === 'string') throw decodeError(`${h} at byte ${this.consumed}`, 'Z_DATA_ERROR');
        this.consumed += XZ_HEADER_BYTES;
        this.header = header;
        this.flags = h.flags;
        this.check = h.check;
        this.seen = [];
        this.streams++;
        this.phase = 'block';
        return 'next';
      }
      case 'block': {
        if (q.length < 1) return 'more';
        if (q.byteAt(0) === 0) { this.phase = 'index'; return 'next'; }
        const h = parseBlockHeader(q.peek((q.byteAt(0) + 1) * 4));
        if (h === 'more') return 'more';
        if (typeof h === 'string') throw decodeError(`${h} at byte ${this.consumed}`, 'Z_DATA_ERROR');
        if (!splittable(h, this.maxBlock)) {
          if (this.seen.length === 0 && this.placer === undefined) return 'stream';
          const what = h.compressed === undefined || h.uncompressed === undefined ? 'does not say its sizes' : `is larger than ${this.maxBlock >> 20} MiB`;
          const where = this.seen.length === 0 ? 'after streams whose blocks did' : 'where the blocks before it in its stream did';
          const e = decodeError(`the xz block at byte ${this.consumed} ${what} ${where}: booty cannot decode this file's blocks in parallel (deploy with --workers 0)`, 'DECODER_LIMIT');
          // a new stream whose blocks cannot be cut, after placed blocks: the in-order path reads it
          // as one stream (switchToStream), so the deploy starts over that way (deploy.ts)
          if (this.seen.length === 0) throw Object.assign(e, { xzNeedsInOrder: { atByte: this.consumed } });
          throw e;
        }
        const length = blockBytes(h, this.check);
        const unpadded = unpaddedSize(h, this.check);
        if (this.placer !== undefined) {
          // a block placed on the disk may be tens of MiB: its bytes go to its worker as they come
          this.seen.push([unpadded, h.uncompressed]);
          return { length, unpadded, uncompressed: h.uncompressed, at: this.consumed };
        }
        if (q.length < length) return 'more';
        const at = this.consumed;
        const data = q.take(length);
        this.consumed += length;
        this.seen.push([unpadded, h.uncompressed]);
        return { data, unpadded, uncompressed: h.uncompressed, at };
      }
      case 'index': {
        const ix = parseIndex(q.peek(Math.min(q.length, MAX_INDEX)));
        if (ix === 'more') {
          if (q.length >= MAX_INDEX) throw decodeError(`the index at byte ${this.consumed} is larger than ${MAX_INDEX >> 20} MiB`, 'DECODER_LIMIT');
          return 'more';
        }
        if (typeof ix === 'string') throw decodeError(`${ix} at byte ${this.consumed}`, 'Z_DATA_ERROR');
        const same = ix.records.length === this.seen.length && ix.records.every(([u, s], i) => u === this.seen[i][0] && s === this.seen[i][1]);
        if (!same) throw decodeError(`the index at byte ${this.consumed} does not match the blocks of its stream (${ix.records.length} records, ${this.seen.length} blocks)`, 'Z_DATA_ERROR');
        q.skip(ix.length);
        this.consumed += ix.length;
        this.indexBytes = ix.length;
        this.phase = 'footer';
        return 'next';
      }
      case 'footer': {
        if (q.length < XZ_FOOTER_BYTES) return 'more';
        const wrong = footerProblem(q.peek(XZ_FOOTER_BYTES), this.flags, this.indexBytes);
        if (wrong !== undefined) throw decodeError(`${wrong} at byte ${this.consumed}`, 'Z_DATA_ERROR');
        q.skip(XZ_FOOTER_BYTES);
        this.consumed += XZ_FOOTER_BYTES;
        this.phase = 'padding';
        return 'next';
      }
      case 'padding': {
        if (q.length === 0) return 'more';
        if (q.peek(Math.min(q.length, 4)).every((b) => b === 0)) {
          if (q.length < 4) return 'more';
          q.skip(4);
          this.consumed += 4;
          return 'next';
        }
        const head = q.peek(Math.min(q.length, 6));
        if (head.equals(XZ_MAGIC.subarray(0, head.length))) {
          if (head.length < 6) return 'more';
          this.phase = 'header';
          return 'next';
        }
        // liblzma (LZMA_CONCATENATED) reads bytes after a stream that start no stream as corrupt
        throw decodeError(`the bytes at byte ${this.consumed} after the end of an xz stream are neither stream padding nor another stream`, 'Z_DATA_ERROR');
      }
    }
  }

  /** Starts a placed block (its worker and ring); its bytes then go to it as they come (accept). */
  private async startPlaced(b: PlacedStart): Promise<void> {
    const offset = this.outOffset;
    this.outOffset += b.uncompressed;
    this.blocks++;
    const feed = await this.placer!.place({ length: b.length, flags: this.flags, unpadded: b.unpadded, uncompressed: b.uncompressed }, offset, (e) => blockError(e, b.at));
    this.feeding = { feed, left: b.length };
  }

  /** Starts decoding one block on the pool; emits finished blocks; waits while too many are in flight. */
  private async dispatch(b: { data: Buffer; unpadded: number; uncompressed: number; at: number }): Promise<void> {
    const slot: Slot = { size: b.uncompressed, done: Promise.resolve() };
    // q.take() may return a view of a larger chunk: a copy of its own moves to the worker
    const data = b.data.byteOffset === 0 && b.data.buffer.byteLength === b.data.length ? b.data : Buffer.from(b.data);
    slot.done = this.pool.run({ op: 'xz', data, flags: this.flags, unpadded: b.unpadded, uncompressed: b.uncompressed }).then((parts) => {
      slot.parts = parts;
    }, (e: Error) => {
      slot.err = blockError(e, b.at);
    });
    while (this.slots.length > 0 && this.inflightBytes + b.uncompressed > INFLIGHT_BYTES) await this.emitHead();
    this.slots.push(slot);
    this.inflightBytes += b.uncompressed;
    while (this.slots.length > 0 && (this.slots.length >= this.maxInflight || this.slots[0].parts !== undefined || this.slots[0].err !== undefined)) {
      await this.emitHead();
    }
  }

  private async emitHead(): Promise<void> {
    const slot = this.slots[0];
    await slot.done;
    this.slots.shift();
    this.inflightBytes -= slot.size;
    if (slot.err !== undefined) throw slot.err;
    this.blocks++;
    const parts = slot.parts!;
    slot.parts = undefined;
    const moved = await this.emitParts(parts);
    this.paceMinor(moved);
    this.paceMajor(moved);
  }

  /** From this stream's header on, liblzma's single-stream decoder reads the rest of the file. */
  private async switchToStream(): Promise<void> {
    while (this.slots.length > 0) await this.emitHead();
    const header = this.header!;
    this.consumed -= header.length;
    this.streamedFrom = this.consumed;
    const inner = new NativeDecompress(xzDecoder());
    this.inner = inner;
    this.innerFailed = new Promise<never>((_, reject) => inner.once('error', (e: Error) => { this.innerError = e; reject(e); }));
    this.innerFailed.catch(() => {});
    inner.on('data', (d: Buffer) => { if (!this.push(d)) inner.pause(); });
    await this.feedInner([header, ...this.q.drain()]);
  }

  private async feedInner(chunks: Buffer[]): Promise<void> {
    const inner = this.inner!;
    for (const c of chunks) {
      if (this.innerError) throw this.innerError;
      const written = new Promise<void>((resolve, reject) => inner.write(c, (e) => (e ? reject(e) : resolve())));
      await Promise.race([written, this.innerFailed!]);
    }
  }
}
