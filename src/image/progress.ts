// Progress of a transfer: counters updated by the data path (cheap: two additions per chunk), a
// smoothed rate, and two renderings: a one-line bar redrawn in place on a TTY, and a plain line
// every few seconds for serial consoles and log files. The same snapshots go to onProgress for
// the server. Units are decimal (MB = 10^6 bytes, MB/s) like dd and the benchmark table.

export interface ProgressSnapshot {
  /** uncompressed image bytes written (deploy) or read (capture) */
  bytes: number;
  /** total uncompressed bytes, when known */
  total?: number;
  /** compressed bytes moved over the network */
  wireBytes: number;
  /** bytes per second (uncompressed), smoothed over the last few seconds */
  rate: number;
  etaSeconds?: number;
  /** seconds since the transfer started */
  elapsed: number;
  /** connections that continued the download after a network fault (deploy) */
  resumes?: number;
  /** times the deploy started over from byte 0 (the image changed on the server) */
  restarts?: number;
}

/** Counters plus a rate smoothed over a sliding window of samples. */
export class ProgressTracker {
  bytes = 0;
  wireBytes = 0;
  total: number | undefined;
  resumes = 0;
  restarts = 0;
  private readonly start: number;
  private readonly samples: Array<{ t: number; bytes: number }> = [];
  private readonly windowMs: number;
  private readonly now: () => number;

  constructor(opts: { total?: number; windowMs?: number; now?: () => number } = {}) {
    this.total = opts.total;
    this.windowMs = opts.windowMs ?? 5000;
    this.now = opts.now ?? (() => performance.now());
    this.start = this.now();
    this.samples.push({ t: this.start, bytes: 0 });
  }

  snapshot(): ProgressSnapshot {
    const t = this.now();
    this.samples.push({ t, bytes: this.bytes });
    while (this.samples.length > 2 && t - this.samples[1].t >= this.windowMs) this.samples.shift();
    const first = this.samples[0];
    const dt = (t - first.t) / 1000;
    const rate = dt > 0 ? (this.bytes - first.bytes) / dt : 0;
    const snap: ProgressSnapshot = { bytes: this.bytes, wireBytes: this.wireBytes, rate, elapsed: (t - this.start) / 1000 };
    if (this.resumes > 0) snap.resumes = this.resumes;
    if (this.restarts > 0) snap.restarts = this.restarts;
    if (this.total !== undefined) {
      snap.total = this.total;
      if (rate > 0 && this.total >= this.bytes) snap.etaSeconds = (this.total - this.bytes) / rate;
    }
    return snap;
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  if (i === 0) return `${n} B`;
  return `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[i]}`;
}

export function formatRate(bytesPerSecond: number): string {
  return `${(bytesPerSecond / 1e6).toFixed(1)} MB/s`;
}

/** 75 -> "1:15", 3725 -> "1:02:05". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** The plain line: `1.23 GB / 4.29 GB (28%) 312.4 MB/s ETA 0:10, wire 210 MB`. */
export function formatProgressLine(p: ProgressSnapshot): string {
  const parts: string[] = [];
  if (p.total !== undefined && p.total > 0) {
    const pct = Math.min(100, Math.floor((p.bytes / p.total) * 100));
    parts.push(`${formatBytes(p.bytes)} / ${formatBytes(p.total)} (${pct}%)`);
  } else {
    parts.push(formatBytes(p.bytes));
  }
  parts.push(formatRate(p.rate));
  if (p.etaSeconds !== undefined) parts.push(`ETA ${formatDuration(p.etaSeconds)}`);
  let line = parts.join(' ');
  if (p.wireBytes > 0 && p.wireBytes !== p.bytes) line += `, wire ${formatBytes(p.wireBytes)}`;
  if (p.resumes !== undefined && p.resumes > 0) line += `, ${p.resumes} resume${p.resumes === 1 ? '' : 's'}`;
  if (p.restarts !== undefined && p.restarts > 0) line += `, ${p.restarts} restart${p.restarts === 1 ? '' : 's'}`;
  return line;
}

/** The TTY bar: `[#######.............]` + the plain line, fitted to `width` columns. */
export function formatProgressBar(p: ProgressSnapshot, width = 80): string {
  const text = formatProgressLine(p);
  const barWidth = Math.max(0, Math.min(30, width - text.length - 4));
  if (p.total === undefined || p.total <= 0 || barWidth < 10) return text.slice(0, width - 1);
  const filled = Math.min(barWidth, Math.floor((p.bytes / p.total) * barWidth));
  return `[${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}] ${text}`.slice(0, width - 1);
}

/**
 * Calls `cb` with a snapshot of `tracker` every `intervalMs` until the returned stop() is called;
 * stop() delivers one last snapshot (the final figures).
 */
export function startProgressTicker(tracker: ProgressTracker, intervalMs: number, cb: (p: ProgressSnapshot) => void): () => void {
  const safe = (p: ProgressSnapshot) => {
    try { cb(p); } catch { /* a progress consumer must never break the transfer */ }
  };
  const timer = setInterval(() => safe(tracker.snapshot()), intervalMs);
  timer.unref();
  let stopped = false;
  return () => {
    if (stopped) return;
    stopped = true;
    clearInterval(timer);
    safe(tracker.snapshot());
  };
}

export interface ProgressPrinter {
  /** a new snapshot: drawn now on a TTY, at most every lineIntervalMs otherwise */
  update(p: ProgressSnapshot): void;
  /** the final snapshot: always printed, ends the bar's line */
  done(p: ProgressSnapshot): void;
}

/**
 * Renders snapshots on `out`: on a TTY a bar redrawn in place (`\r`), otherwise a plain line at
 * most every `lineIntervalMs` (5 s), so serial consoles and log files get a readable record.
 */
export function createProgressPrinter(opts: {
  out?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  tty?: boolean;
  prefix?: string;
  lineIntervalMs?: number;
  now?: () => number;
} = {}): ProgressPrinter {
  const out = opts.out ?? process.stderr;
  const tty = opts.tty ?? out.isTTY === true;
  const prefix = opts.prefix ?? '';
  const every = opts.lineIntervalMs ?? 5000;
  const now = opts.now ?? (() => performance.now());
  let lastLine = now();
  let barShown = false;
  const draw = (p: ProgressSnapshot, final: boolean) => {
    if (tty) {
      const width = (out.columns ?? 80) - prefix.length;
      out.write(`\r${prefix}${formatProgressBar(p, width)}\x1b[K${final ? '\n' : ''}`);
      barShown = !final;
      return;
    }
    out.write(`${prefix}${formatProgressLine(p)}\n`);
    lastLine = now();
  };
  return {
    update(p) {
      if (tty || now() - lastLine >= every) draw(p, false);
    },
    done(p) {
      if (tty || barShown || p.bytes > 0) draw(p, true);
    },
  };
}
