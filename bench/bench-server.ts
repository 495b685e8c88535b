// The bench's own HTTP server, run as a separate process so its CPU is not billed to the peers:
//  - GET/HEAD /images/<name>: serves files from <dir>/images/ (used when `booty server` is not
//    available; otherwise only the upload side below is used);
//  - PUT or POST on any other path: a null sink that reads the whole body and answers 201, so
//    every capture peer uploads to the same place at the same cost (POST ?commit=ID, the second
//    step of booty's upload, is answered 200 and not counted as an upload);
//  - POST /_bench/keep?file=ABS: the next upload is also written to ABS (for verification);
//  - GET /_bench/last: what the last upload was (seq, method, path, content type, bytes, kept file).
// Usage: node bench/bench-server.ts DIR   (prints `booty server: listening on http://HOST:PORT`)
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createReadStream, createWriteStream, statSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { join, basename } from 'node:path';

const dir = process.argv[2];
if (dir === undefined) {
  process.stderr.write('usage: bench-server.ts DIR\n');
  process.exit(2);
}

type Upload = { seq: number; method: string; path: string; contentType: string; bytes: number; kept: string | null };
let keepNext: string | null = null;
let last: Upload | null = null;
let seq = 0;

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body) + '\n';
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function serveImage(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
  const file = join(dir!, 'images', basename(name));
  let size: number;
  try {
    size = statSync(file).size;
  } catch {
    reply(res, 404, { error: `no image ${name}` });
    return;
  }
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  // 1 MiB reads: the server should never be the slow end of a deploy peer.
  await pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), res);
}

async function drain(req: IncomingMessage): Promise<void> {
  for await (const _ of req as AsyncIterable<Buffer>) {
    // discard
  }
}

async function sink(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  const kept = keepNext;
  keepNext = null;
  let bytes = 0;
  const out = kept === null ? null : createWriteStream(kept, { highWaterMark: 1 << 20 });
  for await (const chunk of req as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    if (out !== null && !out.write(chunk)) await new Promise((r) => out.once('drain', r));
  }
  if (out !== null) await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  last = { seq: ++seq, method: req.method ?? '', path, contentType: String(req.headers['content-type'] ?? ''), bytes, kept };
  reply(res, 201, { ok: true, bytes });
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  const path = url.pathname;
  let work: Promise<void>;
  if (path === '/_bench/keep' && req.method === 'POST') {
    keepNext = url.searchParams.get('file');
    work = Promise.resolve(reply(res, 200, { keep: keepNext }));
  } else if (path === '/_bench/last') {
    work = Promise.resolve(reply(res, 200, last));
  } else if ((req.method === 'GET' || req.method === 'HEAD') && path.startsWith('/images/')) {
    work = serveImage(req, res, path.slice('/images/'.length));
  } else if (path.startsWith('/api/uploads')) {
    // booty server's resumable part uploads are not offered: booty capture then falls back to its
    // single streaming PUT + commit, the same one-request cost as every other capture peer.
    work = drain(req).then(() => reply(res, 404, { error: 'this sink takes streaming uploads only' }));
  } else if (req.method === 'POST' && url.searchParams.has('commit')) {
    // booty's two-step upload (PUT ?upload=ID, then POST ?commit=ID {size, sha256}): the commit
    // is not an upload; it is accepted unchecked (the harness checks the content itself).
    work = drain(req).then(() => reply(res, 200, { ok: true, committed: url.searchParams.get('commit') }));
  } else if (req.method === 'PUT' || req.method === 'POST') {
    work = sink(req, res, path);
  } else {
    work = Promise.resolve(reply(res, 404, { error: 'not found' }));
  }
  work.catch((err: unknown) => {
    process.stderr.write(`bench-server: ${req.method} ${path}: ${err instanceof Error ? err.message : String(err)}\n`);
    if (!res.headersSent) reply(res, 500, { error: 'failed' });
    else res.destroy();
  });
});

server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('no address');
  process.stdout.write(`booty server: listening on http://127.0.0.1:${addr.port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
