// Hardware inventories: an agent sends what it found at every boot (POST, with its machine's
// credential: it speaks for that machine only), operators read it (GET; also inside
// GET /api/machines/<mac>). The body is checked against the one schema (config/inventory-schema.ts).

import type { MachineInventory } from '../../config/inventory.ts';
import { validators } from '../../config/schema.ts';
import { HttpError } from '../http/http-error.ts';
import { readJson } from '../http/request.ts';
import { note, sendJson } from '../http/respond.ts';
import type { AppRequest, AppRoute } from './context.ts';

function inventoryProblem(): HttpError {
  const err = validators.inventory.errors?.[0];
  const field = (err?.instancePath ?? '').replace(/^\//, '').replace(/\//g, '.');
  const what = err?.keyword === 'required' ? `field "${(err.params as { missingProperty: string }).missingProperty}" is required${field === '' ? '' : ` in "${field}"`}`
    : err?.keyword === 'additionalProperties' ? `field "${(err.params as { additionalProperty: string }).additionalProperty}" is not a known field${field === '' ? '' : ` of "${field}"`}`
    : `field "${field}" must be ${(err?.parentSchema as { description?: string } | undefined)?.description ?? err?.message ?? 'valid'}`;
  return new HttpError(400, `inventory: ${what}`);
}

async function postInventory({ app, req, res, params: { mac } }: AppRequest): Promise<void> {
  const body = await readJson(req);
  if (!validators.inventory(body)) throw inventoryProblem();
  const inv = body as MachineInventory;
  await app.machines.putInventory(mac, inv);
  note(res, 'mac', mac); note(res, 'disks', inv.disks.length);
  sendJson(res, 200, { ok: true });
}

async function getInventory({ app, res, params: { mac } }: AppRequest): Promise<void> {
  const s = await app.machines.inventory.get(mac);
  if (s === undefined) throw new HttpError(404, `no inventory from ${mac} yet (its agent sends one at every boot)`);
  sendJson(res, 200, { mac, received: s.received, inventory: s.inventory });
}

export const inventoryRoutes: AppRoute[] = [
  { method: 'POST', path: '/api/machines/:mac/inventory', access: 'agent', agentMac: (r) => r.params.mac, handle: postInventory },
  { method: 'GET', path: '/api/machines/:mac/inventory', access: 'operator', handle: getInventory },
];
