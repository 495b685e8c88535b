// The machine inventory (booty machines): list, create, change, remove, a machine's action, its
// runs and log, its agent credential; and POST /api/reload (re-read machines/*.json and
// default.json). All operator: the list names every machine, logs and runs carry hostnames,
// files and errors. Only an agent's own action (actions.ts) is public.

import { toBootyJson } from '../../config/parse.ts';
import { isBootyError } from '../../util/errors.ts';
import { HttpError } from '../http/http-error.ts';
import { flag, macOrThrow, optionalSize, readJson } from '../http/request.ts';
import { note, sendJson, writeHead } from '../http/respond.ts';
import type { MachineSettings } from '../machines/action-source.ts';
import { serveAction } from './actions.ts';
import type { AppRequest, AppRoute } from './context.ts';
import { notFound } from './fallbacks.ts';

/** A change of one machine, as PUT /api/machines/<mac> takes it (also each change of a bulk change, machine-bulk.ts). */
export function settingsOf(body: unknown): MachineSettings {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'body must be a JSON object {"action": {...}, "persistent": false, "name": "..."}');
  const b = body as Record<string, unknown>;
  const known = new Set(['mac', 'action', 'persistent', 'name', 'rearm']);
  const extra = Object.keys(b).find((k) => !known.has(k));
  if (extra !== undefined) throw new HttpError(400, `field "${extra}" is not a known field (known fields: ${[...known].join(', ')})`);
  for (const k of ['persistent', 'rearm']) if (b[k] !== undefined && typeof b[k] !== 'boolean') throw new HttpError(400, `field "${k}" must be true or false`);
  if (b.name !== undefined && b.name !== null && (typeof b.name !== 'string' || b.name.length > 100)) throw new HttpError(400, 'field "name" must be a string of at most 100 characters');
  return { action: b.action, persistent: b.persistent as boolean | undefined, name: b.name as string | null | undefined, rearm: b.rearm as boolean | undefined };
}

/** An action the agent's rules refuse is the client's mistake: 400 naming the field. */
export async function asClientError<T>(fn: () => Promise<T>): Promise<T> {
  try { return await fn(); } catch (e) {
    if (isBootyError(e) && e.stage === 'config') throw new HttpError(400, e.message);
    throw e;
  }
}

async function changeMachine({ app, res }: AppRequest, mac: string, body: unknown, create: boolean): Promise<void> {
  const settings = settingsOf(body);
  await asClientError(() => app.machines.actions.update(mac, settings, { create }));
  note(res, 'mac', mac);
  sendJson(res, create ? 201 : 200, await app.machines.summary(mac));
}

async function createMachine(r: AppRequest): Promise<void> {
  const body = await readJson(r.req);
  const macText = typeof body === 'object' && body !== null ? (body as { mac?: unknown }).mac : undefined;
  if (typeof macText !== 'string') throw new HttpError(400, 'field "mac" is required (e.g. "52:54:00:12:34:56")');
  return changeMachine(r, macOrThrow(macText), body, true);
}

async function machineDetail({ app, res, url, params: { mac } }: AppRequest): Promise<void> {
  const lines = optionalSize(url.searchParams.get('lines'), 'lines') ?? 100;
  const m = await app.machines.get(mac, Math.min(lines, 1000));
  if (m === undefined) throw new HttpError(404, `machine ${mac} has no action and has never reported`);
  sendJson(res, 200, m);
}

async function removeMachine({ app, res, url, params: { mac } }: AppRequest): Promise<void> {
  if (!await app.machines.remove(mac, { history: flag(url, 'history') })) throw new HttpError(404, `no machine ${mac}`);
  sendJson(res, 200, { ok: true });
}

async function setAction({ app, req, res, params: { mac } }: AppRequest): Promise<void> {
  const body = await readJson(req);
  const action = await asClientError(() => app.machines.actions.setAction(mac, body));
  note(res, 'mac', mac); note(res, 'action', action.action);
  sendJson(res, 200, JSON.parse(toBootyJson(action)));
}

async function deleteAction({ app, res, params: { mac } }: AppRequest): Promise<void> {
  const removed = await app.machines.actions.deleteAction(mac);
  if (!removed) throw new HttpError(404, `${mac} has no action of its own`);
  sendJson(res, 200, { ok: true });
}

async function machineLog({ app, req, res, url, params: { mac } }: AppRequest): Promise<void> {
  const run = optionalSize(url.searchParams.get('run'), 'run');
  const limit = optionalSize(url.searchParams.get('limit'), 'limit');
  const text = (await app.machines.recorder.log(mac, { run, limit })).map((l) => l + '\n').join('');
  writeHead(res, 200, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
  res.end(req.method === 'HEAD' ? undefined : text);
}

async function reload({ app, res }: AppRequest): Promise<void> {
  const r = app.reload === undefined ? await app.machines.actions.reload() : await app.reload();
  note(res, 'changed', r.changed.length);
  sendJson(res, 200, { ok: r.errors.length === 0, changed: r.changed, errors: r.errors });
}

const refuse = (status: number, message: string) => (): never => { throw new HttpError(status, message); };

export const machineRoutes: AppRoute[] = [
  { method: 'GET', path: '/api/machines', access: 'operator', handle: async ({ app, res }) => sendJson(res, 200, { machines: await app.machines.list() }) },
  { method: 'POST', path: '/api/machines', access: 'operator', handle: createMachine },
  { method: '*', path: '/api/machines', access: 'public', handle: refuse(405, 'use GET or POST on /api/machines') },
  { method: 'GET', path: '/api/machines/:mac', access: 'operator', handle: machineDetail },
  { method: 'PUT', path: '/api/machines/:mac', access: 'operator', handle: async (r) => changeMachine(r, r.params.mac, await readJson(r.req), false) },
  { method: 'DELETE', path: '/api/machines/:mac', access: 'operator', handle: removeMachine },
  { method: '*', path: '/api/machines/:mac', access: 'operator', handle: refuse(405, 'use GET, PUT or DELETE on /api/machines/<mac>') },
  { method: 'GET', path: '/api/machines/:mac/action', access: 'public', handle: ({ app, res, params, principal }) => serveAction(app, res, params.mac, principal) },
  { method: 'PUT', path: '/api/machines/:mac/action', access: 'operator', handle: setAction },
  { method: 'DELETE', path: '/api/machines/:mac/action', access: 'operator', handle: deleteAction },
  { method: '*', path: '/api/machines/:mac/action', access: 'operator', handle: refuse(405, 'use GET, PUT or DELETE') },
  {
    method: 'GET', path: '/api/machines/:mac/runs', access: 'operator',
    handle: async ({ app, res, url, params: { mac } }) => sendJson(res, 200, { runs: await app.machines.recorder.runs(mac, Math.min(optionalSize(url.searchParams.get('limit'), 'limit') ?? 50, 1000)) }),
  },
  { method: 'GET', path: '/api/machines/:mac/log', access: 'operator', handle: machineLog },
  {
    // for machines booted without iPXE (booty.token= on a hand-written command line) and tests
    method: 'GET', path: '/api/machines/:mac/credential', access: 'operator',
    handle: ({ app, res, params: { mac } }) => sendJson(res, 200, { mac, credential: app.trust.credentialFor(mac), cmdline: `booty.token=${app.trust.credentialFor(mac)}` }),
  },
  // after every /api/machines/<mac>/... route (events.ts included): a bad MAC is still a 400
  { method: '*', path: '/api/machines/:mac/*', access: 'public', handle: (r) => { throw notFound(r, 'API route'); } },
  { method: 'POST', path: '/api/reload', access: 'operator', handle: reload },
];
