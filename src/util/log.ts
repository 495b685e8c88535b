// Logging for the agent and the CLI: every line goes to each sink (console, /tmp/booty.log,
// the server's log endpoint). Plain strings only: on a serial console util.inspect colours
// numbers, and escape codes garble 3am logs.

export type Level = 'debug' | 'info' | 'warn' | 'error';
export type Sink = (level: Level, message: string, time: Date) => void;

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
  /** add a sink (e.g. a file or the server reporter); returns a function that removes it */
  addSink(sink: Sink): () => void;
}

const order: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export function createLogger(opts: { level?: Level; sinks?: Sink[] } = {}): Logger {
  const sinks = new Set<Sink>(opts.sinks ?? []);
  const min = order[opts.level ?? 'info'];
  const emit = (level: Level, message: string) => {
    const time = new Date();
    for (const s of sinks) {
      if (order[level] < min && s !== fileSinkMarker.get(s)) continue;
      try { s(level, message, time); } catch { /* a failing sink must never break the caller */ }
    }
  };
  return {
    debug: (m) => emit('debug', m),
    info: (m) => emit('info', m),
    warn: (m) => emit('warn', m),
    error: (m) => emit('error', m),
    addSink(s) { sinks.add(s); return () => { sinks.delete(s); }; },
  };
}

// Sinks marked here receive every level (the log file keeps debug lines even when the console
// shows only info and above).
const fileSinkMarker = new WeakMap<Sink, Sink>();
export function allLevels(sink: Sink): Sink { fileSinkMarker.set(sink, sink); return sink; }

export function stderrSink(prefix = 'booty'): Sink {
  return (level, message) => {
    const tag = level === 'info' ? '' : `${level}: `;
    process.stderr.write(`${prefix}: ${tag}${message}\n`);
  };
}

/** A logger that discards everything (library default). */
export const silentLogger: Logger = createLogger();
