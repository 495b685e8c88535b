// What agents report (POST /api/machines/<mac>/events: phases, progress, log lines, results)
// and the dashboards' live stream of it (GET /api/events/stream, Server-Sent Events).

import type { AgentEvent } from '../../config/report.ts';
import { validators } from '../../config/schema.ts';
import { HttpError } from '../http/http-error.ts';
import { readJson } from '../http/request.ts';
import { note, sendJson } from '../http/respond.ts';
import type { AppRequest, AppRoute } from './context.ts';

/** The refusal of an event that does not validate: its index in the batch, the field, what it must be. */
function eventProblem(i: number): HttpError {
  const err = validators.agentEvent.errors?.find((x) => x.keyword !== 'if') ?? validators.agentEvent.errors?.[0];
  const field = err?.keyword === 'required' ? (err.params as { missingProperty: string }).missingProperty
    : err?.keyword === 'additionalProperties' ? (err.params as { additionalProperty: string }).additionalProperty
    : (err?.instancePath ?? '').replace(/^\//, '').replace(/\//g, '.') || 'type';
  const expected = (err?.parentSchema as { description?: string } | undefined)?.description ?? err?.message ?? 'valid';
  return new HttpError(400, `event ${i}: field "${field}" ${err?.keyword === 'required' ? 'is required' : err?.keyword === 'additionalProperties' ? 'is not a known field' : `must be ${expected}`}`);
}

async function postEvents({ app, req, res, params: { mac } }: AppRequest): Promise<void> {
  const body = await readJson(req);
  const list = Array.isArray(body) ? body : [body];
  if (list.length > 10000) throw new HttpError(413, 'at most 10000 events per request');
  list.forEach((e, i) => { if (!validators.agentEvent(e)) throw eventProblem(i); });
  const state = await app.machines.record(mac, list as AgentEvent[]);
  note(res, 'mac', mac); note(res, 'events', list.length);
  sendJson(res, 200, { ok: true, phase: state.phase ?? null });
}

export const eventRoutes: AppRoute[] = [
  { method: 'POST', path: '/api/machines/:mac/events', access: 'agent', agentMac: (r) => r.params.mac, handle: postEvents },
  {
    method: 'GET', path: '/api/events/stream', access: 'operator', head: false,
    handle: ({ app, res, principal }) => {
      if (app.hub === undefined) throw new HttpError(404, 'live updates are not enabled');
      app.hub.attach(res, principal.kind === 'operator' ? principal.name : principal.kind);
    },
  },
];
