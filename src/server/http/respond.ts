// Writing answers: JSON, text, and refusals that may arrive while an upload's body is still
// coming in. Also the per-request notes the request log adds (bytes received, image stored, ...).

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { LogFields } from '../server-log.ts';

const REFUSED_BODY_DRAIN = 1 << 20;

// The peer's address, kept from the start: a socket torn down mid-request no longer has it.
const remotes = new WeakMap<IncomingMessage, string>();
export function rememberRemote(req: IncomingMessage): void { remotes.set(req, req.socket.remoteAddress ?? '?'); }
export function remoteOf(req: IncomingMessage): string { return remotes.get(req) ?? '?'; }

// What the request log record adds per request (bytes received, the image stored, ...).
const notes = new WeakMap<ServerResponse, LogFields>();
export function note(res: ServerResponse, key: string, value: string | number | boolean = true): void {
  const n = notes.get(res);
  if (n === undefined) notes.set(res, { [key]: value }); else n[key] = value;
}
export function notesOf(res: ServerResponse): LogFields { return notes.get(res) ?? {}; }

/** setHeader (not writeHead's argument) so the request log can read Content-Length back. */
export function writeHead(res: ServerResponse, status: number, headers: Record<string, string | number>): void {
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.writeHead(status);
}

export function sendJson(res: ServerResponse, status: number, body: unknown, extraHeaders: Readonly<Record<string, string>> = {}): void {
  // Errors stay on one line: agents and scripts show the first line of a refusal.
  const text = (status >= 400 ? JSON.stringify(body) : JSON.stringify(body, null, 2)) + '\n';
  writeHead(res, status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...extraHeaders });
  res.end(res.req.method === 'HEAD' ? undefined : text);
}

/** A 200 text answer that is never cached (scripts, metrics, logs). */
export function sendText(res: ServerResponse, text: string, type: string): void {
  writeHead(res, 200, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
  res.end(res.req.method === 'HEAD' ? undefined : text);
}

export function sendError(res: ServerResponse, status: number, message: string, headers: Readonly<Record<string, string>> = {}): void {
  note(res, 'error', message);
  if (res.headersSent) { res.destroy(); return; }
  // A refused upload's body may still be arriving: do not keep the connection for it.
  const req = res.req;
  const bodyPending = !req.complete && (req.method === 'PUT' || req.method === 'POST');
  if (!bodyPending) { sendJson(res, status, { error: message }, headers); return; }
  if (req.destroyed) {
    // the body's reader gave up on it (an async iterator left early): answer, then close
    sendJson(res, status, { error: message }, { ...headers, Connection: 'close' });
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
    sendJson(res, status, { error: message }, { ...headers, Connection: 'close' });
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
