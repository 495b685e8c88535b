// The dashboard: GET / (HTML for browsers, the JSON index for scripts) and its files under
// /dashboard/. The files are public (they hold no data); what the dashboard shows comes from
// the operator API, after a login.

import { HttpError } from '../http/http-error.ts';
import { sendJson } from '../http/respond.ts';
import type { AppRoute } from './context.ts';
import { notFound } from './fallbacks.ts';

export const dashboardRoutes: AppRoute[] = [
  {
    method: 'GET', path: '/dashboard/:asset', access: 'public',
    handle: (r) => {
      const dashboard = r.app.dashboard;
      if (dashboard === undefined) throw notFound(r);
      const asset = dashboard.asset(r.params.asset === '' ? 'index.html' : r.params.asset);
      if (asset === undefined) throw new HttpError(404, `no dashboard file ${JSON.stringify(r.params.asset)}`);
      dashboard.send(r.req, r.res, asset);
    },
  },
  {
    method: 'GET', path: '/', access: 'public',
    handle: ({ app, req, res }) => {
      // browsers get the dashboard; scripts (and BOOTy-era tools) keep getting the JSON index
      if (app.dashboard !== undefined && /text\/html/.test(req.headers.accept ?? '')) return app.dashboard.send(req, res, app.dashboard.asset('index.html')!);
      sendJson(res, 200, { server: 'booty', endpoints: ['/<mac>.bty', '/images/<name>', '/api/machines', '/api/images', '/ipxe', '/metrics', '/api/events/stream'] });
    },
  },
];
