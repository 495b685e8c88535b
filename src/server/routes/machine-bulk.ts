// One change to many machines, as the dashboard's bulk actions send it:
//   POST /api/machines/validate   check every change by the API's own rules, save nothing, and
//                                 answer the exact action each machine would be served
//   POST /api/machines/bulk       the same check, then all changes saved, or none when any is refused
// Body: {"changes": [{"mac": "...", "action": {...}|null, "persistent": bool, "name": "...",
// "rearm": bool}, ...], "create": bool}. Each change is what PUT /api/machines/<mac> takes (with
// "create": what POST /api/machines takes), checked by the same code (settingsOf, parseAction).
// A refusal names the machine and says why in the server's sentence. Operator only: like the
// single-machine routes, these change what machines install.
//
// "None" means no change is saved when any change is refused by the rules. Saving itself writes
// a managed machine's file before its row: an I/O error halfway (a full disk) leaves the changes
// before it saved, and the answer names which.

import type { Action } from '../../config/action.ts';
import { parseAction, summarizeAction, toBootyJson } from '../../config/parse.ts';
import { isBootyError } from '../../util/errors.ts';
import { HttpError } from '../http/http-error.ts';
import { flag, readJson } from '../http/request.ts';
import { note, sendJson } from '../http/respond.ts';
import type { MachineSettings } from '../machines/action-source.ts';
import { normalizeMac } from '../names.ts';
import type { AppContext, AppRequest, AppRoute } from './context.ts';
import { settingsOf } from './machines.ts';

/** more than a rack row, fewer than a body can carry */
const MAX_CHANGES = 5000;

interface Checked { mac: string; settings?: MachineSettings; served?: Action | null; error?: string }

function refusalOf(e: unknown): string {
  if (e instanceof HttpError) return e.message;
  if (isBootyError(e) && e.stage === 'config') return e.message;
  throw e;
}

/** The action the machine gets at its next fetch once `s` is saved (null: none of its own). */
function servedAfter(app: AppContext, mac: string, s: MachineSettings): Action | null {
  const own = s.action === undefined ? app.machines.actions.record(mac)?.action : s.action === null ? undefined : parseAction(s.action);
  if (own === undefined) return null;
  return app.requireChecksum === true && own.action === 'deploy' ? { ...own, requireChecksum: true } : own;
}

function checkOne(app: AppContext, raw: unknown, create: boolean, seen: Set<string>): Checked {
  const macText = typeof raw === 'object' && raw !== null ? (raw as { mac?: unknown }).mac : undefined;
  if (typeof macText !== 'string') return { mac: String(macText ?? '?'), error: 'field "mac" is required (e.g. "52:54:00:12:34:56")' };
  const mac = normalizeMac(macText);
  if (mac === undefined) return { mac: macText.slice(0, 40), error: `${JSON.stringify(macText.slice(0, 40))} is not a MAC address (expected e.g. aa-bb-cc-dd-ee-ff)` };
  if (seen.has(mac)) return { mac, error: `${mac} appears twice in this change` };
  seen.add(mac);
  try {
    const settings = settingsOf(raw);
    const rec = app.machines.actions.record(mac);
    if (create && rec !== undefined && (rec.action !== undefined || rec.managedBy !== undefined || rec.name !== undefined)) {
      return { mac, error: `machine ${mac} already exists` };
    }
    return { mac, settings, served: servedAfter(app, mac, settings) };
  } catch (e) { return { mac, error: refusalOf(e) }; }
}

function checkAll(app: AppContext, body: unknown): { create: boolean; checked: Checked[] } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'body must be a JSON object {"changes": [{"mac": "...", "action": {...}}, ...]}');
  const b = body as { changes?: unknown; create?: unknown };
  if (!Array.isArray(b.changes) || b.changes.length === 0) throw new HttpError(400, 'field "changes" must be a list of at least one change');
  if (b.changes.length > MAX_CHANGES) throw new HttpError(413, `at most ${MAX_CHANGES} changes at once (got ${b.changes.length})`);
  if (b.create !== undefined && typeof b.create !== 'boolean') throw new HttpError(400, 'field "create" must be true or false');
  const seen = new Set<string>();
  return { create: b.create === true, checked: b.changes.map((c) => checkOne(app, c, b.create === true, seen)) };
}

function answerOf(c: Checked) {
  if (c.error !== undefined) return { mac: c.mac, ok: false, error: c.error };
  const served = c.served ?? null;
  return { mac: c.mac, ok: true, served: served === null ? null : JSON.parse(toBootyJson(served)), summary: served === null ? 'no action of its own' : summarizeAction(served) };
}

function refusedSentence(refused: Checked[], total: number): string {
  const first = refused.slice(0, 5).map((c) => `${c.mac}: ${c.error}`).join('; ');
  return `${refused.length} of ${total} change${total === 1 ? '' : 's'} refused, nothing saved: ${first}${refused.length > 5 ? `; and ${refused.length - 5} more` : ''}`;
}

async function validate({ app, req, res }: AppRequest): Promise<void> {
  const { checked } = checkAll(app, await readJson(req));
  const refused = checked.filter((c) => c.error !== undefined);
  note(res, 'changes', checked.length);
  sendJson(res, 200, {
    ok: refused.length === 0, error: refused.length === 0 ? undefined : refusedSentence(refused, checked.length), results: checked.map(answerOf),
  });
}

async function applyAll({ app, req, res, url, principal }: AppRequest): Promise<void> {
  const { create, checked } = checkAll(app, await readJson(req));
  note(res, 'changes', checked.length);
  const refused = checked.filter((c) => c.error !== undefined);
  if (refused.length > 0 || flag(url, 'dryRun')) {
    const status = refused.length > 0 ? 400 : 200;
    sendJson(res, status, { ok: refused.length === 0, saved: 0, error: refused.length === 0 ? undefined : refusedSentence(refused, checked.length), results: checked.map(answerOf) });
    return;
  }
  const saved: string[] = [];
  for (const c of checked) {
    const before = app.machines.actions.record(c.mac);
    const was = before === undefined ? undefined : { action: before.action, persistent: before.persistent, name: before.name };
    try {
      await app.machines.actions.update(c.mac, c.settings as MachineSettings, { create });
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      throw new HttpError(500, `saving ${c.mac} failed (${why}); ${saved.length} of ${checked.length} saved before it${saved.length > 0 ? ` (${saved.slice(0, 20).join(', ')}${saved.length > 20 ? ', …' : ''})` : ''}, the rest not`);
    }
    saved.push(c.mac);
    // one audit entry per machine, so its page lists the change like a single PUT
    const rec = app.machines.actions.record(c.mac);
    if (principal.kind === 'operator') {
      try {
        app.audit?.record({ who: principal.name, what: `POST ${url.pathname} (${checked.length} machines)`, status: 200, mac: c.mac, before: was, after: rec === undefined ? undefined : { action: rec.action, persistent: rec.persistent, name: rec.name } });
      } catch (e) { app.log.error('could not write the audit log', { error: (e as Error).message }); }
    }
  }
  sendJson(res, 200, { ok: true, saved: saved.length, results: checked.map(answerOf) });
}

export const machineBulkRoutes: AppRoute[] = [
  { method: 'POST', path: '/api/machines/validate', access: 'operator', handle: validate },
  { method: '*', path: '/api/machines/validate', access: 'operator', handle: () => { throw new HttpError(405, 'use POST on /api/machines/validate'); } },
  { method: 'POST', path: '/api/machines/bulk', access: 'operator', handle: applyAll },
  { method: '*', path: '/api/machines/bulk', access: 'operator', handle: () => { throw new HttpError(405, 'use POST on /api/machines/bulk'); } },
];
