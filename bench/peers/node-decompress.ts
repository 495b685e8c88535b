// A machine-limit row of the bench: Node's own zlib decompressing a file into nothing, with
// 1 MiB reads and 1 MiB output chunks (chunkSize is the first-order knob of node:zlib speed).
// Usage: node bench/peers/node-decompress.ts gzip|zstd FILE   (prints the uncompressed byte count)
import { createReadStream } from 'node:fs';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

const [format, file] = process.argv.slice(2);
if ((format !== 'gzip' && format !== 'zstd') || file === undefined) {
  process.stderr.write('usage: node-decompress.ts gzip|zstd FILE\n');
  process.exit(2);
}
const chunkSize = 1 << 20;
let bytes = 0;
const discard = new Writable({
  highWaterMark: chunkSize,
  write(chunk: Buffer, _enc, done) {
    bytes += chunk.length;
    done();
  },
});
const inflater = format === 'gzip' ? createGunzip({ chunkSize }) : createZstdDecompress({ chunkSize });
await pipeline(createReadStream(file, { highWaterMark: chunkSize }), inflater, discard);
process.stdout.write(`node-decompress ${format}: ${bytes} bytes\n`);
