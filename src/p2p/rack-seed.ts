// A rack's seed (booty rack): the one peer of a rack that reads the origin. It downloads the image
// once with the resumable HTTP fetch (the metainfo's web seed, or the URL given), cuts the bytes
// into pieces, checks each against the metainfo's SHA-1, writes it to a file in its directory and
// tells the rack's peers it has it at once, so the agents start fetching while the seed still
// downloads. When the file is complete its sha256 must be the one the server recorded. A seed
// started again over a complete or partial file checks the pieces on disk and fetches only the
// rest. It serves until stopped.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../util/log.ts';
import { silentLogger } from '../util/log.ts';
import type { ResumableSource } from '../image/source/resumable-source.ts';
import { http as door } from './http-door.ts';
import { pieceMatches, pieceSize, type Metainfo } from './metainfo.ts';
import { fetchMetainfo, type ServedMetainfo } from './swarm-source.ts';
import { Swarm } from './swarm.ts';

export interface RackSeedOptions {
  metainfoUrl: string;
  /** for the metainfo (a credential) */
  metainfoHeaders?: Record<string, string>;
  /** for the origin */
  headers?: Record<string, string>;
  rack?: string;
  /** where the image file is kept (<infohash>.img) */
  dir: string;
  /** the origin URL; default: the metainfo's web seed */
  origin?: string;
  port?: number;
  log?: Logger;
  signal?: AbortSignal;
  resume?: { stallTimeoutMs?: number; retryForMs?: number };
}

export interface RackSeed {
  swarm: Swarm;
  meta: Metainfo;
  path: string;
  /** resolves when the file is complete and its sha256 checked; rejects on a bad image */
  complete: Promise<{ originBytes: number; sha256: string }>;
  close(): Promise<void>;
}

export async function startRackSeed(o: RackSeedOptions): Promise<RackSeed> {
  const log = o.log ?? silentLogger;
  const url = new URL(o.metainfoUrl);
  if (o.rack !== undefined) url.searchParams.set('rack', o.rack);
  const served: ServedMetainfo = await fetchMetainfo(url.toString(), { headers: o.metainfoHeaders, signal: o.signal, log });
  const meta = served.meta;
  const origin = o.origin ?? meta.urlList[0];
  if (origin === undefined) throw new Error('the metainfo names no web seed (url-list): give the origin URL (--origin)');
  await mkdir(o.dir, { recursive: true });
  const path = join(o.dir, `${meta.infoHash}.img`);
  const fh = await open(path, 'a+').then(async (f) => { await f.close(); return open(path, 'r+'); });
  const held = new Uint8Array(meta.pieceCount);
  const size = (await stat(path)).size;
  let first = meta.pieceCount;
  for (let i = 0; i < meta.pieceCount; i++) {
    const len = pieceSize(meta, i);
    if ((i * meta.pieceLength) + len > size) { first = Math.min(first, i); continue; }
    const b = Buffer.allocUnsafe(len);
    await fh.read(b, 0, len, i * meta.pieceLength);
    if (pieceMatches(meta, i, b)) held[i] = 1; else first = Math.min(first, i);
  }
  if (first > 0) log.info(`p2p seed: ${first} of ${meta.pieceCount} pieces already on disk and checked`);
  const swarm = new Swarm({
    meta, announce: meta.announce ?? '', port: o.port, log,
    pieces: { has: (i) => held[i] === 1, read: (i, off, len) => readPiece(fh, meta, i, off, len) },
    // a seed reads the origin, never peers: it wants nothing from them
    onPiece: () => {},
  });
  await swarm.start();
  log.info(`p2p seed: swarm ${meta.infoHash.slice(0, 12)}… of ${meta.name} (${meta.pieceCount} pieces), listening on port ${swarm.port}, tracker ${meta.announce ?? '(none)'}`);
  let http: ResumableSource | undefined;
  const complete = (async () => {
    let originBytes = 0;
    if (first < meta.pieceCount) {
      const at = first * meta.pieceLength;
      log.info(`p2p seed: fetching ${origin} from byte ${at}`);
      http = await door().ResumableSource.open(origin, { headers: o.headers, signal: o.signal, log, startAt: at, startIfRange: at > 0 ? served.etag : undefined, ...o.resume });
      let i = first;
      let cut: Buffer[] = [];
      let cutBytes = 0;
      for await (const c of http) {
        let chunk = c as Buffer;
        originBytes += chunk.length;
        while (chunk.length > 0) {
          if (i >= meta.pieceCount) throw new Error(`the origin sent more than the metainfo's ${meta.length} bytes`);
          const take = chunk.subarray(0, pieceSize(meta, i) - cutBytes);
          cut.push(take); cutBytes += take.length; chunk = chunk.subarray(take.length);
          if (cutBytes < pieceSize(meta, i)) break;
          const piece = Buffer.concat(cut);
          cut = []; cutBytes = 0;
          if (!pieceMatches(meta, i, piece)) throw new Error(`the origin's piece ${i} does not match the metainfo's SHA-1: the image on the server is not the one the metainfo describes`);
          await fh.write(piece, 0, piece.length, i * meta.pieceLength);
          held[i] = 1;
          swarm.have(i);
          i++;
        }
      }
      if (i < meta.pieceCount) throw new Error(`the origin's image ended after piece ${i} of ${meta.pieceCount}`);
      await fh.sync();
    }
    const hash = createHash('sha256');
    for await (const c of createReadStream(path)) hash.update(c as Buffer);
    const sha256 = hash.digest('hex');
    if (served.sha256 !== undefined && sha256 !== served.sha256) {
      held.fill(0);
      await unlink(path).catch(() => {});
      throw new Error(`the image's sha256 is ${sha256.slice(0, 12)}…, the server recorded ${served.sha256.slice(0, 12)}…; the file was deleted`);
    }
    log.info(`p2p seed: ${meta.name} complete (${meta.length} bytes, ${originBytes} from the origin; sha256 ${sha256}${served.sha256 !== undefined ? ', verified' : ''}); seeding`);
    return { originBytes, sha256 };
  })();
  complete.catch(() => {});
  return {
    swarm, meta, path, complete,
    async close() {
      http?.destroy();
      swarm.close();
      await fh.close();
    },
  };
}

async function readPiece(fh: FileHandle, meta: Metainfo, i: number, off: number, len: number): Promise<Buffer> {
  const b = Buffer.allocUnsafe(len);
  const { bytesRead } = await fh.read(b, 0, len, i * meta.pieceLength + off);
  return b.subarray(0, bytesRead);
}
