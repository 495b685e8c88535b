// booty server's HTTP routes (node:http, no framework). See README "Server API".
//
//   GET  /<mac>, /<mac>.bty, /booty/<mac>.bty    action for a machine (BOOTy + booty fields)
//   GET|HEAD /images/<name>                      image download: Range, If-Range, ETag
//   GET|HEAD /image-index/<name>                 a gzip image's access-point index (X-Booty-Gzip-Index)
//   PUT  /images/<name>[?upload=<id>][&overwrite=1]  streaming upload
//   POST /images/<name>?commit=<id>              commit a `?upload=<id>` after comparing {size, sha256}
//   POST /image, /images                         BOOTy's multipart capture upload (field BootyImage)
//   POST /api/uploads, GET|DELETE /api/uploads/<id>, PUT /api/uploads/<id>/parts/<n>,
//   POST /api/uploads/<id>/commit                resumable upload in parts (booty capture)
//   GET  /api/images                             image catalog
//   GET  /api/machines, /api/machines/<mac>      machines and their last state
//   POST /api/machines/<mac>/events              agent events (one or an array)
//   GET|PUT|DELETE /api/machines/<mac>/action    a machine's action
//   POST /api/machines, GET|PUT|DELETE /api/machines/<mac>   machine inventory (booty machines)
//   GET  /api/machines/<mac>/runs, /log          run history, full log
//   GET  /api/events/stream                      live updates (SSE) for the dashboard
//   POST /api/reload                             re-read machines/*.json and default.json
//   DELETE /api/images/<name>                    remove an image (refused while an action uses it)
//   GET  /ipxe, /ipxe/<mac>, /boot/<file>        iPXE scripts, the kernel and initramfs they load
//   GET  /metrics                                Prometheus text format
//   GET  /, /dashboard/*                         the dashboard (HTML for browsers, JSON otherwise)

import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Stats } from 'node:fs';
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { AgentEvent } from '../config/report.ts';
import { toBootyJson } from '../config/parse.ts';
import { validators } from '../config/schema.ts';
import { summarizeAction } from '../config/parse.ts';
import { isBootyError } from '../util/errors.ts';
import type { Dashboard } from './dashboard-assets.ts';
import type { EventStreamHub } from './event-stream.ts';
import { ImageStore, UploadError } from './image-store.ts';
import type { GzipIndexer } from './gzip-indexer.ts';
import { isSessionId } from './upload-sessions.ts';
import type { UploadSessions } from './upload-sessions.ts';
import { ipxeBootScript, ipxeChainScript, ipxeExitScript } from './ipxe.ts';
import { MachineConflict, MachineStore } from './machine-store.ts';
import { histogramSamples, renderMetrics, ServerCounters } from './metrics.ts';
import type { MetricFamily } from './metrics.ts';
import type { LogFields, ServerLog } from './server-log.ts';
import { createServerLog } from './server-log.ts';
import { MultipartError, MultipartReader, boundaryOf } from './multipart.ts';
import { imageNameProblem, isUploadId, normalizeMac, storedNameForBootyUpload } from './names.ts';
import { etagFor, ifRangeAllows, noneMatch, parseRange } from './range.ts';

export interface AppOptions {
  images: ImageStore;
  /** builds and serves gzip access-point indexes; none: images are served without */
  indexer?: GzipIndexer;
  machines: MachineStore;
  /** resumable uploads in parts (POST /api/uploads ...) */
  uploads: UploadSessions;
  /** when set, uploads, action changes and event posts need `Authorization: Bearer <token>` */
  token?: string;
  /** one record per request; default: JSON lines on stderr (human on a TTY) */
  log?: ServerLog;
  hub?: EventStreamHub;
  counters?: ServerCounters;
  dashboard?: Dashboard;
  boot?: BootFiles;
  /** the TLS certificate (PEM, may hold the chain), served at /tls/cert.pem for agents that pin */
  tlsCert?: Buffer;
  /** re-read the declarative files (also on SIGHUP) */
  reload?: () => Promise<{ changed: string[]; errors: string[] }>;
}

export interface BootFiles {
  /** directory holding the kernel and initramfs served under /boot/ */
  dir: string;
  kernel: string;
  initrd: string;
  /** where iPXE fetches kernel and initramfs; default <server>/boot */
  url?: string;
  /** base URL put into MYURL; default: the URL the request came to */
  publicUrl?: string;
  console: string;
  extraArgs?: string;
}

const JSON_LIMIT = 4 << 20;
const READ_CHUNK = 1 << 20;
const REFUSED_BODY_DRAIN = 1 << 20;

class HttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) { super(message); this.status = status; }
}

// The peer's address, kept from the start: a socket torn down mid-request no longer has it.
const remotes = new WeakMap<IncomingMessage, string>();
function remoteOf(req: IncomingMessage): string { return remotes.get(req) ?? '?'; }

// What the request log record adds per request (bytes received, the image stored, ...).
const notes = new WeakMap<ServerResponse, LogFields>();
function note(res: ServerResponse, key: string, value: string | number | boolean = true): void {
  const n = notes.get(res);
  if (n === undefined) notes.set(res, { [key]: value }); else n[key] = value;
}

/** setHeader (not writeHead's argument) so the request log can read Content-Length back. */
function writeHead(res: ServerResponse, status: number, headers: Record<string, string | number>): void {
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.writeHead(status);
}

function sendJson(res: ServerResponse, status: number, body: unknown, extraHeaders: Record<string, string> = {}): void {
  // Errors stay on one line: agents and scripts show the first line of a refusal.
  const text = (status >= 400 ? JSON.stringify(body) : JSON.stringify(body, null, 2)) + '\n';
  writeHead(res, status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...extraHeaders });
  res.end(res.req.method === 'HEAD' ? undefined : text);
}

function sendError(res: ServerResponse, status: number, message: string): void {
  note(res, 'error', message);
  if (res.headersSent) { res.destroy(); return; }
  // A refused upload's body may still be arriving: do not keep the connection for it.
  const req = res.req;
  const bodyPending = !req.complete && (req.method === 'PUT' || req.method === 'POST');
  if (!bodyPending) { sendJson(res, status, { error: message }); return; }
  if (req.destroyed) {
    // the body's reader gave up on it (an async iterator left early): answer, then close
    sendJson(res, status, { error: message }, { Connection: 'close' });
    closeAfterAnswer(res);
    return;
  }
  // Read (and discard) a small remaining body first so the client, still writing, can read the
  // refusal instead of a reset; a large one is cut short by closing the connection.
  let drained = 0;
  let answered = false;
  const answer = () => {
    if (answered) return;
    answered = true;
    clearTimeout(timer);
    req.off('readable', onReadable);
    if (res.destroyed) return;
    sendJson(res, status, { error: message }, { Connection: 'close' });
    closeAfterAnswer(res);
  };
  // 'readable' + read(), not 'data': a request already consumed by an async iterator keeps a
  // 'readable' listener, and then 'data' would never flow.
  const onReadable = () => {
    for (let c = req.read() as Buffer | null; c !== null; c = req.read() as Buffer | null) {
      drained += c.length;
      if (drained > REFUSED_BODY_DRAIN) { answer(); return; }
    }
  };
  const timer = setTimeout(answer, 2000);
  req.on('readable', onReadable);
  req.once('end', answer);
  req.once('close', answer);
  onReadable();
}

/**
 * Node keeps a connection whose request body never ended (and stops reading it): half-close it
 * once the answer is out, so the client reads the refusal and then a FIN, and drop it when the
 * client keeps sending. The rest of an oversized body is never read.
 */
function closeAfterAnswer(res: ServerResponse): void {
  const sock = res.socket ?? res.req.socket;
  if (sock === null || sock === undefined) return;
  res.once('finish', () => {
    if (res.req.complete || sock.destroyed) return;
    sock.end();
    setTimeout(() => sock.destroy(), 2000).unref();
  });
}

async function readJson(req: IncomingMessage, limit = JSON_LIMIT): Promise<unknown> {
  const chunks: Buffer[] = [];
  let len = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    len += c.length;
    if (len > limit) throw new HttpError(413, `request body larger than ${limit} bytes`);
    chunks.push(c);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try { return JSON.parse(text); } catch (e) { throw new HttpError(400, `request body is not valid JSON (${(e as Error).message})`); }
}

function decodeSegments(pathname: string): string[] {
  return pathname.split('/').slice(1).map((seg) => {
    try { return decodeURIComponent(seg); } catch { throw new HttpError(400, `malformed percent-encoding in ${JSON.stringify(seg)}`); }
  });
}

function checkedImageName(name: string): string {
  const problem = imageNameProblem(name);
  if (problem !== undefined) throw new HttpError(400, `refused image name ${JSON.stringify(name.slice(0, 100))}: ${problem}`);
  return name;
}

function macOrThrow(s: string): string {
  const mac = normalizeMac(s);
  if (mac === undefined) throw new HttpError(400, `${JSON.stringify(s.slice(0, 40))} is not a MAC address (expected e.g. aa-bb-cc-dd-ee-ff)`);
  return mac;
}

function flag(url: URL, name: string): boolean {
  const v = url.searchParams.get(name);
  return v !== null && v !== '0' && v !== 'false';
}

function optionalSize(v: string | null | undefined, what: string): number | undefined {
  if (v === null || v === undefined || v === '') return undefined;
  if (!/^\d{1,16}$/.test(v.trim())) throw new HttpError(400, `${what} must be a size in bytes, got ${JSON.stringify(v.slice(0, 40))}`);
  return Number(v.trim());
}

function sha256Param(v: unknown, what: string): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string' || !/^[0-9a-fA-F]{64}$/.test(v.trim())) throw new HttpError(400, `${what} must be a sha256 in hex (64 characters)`);
  return v.trim().toLowerCase();
}

export function createApp(opts: AppOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const { images, machines } = opts;
  const log = opts.log ?? createServerLog();
  const counters = opts.counters ?? new ServerCounters();
  const token = opts.token === undefined ? undefined : Buffer.from(opts.token);

  function authorized(req: IncomingMessage): boolean {
    if (token === undefined) return true;
    const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
    if (m === null) return false;
    const given = Buffer.from(m[1].trim());
    return given.length === token.length && timingSafeEqual(given, token);
  }

  function needAuth(req: IncomingMessage): void {
    if (!authorized(req)) throw new HttpError(401, 'this server needs "Authorization: Bearer <token>" for uploads, actions and events');
  }

  // ---- actions ------------------------------------------------------------------------------

  async function serveAction(res: ServerResponse, macText: string): Promise<void> {
    const mac = normalizeMac(macText);
    if (mac === undefined) throw new HttpError(404, `no such path (not a MAC address: ${JSON.stringify(macText.slice(0, 40))})`);
    let found;
    try { found = await machines.servedActionFor(mac); } catch (e) {
      if (isBootyError(e)) throw new HttpError(500, `action for ${mac} is invalid: ${e.message}`);
      throw e;
    }
    if (found === undefined) {
      throw new HttpError(404, `no action for ${mac}: create ${machines.actionFile(mac)} or ${machines.defaultFile}, or PUT /api/machines/${mac}/action`);
    }
    note(res, 'mac', mac); note(res, 'action', found.action.action); note(res, 'from', found.source);
    if (found.oneShotDone !== undefined) note(res, 'one-shot-done', found.oneShotDone);
    const text = toBootyJson(found.action) + '\n';
    writeHead(res, 200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
    res.end(res.req.method === 'HEAD' ? undefined : text);
  }

  // ---- image downloads ------------------------------------------------------------------------

  async function serveImage(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    const img = await images.openForRead(name);
    if (img === undefined) throw new HttpError(404, `no image named ${JSON.stringify(name)}`);
    const extra: Record<string, string | number> = { 'X-Image-Format': img.format };
    if (img.uncompressedSize !== undefined) extra['X-Image-Size'] = img.uncompressedSize;
    if (img.meta?.sha256 !== undefined) extra['X-Image-Sha256'] = img.meta.sha256;
    if (img.format === 'gzip' && opts.indexer !== undefined) {
      // the agent fetches it beside the image and inflates on every core (gzip-index.ts)
      const idx = await opts.indexer.ready(name, img.etag).catch(() => undefined);
      if (idx !== undefined) {
        extra['X-Booty-Gzip-Index'] = `/image-index/${encodeURIComponent(name)}`;
        if (img.uncompressedSize === undefined) extra['X-Image-Size'] = idx.header.totalSize;
      }
    }
    await serveFile(req, res, img.fh, img.st, img.etag, extra);
  }

  async function serveIndex(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    const img = await images.openForRead(name);
    if (img === undefined) throw new HttpError(404, `no image named ${JSON.stringify(name)}`);
    await img.fh.close();
    const idx = opts.indexer === undefined ? undefined : await opts.indexer.ready(name, img.etag);
    if (idx === undefined) throw new HttpError(404, `no gzip index for image ${JSON.stringify(name)} (${opts.indexer?.describe(name) ?? 'not indexed'})`);
    let fh: FileHandle;
    try { fh = await open(idx.path, 'r'); } catch { throw new HttpError(404, `the gzip index of ${JSON.stringify(name)} is gone`); }
    const st = await fh.stat();
    await serveFile(req, res, fh, st, etagFor(st), {});
  }

  /** Stream an open file (closed here) with Range, If-Range, If-None-Match, ETag. */
  async function serveFile(req: IncomingMessage, res: ServerResponse, fh: FileHandle, st: Stats, etag: string, extra: Record<string, string | number>): Promise<void> {
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

  // ---- uploads ------------------------------------------------------------------------------

  async function counted<T extends { size: number }>(fn: () => Promise<T>): Promise<T> {
    counters.activeUploads++;
    try {
      const r = await fn();
      counters.imageBytesReceived += r.size;
      return r;
    } finally { counters.activeUploads--; }
  }

  /** The machine an upload comes from: its X-Booty-Mac, else the one machine whose capture action targets this name. */
  function captureMachine(req: IncomingMessage, name: string): string | undefined {
    const h = req.headers['x-booty-mac'];
    if (typeof h === 'string' && normalizeMac(h.trim()) !== undefined) return normalizeMac(h.trim());
    const refs = machines.referencesTo(name, ['capture']).filter((m) => m !== 'default.json');
    return refs.length === 1 ? refs[0] : undefined;
  }

  /** Refuse before reading a byte when Content-Length already says the body is over the limit. */
  function refuseOversize(req: IncomingMessage): void {
    const len = Number(req.headers['content-length'] ?? NaN);
    if (len > images.maxUploadBytes) throw new HttpError(413, `upload of ${len} bytes is larger than the server's limit of ${images.maxUploadBytes} bytes`);
  }

  async function refuseExisting(name: string, overwrite: boolean): Promise<void> {
    if (!overwrite && await images.exists(name)) throw new HttpError(409, `image "${name}" already exists; add ?overwrite=1 to replace it`);
  }

  /** A new image is in place: index it if it is gzip, tell the dashboards. */
  function imageStored(m: { name: string; format: string }): void {
    if (m.format === 'gzip') opts.indexer?.want(m.name);
    opts.hub?.imagesChanged();
  }

  async function putImage(req: IncomingMessage, res: ServerResponse, url: URL, name: string): Promise<void> {
    needAuth(req);
    const overwrite = flag(url, 'overwrite');
    const uploadId = url.searchParams.get('upload');
    if (uploadId !== null && !isUploadId(uploadId)) throw new HttpError(400, 'upload id must be 1-40 characters of A-Z a-z 0-9 _ -');
    const headerSha = sha256Param(req.headers['x-booty-sha256'], 'header X-Booty-Sha256');
    const uncompressedSize = optionalSize(req.headers['x-image-size'] as string | undefined, 'header X-Image-Size');
    refuseOversize(req);
    await refuseExisting(name, overwrite);
    const received = await counted(() => images.receive(name, uploadId ?? randomBytes(8).toString('hex'), req as AsyncIterable<Buffer>));
    note(res, 'received', received.size);
    if (uploadId !== null) {
      // two-step upload: the client commits with the size and sha256 it sent
      sendJson(res, 202, { name, upload: uploadId, size: received.size, sha256: received.sha256 });
      return;
    }
    // the sha256 may come as a header or, for a chunked body, as a trailer
    const trailerSha = sha256Param(req.trailers['x-booty-sha256'], 'trailer X-Booty-Sha256');
    const meta = await images.commit(name, received, {
      expectSha256: headerSha ?? trailerSha, overwrite, uncompressedSize, via: 'put', remote: remoteOf(req), machine: captureMachine(req, name),
    });
    imageStored(meta);
    note(res, 'stored', name);
    sendJson(res, 201, publicMeta(meta));
  }

  async function commitImage(req: IncomingMessage, res: ServerResponse, url: URL, name: string): Promise<void> {
    needAuth(req);
    const id = url.searchParams.get('commit') ?? '';
    if (!isUploadId(id)) throw new HttpError(400, 'commit id must be 1-40 characters of A-Z a-z 0-9 _ -');
    const body = await readJson(req, 4096) as { size?: unknown; sha256?: unknown; uncompressedSize?: unknown };
    if (typeof body !== 'object' || body === null) throw new HttpError(400, 'commit body must be a JSON object {"size": N, "sha256": "hex"}');
    if (typeof body.size !== 'number' || !Number.isSafeInteger(body.size) || body.size < 0) throw new HttpError(400, 'field "size" of the commit must be a size in bytes');
    const sha = sha256Param(body.sha256, 'field "sha256" of the commit');
    if (sha === undefined) throw new HttpError(400, 'field "sha256" of the commit is required');
    const uncompressedSize = body.uncompressedSize === undefined ? undefined : optionalSize(String(body.uncompressedSize), 'field "uncompressedSize"');
    const pending = await images.pending(name, id);
    if (pending === undefined) throw new HttpError(404, `no upload "${id}" of "${name}" to commit (never received, failed, or already committed)`);
    const meta = await images.commit(name, pending, {
      expectSha256: sha, expectSize: body.size, overwrite: flag(url, 'overwrite'), uncompressedSize, via: 'commit', remote: remoteOf(req),
      machine: captureMachine(req, name),
    });
    imageStored(meta);
    note(res, 'stored', name);
    sendJson(res, 200, publicMeta(meta));
  }

  /** BOOTy's capture: multipart/form-data, the image in field BootyImage, named <mac>.img|.zmg. */
  async function multipartUpload(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    needAuth(req);
    const boundary = boundaryOf(req.headers['content-type']);
    if (boundary === undefined) throw new HttpError(400, 'expected Content-Type multipart/form-data with a boundary');
    const overwrite = flag(url, 'overwrite');
    refuseOversize(req);
    const reader = new MultipartReader(req as AsyncIterable<Buffer>, boundary);
    let stored: ReturnType<typeof publicMeta> | undefined;
    for (let part = await reader.nextPart(); part !== null; part = await reader.nextPart()) {
      if (part.name !== 'BootyImage' || part.filename === undefined || stored !== undefined) continue; // drained by nextPart()
      const name = checkedImageName(storedNameForBootyUpload(part.filename));
      await refuseExisting(name, overwrite);
      const received = await counted(() => images.receive(name, randomBytes(8).toString('hex'), part.body));
      try {
        // the closing boundary must arrive too: only a complete form is a complete upload
        while (await reader.nextPart() !== null) { /* drain the rest */ }
      } catch (e) { await images.discard(received); throw e; }
      note(res, 'received', received.size);
      const fromName = normalizeMac(part.filename.replace(/\.(img|zmg)$/i, ''));
      stored = publicMeta(await images.commit(name, received, { overwrite, via: 'multipart', remote: remoteOf(req), machine: fromName ?? captureMachine(req, name) }));
      imageStored(stored);
      note(res, 'stored', name);
      break;
    }
    if (stored === undefined) throw new HttpError(400, 'no file in form field "BootyImage"');
    sendJson(res, 200, stored);
  }

  // ---- resumable uploads (parts) ------------------------------------------------------------

  async function uploadRoutes(req: IncomingMessage, res: ServerResponse, seg: string[]): Promise<void> {
    const method = req.method ?? 'GET';
    const uploads = opts.uploads;
    needAuth(req);
    if (seg.length === 2) {
      if (method !== 'POST') throw new HttpError(405, 'use POST on /api/uploads to start an upload');
      const body = await readJson(req, 4096) as Record<string, unknown>;
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'body must be a JSON object {"name": "...", "overwrite": false}');
      if (typeof body.name !== 'string') throw new HttpError(400, 'field "name" (the image name) is required');
      const name = checkedImageName(body.name);
      if (body.overwrite !== undefined && typeof body.overwrite !== 'boolean') throw new HttpError(400, 'field "overwrite" must be true or false');
      const size = body.size === undefined ? undefined : optionalSize(String(body.size), 'field "size"');
      const partSize = body.partSize === undefined ? undefined : optionalSize(String(body.partSize), 'field "partSize"');
      const { session } = await uploads.create({ name, overwrite: body.overwrite === true, size, partSize, machine: captureMachine(req, name), remote: remoteOf(req) });
      note(res, 'upload', session.id); note(res, 'name', name);
      return sendJson(res, 201, { id: session.id, name, partSize: session.partSize, parts: [] });
    }
    const id = seg[2];
    if (!isSessionId(id)) throw new HttpError(404, `no upload ${JSON.stringify(id.slice(0, 40))}`);
    note(res, 'upload', id);
    if (seg.length === 3) {
      if (method === 'GET' || method === 'HEAD') {
        const u = await uploads.get(id);
        if (u === undefined) throw new HttpError(404, `no upload "${id}" (never created, committed, aborted or expired)`);
        return sendJson(res, 200, { id, name: u.session.name, partSize: u.session.partSize, parts: u.parts, expiresAt: u.expiresAt });
      }
      if (method === 'DELETE') {
        if (!await uploads.abort(id)) throw new HttpError(404, `no upload "${id}"`);
        return sendJson(res, 200, { ok: true });
      }
      throw new HttpError(405, 'use GET or DELETE on /api/uploads/<id>');
    }
    if (seg.length === 5 && seg[3] === 'parts' && method === 'PUT') {
      if (!/^\d{1,7}$/.test(seg[4])) throw new HttpError(400, 'part number must be a decimal number');
      const n = Number(seg[4]);
      const sha = sha256Param(req.headers['x-booty-sha256'], 'header X-Booty-Sha256');
      if (sha === undefined) throw new HttpError(400, 'header X-Booty-Sha256 (sha256 of the part) is required');
      refuseOversize(req);
      const part = await counted(() => uploads.putPart(id, n, sha, req as AsyncIterable<Buffer>, () => req.destroy()));
      note(res, 'part', n); note(res, 'received', part.size);
      return sendJson(res, 200, { part: n, size: part.size, sha256: part.sha256 });
    }
    if (seg.length === 4 && seg[3] === 'commit' && method === 'POST') {
      const body = await readJson(req, 4096) as Record<string, unknown>;
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'commit body must be a JSON object {"size": N, "sha256": "hex", "parts": N}');
      for (const k of ['size', 'parts'] as const) {
        if (typeof body[k] !== 'number' || !Number.isSafeInteger(body[k]) || (body[k] as number) < 0) throw new HttpError(400, `field "${k}" of the commit must be a whole number`);
      }
      const sha = sha256Param(body.sha256, 'field "sha256" of the commit');
      if (sha === undefined) throw new HttpError(400, 'field "sha256" of the commit is required');
      const uncompressedSize = body.uncompressedSize === undefined ? undefined : optionalSize(String(body.uncompressedSize), 'field "uncompressedSize"');
      const meta = await uploads.commit(id, {
        size: body.size as number, sha256: sha, parts: body.parts as number, uncompressedSize, via: 'parts', remote: remoteOf(req),
        machine: typeof req.headers['x-booty-mac'] === 'string' ? normalizeMac(req.headers['x-booty-mac'].trim()) : undefined,
      });
      imageStored(meta);
      note(res, 'stored', meta.name);
      return sendJson(res, 200, publicMeta(meta));
    }
    throw new HttpError(404, `no upload route ${method} /${seg.join('/')}`);
  }

  // ---- machines -----------------------------------------------------------------------------

  async function postEvents(req: IncomingMessage, res: ServerResponse, mac: string): Promise<void> {
    needAuth(req);
    const body = await readJson(req);
    const list = Array.isArray(body) ? body : [body];
    if (list.length > 10000) throw new HttpError(413, 'at most 10000 events per request');
    list.forEach((e, i) => {
      if (!validators.agentEvent(e)) {
        const err = validators.agentEvent.errors?.find((x) => x.keyword !== 'if') ?? validators.agentEvent.errors?.[0];
        const field = err?.keyword === 'required' ? (err.params as { missingProperty: string }).missingProperty
          : err?.keyword === 'additionalProperties' ? (err.params as { additionalProperty: string }).additionalProperty
          : (err?.instancePath ?? '').replace(/^\//, '').replace(/\//g, '.') || 'type';
        const expected = (err?.parentSchema as { description?: string } | undefined)?.description ?? err?.message ?? 'valid';
        throw new HttpError(400, `event ${i}: field "${field}" ${err?.keyword === 'required' ? 'is required' : err?.keyword === 'additionalProperties' ? 'is not a known field' : `must be ${expected}`}`);
      }
    });
    const state = await machines.record(mac, list as AgentEvent[]);
    note(res, 'mac', mac); note(res, 'events', list.length);
    sendJson(res, 200, { ok: true, phase: state.phase ?? null });
  }

  async function machineAction(req: IncomingMessage, res: ServerResponse, mac: string): Promise<void> {
    if (req.method === 'GET' || req.method === 'HEAD') return serveAction(res, mac);
    needAuth(req);
    if (req.method === 'DELETE') {
      const removed = await machines.deleteAction(mac);
      if (!removed) throw new HttpError(404, `${mac} has no action of its own`);
      sendJson(res, 200, { ok: true });
      return;
    }
    if (req.method !== 'PUT') throw new HttpError(405, 'use GET, PUT or DELETE');
    const body = await readJson(req);
    try {
      const action = await machines.setAction(mac, body);
      note(res, 'mac', mac); note(res, 'action', action.action);
      sendJson(res, 200, JSON.parse(toBootyJson(action)));
    } catch (e) {
      if (isBootyError(e) && e.stage === 'config') throw new HttpError(400, e.message);
      throw e;
    }
  }

  // ---- inventory ------------------------------------------------------------------------------

  function settingsOf(body: unknown): { action?: unknown; persistent?: boolean; name?: string | null; rearm?: boolean } {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'body must be a JSON object {"action": {...}, "persistent": false, "name": "..."}');
    const b = body as Record<string, unknown>;
    const known = new Set(['mac', 'action', 'persistent', 'name', 'rearm']);
    const extra = Object.keys(b).find((k) => !known.has(k));
    if (extra !== undefined) throw new HttpError(400, `field "${extra}" is not a known field (known fields: ${[...known].join(', ')})`);
    for (const k of ['persistent', 'rearm']) if (b[k] !== undefined && typeof b[k] !== 'boolean') throw new HttpError(400, `field "${k}" must be true or false`);
    if (b.name !== undefined && b.name !== null && (typeof b.name !== 'string' || b.name.length > 100)) throw new HttpError(400, 'field "name" must be a string of at most 100 characters');
    return { action: b.action, persistent: b.persistent as boolean | undefined, name: b.name as string | null | undefined, rearm: b.rearm as boolean | undefined };
  }

  async function changeMachine(res: ServerResponse, mac: string, body: unknown, create: boolean): Promise<void> {
    const settings = settingsOf(body);
    try {
      await machines.update(mac, settings, { create });
    } catch (e) {
      if (isBootyError(e) && e.stage === 'config') throw new HttpError(400, e.message);
      if (e instanceof MachineConflict) throw new HttpError(e.status, e.message);
      throw e;
    }
    note(res, 'mac', mac);
    sendJson(res, create ? 201 : 200, await machines.summary(mac));
  }

  async function machineRoutes(req: IncomingMessage, res: ServerResponse, url: URL, seg: string[]): Promise<void> {
    const method = req.method ?? 'GET';
    const get = method === 'GET' || method === 'HEAD';
    if (seg.length === 2) {
      if (get) return sendJson(res, 200, { machines: await machines.list() });
      if (method === 'POST') {
        needAuth(req);
        const body = await readJson(req);
        const macText = typeof body === 'object' && body !== null ? (body as { mac?: unknown }).mac : undefined;
        if (typeof macText !== 'string') throw new HttpError(400, 'field "mac" is required (e.g. "52:54:00:12:34:56")');
        return changeMachine(res, macOrThrow(macText), body, true);
      }
      throw new HttpError(405, 'use GET or POST on /api/machines');
    }
    const mac = macOrThrow(seg[2]);
    if (seg.length === 3) {
      if (get) {
        const lines = optionalSize(url.searchParams.get('lines'), 'lines') ?? 100;
        const m = await machines.get(mac, Math.min(lines, 1000));
        if (m === undefined) throw new HttpError(404, `machine ${mac} has no action and has never reported`);
        return sendJson(res, 200, m);
      }
      needAuth(req);
      if (method === 'PUT') return changeMachine(res, mac, await readJson(req), false);
      if (method === 'DELETE') {
        if (!await machines.remove(mac, { history: flag(url, 'history') })) throw new HttpError(404, `no machine ${mac}`);
        return sendJson(res, 200, { ok: true });
      }
      throw new HttpError(405, 'use GET, PUT or DELETE on /api/machines/<mac>');
    }
    if (seg.length === 4 && seg[3] === 'events' && method === 'POST') return postEvents(req, res, mac);
    if (seg.length === 4 && seg[3] === 'action') return machineAction(req, res, mac);
    if (seg.length === 4 && seg[3] === 'runs' && get) {
      const limit = Math.min(optionalSize(url.searchParams.get('limit'), 'limit') ?? 50, 1000);
      return sendJson(res, 200, { runs: machines.runs(mac, limit) });
    }
    if (seg.length === 4 && seg[3] === 'log' && get) {
      const run = optionalSize(url.searchParams.get('run'), 'run');
      const limit = optionalSize(url.searchParams.get('limit'), 'limit');
      const text = machines.log(mac, { run, limit }).map((l) => l + '\n').join('');
      writeHead(res, 200, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : text);
      return;
    }
    throw new HttpError(404, `no API route ${method} ${url.pathname}`);
  }

  async function imageCatalog(): Promise<unknown[]> {
    return (await images.list()).map((i) => ({ ...i, gzipIndex: opts.indexer?.describe(i.name), usedBy: machines.referencesTo(i.name) }));
  }

  async function deleteImage(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    needAuth(req);
    const users = machines.referencesTo(name);
    if (users.length > 0) throw new HttpError(409, `image "${name}" is used by the action of ${users.join(', ')}; change or remove those actions first`);
    if (!await images.remove(name)) throw new HttpError(404, `no image named ${JSON.stringify(name)}`);
    await opts.indexer?.forget(name);
    note(res, 'deleted', name);
    opts.hub?.imagesChanged();
    sendJson(res, 200, { ok: true });
  }

  // ---- boot integration ----------------------------------------------------------------------

  function baseUrlOf(req: IncomingMessage): string {
    if (opts.boot?.publicUrl !== undefined) return opts.boot.publicUrl.replace(/\/+$/, '');
    const host = req.headers.host;
    if (host === undefined || !/^[A-Za-z0-9.:[\]-]+$/.test(host)) throw new HttpError(400, 'a Host header is needed to write URLs into the iPXE script (or start the server with --public-url)');
    return `http://${host}`;
  }

  function sendText(res: ServerResponse, text: string, type: string): void {
    writeHead(res, 200, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
    res.end(res.req.method === 'HEAD' ? undefined : text);
  }

  async function ipxeFor(req: IncomingMessage, res: ServerResponse, macText: string): Promise<void> {
    const mac = macOrThrow(macText);
    const base = baseUrlOf(req);
    note(res, 'mac', mac);
    let served;
    try { served = await machines.servedActionFor(mac); } catch (e) {
      // a broken action must not re-image the machine: boot from disk and say why
      note(res, 'ipxe', 'exit');
      return sendText(res, ipxeExitScript(mac, `its action is invalid (${(e as Error).message})`), 'text/plain; charset=utf-8');
    }
    if (served === undefined || served.action.action === 'none') {
      const why = served === undefined ? 'no action for this machine' : served.oneShotDone !== undefined ? `one-shot ${served.configured.action} done at ${served.oneShotDone}` : 'action is none';
      note(res, 'ipxe', 'exit');
      return sendText(res, ipxeExitScript(mac, why), 'text/plain; charset=utf-8');
    }
    const boot = opts.boot ?? { dir: '', kernel: 'vmlinuz', initrd: 'booty.cpio.zst', console: 'console=tty0 console=ttyS0,115200' };
    note(res, 'ipxe', 'boot');
    sendText(res, ipxeBootScript(mac, summarizeAction(served.action), {
      serverUrl: base, bootUrl: (boot.url ?? `${base}/boot`).replace(/\/+$/, ''), kernel: boot.kernel, initrd: boot.initrd,
      console: boot.console, token: opts.token, extraArgs: boot.extraArgs,
    }), 'text/plain; charset=utf-8');
  }

  async function serveBootFile(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    const boot = opts.boot;
    if (boot === undefined || (name !== boot.kernel && name !== boot.initrd)) throw new HttpError(404, `no boot file ${JSON.stringify(name)} (served: the kernel and initramfs of --boot-dir)`);
    let fh: FileHandle;
    try { fh = await open(join(boot.dir, name), 'r'); } catch {
      throw new HttpError(404, `${join(boot.dir, name)} does not exist; build it with "booty build-initramfs" or point --boot-dir at it`);
    }
    const st = await fh.stat();
    await serveFile(req, res, fh, st, etagFor(st), {});
  }

  // ---- metrics ------------------------------------------------------------------------------

  function metricsText(): string {
    const totals = machines.runTotals();
    const durations = machines.runDurations();
    const phases = machines.phaseCounts();
    const active = ['writing', 'capturing', 'uploading', 'verifying'].reduce((n, p) => n + (phases.get(p) ?? 0), 0);
    const families: MetricFamily[] = [
      { name: 'booty_runs_total', type: 'counter', help: 'Agent runs that ended, by action (deploy, capture, wipe, ...) and result (ok, failed).',
        samples: totals.filter((t) => t.result !== 'unfinished').map((t) => ({ labels: { action: t.action, result: t.result }, value: t.count })) },
      { name: 'booty_run_bytes_total', type: 'counter', help: 'Uncompressed bytes written (deploy) or read (capture) by runs that ended.',
        samples: mergeBy(totals, (t) => t.action, (t) => t.bytes).map(([action, v]) => ({ labels: { action }, value: v })) },
      { name: 'booty_run_duration_seconds', type: 'histogram', help: 'Duration of runs that reported a result, by action.',
        samples: [...new Set(durations.map((d) => d.action))].sort().flatMap((action) =>
          histogramSamples(durations.filter((d) => d.action === action).map((d) => d.seconds), [10, 30, 60, 120, 300, 600, 1800, 3600], { action })) },
      { name: 'booty_machines', type: 'gauge', help: 'Machines by their last reported phase.',
        samples: [...phases].sort().map(([phase, n]) => ({ labels: { phase }, value: n })) },
      { name: 'booty_active_transfers', type: 'gauge', help: 'Transfers in progress: agents writing/reading disks, image downloads and uploads being served.',
        samples: [{ labels: { kind: 'agent' }, value: active }, { labels: { kind: 'download' }, value: counters.activeDownloads }, { labels: { kind: 'upload' }, value: counters.activeUploads }] },
      { name: 'booty_image_bytes_sent_total', type: 'counter', help: 'Image bytes sent to clients since the server started.', samples: [{ value: counters.imageBytesSent }] },
      { name: 'booty_image_bytes_received_total', type: 'counter', help: 'Image bytes received in uploads since the server started.', samples: [{ value: counters.imageBytesReceived }] },
      { name: 'booty_http_requests_total', type: 'counter', help: 'HTTP requests answered since the server started, by status class.',
        samples: [...counters.requests].sort().map(([code, n]) => ({ labels: { code }, value: n })) },
      { name: 'booty_dashboard_streams', type: 'gauge', help: 'Open live-update streams (dashboards).', samples: [{ value: opts.hub?.clients ?? 0 }] },
    ];
    return renderMetrics(families);
  }

  // ---- routing ------------------------------------------------------------------------------

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://booty.invalid');
    // Route on the path as sent: WHATWG URL parsing would fold "/images/%2E%2E" into "/", and a
    // refusal that names the bad image is clearer than a 404.
    const rawPath = (req.url ?? '/').split('?')[0];
    if (!rawPath.startsWith('/')) throw new HttpError(400, 'request target must be an absolute path');
    const seg = decodeSegments(rawPath);
    const method = req.method ?? 'GET';
    const get = method === 'GET' || method === 'HEAD';

    if (seg[0] === 'image-index' && seg.length === 2 && seg[1] !== '' && get) return serveIndex(req, res, checkedImageName(seg[1]));
    if (seg[0] === 'images' && seg.length === 2 && seg[1] !== '') {
      const name = checkedImageName(seg[1]);
      if (get) return serveImage(req, res, name);
      if (method === 'PUT') return putImage(req, res, url, name);
      if (method === 'POST' && url.searchParams.has('commit')) return commitImage(req, res, url, name);
      throw new HttpError(405, `use GET, HEAD or PUT on /images/<name> (POST only with ?commit=<id>)`);
    }
    if (method === 'POST' && (seg[0] === 'image' || seg[0] === 'images') && (seg.length === 1 || (seg.length === 2 && seg[1] === ''))) {
      return multipartUpload(req, res, url);
    }
    if (seg[0] === 'api') {
      if (seg[1] === 'images' && seg.length === 2 && get) return sendJson(res, 200, { images: await imageCatalog() });
      if (seg[1] === 'images' && seg.length === 3 && method === 'DELETE') return deleteImage(req, res, checkedImageName(seg[2]));
      if (seg[1] === 'machines') return machineRoutes(req, res, url, seg);
      if (seg[1] === 'uploads') return uploadRoutes(req, res, seg);
      if (seg[1] === 'events' && seg[2] === 'stream' && seg.length === 3 && method === 'GET') {
        if (opts.hub === undefined) throw new HttpError(404, 'live updates are not enabled');
        opts.hub.attach(res);
        return;
      }
      if (seg[1] === 'reload' && seg.length === 2 && method === 'POST') {
        needAuth(req);
        const r = opts.reload === undefined ? await machines.reload() : await opts.reload();
        note(res, 'changed', r.changed.length);
        return sendJson(res, 200, { ok: r.errors.length === 0, changed: r.changed, errors: r.errors });
      }
      throw new HttpError(404, `no API route ${method} ${url.pathname}`);
    }
    if (get && seg[0] === 'ipxe' && seg.length === 1) return sendText(res, ipxeChainScript(baseUrlOf(req)), 'text/plain; charset=utf-8');
    if (get && seg[0] === 'ipxe' && seg.length === 2) return ipxeFor(req, res, seg[1]);
    if (get && seg[0] === 'boot' && seg.length === 2) return serveBootFile(req, res, seg[1]);
    if (get && seg[0] === 'tls' && seg.length === 2 && seg[1] === 'cert.pem' && opts.tlsCert !== undefined) {
      return sendText(res, opts.tlsCert.toString('utf8'), 'application/x-pem-file');
    }
    if (get && seg[0] === 'metrics' && seg.length === 1) return sendText(res, metricsText(), 'text/plain; version=0.0.4; charset=utf-8');
    if (get && seg[0] === 'dashboard' && seg.length === 2 && opts.dashboard !== undefined) {
      const asset = opts.dashboard.asset(seg[1] === '' ? 'index.html' : seg[1]);
      if (asset === undefined) throw new HttpError(404, `no dashboard file ${JSON.stringify(seg[1])}`);
      return opts.dashboard.send(req, res, asset);
    }
    if (get && seg.length === 1 && seg[0] !== '') return serveAction(res, seg[0].replace(/\.bty$/i, ''));
    if (get && seg.length === 2 && seg[0] === 'booty') return serveAction(res, seg[1].replace(/\.bty$/i, ''));
    if (get && seg.length === 1 && seg[0] === '') {
      // browsers get the dashboard; scripts (and BOOTy-era tools) keep getting the JSON index
      if (opts.dashboard !== undefined && /text\/html/.test(req.headers.accept ?? '')) return opts.dashboard.send(req, res, opts.dashboard.asset('index.html')!);
      return sendJson(res, 200, { server: 'booty', endpoints: ['/<mac>.bty', '/images/<name>', '/api/machines', '/api/images', '/ipxe', '/metrics', '/api/events/stream'] });
    }
    throw new HttpError(404, `no route ${method} ${url.pathname}`);
  }

  return (req, res) => {
    const started = process.hrtime.bigint();
    remotes.set(req, req.socket.remoteAddress ?? '?');
    res.on('close', () => {
      try { logRequest(); } catch { /* logging must never take the server down */ }
    });
    const logRequest = () => {
      const ms = Number((process.hrtime.bigint() - started) / 1000000n);
      const sent = res.getHeader('content-length');
      counters.countRequest(res.statusCode);
      log.info(`${req.method} ${(req.url ?? '').slice(0, 300)}`, {
        status: res.statusCode, bytes: sent === undefined ? undefined : Number(sent), ms, remote: remoteOf(req),
        aborted: res.writableFinished ? undefined : true, ...(notes.get(res) ?? {}),
      });
    };
    route(req, res).catch((e: unknown) => {
      if (e instanceof HttpError || e instanceof UploadError) return sendError(res, e.status, e.message);
      if (e instanceof MultipartError) return sendError(res, 400, `multipart upload: ${e.message}`);
      if (isBootyError(e)) return sendError(res, 500, e.message);
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE' || (e as Error).message === 'aborted') {
        // the client went away mid-body: the store already removed the temp file
        note(res, 'client-aborted');
        res.destroy();
        return;
      }
      if (code === 'ENOSPC' || code === 'EDQUOT') return sendError(res, 507, 'the server\'s data disk is full; nothing was stored');
      sendError(res, 500, `internal error: ${(e as Error).message}`);
      log.error('internal error', { stack: (e as Error).stack ?? String(e) });
    });
  };
}

function mergeBy<T>(rows: T[], key: (r: T) => string, value: (r: T) => number): [string, number][] {
  const m = new Map<string, number>();
  for (const r of rows) m.set(key(r), (m.get(key(r)) ?? 0) + value(r));
  return [...m].sort((a, b) => a[0].localeCompare(b[0]));
}

function publicMeta(m: { name: string; size: number; sha256: string; format: string; uncompressedSize?: number; storedAt: string; machine?: string }) {
  return { name: m.name, size: m.size, sha256: m.sha256, format: m.format, uncompressedSize: m.uncompressedSize, storedAt: m.storedAt, machine: m.machine };
}
