// Writing a gzip image's access-point index (gzip-index.ts) to a file: `booty index` and the
// server's background indexer (src/server/gzip-indexer.ts) both go through here. The file is
// written under a temporary name and renamed into place only when complete, so a reader never
// sees half an index.
import { open, rename, unlink } from 'node:fs/promises';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { GzipIndexBuilder, HEADER_BYTES, decodeHeader, type GzipIndexHeader } from './gzip-index.ts';

const READ_CHUNK = 1 << 20;

export interface BuildIndexFileOptions {
  /** the ETag the image is served with (recorded in the index) */
  etag?: string;
  /** checked between chunks: true stops the build (it throws) */
  shouldStop?: () => boolean;
  /** let the event loop run between chunks (a server keeps serving meanwhile) */
  yieldBetween?: boolean;
}

/** Builds the index of the gzip file `image` into `out`; throws IndexRefused when it gets none. */
export async function buildGzipIndexFile(image: string, out: string, o: BuildIndexFileOptions = {}): Promise<GzipIndexHeader & { indexBytes: number }> {
  const tmp = `${out}.tmp-${process.pid}`;
  const src = await open(image, 'r');
  let dst: Awaited<ReturnType<typeof open>> | undefined;
  let builder: GzipIndexBuilder | undefined;
  try {
    const before = await src.stat();
    dst = await open(tmp, 'w', 0o644);
    await dst.write(Buffer.alloc(HEADER_BYTES), 0, HEADER_BYTES, 0);
    let at = HEADER_BYTES;
    const pending: Buffer[] = [];
    builder = new GzipIndexBuilder({ etag: o.etag, emit: (b) => { pending.push(b); } });
    const buf = Buffer.allocUnsafe(READ_CHUNK);
    for (let pos = 0; ;) {
      if (o.shouldStop?.() === true) throw new Error('stopped');
      const { bytesRead } = await src.read(buf, 0, READ_CHUNK, pos);
      if (bytesRead === 0) break;
      pos += bytesRead;
      builder.push(buf.subarray(0, bytesRead));
      if (pending.length > 0) {
        const chunk = Buffer.concat(pending.splice(0));
        await dst.write(chunk, 0, chunk.length, at);
        at += chunk.length;
      }
      if (o.yieldBetween === true) await yieldToLoop();
    }
    const b = builder;
    builder = undefined;
    const header = b.finish();
    const after = await src.stat();
    if (after.size !== before.size || after.mtimeMs !== before.mtimeMs) throw new Error(`${image} changed while it was indexed`);
    await dst.write(header, 0, header.length, 0);
    await dst.sync();
    await dst.close();
    dst = undefined;
    await rename(tmp, out);
    return { ...decodeHeader(header), indexBytes: at };
  } finally {
    builder?.close();
    await src.close();
    if (dst !== undefined) await dst.close().catch(() => {});
    await unlink(tmp).catch(() => {});
  }
}
