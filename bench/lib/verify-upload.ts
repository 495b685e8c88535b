// Checks that a captured upload holds the disk: takes the image out of the body (a raw PUT, or the
// BootyImage part of a multipart POST), decompresses it whatever its format (gzip, multi-member
// gzip, zstd, multi-frame zstd) and hashes the result.
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { UploadRecord } from './servers.ts';

/** The compressed image inside the body the sink kept. */
export function imageBytes(up: UploadRecord): Buffer {
  if (up.kept === null) throw new Error('upload was not kept');
  const body = readFileSync(up.kept);
  const b = /multipart\/form-data;.*boundary=("?)([^";]+)\1/i.exec(up.contentType);
  if (b === null) return body;
  const delimiter = Buffer.from(`\r\n--${b[2]}`);
  // Parts start after "--boundary\r\n" and their headers end at the first blank line.
  let at = body.indexOf(`--${b[2]}\r\n`);
  while (at >= 0) {
    const headerEnd = body.indexOf('\r\n\r\n', at);
    if (headerEnd < 0) break;
    const headers = body.subarray(at, headerEnd).toString('latin1');
    const start = headerEnd + 4;
    const end = body.indexOf(delimiter, start);
    if (end < 0) break;
    if (/name="BootyImage"/i.test(headers)) return body.subarray(start, end);
    at = end + 2;
  }
  throw new Error('no BootyImage part in the multipart body');
}

export async function sha256OfDecompressed(compressed: Buffer): Promise<{ sha256: string; bytes: number; format: string }> {
  const isGzip = compressed[0] === 0x1f && compressed[1] === 0x8b;
  const isZstd = compressed.readUInt32LE(0) === 0xfd2fb528;
  if (!isGzip && !isZstd) throw new Error('upload is neither gzip nor zstd');
  const hash = createHash('sha256');
  let bytes = 0;
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      bytes += chunk.length;
      done();
    },
  });
  const chunkSize = 1 << 20;
  await pipeline(Readable.from([compressed]), isGzip ? createGunzip({ chunkSize }) : createZstdDecompress({ chunkSize }), sink);
  return { sha256: hash.digest('hex'), bytes, format: isGzip ? 'gzip' : 'zstd' };
}
