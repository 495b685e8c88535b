// GET /api/audit[?mac=<mac>][&limit=N][&before=<id>]: the operator changes (trust/audit-log.ts),
// newest first. Operator: it names machines, images and who changed them.

import { HttpError } from '../http/http-error.ts';
import { macOrThrow, optionalSize } from '../http/request.ts';
import { sendJson } from '../http/respond.ts';
import type { AppRoute } from './context.ts';

export const auditRoutes: AppRoute[] = [
  {
    method: 'GET', path: '/api/audit', access: 'operator',
    handle: async ({ app, res, url }) => {
      if (app.audit === undefined) throw new HttpError(404, 'this server keeps no audit log');
      const macText = url.searchParams.get('mac');
      const entries = await app.audit.list({
        mac: macText === null ? undefined : macOrThrow(macText),
        limit: optionalSize(url.searchParams.get('limit'), 'limit'),
        beforeId: optionalSize(url.searchParams.get('before'), 'before'),
      });
      sendJson(res, 200, { entries });
    },
  },
];
