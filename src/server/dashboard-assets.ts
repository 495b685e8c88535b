// The dashboard's static files (src/server/dashboard/: hand-written HTML, CSS and JS, no build
// step), read once at start and served from memory with an ETag.

import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readdir, readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';

export interface Asset { name: string; body: Buffer; type: string; etag: string }

export interface Dashboard {
  asset(name: string): Asset | undefined;
  send(req: IncomingMessage, res: ServerResponse, a: Asset): void;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.css': 'text/css; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon',
};

export const DASHBOARD_DIR = join(import.meta.dirname, 'dashboard');

export async function loadDashboard(dir = DASHBOARD_DIR): Promise<Dashboard | undefined> {
  let files: string[];
  try { files = await readdir(dir); } catch { return undefined; }
  const assets = new Map<string, Asset>();
  for (const f of files) {
    const type = TYPES[extname(f)];
    if (type === undefined) continue;
    const body = await readFile(join(dir, f));
    assets.set(f, { name: f, body, type, etag: `"${createHash('sha256').update(body).digest('hex').slice(0, 20)}"` });
  }
  if (!assets.has('index.html')) return undefined;
  return {
    asset: (name) => assets.get(name),
    send(req, res, a) {
      const headers = { 'Content-Type': a.type, ETag: a.etag, 'Cache-Control': 'no-cache', 'X-Content-Type-Options': 'nosniff' };
      for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
      if (req.headers['if-none-match'] === a.etag) { res.writeHead(304); res.end(); return; }
      res.setHeader('Content-Length', a.body.length);
      res.writeHead(200);
      res.end(req.method === 'HEAD' ? undefined : a.body);
    },
  };
}
