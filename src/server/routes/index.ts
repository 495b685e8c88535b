// booty server's route table: every route, its method, path pattern and access level, tried in
// this order (the first match wins; see http/router.ts). To add a route, add it to the module of
// its concern with its access level; test/integration/server-route-table.test.ts walks this
// table and checks every entry's access with five kinds of credential.
//
// Order matters only where patterns overlap: fallbacks ("*" method, "*" path) come after the
// routes they back up, `GET /:machine` (BOOTy's action path) is the last real route.

import type { AppRoute } from './context.ts';
import { actionRoutes } from './actions.ts';
import { auditRoutes } from './audit.ts';
import { sessionRoutes } from './session.ts';
import { bootRoutes } from './boot.ts';
import { dashboardRoutes } from './dashboard.ts';
import { eventRoutes } from './events.ts';
import { apiNotFoundRoute, notFoundRoute } from './fallbacks.ts';
import { imageRoutes } from './images.ts';
import { inventoryRoutes } from './inventory.ts';
import { machinePreviewRoutes } from './machine-preview.ts';
import { machineBulkRoutes } from './machine-bulk.ts';
import { trialRoutes } from './trial.ts';
import { machineRoutes } from './machines.ts';
import { metricsRoutes } from './metrics.ts';
import { p2pRoutes } from './p2p.ts';
import { runSampleRoutes } from './run-samples.ts';
import { uploadRoutes } from './uploads.ts';

export const routes: readonly AppRoute[] = [
  ...imageRoutes,
  ...p2pRoutes,
  ...uploadRoutes,
  ...eventRoutes,
  ...inventoryRoutes,
  ...runSampleRoutes,
  ...machinePreviewRoutes,
  // before machineRoutes: /api/machines/<mac> would take "bulk" for a MAC
  ...machineBulkRoutes,
  ...trialRoutes,
  ...machineRoutes,
  ...auditRoutes,
  ...sessionRoutes,
  apiNotFoundRoute,
  ...bootRoutes,
  ...metricsRoutes,
  ...dashboardRoutes,
  ...actionRoutes,
  notFoundRoute,
];
