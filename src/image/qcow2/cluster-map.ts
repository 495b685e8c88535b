// Where a qcow2's data lives: the host offset (in the file) of every allocated guest cluster, read
// from the L1 and L2 tables and kept in host order, so the one sequential download can drop each
// cluster at its guest offset as it passes. Only allocated clusters are held, in typed arrays
// (ENTRY_BYTES each, README says what that bounds); unallocated and all-zero clusters are only a
// bit in the `mapped` bitmap (1 bit per guest cluster) and become zero runs at the end.
//
// Also the checks on the tables that protect the disk: entries that point outside the file, into
// the header or the tables, data clusters that partly overlap each other or compressed data,
// reserved bits, unaligned offsets. An uncompressed host cluster that two guest clusters name
// exactly (same offset) is accepted and written to both: that is what QEMU reads for both (its
// refcount would say the image is inconsistent, but the bytes each guest cluster shows are well
// defined); any partial overlap is refused.
import type { Qcow2Header } from './header.ts';

/** Bytes of memory per allocated cluster (host Float64, guest Uint32, compressed length Uint32),
 *  plus a Uint32 of sort permutation while sorting. */
export const ENTRY_BYTES = 16;
/** Most allocated clusters one map holds (ENTRY_BYTES each: 64 MiB): 256 GiB of allocated data at
 *  the default 64 KiB clusters. */
export const MAX_ENTRIES = 4 << 20;
/** Largest guest-cluster bitmap (1 bit per cluster): 32 TiB of disk at 64 KiB clusters. */
export const MAX_BITMAP_BYTES = 64 << 20;

/** A damaged table, a pointer where no data may be: the message says which entry and why. */
export class Qcow2TableError extends Error {
  /** file offset of the entry or cluster at fault */
  readonly at: number;
  readonly code: string;
  constructor(code: string, message: string, at: number) {
    super(message);
    this.name = 'Qcow2TableError';
    this.code = code;
    this.at = at;
  }
}

/** Entries in host order (after sort()); a cursor consumes them from the front. */
export class ClusterList {
  count = 0;
  host = new Float64Array(1024);
  guest = new Uint32Array(1024);
  /** 0: an uncompressed cluster; else the compressed bytes (the last sector may be shared) */
  csize = new Uint32Array(1024);
  /** index of the next entry the stream has not reached */
  cursor = 0;

  add(host: number, guestCluster: number, csize: number): void {
    if (this.count === this.host.length) this.grow();
    this.host[this.count] = host;
    this.guest[this.count] = guestCluster;
    this.csize[this.count] = csize;
    this.count++;
  }

  private grow(): void {
    // drop what the cursor passed, then double only if still needed
    const live = this.count - this.cursor;
    const size = live * 2 > this.host.length ? this.host.length * 2 : this.host.length;
    if (live >= MAX_ENTRIES) {
      throw new Qcow2TableError('QCOW2_TOO_MANY_CLUSTERS', `the image maps more than ${MAX_ENTRIES} allocated clusters at once, more than booty keeps in memory`, 0);
    }
    const h = new Float64Array(size); h.set(this.host.subarray(this.cursor, this.count));
    const g = new Uint32Array(size); g.set(this.guest.subarray(this.cursor, this.count));
    const c = new Uint32Array(size); c.set(this.csize.subarray(this.cursor, this.count));
    this.host = h; this.guest = g; this.csize = c;
    this.count = live;
    this.cursor = 0;
  }

  /** Sorts the entries not yet consumed by host offset (then guest cluster). */
  sort(): void {
    const n = this.count - this.cursor;
    if (n < 2) return;
    const base = this.cursor;
    const host = this.host;
    let sorted = true;
    for (let i = base + 1; i < this.count; i++) if (host[i] < host[i - 1]) { sorted = false; break; }
    if (sorted) return;
    const order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[i] = base + i;
    const guest = this.guest;
    order.sort((a, b) => host[a] - host[b] || guest[a] - guest[b]);
    const h = new Float64Array(n);
    const g = new Uint32Array(n);
    const c = new Uint32Array(n);
    for (let i = 0; i < n; i++) { const j = order[i]; h[i] = host[j]; g[i] = guest[j]; c[i] = this.csize[j]; }
    this.host.set(h, base); this.guest.set(g, base); this.csize.set(c, base);
  }

  get remaining(): number { return this.count - this.cursor; }
}

/** Host byte ranges that hold metadata (header cluster, L1, refcount table, L2 tables), sorted. */
export class MetaRanges {
  private starts: number[] = [];
  private ends: number[] = [];
  add(start: number, end: number): void {
    // insertion keeps them sorted; there are few (one per L2 table)
    let i = this.starts.length;
    while (i > 0 && this.starts[i - 1] > start) i--;
    this.starts.splice(i, 0, start);
    this.ends.splice(i, 0, end);
  }
  /** The metadata range [start, end) overlaps, if any. */
  overlapping(start: number, end: number): [number, number] | undefined {
    let lo = 0;
    let hi = this.starts.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (this.starts[mid] < end) lo = mid + 1; else hi = mid; }
    // ranges starting before `end`: the last few may reach into [start, end)
    for (let i = lo - 1; i >= 0 && i >= lo - 4; i--) if (this.ends[i] > start) return [this.starts[i], this.ends[i]];
    return undefined;
  }
}

/** One L2 table to read: its file offset and the guest cluster its first entry maps. */
export interface L2Ref { offset: number; firstGuestCluster: number; l1Index: number }

/** The L2 tables the L1 table names (in L1 order); checks each pointer. */
export function parseL1(l1: Buffer, h: Qcow2Header, fileSize: number | undefined): L2Ref[] {
  const refs: L2Ref[] = [];
  const perL2 = h.clusterSize / 8;
  const clusters = Math.ceil(h.virtualSize / h.clusterSize);
  for (let i = 0; i < h.l1Size && i * perL2 < clusters; i++) {
    const hi = l1.readUInt32BE(i * 8);
    const lo = l1.readUInt32BE(i * 8 + 4);
    const at = h.l1Offset + i * 8;
    // bits 9-55: L2 offset; 63: COPIED; the rest reserved
    if ((hi & 0x7f000000) !== 0 || (lo & 0x1ff) !== 0) throw new Qcow2TableError('QCOW2_BAD_L1', `L1 entry ${i} (at byte ${at}) has reserved bits set (0x${hi.toString(16).padStart(8, '0')}${lo.toString(16).padStart(8, '0')})`, at);
    const offset = (hi & 0x00ffffff) * 2 ** 32 + (lo >>> 0);
    if (offset === 0) continue;
    if (offset % h.clusterSize !== 0) throw new Qcow2TableError('QCOW2_BAD_L1', `L1 entry ${i} (at byte ${at}) points at byte ${offset}, not a cluster boundary`, at);
    if (offset < h.clusterSize) throw new Qcow2TableError('QCOW2_BAD_L1', `L1 entry ${i} (at byte ${at}) points into the header`, at);
    if (fileSize !== undefined && offset + h.clusterSize > fileSize) {
      throw new Qcow2TableError('QCOW2_BAD_L1', `L1 entry ${i} (at byte ${at}) points at byte ${offset}, past the end of the file (${fileSize} bytes)`, at);
    }
    refs.push({ offset, firstGuestCluster: i * perL2, l1Index: i });
  }
  return refs;
}

/** Bits per guest cluster: set once a table maps it to data (compressed or not). */
export class GuestBitmap {
  readonly bits: Uint8Array;
  readonly clusters: number;
  constructor(clusters: number) {
    if (Math.ceil(clusters / 8) > MAX_BITMAP_BYTES) {
      throw new Qcow2TableError('QCOW2_TOO_MANY_CLUSTERS', `the disk has ${clusters} clusters: its map would take more than ${MAX_BITMAP_BYTES >> 20} MiB`, 0);
    }
    this.clusters = clusters;
    this.bits = new Uint8Array(Math.ceil(clusters / 8));
  }
  set(i: number): void { this.bits[i >> 3] |= 1 << (i & 7); }
  has(i: number): boolean { return (this.bits[i >> 3] & (1 << (i & 7))) !== 0; }
}

/**
 * Adds one L2 table's allocated clusters to `list` and marks them in `bitmap`; checks every entry
 * (reserved bits, alignment, in the file, out of the header). Returns the number added.
 */
export function parseL2(l2: Buffer, ref: L2Ref, h: Qcow2Header, fileSize: number | undefined, list: ClusterList, bitmap: GuestBitmap): number {
  const perL2 = h.clusterSize / 8;
  const csizeShift = 62 - (h.clusterBits - 8);
  const csizeMask = (1n << BigInt(h.clusterBits - 8)) - 1n;
  const offsetMask = (1n << BigInt(csizeShift)) - 1n;
  let added = 0;
  for (let j = 0; j < perL2; j++) {
    const guest = ref.firstGuestCluster + j;
    if (guest >= bitmap.clusters) break;
    const hi = l2.readUInt32BE(j * 8);
    const lo = l2.readUInt32BE(j * 8 + 4);
    if (hi === 0 && lo === 0) continue;
    const at = ref.offset + j * 8;
    const where = `L2 entry ${j} of the table at byte ${ref.offset} (guest byte ${guest * h.clusterSize})`;
    if ((hi & 0x40000000) !== 0) {
      // compressed: host offset in bits 0..x-1, additional 512-byte sectors above it
      const e = (BigInt(hi & 0x3fffffff) << 32n) | BigInt(lo >>> 0);
      const coffset = Number(e & offsetMask);
      const sectors = Number((e >> BigInt(csizeShift)) & csizeMask) + 1;
      let csize = sectors * 512 - (coffset % 512);
      if (coffset < h.clusterSize) throw new Qcow2TableError('QCOW2_BAD_L2', `${where} points a compressed cluster into the header`, at);
      if (fileSize !== undefined) {
        if (coffset >= fileSize) throw new Qcow2TableError('QCOW2_BAD_L2', `${where} points a compressed cluster at byte ${coffset}, past the end of the file (${fileSize} bytes)`, at);
        // the last sector named may run past the end of the file: QEMU reads what is there
        csize = Math.min(csize, fileSize - coffset);
      }
      list.add(coffset, guest, csize);
    } else {
      if ((hi & 0x3f000000) !== 0 || (lo & 0x1fe) !== 0) throw new Qcow2TableError('QCOW2_BAD_L2', `${where} has reserved bits set`, at);
      const zero = (lo & 1) !== 0;
      if (zero && h.version === 2) throw new Qcow2TableError('QCOW2_BAD_L2', `${where} has bit 0 set, which version 2 reserves`, at);
      const offset = (hi & 0x00ffffff) * 2 ** 32 + ((lo & 0xfffffe00) >>> 0);
      if (zero || offset === 0) continue; // reads as zeros (a preallocated zero cluster included)
      if (offset % h.clusterSize !== 0) throw new Qcow2TableError('QCOW2_BAD_L2', `${where} points at byte ${offset}, not a cluster boundary`, at);
      if (offset < h.clusterSize) throw new Qcow2TableError('QCOW2_BAD_L2', `${where} points into the header`, at);
      if (fileSize !== undefined && offset + h.clusterSize > fileSize) {
        throw new Qcow2TableError('QCOW2_BAD_L2', `${where} points at byte ${offset}, past the end of the file (${fileSize} bytes)`, at);
      }
      list.add(offset, guest, 0);
    }
    bitmap.set(guest);
    added++;
  }
  return added;
}

/**
 * Checks clusters fed in host order: none in metadata, no partial overlaps between uncompressed
 * clusters or between uncompressed and compressed data (compressed clusters may share a sector
 * with the next compressed one, as QEMU writes them). Used on the whole map before the first write
 * and again by the stream on every cluster it places.
 */
export class HostOrderChecker {
  private dataEnd = 0;
  private dataStart = -1;
  private compressedEnd = 0;
  private readonly h: Qcow2Header;
  private readonly meta: MetaRanges;
  constructor(h: Qcow2Header, meta: MetaRanges) { this.h = h; this.meta = meta; }

  check(host: number, guest: number, csize: number): void {
    const cs = this.h.clusterSize;
    const end = host + (csize === 0 ? cs : csize);
    const what = `${csize === 0 ? 'cluster' : 'compressed cluster'} at byte ${host} (guest byte ${guest * cs})`;
    const m = this.meta.overlapping(host, end);
    if (m !== undefined) throw new Qcow2TableError('QCOW2_OVERLAP', `the ${what} overlaps the image's tables at bytes ${m[0]}-${m[1]}`, host);
    if (csize === 0) {
      if (host === this.dataStart) return; // the same host cluster again: shared, see the file comment
      if (host < this.dataEnd) throw new Qcow2TableError('QCOW2_OVERLAP', `the ${what} overlaps the cluster at byte ${this.dataStart}`, host);
      if (host < this.compressedEnd) throw new Qcow2TableError('QCOW2_OVERLAP', `the ${what} overlaps compressed data`, host);
      this.dataStart = host;
      this.dataEnd = end;
    } else {
      if (host < this.dataEnd) throw new Qcow2TableError('QCOW2_OVERLAP', `the ${what} overlaps the cluster at byte ${this.dataStart}`, host);
      this.compressedEnd = Math.max(this.compressedEnd, end);
    }
  }
}
