// A FIFO of bytes kept as the chunks they arrived in (no copying while they wait): the frame
// splitter reads a few header bytes anywhere in it, then takes a whole frame out as one buffer.

export class ByteQueue {
  private chunks: Buffer[] = [];
  /** bytes of chunks[0] already taken */
  private headOffset = 0;
  length = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** The byte at `at` (0 = the first byte queued). */
  byteAt(at: number): number {
    if (at < 0 || at >= this.length) throw new RangeError(`ByteQueue: byte ${at} of ${this.length}`);
    let i = 0;
    let pos = at + this.headOffset;
    while (pos >= this.chunks[i].length) { pos -= this.chunks[i].length; i++; }
    return this.chunks[i][pos];
  }

  /** The first min(n, length) bytes, without taking them (a view when they sit in one chunk). */
  peek(n: number): Buffer {
    n = Math.min(n, this.length);
    const first = this.chunks[0];
    if (first !== undefined && first.length - this.headOffset >= n) return first.subarray(this.headOffset, this.headOffset + n);
    return this.copyOut(n, Buffer.allocUnsafe(n));
  }

  /** Takes the first n bytes (n <= length) as a buffer of its own (allocUnsafeSlow: transferable). */
  take(n: number): Buffer {
    if (n > this.length) throw new RangeError(`ByteQueue: take ${n} of ${this.length}`);
    const out = this.copyOut(n, Buffer.allocUnsafeSlow(n));
    this.skip(n);
    return out;
  }

  /** Takes the first n bytes (n <= length) into `out` at `at`. */
  takeInto(n: number, out: Uint8Array, at: number): void {
    if (n > this.length) throw new RangeError(`ByteQueue: take ${n} of ${this.length}`);
    this.copyOut(n, Buffer.from(out.buffer, out.byteOffset + at, n));
    this.skip(n);
  }

  /** Drops the first n bytes (n <= length). */
  skip(n: number): void {
    if (n > this.length) throw new RangeError(`ByteQueue: skip ${n} of ${this.length}`);
    this.length -= n;
    while (n > 0) {
      const left = this.chunks[0].length - this.headOffset;
      if (n < left) { this.headOffset += n; return; }
      n -= left;
      this.chunks.shift();
      this.headOffset = 0;
    }
  }

  /** Takes everything queued, as the chunks it arrived in. */
  drain(): Buffer[] {
    const out = this.chunks;
    if (out.length > 0 && this.headOffset > 0) out[0] = out[0].subarray(this.headOffset);
    this.chunks = [];
    this.headOffset = 0;
    this.length = 0;
    return out;
  }

  private copyOut(n: number, out: Buffer): Buffer {
    let done = 0;
    let off = this.headOffset;
    for (let i = 0; done < n; i++) {
      const c = this.chunks[i];
      const k = Math.min(n - done, c.length - off);
      c.copy(out, done, off, off + k);
      done += k;
      off = 0;
    }
    return out;
  }
}
