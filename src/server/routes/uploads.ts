// Uploads, every form a client may use (README "Server API"):
//   PUT  /images/<name>[?upload=<id>][&overwrite=1]   streamed upload (or step 1 of two)
//   POST /images/<name>?commit=<id>                   step 2: commit after comparing {size, sha256}
//   POST /image, /images                              BOOTy's multipart capture (field BootyImage)
//   POST /api/uploads, GET|DELETE /api/uploads/<id>, PUT /api/uploads/<id>/parts/<n>,
//   POST /api/uploads/<id>/commit                     resumable upload in parts (booty capture)
// Agent level: an operator, or the agent of a machine whose capture action names the image (its
// credential uploads to that name and no other); an upload session belongs to the machine that
// started it. The multipart form and a new session name their image in the body: checked there.

import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { HttpError } from '../http/http-error.ts';
import { checkedImageName, flag, optionalSize, readJson, sha256Param } from '../http/request.ts';
import { note, remoteOf, sendJson } from '../http/respond.ts';
import { MultipartReader, boundaryOf } from '../multipart.ts';
import { isUploadId, normalizeMac, storedNameForBootyUpload } from '../names.ts';
import { isSessionId } from '../upload-sessions.ts';
import { refuseOtherMachine } from '../http/access.ts';
import type { AppContext, AppRequest, AppRoute } from './context.ts';

async function counted<T extends { size: number }>(app: AppContext, fn: () => Promise<T>): Promise<T> {
  app.counters.activeUploads++;
  try {
    const r = await fn();
    app.counters.imageBytesReceived += r.size;
    return r;
  } finally { app.counters.activeUploads--; }
}

/** The machine an upload says it comes from (X-Booty-Mac), if any. */
function macHeader(req: IncomingMessage): string | undefined {
  const h = req.headers['x-booty-mac'];
  return typeof h === 'string' ? normalizeMac(h.trim()) : undefined;
}

/** Does `mac`'s action (its own, else default.json) capture into image `name`? */
async function capturesInto(app: AppContext, mac: string, name: string): Promise<boolean> {
  const refs = await app.machines.actions.referencesTo(name, ['capture']);
  return refs.includes(mac) || (refs.includes('default.json') && (await app.machines.actions.record(mac))?.action === undefined);
}

/**
 * The machine an agent's upload of `name` speaks for: its own, when its capture action names
 * `name`; otherwise a 403 naming the image (the router's agentMac, or the handler's check once
 * the body named the image).
 */
async function uploadingMachine(r: AppRequest, name: string): Promise<string | undefined> {
  const p = r.principal;
  if (p.kind !== 'agent') return undefined;
  if (!await capturesInto(r.app, p.mac, name)) {
    throw new HttpError(403, `this credential is for ${p.mac}, whose action does not capture into "${name}"; an agent uploads only the image its capture action names`);
  }
  const claimed = macHeader(r.req);
  refuseOtherMachine(p, claimed ?? p.mac);
  return p.mac;
}

/** The machine an upload comes from: the agent's, its X-Booty-Mac, else the one machine whose capture action targets this name. */
async function captureMachine(r: AppRequest, name: string): Promise<string | undefined> {
  const { app, req, principal } = r;
  if (principal.kind === 'agent') return principal.mac;
  const fromHeader = macHeader(req);
  if (fromHeader !== undefined) return fromHeader;
  const refs = (await app.machines.actions.referencesTo(name, ['capture'])).filter((m) => m !== 'default.json');
  return refs.length === 1 ? refs[0] : undefined;
}

/** Refuse before reading a byte when Content-Length already says the body is over the limit. */
function refuseOversize(app: AppContext, req: IncomingMessage): void {
  const len = Number(req.headers['content-length'] ?? NaN);
  if (len > app.images.maxUploadBytes) throw new HttpError(413, `upload of ${len} bytes is larger than the server's limit of ${app.images.maxUploadBytes} bytes`);
}

async function refuseExisting(app: AppContext, name: string, overwrite: boolean, force: boolean): Promise<void> {
  await app.catalog?.refuseHeldElsewhere(name);
  if (!overwrite && await app.images.exists(name)) throw new HttpError(409, `image "${name}" already exists; add ?overwrite=1 to replace it`);
  if (overwrite) await refuseInUse(app, name, force);
}

/**
 * An image a deploy action names is immutable: replacing it would change what those machines
 * install halfway through a rollout (and their sha256 would no longer match). `force` (the
 * operator's ?force=1) overrides; a machine capturing into its own target is not a use.
 */
async function refuseInUse(app: AppContext, name: string, force: boolean): Promise<void> {
  if (force) return;
  const users = await app.machines.actions.referencesTo(name, ['deploy']);
  if (users.length > 0) throw new HttpError(409, `image "${name}" is deployed by the action of ${users.join(', ')}; upload under a new name and change those actions, or add ?force=1 to replace it anyway`);
}

/** ?force=1 overrides the in-use check for operators only: an agent never replaces what others deploy. */
function forced(r: AppRequest, bodyForce?: unknown): boolean {
  return r.principal.kind === 'operator' && (flag(r.url, 'force') || bodyForce === true);
}

/** A new image is in place: index it if it is gzip, list it in the replicas' catalog, tell the dashboards. */
async function imageStored(app: AppContext, m: { name: string; format: string }): Promise<void> {
  if (m.format === 'gzip') app.indexer?.want(m.name);
  // peer to peer: the metainfo now, not at the first request (other replicas serve it from the catalog once built)
  app.p2p?.metainfo.want(m.name);
  // replicas: in the shared catalog before the upload is answered (the image is stored either way)
  await app.catalog?.sync().then(
    (r) => { if (r.conflicts.length > 0) app.log.warn('images held by another replica under the same name are not listed from here', { images: r.conflicts.join(',') }); },
    (e: Error) => app.log.warn('could not update the shared image catalog', { error: e.message }));
  app.hub?.imagesChanged();
}

function publicMeta(m: { name: string; size: number; sha256: string; format: string; uncompressedSize?: number; storedAt: string; machine?: string }) {
  return { name: m.name, size: m.size, sha256: m.sha256, format: m.format, uncompressedSize: m.uncompressedSize, storedAt: m.storedAt, machine: m.machine };
}

/** Answer for an image now stored (every form of upload ends here). */
async function stored(r: AppRequest, status: number, meta: Parameters<typeof publicMeta>[0]): Promise<void> {
  await imageStored(r.app, meta);
  note(r.res, 'stored', meta.name);
  sendJson(r.res, status, publicMeta(meta));
}

async function putImage(r: AppRequest): Promise<void> {
  const { app, req, res, url, params: { name } } = r;
  const overwrite = flag(url, 'overwrite');
  const uploadId = url.searchParams.get('upload');
  if (uploadId !== null && !isUploadId(uploadId)) throw new HttpError(400, 'upload id must be 1-40 characters of A-Z a-z 0-9 _ -');
  const headerSha = sha256Param(req.headers['x-booty-sha256'], 'header X-Booty-Sha256');
  const uncompressedSize = optionalSize(req.headers['x-image-size'] as string | undefined, 'header X-Image-Size');
  refuseOversize(app, req);
  await refuseExisting(app, name, overwrite, forced(r));
  const received = await counted(app, () => app.images.receive(name, uploadId ?? randomBytes(8).toString('hex'), req as AsyncIterable<Buffer>));
  note(res, 'received', received.size);
  if (uploadId !== null) {
    // two-step upload: the client commits with the size and sha256 it sent
    sendJson(res, 202, { name, upload: uploadId, size: received.size, sha256: received.sha256 });
    return;
  }
  // the sha256 may come as a header or, for a chunked body, as a trailer
  const trailerSha = sha256Param(req.trailers['x-booty-sha256'], 'trailer X-Booty-Sha256');
  await stored(r, 201, await app.images.commit(name, received, {
    expectSha256: headerSha ?? trailerSha, overwrite, uncompressedSize, via: 'put', remote: remoteOf(req), machine: await captureMachine(r, name),
  }));
}

async function commitImage(r: AppRequest): Promise<void> {
  const { app, req, url, params: { name } } = r;
  const id = url.searchParams.get('commit') ?? '';
  if (!isUploadId(id)) throw new HttpError(400, 'commit id must be 1-40 characters of A-Z a-z 0-9 _ -');
  const body = await readJson(req, 4096) as { size?: unknown; sha256?: unknown; uncompressedSize?: unknown };
  if (typeof body !== 'object' || body === null) throw new HttpError(400, 'commit body must be a JSON object {"size": N, "sha256": "hex"}');
  if (typeof body.size !== 'number' || !Number.isSafeInteger(body.size) || body.size < 0) throw new HttpError(400, 'field "size" of the commit must be a size in bytes');
  const sha = sha256Param(body.sha256, 'field "sha256" of the commit');
  if (sha === undefined) throw new HttpError(400, 'field "sha256" of the commit is required');
  const uncompressedSize = body.uncompressedSize === undefined ? undefined : optionalSize(String(body.uncompressedSize), 'field "uncompressedSize"');
  await app.catalog?.refuseHeldElsewhere(name);
  if (flag(url, 'overwrite')) await refuseInUse(app, name, forced(r));
  const pending = await app.images.pending(name, id);
  if (pending === undefined) throw new HttpError(404, `no upload "${id}" of "${name}" to commit (never received, failed, or already committed)`);
  await stored(r, 200, await app.images.commit(name, pending, {
    expectSha256: sha, expectSize: body.size, overwrite: flag(url, 'overwrite'), uncompressedSize, via: 'commit', remote: remoteOf(req),
    machine: await captureMachine(r, name),
  }));
}

/** BOOTy's capture: multipart/form-data, the image in field BootyImage, named <mac>.img|.zmg. */
async function multipartUpload(r: AppRequest): Promise<void> {
  const { app, req, res, url } = r;
  const boundary = boundaryOf(req.headers['content-type']);
  if (boundary === undefined) throw new HttpError(400, 'expected Content-Type multipart/form-data with a boundary');
  const overwrite = flag(url, 'overwrite');
  refuseOversize(app, req);
  const reader = new MultipartReader(req as AsyncIterable<Buffer>, boundary);
  for (let part = await reader.nextPart(); part !== null; part = await reader.nextPart()) {
    if (part.name !== 'BootyImage' || part.filename === undefined) continue; // drained by nextPart()
    const name = checkedImageName(storedNameForBootyUpload(part.filename));
    const fromName = normalizeMac(part.filename.replace(/\.(img|zmg)$/i, ''));
    // BOOTy names the file after the machine: an agent uploads its own
    refuseOtherMachine(r.principal, fromName);
    await refuseExisting(app, name, overwrite, forced(r));
    const received = await counted(app, () => app.images.receive(name, randomBytes(8).toString('hex'), part.body));
    try {
      // the closing boundary must arrive too: only a complete form is a complete upload
      while (await reader.nextPart() !== null) { /* drain the rest */ }
    } catch (e) { await app.images.discard(received); throw e; }
    note(res, 'received', received.size);
    await stored(r, 200, await app.images.commit(name, received, { overwrite, via: 'multipart', remote: remoteOf(req), machine: fromName ?? await captureMachine(r, name) }));
    return;
  }
  throw new HttpError(400, 'no file in form field "BootyImage"');
}

// ---- resumable uploads (parts) --------------------------------------------------------------

async function createSession(r: AppRequest): Promise<void> {
  const { app, req, res } = r;
  const body = await readJson(req, 4096) as Record<string, unknown>;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'body must be a JSON object {"name": "...", "overwrite": false}');
  if (typeof body.name !== 'string') throw new HttpError(400, 'field "name" (the image name) is required');
  const name = checkedImageName(body.name);
  await uploadingMachine(r, name);
  await app.catalog?.refuseHeldElsewhere(name);
  if (body.overwrite !== undefined && typeof body.overwrite !== 'boolean') throw new HttpError(400, 'field "overwrite" must be true or false');
  if (body.overwrite === true) await refuseInUse(app, name, forced(r, body.force));
  const size = body.size === undefined ? undefined : optionalSize(String(body.size), 'field "size"');
  const partSize = body.partSize === undefined ? undefined : optionalSize(String(body.partSize), 'field "partSize"');
  const { session } = await app.uploads.create({ name, overwrite: body.overwrite === true, size, partSize, machine: await captureMachine(r, name), remote: remoteOf(req) });
  note(res, 'upload', session.id); note(res, 'name', name);
  sendJson(res, 201, { id: session.id, name, partSize: session.partSize, parts: [] });
}

/** The session id of /api/uploads/<id>/...: an id that cannot exist is a 404, before anything else. */
function sessionId(r: AppRequest, id: string): string {
  if (!isSessionId(id)) throw new HttpError(404, `no upload ${JSON.stringify(id.slice(0, 40))}`);
  note(r.res, 'upload', id);
  return id;
}

async function sessionState(r: AppRequest): Promise<void> {
  const id = sessionId(r, r.params.id);
  const u = await r.app.uploads.get(id);
  if (u === undefined) throw new HttpError(404, `no upload "${id}" (never created, committed, aborted or expired)`);
  sendJson(r.res, 200, { id, name: u.session.name, partSize: u.session.partSize, parts: u.parts, expiresAt: u.expiresAt });
}

async function abortSession(r: AppRequest): Promise<void> {
  const id = sessionId(r, r.params.id);
  if (!await r.app.uploads.abort(id)) throw new HttpError(404, `no upload "${id}"`);
  sendJson(r.res, 200, { ok: true });
}

async function putPart(r: AppRequest): Promise<void> {
  const { app, req, res } = r;
  const id = sessionId(r, r.params.id);
  if (!/^\d{1,7}$/.test(r.params.n)) throw new HttpError(400, 'part number must be a decimal number');
  const n = Number(r.params.n);
  const sha = sha256Param(req.headers['x-booty-sha256'], 'header X-Booty-Sha256');
  if (sha === undefined) throw new HttpError(400, 'header X-Booty-Sha256 (sha256 of the part) is required');
  refuseOversize(app, req);
  const part = await counted(app, () => app.uploads.putPart(id, n, sha, req as AsyncIterable<Buffer>, () => req.destroy()));
  note(res, 'part', n); note(res, 'received', part.size);
  sendJson(res, 200, { part: n, size: part.size, sha256: part.sha256 });
}

async function commitSession(r: AppRequest): Promise<void> {
  const { app, req } = r;
  const id = sessionId(r, r.params.id);
  const body = await readJson(req, 4096) as Record<string, unknown>;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'commit body must be a JSON object {"size": N, "sha256": "hex", "parts": N}');
  for (const k of ['size', 'parts'] as const) {
    if (typeof body[k] !== 'number' || !Number.isSafeInteger(body[k]) || (body[k] as number) < 0) throw new HttpError(400, `field "${k}" of the commit must be a whole number`);
  }
  const sha = sha256Param(body.sha256, 'field "sha256" of the commit');
  if (sha === undefined) throw new HttpError(400, 'field "sha256" of the commit is required');
  const uncompressedSize = body.uncompressedSize === undefined ? undefined : optionalSize(String(body.uncompressedSize), 'field "uncompressedSize"');
  // checked again at the end: an action may have started deploying the name since the upload began
  const session = (await app.uploads.get(id))?.session;
  if (session?.overwrite === true) await refuseInUse(app, session.name, forced(r, body.force));
  await stored(r, 200, await app.uploads.commit(id, {
    size: body.size as number, sha256: sha, parts: body.parts as number, uncompressedSize, via: 'parts', remote: remoteOf(req),
    machine: r.principal.kind === 'agent' ? r.principal.mac : macHeader(req),
  }));
}

/** The machine that started upload session `id`: only its agent goes on with it. */
async function sessionMachine(r: AppRequest, id: string | undefined): Promise<string | undefined> {
  const u = id === undefined || !isSessionId(id) ? undefined : await r.app.uploads.get(id);
  if (u === undefined) throw new HttpError(404, `no upload ${JSON.stringify((id ?? '').slice(0, 40))}`);
  return u.session.machine;
}

const byName = { access: 'agent', agentMac: (r: AppRequest) => uploadingMachine(r, r.params.name) } as const;
const inBody = { access: 'agent', agentMac: 'body' } as const;
const bySession = { access: 'agent', agentMac: (r: AppRequest) => sessionMachine(r, r.params.id) } as const;
/** answers 404/405 and does nothing else */
const refusal = { access: 'public' } as const;

export const uploadRoutes: AppRoute[] = [
  { method: 'PUT', path: '/images/:name', ...byName, handle: putImage },
  { method: 'POST', path: '/images/:name', query: 'commit', ...byName, handle: commitImage },
  { method: '*', path: '/images/:name', access: 'public', handle: () => { throw new HttpError(405, 'use GET, HEAD or PUT on /images/<name> (POST only with ?commit=<id>)'); } },
  ...['/image', '/image/', '/images', '/images/'].map((path): AppRoute => ({ method: 'POST', path, ...inBody, handle: multipartUpload })),

  { method: 'POST', path: '/api/uploads', ...inBody, handle: createSession },
  { method: '*', path: '/api/uploads', ...refusal, handle: () => { throw new HttpError(405, 'use POST on /api/uploads to start an upload'); } },
  { method: 'GET', path: '/api/uploads/:id', ...bySession, handle: sessionState },
  { method: 'DELETE', path: '/api/uploads/:id', ...bySession, handle: abortSession },
  { method: '*', path: '/api/uploads/:id', ...refusal, handle: (r) => { sessionId(r, r.params.id); throw new HttpError(405, 'use GET or DELETE on /api/uploads/<id>'); } },
  { method: 'PUT', path: '/api/uploads/:id/parts/:n', ...bySession, handle: putPart },
  { method: 'POST', path: '/api/uploads/:id/commit', ...bySession, handle: commitSession },
  {
    method: '*', path: '/api/uploads/*', ...refusal,
    handle: (r) => { sessionId(r, r.rest[0]); throw new HttpError(404, `no upload route ${r.req.method ?? 'GET'} /api/uploads/${r.rest.join('/')}`); },
  },
];
