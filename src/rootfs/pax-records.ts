// PAX extended header records (POSIX.1-2001 pax format: "LEN KEY=VALUE\n"), written as bytes.
//
// tar-stream writes PAX records from JS strings (UTF-8 encoded), so it cannot carry what a root
// filesystem holds as raw bytes: a security.capability value (binary), a file name that is not
// UTF-8. Nor does its pack take a body for a 'pax-header' entry. So booty writes such a header
// whole (its 512-byte ustar block, the records, the padding) and the packer puts it into the tar
// stream between two of tar-stream's entries; GNU tar, libarchive and booty's extractor
// (raw-header-tap.ts) read the records back byte for byte.

/** One record: KEY and VALUE as the exact bytes to store. */
export type PaxRecord = readonly [key: Buffer, value: Buffer];

/** The payload of a PAX 'x' header holding RECORDS, in order. */
export function encodePaxRecords(records: readonly PaxRecord[]): Buffer {
  const parts: Buffer[] = [];
  for (const [key, value] of records) {
    if (key.includes(0x3d) || key.length === 0) throw new Error(`invalid PAX key ${JSON.stringify(key.toString('latin1'))}`);
    // LEN counts the whole record including its own digits, so the digit count may have to grow.
    const body = key.length + value.length + 3; // ' ' '=' '\n'
    let digits = String(body).length;
    if (String(body + digits).length > digits) digits++;
    const len = body + digits;
    parts.push(Buffer.from(`${len} `, 'latin1'), key, Buffer.from('=', 'latin1'), value, Buffer.from('\n', 'latin1'));
  }
  return Buffer.concat(parts);
}

/** A record whose key and value are plain ASCII text (path lengths, ids). */
export function textRecord(key: string, value: string): PaxRecord {
  return [Buffer.from(key, 'latin1'), Buffer.from(value, 'latin1')];
}

const BLOCK = 512;

/**
 * A complete PAX extended header: the ustar header block of type 'x' named NAME, then PAYLOAD
 * (encodePaxRecords), padded to a whole block. It applies to the entry that follows it.
 */
export function paxHeaderBlocks(name: string, payload: Buffer): Buffer {
  if (Buffer.byteLength(name, 'latin1') > 100) throw new Error('a PAX header name fits in 100 bytes');
  const padded = Math.ceil(payload.length / BLOCK) * BLOCK;
  const out = Buffer.alloc(BLOCK + padded);
  out.write(name, 0, 'latin1');
  out.write(octal(0o644, 7), 100, 'latin1'); // mode
  out.write(octal(0, 7), 108, 'latin1'); // uid
  out.write(octal(0, 7), 116, 'latin1'); // gid
  out.write(octal(payload.length, 11), 124, 'latin1'); // size: a header's records stay far below 8 GiB
  out.write(octal(0, 11), 136, 'latin1'); // mtime
  out[156] = 0x78; // 'x': extended header for the next entry
  out.write('ustar\x0000', 257, 'latin1');
  // checksum: the byte sum with the checksum field read as spaces, 6 octal digits, NUL, space
  out.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += out[i]!;
  out.write(`${octal(sum, 6)}\0 `, 148, 'latin1');
  payload.copy(out, BLOCK);
  return out;
}

function octal(n: number, digits: number): string {
  const s = n.toString(8);
  if (s.length > digits) throw new Error(`${n} does not fit ${digits} octal digits`);
  return s.padStart(digits, '0');
}
