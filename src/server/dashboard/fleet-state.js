// What the dashboard knows about the fleet: every machine's summary by MAC, kept current by the
// live stream (live.js) and read by the pages.

import { getJson } from './api.js';

export const machines = new Map();

export async function loadMachines() {
  const { machines: list } = await getJson('/api/machines');
  machines.clear();
  for (const m of list) machines.set(m.mac, m);
}
