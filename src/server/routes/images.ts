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

async function serveImage({ app, req, res, params: { name } }: AppRequest): Promise<void> {
  const img = await app.images.openForRead(name);
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

async function serveIndex({ app, req, res, params: { name } }: AppRequest): Promise<void> {
  const img = await app.images.openForRead(name);
  if (img === undefined) throw new HttpError(404, `no image named ${JSON.stringify(name)}`);
  await img.fh.close();
  const idx = app.indexer === undefined ? undefined : await app.indexer.ready(name, img.etag);
  if (idx === undefined) throw new HttpError(404, `no gzip index for image ${JSON.stringify(name)} (${app.indexer?.describe(name) ?? 'not indexed'})`);
  let fh: FileHandle;
  try { fh = await open(idx.path, 'r'); } catch { throw new HttpError(404, `the gzip index of ${JSON.stringify(name)} is gone`); }
  const st = await fh.stat();
  await serveFile(req, res, app.counters, { fh, st, etag: etagFor(st) }, {});
}

async function imageCatalog(app: AppContext): Promise<unknown[]> {
  const out = [];
  for (const i of await app.images.list()) out.push({ ...i, gzipIndex: app.indexer?.describe(i.name), usedBy: await app.machines.actions.referencesTo(i.name) });
  return out;
}

async function deleteImage({ app, res, params: { name } }: AppRequest): Promise<void> {
  const users = await app.machines.actions.referencesTo(name);
  if (users.length > 0) throw new HttpError(409, `image "${name}" is used by the action of ${users.join(', ')}; change or remove those actions first`);
  if (!await app.images.remove(name)) throw new HttpError(404, `no image named ${JSON.stringify(name)}`);
  await app.indexer?.forget(name);
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
