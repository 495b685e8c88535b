// Prometheus text exposition (format 0.0.4), written by hand: a few families, no client library.
// Run figures come from the database at scrape time (so they survive restarts); HTTP and
// transfer figures are counted in memory since the process started.

export interface MetricSample { labels?: Record<string, string>; value: number }
export interface MetricFamily { name: string; help: string; type: 'counter' | 'gauge' | 'histogram'; samples: MetricSample[] }

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

export function renderMetrics(families: MetricFamily[]): string {
  const out: string[] = [];
  for (const f of families) {
    out.push(`# HELP ${f.name} ${f.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`);
    out.push(`# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) {
      const labels = Object.entries(s.labels ?? {});
      const name = f.type === 'histogram' ? (s.labels?.le !== undefined ? `${f.name}_bucket` : s.labels?.__sum === undefined ? `${f.name}_count` : `${f.name}_sum`) : f.name;
      const shown = labels.filter(([k]) => k !== '__sum' && k !== '__count');
      out.push(shown.length === 0 ? `${name} ${formatValue(s.value)}` : `${name}{${shown.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}} ${formatValue(s.value)}`);
    }
  }
  return out.join('\n') + '\n';
}

/** Samples of a histogram family from raw observations: cumulative buckets, _sum and _count. */
export function histogramSamples(values: number[], buckets: number[], labels: Record<string, string> = {}): MetricSample[] {
  const out: MetricSample[] = [];
  for (const le of [...buckets, Infinity]) {
    out.push({ labels: { ...labels, le: le === Infinity ? '+Inf' : String(le) }, value: values.filter((v) => v <= le).length });
  }
  out.push({ labels: { ...labels, __sum: '1' }, value: values.reduce((a, b) => a + b, 0) });
  out.push({ labels: { ...labels, __count: '1' }, value: values.length });
  return out;
}

/** In-memory counters of this process. */
export class ServerCounters {
  readonly requests = new Map<string, number>();
  imageBytesSent = 0;
  imageBytesReceived = 0;
  activeDownloads = 0;
  activeUploads = 0;
  streamClients = 0;

  countRequest(status: number): void {
    const k = `${Math.floor(status / 100)}xx`;
    this.requests.set(k, (this.requests.get(k) ?? 0) + 1);
  }
}
