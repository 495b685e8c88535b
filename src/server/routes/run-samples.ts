// A run's progress samples (GET /api/machines/<mac>/runs/<id>/samples): what the dashboard's
// throughput chart draws. Operator: like the run history it belongs to.

import { HttpError } from '../http/http-error.ts';
import { sendJson } from '../http/respond.ts';
import type { AppRequest, AppRoute } from './context.ts';

async function runSamples({ app, res, params: { mac, id } }: AppRequest): Promise<void> {
  if (!/^[1-9][0-9]{0,15}$/.test(id)) throw new HttpError(400, `run id must be a positive whole number (got ${JSON.stringify(id.slice(0, 40))})`);
  const runId = Number(id);
  if (!await app.machines.samples.isRunOf(mac, runId)) throw new HttpError(404, `machine ${mac} has no run ${runId}`);
  const { resolutionMs, samples } = await app.machines.samples.samples(runId);
  sendJson(res, 200, { mac, run: runId, resolutionSeconds: resolutionMs / 1000, samples });
}

export const runSampleRoutes: AppRoute[] = [
  { method: 'GET', path: '/api/machines/:mac/runs/:id/samples', access: 'operator', handle: runSamples },
];
