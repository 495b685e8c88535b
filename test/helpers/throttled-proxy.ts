// An HTTP proxy for tests that forwards GET/HEAD to one origin (headers, Range and all) and
// sends the body at a fixed rate, so a deploy on a fast machine lasts long enough for a
// dashboard to show its progress bar moving. Honors backpressure; closes with close().

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';

const FORWARDED = ['content-length', 'content-range', 'content-type', 'etag', 'last-modified', 'accept-ranges', 'x-image-size', 'x-image-format', 'x-image-sha256'];

export async function startThrottledProxy(origin: string, bytesPerSecond: number): Promise<{ url: string; close(): Promise<void> }> {
  const piece = 64 * 1024;
  const server = createServer((req, res) => {
    void (async () => {
      const headers: Record<string, string> = {};
      for (const k of ['range', 'if-range']) if (typeof req.headers[k] === 'string') headers[k] = req.headers[k] as string;
      const up = await request(origin + (req.url ?? '/'), { method: req.method === 'HEAD' ? 'HEAD' : 'GET', headers });
      for (const k of FORWARDED) if (up.headers[k] !== undefined) res.setHeader(k, up.headers[k] as string);
      res.writeHead(up.statusCode);
      const started = Date.now();
      let sent = 0;
      for await (const chunk of up.body as AsyncIterable<Buffer>) {
        for (let at = 0; at < chunk.length; at += piece) {
          if (res.destroyed) { up.body.destroy(); return; }
          const part = chunk.subarray(at, at + piece);
          sent += part.length;
          const due = started + (sent / bytesPerSecond) * 1000;
          if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
          if (!res.write(part)) await new Promise((r) => res.once('drain', r));
        }
      }
      res.end();
    })().catch(() => res.destroy());
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', () => ok()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((ok) => { server.closeAllConnections(); server.close(() => ok()); }),
  };
}
