// A machine change checked without saving it: PUT /api/machines/<mac>?dryRun=1 takes the body of
// PUT /api/machines/<mac> (what `booty machines set` sends), validates it with the same rules and
// answers 200 with the verdict: {ok: true, ...what would be saved and served} or {ok: false,
// error: the sentence the change would be refused with (400)}. A refusal is the answer to the
// question asked, not a failed request (a browser would log a 400 as an error). The dashboard
// shows this before an operator saves. Nothing changes, so nothing is audited.

import { parseAction, summarizeAction, toBootyJson } from '../../config/parse.ts';
import { HttpError } from '../http/http-error.ts';
import { readJson } from '../http/request.ts';
import { note, sendJson } from '../http/respond.ts';
import { asClientError, settingsOf } from './machines.ts';
import type { AppRequest, AppRoute } from './context.ts';

async function preview(r: AppRequest): Promise<void> {
  const body = await readJson(r.req);
  note(r.res, 'dry-run');
  try { await verdict(r, body); } catch (e) {
    if (!(e instanceof HttpError) || e.status !== 400) throw e;
    note(r.res, 'refused');
    sendJson(r.res, 200, { mac: r.params.mac, dryRun: true, ok: false, error: e.message });
  }
}

async function verdict({ app, res, params: { mac } }: AppRequest, body: unknown): Promise<void> {
  const settings = settingsOf(body);
  const action = settings.action === undefined || settings.action === null ? settings.action : await asClientError(async () => parseAction(settings.action));
  const current = await app.machines.actions.record(mac);
  // what the agent would get: the action as GET /<mac> serves it (a changed action runs again)
  const served = action === undefined || action === null ? undefined
    : app.requireChecksum === true && action.action === 'deploy' ? { ...action, requireChecksum: true } : action;
  sendJson(res, 200, {
    mac, dryRun: true, ok: true,
    name: settings.name === undefined ? current?.name ?? null : settings.name === '' ? null : settings.name,
    persistent: settings.persistent ?? current?.persistent ?? false,
    ...(settings.rearm === true ? { rearm: true } : {}),
    // undefined: unchanged; null: the machine's own action is removed
    ...(action === undefined ? {} : { action: served === undefined ? null : JSON.parse(toBootyJson(served)) as unknown, summary: served === undefined ? null : summarizeAction(served) }),
  });
}

export const machinePreviewRoutes: AppRoute[] = [
  { method: 'PUT', path: '/api/machines/:mac', query: 'dryRun', access: 'operator', handle: preview },
];
