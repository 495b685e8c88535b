// booty server's own log: one record per request or event, as JSON lines (for journald, Loki,
// jq) or, on a terminal, as the readable line an operator scans:
//   booty server: GET /images/u.img.gz status=206 bytes=1048576 ms=3 remote=10.0.0.7 range=0-1048575
// `auto` picks human on a TTY and JSON otherwise.

export type LogFormat = 'json' | 'human' | 'auto';
export type LogFields = Record<string, string | number | boolean | undefined>;

export interface ServerLog {
  /** a request: `msg` is "METHOD /path", fields follow in order */
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

function humanValue(v: string | number | boolean): string {
  const s = String(v);
  return /^[^\s"=]*$/.test(s) && s !== '' ? s : JSON.stringify(s);
}

export function formatHuman(level: string, msg: string, fields: LogFields = {}): string {
  const parts = [`booty server: ${level === 'info' ? '' : `${level}: `}${msg}`];
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    parts.push(v === true ? k : `${k}=${humanValue(v)}`);
  }
  return parts.join(' ');
}

export function formatJson(level: string, msg: string, fields: LogFields = {}, time = new Date()): string {
  const rec: Record<string, unknown> = { time: time.toISOString(), level, msg };
  for (const [k, v] of Object.entries(fields)) if (v !== undefined && !(k in rec)) rec[k] = v;
  return JSON.stringify(rec);
}

export function createServerLog(format: LogFormat = 'auto', write: (line: string) => void = (l) => process.stderr.write(l + '\n'),
  isTty: boolean = process.stderr.isTTY === true): ServerLog {
  const human = format === 'human' || (format === 'auto' && isTty);
  const emit = (level: string) => (msg: string, fields?: LogFields) => {
    try { write(human ? formatHuman(level, msg, fields) : formatJson(level, msg, fields)); } catch { /* logging never takes the server down */ }
  };
  return { info: emit('info'), warn: emit('warn'), error: emit('error') };
}
