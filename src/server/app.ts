// booty server's request handler (node:http, no framework): the route table (routes/index.ts)
// behind the router (http/router.ts), which checks each route's access level once; one request
// log record per request; every error answered in one place (http/http-error.ts).
// See README "Server API" for what each route does.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { httpErrorOf, INTERNAL } from './http/http-error.ts';
import { HttpError } from './http/http-error.ts';
import { decodeSegments } from './http/request.ts';
import { note, notesOf, rememberRemote, remoteOf, sendError } from './http/respond.ts';
import { dispatch, Router } from './http/router.ts';
import { refuseCrossSite } from './http/cross-site.ts';
import { ServerCounters } from './metrics.ts';
import { createServerLog } from './server-log.ts';
import type { AppContext, AppOptions } from './routes/context.ts';
import { routes } from './routes/index.ts';

export type { AppOptions, BootFiles } from './routes/context.ts';

/** What an operator can change about a machine: the before and after of its audit entries. */
async function machineSettings(app: AppContext, mac: string): Promise<{ action?: unknown; persistent: boolean; name?: string } | undefined> {
  const r = await app.machines.actions.record(mac);
  return r === undefined ? undefined : { action: r.action, persistent: r.persistent, name: r.name };
}

async function auditChange(app: AppContext, req: IncomingMessage, res: ServerResponse, who: string, params: Readonly<Record<string, string>>, before: unknown): Promise<void> {
  const notes = notesOf(res);
  const mac = params.mac ?? (typeof notes.mac === 'string' ? notes.mac : undefined);
  const image = params.name ?? (typeof notes.stored === 'string' ? notes.stored : typeof notes.deleted === 'string' ? notes.deleted : undefined);
  // a machine's settings before and after; for anything else, what the request log noted
  try {
    const after = params.mac !== undefined || notes.mac !== undefined ? (mac === undefined ? undefined : await machineSettings(app, mac)) : notes;
    await app.audit?.record({ who, what: `${req.method ?? '?'} ${(req.url ?? '').slice(0, 500)}`, status: res.statusCode, mac, image, before, after });
  } catch (e) { app.log.error('could not write the audit log', { error: (e as Error).message }); }
}

export function createApp(opts: AppOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const app: AppContext = { ...opts, log: opts.log ?? createServerLog(), counters: opts.counters ?? new ServerCounters() };
  const { log, counters } = app;
  const router = new Router(routes);

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://booty.invalid');
    // Route on the path as sent: WHATWG URL parsing would fold "/images/%2E%2E" into "/", and a
    // refusal that names the bad image is clearer than a 404.
    const rawPath = (req.url ?? '/').split('?')[0];
    if (!rawPath.startsWith('/')) throw new HttpError(400, 'request target must be an absolute path');
    const m = router.match(req.method ?? 'GET', url, decodeSegments(rawPath));
    // the table ends with a route matching everything
    if (m === undefined) throw new Error(`no route matched ${req.method} ${rawPath}`);
    refuseCrossSite(req);
    const changes = req.method !== 'GET' && req.method !== 'HEAD';
    const mac = m.params.mac;
    const before = changes && mac !== undefined ? await machineSettings(app, mac) : undefined;
    const principal = await dispatch(m, { req, res, url, app }, app.trust);
    // a dry run (PUT /api/machines/<mac>?dryRun=1) changes nothing
    if (changes && principal.kind === 'operator' && res.statusCode < 400 && notesOf(res)['dry-run'] !== true) await auditChange(app, req, res, principal.name, m.params, before);
  }

  return (req, res) => {
    const started = process.hrtime.bigint();
    rememberRemote(req);
    res.on('close', () => {
      try { logRequest(); } catch { /* logging must never take the server down */ }
    });
    const logRequest = () => {
      const ms = Number((process.hrtime.bigint() - started) / 1000000n);
      const sent = res.getHeader('content-length');
      counters.countRequest(res.statusCode);
      log.info(`${req.method} ${(req.url ?? '').slice(0, 300)}`, {
        status: res.statusCode, bytes: sent === undefined ? undefined : Number(sent), ms, remote: remoteOf(req),
        aborted: res.writableFinished ? undefined : true, ...notesOf(res),
      });
    };
    route(req, res).catch((e: unknown) => {
      const answer = httpErrorOf(e);
      if (answer === undefined) {
        // the client went away mid-body: the store already removed the temp file
        note(res, 'client-aborted');
        res.destroy();
        return;
      }
      sendError(res, answer.status, answer.message, answer.headers);
      if (answer.code === INTERNAL) log.error('internal error', { stack: (e as Error).stack ?? String(e) });
    });
  };
}
