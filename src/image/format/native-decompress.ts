// A Node Transform over a native streaming decoder (liblzma's xz, libbz2's bzip2: src/sys/), with
// what deploy relies on from node:zlib's streams: 1 MiB output chunks, backpressure (a small
// input that expands a thousandfold waits for the writer instead of piling up in memory),
// `bytesWritten` as the input bytes the stream consumed (so bytes after its end are reported as
// trailing), and errors deploy words as corrupt or truncated.
import { Transform, type TransformCallback } from 'node:stream';
import type { NativeStreamDecoder, StreamDecodeError } from '../../sys/stream-decoder.ts';
import { ZLIB_CHUNK } from './decompress.ts';
import { lendBlock } from '../sink/block-loan.ts';
import { createGcPacer } from '../sink/gc-pacer.ts';

const EMPTY = Buffer.alloc(0);
/** output buffers kept for reuse: the reader's buffer (one chunk past its high-water mark) and the
 *  writer's copy in progress are all that is ever out at once */
const SPARE_OUTPUTS = 4;

/** The error a native decoder's failure becomes: `code` as describeDecodeError() reads it. */
export function nativeDecodeError(e: StreamDecodeError): Error & { code: string } {
  const err = new Error(e.kind === 'truncated' ? `unexpected end of file (${e.message})` : e.message) as Error & { code: string };
  err.code = e.kind === 'truncated' ? 'Z_BUF_ERROR' : e.kind === 'limits' ? 'DECODER_LIMIT' : 'Z_DATA_ERROR';
  return err;
}

export class NativeDecompress extends Transform {
  /** input bytes the decoder consumed (node:zlib's name for it) */
  bytesWritten = 0;
  private readonly decoder: NativeStreamDecoder;
  private ended = false;
  /** the input being decoded while the reader has no room: resumed by _read() */
  private pending: { chunk: Buffer; off: number; finish: boolean; cb: TransformCallback } | undefined;
  /** pump() is on the stack: push() may call _read() synchronously (a flowing reader drains the
   *  buffer at once), which must not start a second pump but must not be lost either */
  private pumping = false;
  private readRequested = false;
  /** output buffers the writer gave back (block-loan.ts): a fresh 1 MiB buffer per step is garbage
   *  V8 frees only at its next collection, and between collections it piled up by tens of MiB of
   *  the 150 MiB the agent may use (README, Memory) */
  private readonly spare: Buffer[] = [];
  /** the input's chunks are the garbage left (the writer paces only buffers it did not borrow),
   *  collected every few MiB as the other decoders do theirs */
  private readonly pace = createGcPacer(2 << 20);

  constructor(decoder: NativeStreamDecoder) {
    super({ readableHighWaterMark: ZLIB_CHUNK });
    this.decoder = decoder;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.pace(chunk.length);
    this.pending = { chunk, off: 0, finish: false, cb };
    this.pump();
  }

  override _flush(cb: TransformCallback): void {
    this.pending = { chunk: EMPTY, off: 0, finish: true, cb };
    this.pump();
  }

  override _read(size: number): void {
    if (this.pending === undefined) super._read(size);
    else if (this.pumping) this.readRequested = true;
    else {
      this.pump();
      // the input is done: Transform may have parked the writer's callback until the next
      // _read() (its buffer was full when we called back), and the reader, having asked, waits
      // for a push: release that callback now or both sides wait for each other
      if (this.pending === undefined) super._read(size);
    }
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    this.decoder.end();
    cb(err);
  }

  private pump(): void {
    this.pumping = true;
    try {
      this.pumpLoop();
    } finally {
      this.pumping = false;
    }
  }

  private pumpLoop(): void {
    const p = this.pending;
    if (p === undefined) return;
    for (;;) {
      if (this.ended) return this.done(null);
      const out = this.spare.pop() ?? Buffer.allocUnsafe(ZLIB_CHUNK);
      let r;
      try {
        r = this.decoder.step(p.chunk, p.off, p.chunk.length - p.off, out, 0, out.length, p.finish);
      } catch (e) {
        return this.done(e as Error);
      }
      const consumed = p.chunk.length - p.off - r.inLeft;
      p.off += consumed;
      this.bytesWritten += consumed;
      const produced = out.length - r.outLeft;
      this.readRequested = false;
      let room = true;
      if (produced > 0) room = this.push(lendBlock(out.subarray(0, produced), () => this.giveBack(out), false));
      else this.giveBack(out);
      if (r.error !== null) return this.done(nativeDecodeError(r.error));
      if (r.ended) {
        this.ended = true;
        return this.done(null);
      }
      // the decoder has room left: it took what it could of this input; at the end of the input
      // it must finish, and a call that moves nothing means the stream was cut short
      if (r.outLeft > 0) {
        if (!p.finish) return this.done(null);
        if (consumed === 0 && produced === 0) return this.done(nativeDecodeError({ message: 'the stream ends early', kind: 'truncated' }));
        continue;
      }
      // the reader is full: _read() resumes, unless it already asked during push()
      if (!room && !this.readRequested) return;
    }
  }

  private giveBack(out: Buffer): void {
    if (this.spare.length < SPARE_OUTPUTS) this.spare.push(out);
  }

  private done(err: Error | null): void {
    const p = this.pending;
    this.pending = undefined;
    p?.cb(err);
  }
}
