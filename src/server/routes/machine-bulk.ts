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
// "None" means no change is saved when any change is refused by the rules, and saving is one
// transaction of the state store (ActionSource.updateMany): a failure halfway (a full disk, a lost
// database connection) rolls back every row saved before it, with the audit entries written in
// the same transaction, and puts back the files of file-managed machines already rewritten.

import type { Action } from '../../config/action.ts';
import { parseAction, summarizeAction, toBootyJson } from '../../config/parse.ts';
import { isBootyError } from '../../util/errors.ts';
import { HttpError } from '../http/http-error.ts';
import { flag, readJson } from '../http/request.ts';
import { note, sendJson } from '../http/respond.ts';
import type { InventoryRecord, MachineSettings } from '../machines/action-source.ts';
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
async function servedAfter(app: AppContext, mac: string, s: MachineSettings): Promise<Action | null> {
  const own = s.action === undefined ? (await app.machines.actions.record(mac))?.action : s.action === null ? undefined : parseAction(s.action);
  if (own === undefined) return null;
  return app.requireChecksum === true && own.action === 'deploy' ? { ...own, requireChecksum: true } : own;
}

async function checkOne(app: AppContext, raw: unknown, create: boolean, seen: Set<string>): Promise<Checked> {
  const macText = typeof raw === 'object' && raw !== null ? (raw as { mac?: unknown }).mac : undefined;
  if (typeof macText !== 'string') return { mac: String(macText ?? '?'), error: 'field "mac" is required (e.g. "52:54:00:12:34:56")' };
  const mac = normalizeMac(macText);
  if (mac === undefined) return { mac: macText.slice(0, 40), error: `${JSON.stringify(macText.slice(0, 40))} is not a MAC address (expected e.g. aa-bb-cc-dd-ee-ff)` };
  if (seen.has(mac)) return { mac, error: `${mac} appears twice in this change` };
  seen.add(mac);
  try {
    const settings = settingsOf(raw);
    const rec = await app.machines.actions.record(mac);
    if (create && rec !== undefined && (rec.action !== undefined || rec.managedBy !== undefined || rec.name !== undefined)) {
      return { mac, error: `machine ${mac} already exists` };
    }
    return { mac, settings, served: await servedAfter(app, mac, settings) };
  } catch (e) { return { mac, error: refusalOf(e) }; }
}

async function checkAll(app: AppContext, body: unknown): Promise<{ create: boolean; checked: Checked[] }> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'body must be a JSON object {"changes": [{"mac": "...", "action": {...}}, ...]}');
  const b = body as { changes?: unknown; create?: unknown };
  if (!Array.isArray(b.changes) || b.changes.length === 0) throw new HttpError(400, 'field "changes" must be a list of at least one change');
  if (b.changes.length > MAX_CHANGES) throw new HttpError(413, `at most ${MAX_CHANGES} changes at once (got ${b.changes.length})`);
  if (b.create !== undefined && typeof b.create !== 'boolean') throw new HttpError(400, 'field "create" must be true or false');
  const seen = new Set<string>();
  const checked: Checked[] = [];
  // one after the other: `seen` decides which of two changes of one MAC is the second
  for (const c of b.changes as unknown[]) checked.push(await checkOne(app, c, b.create === true, seen));
  return { create: b.create === true, checked };
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
  const { checked } = await checkAll(app, await readJson(req));
  const refused = checked.filter((c) => c.error !== undefined);
  note(res, 'changes', checked.length);
  sendJson(res, 200, {
    ok: refused.length === 0, error: refused.length === 0 ? undefined : refusedSentence(refused, checked.length), results: checked.map(answerOf),
  });
}

async function applyAll({ app, req, res, url, principal }: AppRequest): Promise<void> {
  const { create, checked } = await checkAll(app, await readJson(req));
  note(res, 'changes', checked.length);
  const refused = checked.filter((c) => c.error !== undefined);
  if (refused.length > 0 || flag(url, 'dryRun')) {
    const status = refused.length > 0 ? 400 : 200;
    sendJson(res, status, { ok: refused.length === 0, saved: 0, error: refused.length === 0 ? undefined : refusedSentence(refused, checked.length), results: checked.map(answerOf) });
    return;
  }
  const audit = principal.kind === 'operator' ? app.audit : undefined;
  const what = `POST ${url.pathname} (${checked.length} machines)`;
  const settingsNow = (r: InventoryRecord | undefined) => (r === undefined ? undefined : { action: r.action, persistent: r.persistent, name: r.name });
  const before = new Map<string, ReturnType<typeof settingsNow>>();
  for (const c of checked) before.set(c.mac, settingsNow(await app.machines.actions.record(c.mac)));
  try {
    await app.machines.actions.updateMany(checked.map((c) => ({ mac: c.mac, settings: c.settings as MachineSettings })), { create }, async (tx, mac) => {
      // one audit entry per machine, so its page lists the change like a single PUT
      if (audit !== undefined && principal.kind === 'operator') {
        await audit.record({ who: principal.name, what, status: 200, mac, before: before.get(mac), after: settingsNow(await app.machines.actions.record(mac, tx)) }, tx);
      }
    });
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new HttpError(500, `saving the changes failed (${why}); nothing saved: all ${checked.length} changes rolled back, try again`);
  }
  const saved = checked.map((c) => c.mac);
  sendJson(res, 200, { ok: true, saved: saved.length, results: checked.map(answerOf) });
}

export const machineBulkRoutes: AppRoute[] = [
  { method: 'POST', path: '/api/machines/validate', access: 'operator', handle: validate },
  { method: '*', path: '/api/machines/validate', access: 'operator', handle: () => { throw new HttpError(405, 'use POST on /api/machines/validate'); } },
  { method: 'POST', path: '/api/machines/bulk', access: 'operator', handle: applyAll },
  { method: '*', path: '/api/machines/bulk', access: 'operator', handle: () => { throw new HttpError(405, 'use POST on /api/machines/bulk'); } },
];
