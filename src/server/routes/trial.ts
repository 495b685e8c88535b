// Trial boots (bootOrder "trial", README "Trial boot"): the deployed OS confirms that it booted.
// Its confirmation unit posts with the machine's agent credential, which speaks for that machine
// only; operators may confirm by hand too (a machine whose OS cannot reach the server). The
// state (pending, confirmed, failed) is in the machine's summary (GET /api/machines/<mac>).

import { HttpError } from '../http/http-error.ts';
import { readJson } from '../http/request.ts';
import { note, sendJson } from '../http/respond.ts';
import type { AppRequest, AppRoute } from './context.ts';

/** "6.1.0-28-amd64, boot 1f0c…": what the OS said about itself, printable and short. */
function confirmedBy(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'the body must be a JSON object like {"kernel": "...", "bootId": "..."} (or {})');
  const b = body as Record<string, unknown>;
  const clean = (v: unknown) => (typeof v === 'string' ? v.replace(/[^\x20-\x7e]/g, '?').slice(0, 80) : undefined);
  const parts = [clean(b.kernel) && `kernel ${clean(b.kernel)}`, clean(b.bootId) && `boot ${clean(b.bootId)}`].filter((x) => x !== undefined && x !== '');
  return parts.length === 0 ? undefined : parts.join(', ');
}

async function postConfirm({ app, req, res, params: { mac } }: AppRequest): Promise<void> {
  const by = confirmedBy(await readJson(req, 4096));
  note(res, 'mac', mac);
  const r = await app.machines.confirmTrial(mac, by);
  if (!r.ok) throw new HttpError(r.status, `${mac}: ${r.message}`);
  note(res, 'trial', 'confirmed');
  sendJson(res, 200, { ok: true, mac, state: r.trial.state, confirmedAt: r.trial.confirmedAt, deadline: r.trial.deadline });
}

export const trialRoutes: AppRoute[] = [
  { method: 'POST', path: '/api/machines/:mac/trial', access: 'agent', agentMac: (r) => r.params.mac, handle: postConfirm },
];
