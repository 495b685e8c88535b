// GET /metrics: Prometheus text format. Run figures come from the database (they survive a
// restart), transfer and request counters from this process. Public by default, as scrapers
// expect (it names no machine); --metrics operator asks for an operator token.

import { sendText } from '../http/respond.ts';
import { histogramSamples, renderMetrics } from '../metrics.ts';
import type { MetricFamily } from '../metrics.ts';
import type { AppContext, AppRoute } from './context.ts';

function mergeBy<T>(rows: T[], key: (r: T) => string, value: (r: T) => number): [string, number][] {
  const m = new Map<string, number>();
  for (const r of rows) m.set(key(r), (m.get(key(r)) ?? 0) + value(r));
  return [...m].sort((a, b) => a[0].localeCompare(b[0]));
}

async function metricsText({ machines, counters, hub }: AppContext): Promise<string> {
  const totals = await machines.recorder.runTotals();
  const durations = await machines.recorder.runDurations();
  const phases = await machines.phaseCounts();
  const active = ['writing', 'capturing', 'uploading', 'verifying'].reduce((n, p) => n + (phases.get(p) ?? 0), 0);
  const families: MetricFamily[] = [
    { name: 'booty_runs_total', type: 'counter', help: 'Agent runs that ended, by action (deploy, capture, wipe, ...) and result (ok, failed).',
      samples: totals.filter((t) => t.result !== 'unfinished').map((t) => ({ labels: { action: t.action, result: t.result }, value: t.count })) },
    { name: 'booty_run_bytes_total', type: 'counter', help: 'Uncompressed bytes written (deploy) or read (capture) by runs that ended.',
      samples: mergeBy(totals, (t) => t.action, (t) => t.bytes).map(([action, v]) => ({ labels: { action }, value: v })) },
    { name: 'booty_run_duration_seconds', type: 'histogram', help: 'Duration of runs that reported a result, by action.',
      samples: [...new Set(durations.map((d) => d.action))].sort().flatMap((action) =>
        histogramSamples(durations.filter((d) => d.action === action).map((d) => d.seconds), [10, 30, 60, 120, 300, 600, 1800, 3600], { action })) },
    { name: 'booty_machines', type: 'gauge', help: 'Machines by their last reported phase.',
      samples: [...phases].sort().map(([phase, n]) => ({ labels: { phase }, value: n })) },
    { name: 'booty_active_transfers', type: 'gauge', help: 'Transfers in progress: agents writing/reading disks, image downloads and uploads being served.',
      samples: [{ labels: { kind: 'agent' }, value: active }, { labels: { kind: 'download' }, value: counters.activeDownloads }, { labels: { kind: 'upload' }, value: counters.activeUploads }] },
    { name: 'booty_image_bytes_sent_total', type: 'counter', help: 'Image bytes sent to clients since the server started.', samples: [{ value: counters.imageBytesSent }] },
    { name: 'booty_image_bytes_received_total', type: 'counter', help: 'Image bytes received in uploads since the server started.', samples: [{ value: counters.imageBytesReceived }] },
    { name: 'booty_http_requests_total', type: 'counter', help: 'HTTP requests answered since the server started, by status class.',
      samples: [...counters.requests].sort().map(([code, n]) => ({ labels: { code }, value: n })) },
    { name: 'booty_dashboard_streams', type: 'gauge', help: 'Open live-update streams (dashboards).', samples: [{ value: hub?.clients ?? 0 }] },
  ];
  return renderMetrics(families);
}

export const metricsRoutes: AppRoute[] = [
  { method: 'GET', path: '/metrics', access: 'metrics', handle: async ({ app, res }) => sendText(res, await metricsText(app), 'text/plain; version=0.0.4; charset=utf-8') },
];
