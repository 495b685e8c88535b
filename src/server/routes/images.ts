// Image downloads (GET|HEAD /images/<name>, Range/ETag), a gzip image's access-point index
// (/image-index/<name>), the catalog (GET /api/images: operator, it names the machines using
// each image) and deleting an image.

import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { HttpError } from '../http/http-error.ts';
import { note, sendJson } from '../http/respond.ts';
import { serveFile } from '../http/serve-file.ts';
import { etagFor } from '../range.ts';
import type { AppContext, AppRequest, AppRoute } from './context.ts';

/**
 * Replicas: an image another replica holds is answered with a redirect to its copy (agents follow
 * redirects and check the sha256 as for any URL); true when it did.
 */
async function redirectToHolder({ app, res }: AppRequest, name: string, path: 'images' | 'image-index'): Promise<boolean> {
  const row = await app.catalog?.elsewhere(name);
  if (row === undefined) return false;
  note(res, 'held-by', row.holder);
  res.writeHead(307, { Location: `${row.holder}/${path}/${encodeURIComponent(name)}`, 'Cache-Control': 'no-store', 'X-Image-Sha256': row.sha256, 'Content-Length': 0 });
  res.end();
  return true;
}

async function serveImage(r: AppRequest): Promise<void> {
  const { app, req, res, params: { name } } = r;
  const img = await app.images.openForRead(name);
  if (img === undefined && await redirectToHolder(r, name, 'images')) return;
  if (img === undefined) throw new HttpError(404, `no image named ${JSON.stringify(name)}`);
  const extra: Record<string, string | number> = { 'X-Image-Format': img.format };
  if (img.uncompressedSize !== undefined) extra['X-Image-Size'] = img.uncompressedSize;
  if (img.meta?.sha256 !== undefined) extra['X-Image-Sha256'] = img.meta.sha256;
  if (img.format === 'gzip' && app.indexer !== undefined) {
    // the agent fetches it beside the image and inflates on every core (gzip-index.ts)
    const idx = await app.indexer.ready(name, img.etag).catch(() => undefined);
    if (idx !== undefined) {
      extra['X-Booty-Gzip-Index'] = `/image-index/${encodeURIComponent(name)}`;
      if (img.uncompressedSize === undefined) extra['X-Image-Size'] = idx.header.totalSize;
    }
  }
  await serveFile(req, res, app.counters, img, extra);
}

async function serveIndex(r: AppRequest): Promise<void> {
  const { app, req, res, params: { name } } = r;
  const img = await app.images.openForRead(name);
  if (img === undefined && await redirectToHolder(r, name, 'image-index')) return;
  if (img === undefined) throw new HttpError(404, `no image named ${JSON.stringify(name)}`);
  await img.fh.close();
  const idx = app.indexer === undefined ? undefined : await app.indexer.ready(name, img.etag);
  if (idx === undefined) throw new HttpError(404, `no gzip index for image ${JSON.stringify(name)} (${app.indexer?.describe(name) ?? 'not indexed'})`);
  let fh: FileHandle;
  try { fh = await open(idx.path, 'r'); } catch { throw new HttpError(404, `the gzip index of ${JSON.stringify(name)} is gone`); }
  const st = await fh.stat();
  await serveFile(req, res, app.counters, { fh, st, etag: etagFor(st) }, {});
}

/** This server's images; with replicas, also those the others hold (`heldBy`: which replica has the bytes). */
async function imageCatalog(app: AppContext): Promise<unknown[]> {
  const out: ({ name: string } & Record<string, unknown>)[] = [];
  const local = await app.images.list();
  for (const i of local) out.push({ ...i, gzipIndex: app.indexer?.describe(i.name), usedBy: await app.machines.actions.referencesTo(i.name), ...(app.catalog === undefined ? {} : { heldBy: app.catalog.self }) });
  if (app.catalog !== undefined) {
    const here = new Set(local.map((i) => i.name));
    for (const row of await app.catalog.list()) {
      if (here.has(row.name) || row.holder === app.catalog.self) continue;
      out.push({
        name: row.name, size: row.size, mtime: row.storedAt, sha256: row.sha256, format: row.format, uncompressedSize: row.uncompressedSize,
        storedAt: row.storedAt, via: row.via, machine: row.machine, heldBy: row.holder, usedBy: await app.machines.actions.referencesTo(row.name),
      });
    }
    out.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  }
  return out;
}

async function deleteImage({ app, res, params: { name } }: AppRequest): Promise<void> {
  const users = await app.machines.actions.referencesTo(name);
  if (users.length > 0) throw new HttpError(409, `image "${name}" is used by the action of ${users.join(', ')}; change or remove those actions first`);
  if (!await app.images.remove(name)) {
    const row = await app.catalog?.elsewhere(name);
    if (row !== undefined) throw new HttpError(409, `image "${name}" is held by replica ${row.holder}; delete it through that replica`);
    throw new HttpError(404, `no image named ${JSON.stringify(name)}`);
  }
  await app.indexer?.forget(name);
  await app.p2p?.metainfo.forget(name);
  await app.catalog?.sync().catch((e: Error) => app.log.warn('could not update the shared image catalog', { error: e.message }));
  note(res, 'deleted', name);
  app.hub?.imagesChanged();
  sendJson(res, 200, { ok: true });
}

export const imageRoutes: AppRoute[] = [
  { method: 'GET', path: '/image-index/:name', access: 'public', handle: serveIndex },
  { method: 'GET', path: '/images/:name', access: 'public', handle: serveImage },
  { method: 'GET', path: '/api/images', access: 'operator', handle: async ({ app, res }) => sendJson(res, 200, { images: await imageCatalog(app) }) },
  { method: 'DELETE', path: '/api/images/:name', access: 'operator', handle: deleteImage },
];
