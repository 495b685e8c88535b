// booty server's HTTP routes (node:http, no framework). See README "Server API".
//
//   GET  /<mac>, /<mac>.bty, /booty/<mac>.bty    action for a machine (BOOTy + booty fields)
//   GET|HEAD /images/<name>                      image download: Range, If-Range, ETag
//   PUT  /images/<name>[?upload=<id>][&overwrite=1]  streaming upload
//   POST /images/<name>?commit=<id>              commit a `?upload=<id>` after comparing {size, sha256}
//   POST /image, /images                         BOOTy's multipart capture upload (field BootyImage)
//   GET  /api/images                             image catalog
//   GET  /api/machines, /api/machines/<mac>      machines and their last state
//   POST /api/machines/<mac>/events              agent events (one or an array)
//   GET|PUT|DELETE /api/machines/<mac>/action    a machine's action

import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import type { AgentEvent } from '../config/report.ts';
import { toBootyJson } from '../config/parse.ts';
import { validators } from '../config/schema.ts';
import { isBootyError } from '../util/errors.ts';
import { ImageStore, UploadError } from './image-store.ts';
import { MachineStore } from './machine-store.ts';
import { MultipartError, MultipartReader, boundaryOf } from './multipart.ts';
import { imageNameProblem, isUploadId, normalizeMac, storedNameForBootyUpload } from './names.ts';
import { ifRangeAllows, noneMatch, parseRange } from './range.ts';

export interface AppOptions {
  images: ImageStore;
  machines: MachineStore;
  /** when set, uploads, action changes and event posts need `Authorization: Bearer <token>` */
  token?: string;
  /** one line per request; default stderr */
  logLine?: (line: string) => void;
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

// What the request log line adds per request (bytes received, the image stored, ...).
const notes = new WeakMap<ServerResponse, string[]>();
function note(res: ServerResponse, s: string): void {
  const n = notes.get(res);
  if (n === undefined) notes.set(res, [s]); else n.push(s);
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
  note(res, `error=${JSON.stringify(message)}`);
  if (res.headersSent) { res.destroy(); return; }
  // A refused upload's body may still be arriving: do not keep the connection for it.
  const req = res.req;
  const bodyPending = !req.complete && !req.destroyed && (req.method === 'PUT' || req.method === 'POST');
  if (!bodyPending) { sendJson(res, status, { error: message }); return; }
  // Read (and discard) a small remaining body first so the client, still writing, can read the
  // refusal instead of a reset; a large one is cut short by closing the connection.
  let drained = 0;
  let answered = false;
  const answer = () => {
    if (answered) return;
    answered = true;
    clearTimeout(timer);
    req.off('readable', onReadable);
    if (!res.destroyed) sendJson(res, status, { error: message }, { Connection: 'close' });
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
  const logLine = opts.logLine ?? ((l: string) => process.stderr.write(l + '\n'));
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
    try { found = await machines.actionFor(mac); } catch (e) {
      if (isBootyError(e)) throw new HttpError(500, `action for ${mac} is invalid: ${e.message}`);
      throw e;
    }
    if (found === undefined) {
      throw new HttpError(404, `no action for ${mac}: create ${machines.actionFile(mac)} or ${machines.defaultFile}, or PUT /api/machines/${mac}/action`);
    }
    note(res, `mac=${mac} action=${found.action.action} from=${found.source}`);
    const text = toBootyJson(found.action) + '\n';
    writeHead(res, 200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
    res.end(res.req.method === 'HEAD' ? undefined : text);
  }

  // ---- image downloads ------------------------------------------------------------------------

  async function serveImage(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    const img = await images.openForRead(name);
    if (img === undefined) throw new HttpError(404, `no image named ${JSON.stringify(name)}`);
    const { fh, st, etag } = img;
    let handedOver = false;
    try {
      const lastModified = st.mtime.toUTCString();
      const headers: Record<string, string | number> = {
        'Content-Type': 'application/octet-stream', 'Accept-Ranges': 'bytes', ETag: etag, 'Last-Modified': lastModified,
        'X-Image-Format': img.format,
      };
      if (img.uncompressedSize !== undefined) headers['X-Image-Size'] = img.uncompressedSize;
      if (img.meta?.sha256 !== undefined) headers['X-Image-Sha256'] = img.meta.sha256;
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
        note(res, `range=${start}-${end}`);
      }
      headers['Content-Length'] = st.size === 0 ? 0 : end - start + 1;
      writeHead(res, decision.kind === 'partial' ? 206 : 200, headers);
      if (req.method === 'HEAD' || st.size === 0) { res.end(); return; }
      handedOver = true;
      const stream = fh.createReadStream({ start, end, highWaterMark: READ_CHUNK, autoClose: true });
      // A client that disconnects mid-download is normal (the agent resumes with Range).
      await pipeline(stream, res).catch(() => { note(res, 'client-gone'); });
    } finally {
      if (!handedOver) await fh.close();
    }
  }

  // ---- uploads ------------------------------------------------------------------------------

  /** Refuse before reading a byte when Content-Length already says the body is over the limit. */
  function refuseOversize(req: IncomingMessage): void {
    const len = Number(req.headers['content-length'] ?? NaN);
    if (len > images.maxUploadBytes) throw new HttpError(413, `upload of ${len} bytes is larger than the server's limit of ${images.maxUploadBytes} bytes`);
  }

  async function refuseExisting(name: string, overwrite: boolean): Promise<void> {
    if (!overwrite && await images.exists(name)) throw new HttpError(409, `image "${name}" already exists; add ?overwrite=1 to replace it`);
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
    const received = await images.receive(name, uploadId ?? randomBytes(8).toString('hex'), req as AsyncIterable<Buffer>);
    note(res, `received=${received.size}`);
    if (uploadId !== null) {
      // two-step upload: the client commits with the size and sha256 it sent
      sendJson(res, 202, { name, upload: uploadId, size: received.size, sha256: received.sha256 });
      return;
    }
    // the sha256 may come as a header or, for a chunked body, as a trailer
    const trailerSha = sha256Param(req.trailers['x-booty-sha256'], 'trailer X-Booty-Sha256');
    const meta = await images.commit(name, received, {
      expectSha256: headerSha ?? trailerSha, overwrite, uncompressedSize, via: 'put', remote: remoteOf(req),
    });
    note(res, `stored=${name}`);
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
    });
    note(res, `stored=${name}`);
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
      const received = await images.receive(name, randomBytes(8).toString('hex'), part.body);
      try {
        // the closing boundary must arrive too: only a complete form is a complete upload
        while (await reader.nextPart() !== null) { /* drain the rest */ }
      } catch (e) { await images.discard(received); throw e; }
      note(res, `received=${received.size}`);
      stored = publicMeta(await images.commit(name, received, { overwrite, via: 'multipart', remote: remoteOf(req) }));
      note(res, `stored=${name}`);
      break;
    }
    if (stored === undefined) throw new HttpError(400, 'no file in form field "BootyImage"');
    sendJson(res, 200, stored);
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
    note(res, `mac=${mac} events=${list.length}`);
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
      note(res, `mac=${mac} action=${action.action}`);
      sendJson(res, 200, JSON.parse(toBootyJson(action)));
    } catch (e) {
      if (isBootyError(e) && e.stage === 'config') throw new HttpError(400, e.message);
      throw e;
    }
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
      if (seg[1] === 'images' && seg.length === 2 && get) return sendJson(res, 200, { images: await images.list() });
      if (seg[1] === 'machines') {
        if (seg.length === 2 && get) return sendJson(res, 200, { machines: await machines.list() });
        if (seg.length >= 3) {
          const mac = macOrThrow(seg[2]);
          if (seg.length === 3 && get) {
            const lines = optionalSize(url.searchParams.get('lines'), 'lines') ?? 100;
            const m = await machines.get(mac, Math.min(lines, 1000));
            if (m === undefined) throw new HttpError(404, `machine ${mac} has no action and has never reported`);
            return sendJson(res, 200, m);
          }
          if (seg.length === 4 && seg[3] === 'events' && method === 'POST') return postEvents(req, res, mac);
          if (seg.length === 4 && seg[3] === 'action') return machineAction(req, res, mac);
        }
      }
      throw new HttpError(404, `no API route ${method} ${url.pathname}`);
    }
    if (get && seg.length === 1 && seg[0] !== '') return serveAction(res, seg[0].replace(/\.bty$/i, ''));
    if (get && seg.length === 2 && seg[0] === 'booty') return serveAction(res, seg[1].replace(/\.bty$/i, ''));
    if (get && seg.length === 1 && seg[0] === '') {
      return sendJson(res, 200, { server: 'booty', endpoints: ['/<mac>.bty', '/images/<name>', '/api/machines', '/api/images'] });
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
      const fields = [
        `${req.method} ${(req.url ?? '').slice(0, 300)}`, `status=${res.statusCode}`,
        sent === undefined ? undefined : `bytes=${sent}`, `ms=${ms}`, `remote=${remoteOf(req)}`,
        res.writableFinished ? undefined : 'aborted', ...(notes.get(res) ?? []),
      ].filter((x) => x !== undefined);
      logLine(`booty server: ${fields.join(' ')}`);
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
      logLine(`booty server: error: ${(e as Error).stack ?? String(e)}`);
    });
  };
}

function publicMeta(m: { name: string; size: number; sha256: string; format: string; uncompressedSize?: number; storedAt: string }) {
  return { name: m.name, size: m.size, sha256: m.sha256, format: m.format, uncompressedSize: m.uncompressedSize, storedAt: m.storedAt };
}

