// `--report URL` for `booty deploy` and `booty capture`: forwards phases, throttled progress,
// log lines and the result to a booty server as AgentEvents through the reporter client
// (src/report/client.ts). Reporting never fails or slows the transfer.
import os from 'node:os';
import type { AgentEvent, Phase } from '../config/report.ts';
import type { Logger } from '../util/log.ts';
import type { ProgressSnapshot } from '../image/progress.ts';
import { createReporter, type Reporter as ReporterClient } from '../report/client.ts';

export interface Reporter {
  phase(phase: Phase, detail?: string): void;
  /** throttled to one event every 2 s */
  progress(phase: Phase, p: ProgressSnapshot): void;
  result(r: { ok: boolean; code?: string; message?: string; diskState?: string; bytes?: number; seconds?: number; sha256?: string; resumes?: number; restarts?: number }): void;
  close(): Promise<void>;
}

/** The MAC of the first non-internal interface (what the agent would report as). */
export function defaultMac(): string | undefined {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (!a.internal && a.mac !== '00:00:00:00:00:00') return a.mac;
  }
  return undefined;
}

export function openReporter(o: { server: string; mac?: string; token?: string; log: Logger; action?: string }): Reporter {
  const mac = o.mac ?? defaultMac();
  let client: ReporterClient | undefined;
  if (mac === undefined) {
    o.log.warn('--report: no MAC address found; give --mac. Not reporting.');
  } else {
    client = createReporter({ server: o.server, mac, token: o.token, log: o.log });
    o.log.addSink(client.sink);
  }
  const now = () => new Date().toISOString();
  const send = (e: AgentEvent) => { try { client?.event(e); } catch { /* never fail the transfer */ } };
  let lastProgress = 0;
  return {
    phase(phase, detail) { send({ type: 'phase', time: now(), phase, ...(detail !== undefined ? { detail } : {}) }); },
    progress(phase, p) {
      const t = performance.now();
      if (t - lastProgress < 2000) return;
      lastProgress = t;
      send({ type: 'progress', time: now(), phase, bytes: p.bytes, total: p.total, wireBytes: p.wireBytes, rate: p.rate, etaSeconds: p.etaSeconds, resumes: p.resumes, restarts: p.restarts });
    },
    result(r) {
      send({ type: 'phase', time: now(), phase: r.ok ? 'done' : 'failed' });
      send({ type: 'result', time: now(), action: o.action ?? 'deploy', ...r });
    },
    async close() { await client?.close(10_000); },
  };
}
