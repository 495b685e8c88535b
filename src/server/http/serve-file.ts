// Streaming a file (an image, its gzip index, a boot file) with Range, If-Range, If-None-Match
// and ETag, counted in the metrics (bytes sent, downloads in progress).

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import type { ServerCounters } from '../metrics.ts';
import { ifRangeAllows, noneMatch, parseRange } from '../range.ts';
import { note, writeHead } from './respond.ts';

const READ_CHUNK = 1 << 20;

/** Stream an open file (closed here) with Range, If-Range, If-None-Match, ETag. */
export async function serveFile(req: IncomingMessage, res: ServerResponse, counters: ServerCounters,
  file: { fh: FileHandle; st: Stats; etag: string }, extra: Record<string, string | number>): Promise<void> {
  const { fh, st, etag } = file;
  let handedOver = false;
  try {
    const lastModified = st.mtime.toUTCString();
    const headers: Record<string, string | number> = {
      'Content-Type': 'application/octet-stream', 'Accept-Ranges': 'bytes', ETag: etag, 'Last-Modified': lastModified, ...extra,
    };
    if (noneMatch(req.headers['if-none-match'], etag)) {
      writeHead(res, 304, headers);
      res.end();
      return;
    }
    const ifRangeHeader = req.headers['if-range'];
    const ifRange = typeof ifRangeHeader === 'string' ? ifRangeHeader : undefined;
    const decision = req.headers.range !== undefined && ifRangeAllows(ifRange, etag, lastModified)
      ? parseRange(req.headers.range, st.size) : { kind: 'full' as const };
    if (decision.kind === 'unsatisfiable') {
      writeHead(res, 416, { ...headers, 'Content-Range': `bytes */${st.size}`, 'Content-Length': 0 });
      res.end();
      return;
    }
    let start = 0;
    let end = st.size - 1;
    if (decision.kind === 'partial') {
      ({ start, end } = decision);
      headers['Content-Range'] = `bytes ${start}-${end}/${st.size}`;
      note(res, 'range', `${start}-${end}`);
    }
    headers['Content-Length'] = st.size === 0 ? 0 : end - start + 1;
    writeHead(res, decision.kind === 'partial' ? 206 : 200, headers);
    if (req.method === 'HEAD' || st.size === 0) { res.end(); return; }
    handedOver = true;
    const stream = fh.createReadStream({ start, end, highWaterMark: READ_CHUNK, autoClose: true });
    stream.on('data', (c) => { counters.imageBytesSent += c.length; });
    counters.activeDownloads++;
    // A client that disconnects mid-download is normal (the agent resumes with Range).
    await pipeline(stream, res).catch(() => { note(res, 'client-gone'); }).finally(() => { counters.activeDownloads--; });
  } finally {
    if (!handedOver) await fh.close();
  }
}
