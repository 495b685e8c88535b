// The qcow2 file as one sequential stream (the download, already hashed) -> clusters at their
// guest offsets. It keeps a small window of the bytes it has not yet consumed, and walks two lists
// in host order: the tables (L1, L2) and the allocated clusters they map. Each is taken from the
// window as soon as all its bytes are in: uncompressed clusters are copied to the writer,
// compressed ones gathered into batches for the decode workers, tables parsed (no Range: they are
// met here first) or compared with what the Range reads saw (the image changed in between?).
//
// Without Range support every table must come before the data it maps (qemu-img writes them so);
// a table that maps a cluster the stream has already passed stops the deploy with what to do.
import { Writable } from 'node:stream';
import { createHash } from 'node:crypto';
import type { Qcow2Header } from './header.ts';
import { ClusterList, GuestBitmap, HostOrderChecker, MetaRanges, parseL1, parseL2, Qcow2TableError, type L2Ref } from './cluster-map.ts';
import type { PositionalWriter } from './positional-writer.ts';
import { createGcPacer } from '../sink/gc-pacer.ts';
import { ClusterDecodeError, ClusterSlot, type ClusterDecodePool } from './cluster-decode-pool.ts';

/** Compressed bytes gathered into one decode task, and its most decompressed bytes (a batch of
 *  well-compressed clusters expands a hundredfold: the output bounds the memory in flight). */
const BATCH_BYTES = 1 << 20;
const BATCH_OUTPUT = 1 << 20;

/** A table the stream must see: its bytes are parsed (no Range) or checked (Range). */
interface TableNeed { start: number; length: number; kind: 'L1' | 'L2'; ref?: L2Ref; sha?: string }

/** Stops the stream: a cluster that did not decompress, bytes missing, a table out of place. */
export class Qcow2StreamError extends Error {
  readonly code: string;
  readonly at: number;
  readonly stage: 'decompress' | 'fetch';
  constructor(code: string, message: string, at: number, stage: 'decompress' | 'fetch' = 'decompress') {
    super(message);
    this.code = code;
    this.at = at;
    this.stage = stage;
    this.name = 'Qcow2StreamError';
  }
}

export interface ClusterStreamOptions {
  header: Qcow2Header;
  fileSize: number | undefined;
  writer: PositionalWriter;
  pool: ClusterDecodePool | undefined;
  list: ClusterList;
  bitmap: GuestBitmap;
  meta: MetaRanges;
  /** tables read by Range before the stream (sha256 of each, to compare), or undefined: no Range,
   *  the stream parses the L1 and L2 tables as it meets them */
  tablesRead?: Array<{ start: number; length: number; kind: 'L1' | 'L2'; sha: string }>;
}

export class ClusterStream extends Writable {
  /** host offset of window[0]'s first byte */
  private winStart = 0;
  private winEnd = 0;
  private readonly window: Buffer[] = [];
  private readonly tables: TableNeed[] = [];
  private readonly checker: HostOrderChecker;
  private readonly o: ClusterStreamOptions;
  private readonly cs: number;
  private batch: { slot: ClusterSlot; used: number; ranges: number[]; guests: number[]; hosts: number[] } | undefined;
  private readonly decoding = new Set<Promise<void>>();
  private failure: Error | undefined;
  /** frees the download's chunks early (gc-pacer.ts); batches use the slots below, no garbage */
  private readonly pace = createGcPacer(4 << 20);
  /** shared memory of the batches: one per batch in flight, reused */
  private readonly freeSlots: ClusterSlot[] = [];
  /** clusters placed, and of those decoded from compressed data */
  clusters = 0;
  compressed = 0;

  constructor(o: ClusterStreamOptions) {
    super({ highWaterMark: 1 << 20 });
    this.o = o;
    this.cs = o.header.clusterSize;
    this.checker = new HostOrderChecker(o.header, o.meta);
    if (o.tablesRead !== undefined) for (const t of o.tablesRead) this.tables.push({ ...t });
    else this.tables.push({ start: o.header.l1Offset, length: o.header.l1Size * 8, kind: 'L1' });
    this.tables.sort((a, b) => a.start - b.start);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.window.push(chunk);
    this.winEnd += chunk.length;
    this.pace(chunk.length);
    this.process(false).then(() => cb(), (e: Error) => cb(e));
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.process(true).then(() => this.flushBatch()).then(() => this.drainDecodes()).then(() => cb(), (e: Error) => cb(e));
  }

  /** Takes every table and cluster whose bytes are all in the window. */
  private async process(ended: boolean): Promise<void> {
    const list = this.o.list;
    for (;;) {
      if (this.failure) throw this.failure;
      const t = this.tables[0];
      const c = list.cursor < list.count ? list.cursor : -1;
      const cHost = c >= 0 ? list.host[c] : Infinity;
      if (t !== undefined && t.start <= cHost) {
        if (t.start + t.length > this.winEnd) {
          if (ended) throw new Qcow2StreamError('QCOW2_TRUNCATED', `the image ends at byte ${this.winEnd} but its ${t.kind} table runs to byte ${t.start + t.length}`, this.winEnd, 'fetch');
          break;
        }
        this.tables.shift();
        this.takeTable(t, this.copyOut(t.start, t.length));
        continue;
      }
      if (c < 0) break;
      const csize = list.csize[c];
      const len = csize === 0 ? this.cs : csize;
      if (cHost < this.winStart) {
        throw new Qcow2StreamError('QCOW2_NEEDS_RANGE',
          `the qcow2 stores the cluster at byte ${cHost} before the table that maps it, and the server does not support Range requests, so it cannot be read in one pass`, cHost, 'fetch');
      }
      if (cHost + len > this.winEnd) {
        // a compressed cluster's last sector may run past the end of the file: QEMU reads what is there
        if (!ended) break;
        if (csize === 0 || cHost >= this.winEnd) throw new Qcow2StreamError('QCOW2_TRUNCATED', `the image ends at byte ${this.winEnd} but its tables map a cluster at byte ${cHost}`, this.winEnd, 'fetch');
      }
      list.cursor++;
      const guest = list.guest[c];
      this.checker.check(cHost, guest, csize);
      if (csize === 0) await this.placeData(cHost, guest);
      else await this.addCompressed(cHost, Math.min(len, this.winEnd - cHost), guest);
    }
    // what no table or cluster still needs can go
    const t = this.tables[0];
    const next = Math.min(t !== undefined ? t.start : Infinity, list.cursor < list.count ? list.host[list.cursor] : Infinity);
    this.discardBefore(Math.min(next, this.winEnd));
  }

  private async placeData(host: number, guest: number): Promise<void> {
    const g = guest * this.cs;
    const len = Math.min(this.cs, this.o.header.virtualSize - g);
    this.clusters++;
    await this.o.writer.place(g, len, (dst) => this.copyInto(host, len, dst));
  }

  private async addCompressed(host: number, len: number, guest: number): Promise<void> {
    if (this.o.pool === undefined) throw new Error('compressed cluster without a decode pool');
    if (this.batch !== undefined && (this.batch.used + len > BATCH_BYTES || (this.batch.guests.length + 1) * this.cs > Math.max(BATCH_OUTPUT, this.cs))) await this.flushBatch();
    if (this.batch === undefined) {
      // a bounded number of batches in flight, each in its own slot: backpressure reaches the download
      while (this.decoding.size >= this.o.pool.size + 1) await Promise.race(this.decoding);
      if (this.failure) throw this.failure;
      const slot = this.freeSlots.pop() ?? new ClusterSlot(BATCH_BYTES, Math.max(BATCH_OUTPUT, this.cs));
      // (an empty batch: a cluster larger than a batch may grow the slot; later ones fit, see above)
      slot.fit(len, 0);
      this.batch = { slot, used: 0, ranges: [], guests: [], hosts: [] };
    }
    const b = this.batch;
    // straight into the slot: the download's chunks are garbage as soon as the window moves on
    this.copyInto(host, len, b.slot.input.subarray(b.used, b.used + len));
    b.ranges.push(b.used, len);
    b.guests.push(guest);
    b.hosts.push(host);
    b.used += len;
  }

  private async flushBatch(): Promise<void> {
    const b = this.batch;
    if (b === undefined) return;
    this.batch = undefined;
    const pool = this.o.pool!;
    const slot = b.slot;
    const job: Promise<void> = pool.decode(this.o.header.compression, this.cs, slot, b.used, Uint32Array.from(b.ranges)).then(async (out) => {
      for (let i = 0; i < b.guests.length; i++) {
        const g = b.guests[i] * this.cs;
        const len = Math.min(this.cs, this.o.header.virtualSize - g);
        this.clusters++;
        this.compressed++;
        await this.o.writer.place(g, len, (dst) => out.copy(dst, 0, i * this.cs, i * this.cs + len));
      }
    }).catch((e: Error) => {
      if (e instanceof ClusterDecodeError && e.index >= 0) {
        this.failure ??= new Qcow2StreamError('QCOW2_BAD_CLUSTER',
          `the compressed cluster at byte ${b.hosts[e.index]} (guest byte ${b.guests[e.index] * this.cs}) is damaged: ${this.o.header.compression} ${e.message}`, b.hosts[e.index]);
      } else this.failure ??= e;
    }).finally(() => { this.decoding.delete(job); this.freeSlots.push(slot); });
    this.decoding.add(job);
  }

  private async drainDecodes(): Promise<void> {
    while (this.decoding.size > 0) await Promise.allSettled([...this.decoding]);
    if (this.failure) throw this.failure;
  }

  private takeTable(t: TableNeed, bytes: Buffer): void {
    const h = this.o.header;
    if (t.sha !== undefined) {
      if (createHash('sha256').update(bytes).digest('hex') !== t.sha) {
        throw new Qcow2StreamError('QCOW2_CHANGED', `the image's ${t.kind} table at byte ${t.start} differs from the one read before the download: the image changed on the server`, t.start, 'fetch');
      }
      return;
    }
    const list = this.o.list;
    if (t.kind === 'L1') {
      for (const ref of parseL1(bytes, h, this.o.fileSize)) {
        this.o.meta.add(ref.offset, ref.offset + this.cs);
        if (ref.offset < this.winStart || ref.offset < t.start + t.length) {
          throw new Qcow2StreamError('QCOW2_NEEDS_RANGE', `the qcow2 stores an L2 table (byte ${ref.offset}) before its L1 table, and the server does not support Range requests, so it cannot be read in one pass`, ref.offset, 'fetch');
        }
        this.tables.push({ start: ref.offset, length: this.cs, kind: 'L2', ref });
      }
      this.tables.sort((a, b) => a.start - b.start);
      return;
    }
    parseL2(bytes, t.ref!, h, this.o.fileSize, list, this.o.bitmap);
    list.sort();
    if (list.cursor < list.count && list.host[list.cursor] < t.start + t.length) {
      throw new Qcow2StreamError('QCOW2_NEEDS_RANGE',
        `the qcow2 stores the cluster at byte ${list.host[list.cursor]} before the L2 table (byte ${t.start}) that maps it, and the server does not support Range requests, so it cannot be read in one pass`, list.host[list.cursor], 'fetch');
    }
  }

  /** A copy of [start, start+len) from the window. */
  private copyOut(start: number, len: number): Buffer {
    const out = Buffer.allocUnsafe(len);
    this.copyInto(start, len, out);
    return out;
  }

  private copyInto(start: number, len: number, dst: Buffer): void {
    let pos = this.winStart;
    let done = 0;
    for (const chunk of this.window) {
      const end = pos + chunk.length;
      if (end > start + done && done < len) {
        const from = start + done - pos;
        const n = Math.min(chunk.length - from, len - done);
        chunk.copy(dst, done, from, from + n);
        done += n;
      }
      pos = end;
      if (done >= len) break;
    }
    if (done < len) throw new Error(`window copy short: ${done} of ${len} at ${start}`);
  }

  private discardBefore(at: number): void {
    while (this.window.length > 0 && this.winStart + this.window[0].length <= at) {
      this.winStart += this.window[0].length;
      this.window.shift();
    }
    if (this.window.length > 0 && at > this.winStart) {
      this.window[0] = this.window[0].subarray(at - this.winStart);
      this.winStart = at;
    }
    if (this.window.length === 0) this.winStart = this.winEnd;
  }
}

export { Qcow2TableError };
