// Where the agent's log lines go: the console (plain text, stamped with seconds since the
// kernel started, like the kernel's own lines), /tmp/booty.log (every level, once /tmp exists:
// lines from before are written first), and a ring of recent lines for the failure report and
// for replaying to the server once the network is up.
import fs from 'node:fs';
import { allLevels, createLogger, type Level, type Logger, type Sink } from '../util/log.ts';

export const logPath = '/tmp/booty.log';

export interface LogLine { level: Level; time: Date; uptime: number; message: string }

export interface AgentLog {
  log: Logger;
  /** set once /proc is mounted: stamps become seconds since the kernel started */
  calibrate(procUptimeText: string): void;
  /** open /tmp/booty.log and write everything logged so far into it */
  openFile(path?: string): void;
  closeFile(): void;
  setConsoleLevel(level: Level): void;
  /** the last `n` lines, formatted as in the log file */
  tail(n: number): string[];
  /** every line kept so far (at most `ringSize`), oldest first */
  lines(): LogLine[];
}

const levelOrder: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export function formatStamp(uptime: number): string {
  return `[${uptime.toFixed(3).padStart(9)}]`;
}

export function formatLine(l: LogLine): string {
  const tag = l.level === 'info' ? '' : `${l.level}: `;
  return `${formatStamp(l.uptime)} booty: ${tag}${l.message}`;
}

export function createAgentLog(opts: { write?: (s: string) => void; ringSize?: number } = {}): AgentLog {
  const write = opts.write ?? ((s: string) => { process.stdout.write(s); });
  const ringSize = opts.ringSize ?? 5000;
  const ring: LogLine[] = [];
  let offsetS = 0;
  let consoleMin = levelOrder.info;
  let fd: number | undefined;

  const toFile = (l: LogLine) => {
    if (fd === undefined) return;
    try { fs.writeSync(fd, formatLine(l) + '\n'); } catch { /* a full /tmp must not stop the agent */ }
  };
  const sink: Sink = allLevels((level, message, time) => {
    const l: LogLine = { level, time, uptime: offsetS + performance.now() / 1000, message };
    ring.push(l);
    if (ring.length > ringSize) ring.shift();
    if (levelOrder[level] >= consoleMin) write(formatLine(l) + '\n');
    toFile(l);
  });
  const log = createLogger({ level: 'debug', sinks: [sink] });

  return {
    log,
    calibrate(text) {
      const up = Number.parseFloat(text);
      if (!Number.isFinite(up)) return;
      const newOffset = up - performance.now() / 1000;
      for (const l of ring) l.uptime += newOffset - offsetS;
      offsetS = newOffset;
    },
    openFile(path = logPath) {
      if (fd !== undefined) return;
      fd = fs.openSync(path, 'a', 0o644);
      for (const l of ring) toFile(l);
    },
    closeFile() {
      if (fd === undefined) return;
      try { fs.closeSync(fd); } catch { /* already gone */ }
      fd = undefined;
    },
    setConsoleLevel(level) { consoleMin = levelOrder[level]; },
    tail(n) { return ring.slice(-n).map(formatLine); },
    lines() { return ring.slice(); },
  };
}
