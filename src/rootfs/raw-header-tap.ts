// The raw bytes of each tar entry's PAX records, which tar-stream does not keep.
//
// tar-stream decodes every PAX value as UTF-8 (headers.js decodePax), so a binary value such as
// SCHILY.xattr.security.capability (GNU tar writes the raw bytes; cap_setuid's are >= 0x80)
// arrives with U+FFFD where those bytes were: a file would silently get a different capability
// set. The same holds for a PAX path that is not UTF-8 (GNU tar's hdrcharset=BINARY). So this
// tap sees the tar bytes just before tar-stream does and walks the same 512-byte header chain,
// far enough to keep each 'x' record's value as bytes, plus each entry's raw type flag (tar-stream
// maps flags it does not know, such as GNU sparse 'S', to null). tar-stream still does the real
// parsing and hands out the data; the extractor asks the tap for the records of the header at the
// byte offset tar-stream reports for the entry (Source.offset), so a disagreement between the two
// walks is an error, never records attached to the wrong entry. Only tar-stream's own rules are
// followed here (its checksum test for an empty block, its size fields, a PAX size that overrides
// the header's, a directory carrying no data, global records merged into the next local ones),
// so both walk alike on every archive tar-stream accepts; the tap itself never throws.

/** What the tap kept of one entry header (not the PAX/GNU long-name headers before it). */
export interface RawEntryHeader {
  /** The type flag byte as written ('0'.charCodeAt(0) for a file, 0x53 'S' for GNU sparse...). */
  typeflag: number;
  /** The PAX records that apply to this entry, keys as byte strings, values as bytes. */
  pax: Map<string, Buffer> | undefined;
}

const BLOCK = 512;
const MAX_META_SIZE = 4 * 1024 * 1024; // tar-stream's MAX_HEADER_SIZE: larger ones it refuses
const FLAG_DIRECTORY = 0x35; // '5'
const FLAG_PAX = 0x78; // 'x'
const FLAG_PAX_GLOBAL = 0x67; // 'g'
const FLAGS_GNU_LONG = new Set([0x4c, 0x4b, 0x4e]); // 'L' long name, 'K' long link name, 'N' old long names

export class RawHeaderTap {
  /** Byte offset of the next byte observe() will see. */
  private pos = 0;
  private readonly block = Buffer.alloc(BLOCK);
  private blockFill = 0;
  /** Bytes still to skip (entry data, a long name, padding). */
  private skip = 0;
  /** A PAX header's payload being collected, and where the walk goes after it. */
  private meta: { buf: Buffer; fill: number; global: boolean; padding: number } | undefined;
  private localPax: Map<string, Buffer> | undefined;
  private globalPax: Map<string, Buffer> | undefined;
  private readonly entries = new Map<number, RawEntryHeader>();
  private lost: string | undefined;

  /** Why the tap stopped following the archive (garbage tar-stream will refuse too), if it did. */
  get lostReason(): string | undefined { return this.lost; }

  observe(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length && this.lost === undefined) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - i);
        this.skip -= n; i += n; this.pos += n;
      } else if (this.meta !== undefined) {
        const m = this.meta;
        const n = Math.min(m.buf.length - m.fill, chunk.length - i);
        m.buf.set(chunk.subarray(i, i + n), m.fill);
        m.fill += n; i += n; this.pos += n;
        if (m.fill === m.buf.length) this.completeMeta(m);
      } else {
        const n = Math.min(BLOCK - this.blockFill, chunk.length - i);
        this.block.set(chunk.subarray(i, i + n), this.blockFill);
        this.blockFill += n; i += n; this.pos += n;
        if (this.blockFill === BLOCK) {
          this.blockFill = 0;
          this.onHeader(this.pos - BLOCK);
        }
      }
    }
  }

  /** The header tar-stream reported at OFFSET; forgets it and everything before it. */
  take(offset: number): RawEntryHeader | undefined {
    const found = this.entries.get(offset);
    for (const key of this.entries.keys()) {
      if (key <= offset) this.entries.delete(key);
    }
    return found;
  }

  private onHeader(offset: number): void {
    const h = this.block;
    if (checksumOf(h) === 8 * 32) return; // an empty block: tar-stream skips it too
    const typeflag = h[156]!;
    const size = decodeNumber(h.subarray(124, 136));
    if (size === null || !(size >= 0)) {
      this.lost = `the tar header at byte ${offset} has no valid size`;
      return;
    }
    if (typeflag === FLAG_PAX || typeflag === FLAG_PAX_GLOBAL || FLAGS_GNU_LONG.has(typeflag)) {
      if (size > MAX_META_SIZE) {
        this.lost = `the tar extended header at byte ${offset} is larger than ${MAX_META_SIZE} bytes`;
        return;
      }
      if (FLAGS_GNU_LONG.has(typeflag)) { this.skip = size + padding(size); return; }
      this.meta = { buf: Buffer.alloc(size), fill: 0, global: typeflag === FLAG_PAX_GLOBAL, padding: padding(size) };
      if (size === 0) this.completeMeta(this.meta);
      return;
    }
    const pax = this.localPax;
    this.localPax = undefined;
    this.entries.set(offset, { typeflag, pax });
    let dataSize = size;
    const paxSize = pax?.get('size')?.toString('utf8');
    if (paxSize) dataSize = parseInt(paxSize, 10); // as tar-stream: a non-empty PAX size wins
    if (typeflag === FLAG_DIRECTORY) dataSize = 0; // tar-stream reads no data for a directory
    if (!(dataSize >= 0)) {
      this.lost = `the tar header at byte ${offset} has no valid size`;
      return;
    }
    this.skip = dataSize + padding(dataSize);
  }

  /** A PAX payload is complete: global records apply to later local ones, as tar-stream merges them. */
  private completeMeta(m: NonNullable<RawHeaderTap['meta']>): void {
    const records = decodePaxRecords(m.buf);
    if (m.global) this.globalPax = records;
    else this.localPax = this.globalPax === undefined ? records : new Map([...this.globalPax, ...records]);
    this.meta = undefined;
    this.skip = m.padding;
  }
}

/**
 * PAX records (`<len> <key>=<value>\n`) as tar-stream reads them (same stopping rules: a record
 * without a length or without '=' ends the list), but values kept as bytes.
 */
export function decodePaxRecords(buf: Buffer): Map<string, Buffer> {
  const records = new Map<string, Buffer>();
  let rest = buf;
  while (rest.length > 0) {
    let sp = 0;
    while (sp < rest.length && rest[sp] !== 0x20) sp++;
    const len = parseInt(rest.subarray(0, sp).toString('utf8'), 10);
    if (!len) break;
    const record = rest.subarray(sp + 1, len - 1); // without the length, the space and the newline
    const eq = record.indexOf(0x3d); // '=': ASCII, so the first '=' byte is the first '=' character
    if (eq === -1) break;
    records.set(record.subarray(0, eq).toString('latin1'), Buffer.from(record.subarray(eq + 1)));
    rest = rest.subarray(len);
  }
  return records;
}

function padding(size: number): number {
  const r = size % BLOCK;
  return r === 0 ? 0 : BLOCK - r;
}

function checksumOf(block: Buffer): number {
  let sum = 8 * 32; // the checksum field itself counts as spaces
  for (let i = 0; i < 148; i++) sum += block[i]!;
  for (let i = 156; i < BLOCK; i++) sum += block[i]!;
  return sum;
}

/** A numeric header field as tar-stream decodes it: octal text, or base-256 when the top bit is set. */
function decodeNumber(field: Buffer): number | null {
  if (field[0]! & 0x80) {
    let positive: boolean;
    if (field[0] === 0x80) positive = true;
    else if (field[0] === 0xff) positive = false;
    else return null;
    let sum = 0;
    for (let i = 1; i < field.length; i++) {
      sum = sum * 256 + (positive ? field[i]! : 0xff - field[i]!);
    }
    return positive ? sum : -sum;
  }
  let start = 0;
  while (start < field.length && field[start] === 0x20) start++;
  let end = field.indexOf(0x20, start);
  if (end === -1) end = field.length;
  while (start < end && field[start] === 0) start++;
  if (end === start) return 0;
  return parseInt(field.subarray(start, end).toString('utf8'), 8);
}
