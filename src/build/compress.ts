// Compressing the archive stream the way the kernel can unpack it: zstd (default), gzip, lz4 or
// none. lz4 (the lz4 program's legacy frame format, the only one the kernel reads) unpacks about
// as fast as an uncompressed archive under QEMU's TCG, where zstd and gzip take several times
// longer for the same 147 MB (README "Figures"); on real hardware zstd's smaller file wins.
// zstd defaults to level 22 (--ultra) with the window held at 16 MiB (windowLog 24): the kernel
// allocates a window-sized buffer while it unpacks (it accepts up to 128 MiB, which a 384 MiB
// machine cannot spare), and 16 MiB already gets most of what level 22 gains over 19 (0.4 MB
// on 42). Both outputs are deterministic for the same input (Node's gzip writes mtime 0).
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { createHash } from 'node:crypto';

export type Compression = 'zstd' | 'gzip' | 'lz4' | 'none';

/** The largest zstd window the archive may need at unpack time: 2^24 = 16 MiB. */
export const ARCHIVE_WINDOW_LOG = 24;

export function defaultLevel(c: Compression): number {
  return c === 'zstd' ? 22 : c === 'gzip' ? 9 : c === 'lz4' ? 9 : 0;
}

export function compressor(c: Compression, level: number): Transform {
  const chunkSize = 1 << 20;
  if (c === 'zstd') {
    return zlib.createZstdCompress({
      chunkSize,
      params: {
        [zlib.constants.ZSTD_c_compressionLevel]: level,
        [zlib.constants.ZSTD_c_checksumFlag]: 1,
        // levels 20-22 would otherwise ask for a 32-128 MiB window at unpack time
        ...(level > 19 ? { [zlib.constants.ZSTD_c_windowLog]: ARCHIVE_WINDOW_LOG } : {}),
      },
    });
  }
  if (c === 'gzip') return zlib.createGzip({ level, chunkSize });
  if (c === 'lz4') return lz4Legacy(level);
  return new Transform({ transform(chunk, _enc, cb) { cb(null, chunk); } });
}

/**
 * `lz4 -l -LEVEL`: the legacy format (8 MiB blocks, no checksums) that the kernel's unlz4
 * reads; the frame format it does not. Node has no lz4, so this is Debian's lz4 program
 * (scripts/host-deps.sh); the same input and level give the same bytes.
 */
function lz4Legacy(level: number): Transform {
  const child = spawn('lz4', ['-l', `-${level}`, '-c', '-q'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
  const exited = new Promise<void>((resolve, reject) => {
    child.on('error', (e) => reject(new Error(`build-initramfs: cannot run lz4 (install Debian's lz4: scripts/host-deps.sh): ${e.message}`)));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`build-initramfs: lz4 -l -${level} exited with ${code}: ${stderr.trim()}`))));
  });
  exited.catch(() => { /* reported by flush or by a write */ });
  const t: Transform = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      // back-pressure: wait for the pipe to drain before taking the next chunk
      if (child.stdin.write(chunk)) cb(); else child.stdin.once('drain', () => cb());
    },
    flush(cb) {
      child.stdin.end();
      exited.then(() => cb(), (e: Error) => cb(e));
    },
    destroy(err, cb) { child.kill(); cb(err); },
  });
  child.stdout.on('data', (b: Buffer) => { t.push(b); });
  child.stdin.on('error', (e) => { t.destroy(e); });
  exited.catch((e: Error) => { t.destroy(e); });
  return t;
}

/** zstd level of the kernel modules packed as .ko.zst (each compressed on its own). */
export const MODULE_ZSTD_LEVEL = 19;

/**
 * One kernel module as a .ko.zst: a single zstd frame with the content size and a checksum, as
 * `zstd -19` writes it (so zstd(1), kmod and the agent's src/sys/kmod.ts all read it).
 */
export function compressModule(ko: Buffer): Buffer {
  return zlib.zstdCompressSync(ko, {
    params: {
      [zlib.constants.ZSTD_c_compressionLevel]: MODULE_ZSTD_LEVEL,
      [zlib.constants.ZSTD_c_checksumFlag]: 1,
      [zlib.constants.ZSTD_c_contentSizeFlag]: 1,
    },
  });
}

/**
 * Streams chunks through the compressor into file (written beside it, then renamed, so a
 * reader never sees half an archive). Returns uncompressed and compressed byte counts and
 * the sha256 of the compressed file.
 */
export async function writeCompressed(chunks: AsyncIterable<Buffer>, file: string, c: Compression, level: number):
  Promise<{ rawBytes: number; bytes: number; sha256: string }> {
  let rawBytes = 0;
  let bytes = 0;
  const hash = createHash('sha256');
  const counting = async function* (src: AsyncIterable<Buffer>) { for await (const b of src) { rawBytes += b.length; yield b; } };
  const tap = new Transform({ transform(chunk: Buffer, _enc, cb) { bytes += chunk.length; hash.update(chunk); cb(null, chunk); } });
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    await pipeline(Readable.from(counting(chunks)), compressor(c, level), tap, createWriteStream(tmp));
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  return { rawBytes, bytes, sha256: hash.digest('hex') };
}
