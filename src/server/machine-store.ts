// Machines: their actions (files an operator can edit) and what their agents last reported
// (state that survives a restart).
//
// Layout:
//   DIR/machines/<aa-bb-cc-dd-ee-ff>.json   the machine's action (booty's, BOOTy's or the combined form)
//   DIR/default.json                        optional action for MACs without their own file
//   DIR/state/<mac>.json                    last phase, progress and result (rewritten atomically)
//   DIR/state/<mac>.log                     every phase, log line and result, appended

import { appendFile, mkdir, open, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Action } from '../config/action.ts';
import type { AgentEvent, Phase } from '../config/report.ts';
import { parseAction, summarizeAction } from '../config/parse.ts';
import { BootyError, isBootyError } from '../util/errors.ts';
import { normalizeMac } from './names.ts';

export interface MachineState {
  mac: string;
  firstSeen?: string;
  lastSeen?: string;
  phase?: Phase;
  phaseDetail?: string;
  phaseSince?: string;
  progress?: Extract<AgentEvent, { type: 'progress' }>;
  result?: Extract<AgentEvent, { type: 'result' }>;
  events: number;
}

export interface ActionLookup {
  source: 'machine' | 'default';
  file: string;
  action: Action;
}

const RECENT_LINES = 200;
const LOG_TAIL_BYTES = 64 * 1024;
const SAVE_DELAY_MS = 1000;

/** One log line per event that an operator wants to read later; progress is state, not log. */
export function logLineFor(e: AgentEvent): string | undefined {
  const oneLine = (s: string) => s.replace(/[\r\n]+/g, ' ⏎ ');
  switch (e.type) {
    case 'phase': return `${e.time} phase ${e.phase}${e.detail === undefined ? '' : `: ${oneLine(e.detail)}`}`;
    case 'log': return `${e.time} ${e.level} ${oneLine(e.message)}`;
    case 'result': {
      const what = e.ok ? 'ok' : 'FAILED';
      const extra = [e.code, e.message, e.diskState === undefined ? undefined : `disk: ${e.diskState}`, e.bytes === undefined ? undefined : `${e.bytes} bytes`, e.sha256 === undefined ? undefined : `sha256 ${e.sha256}`]
        .filter((x) => x !== undefined).map((x) => oneLine(String(x)));
      return `${e.time} result ${e.action} ${what}${extra.length > 0 ? ': ' + extra.join('; ') : ''}`;
    }
    case 'progress': return undefined;
  }
}

export class MachineStore {
  readonly dataDir: string;
  readonly machinesDir: string;
  readonly stateDir: string;
  readonly defaultFile: string;
  readonly #states = new Map<string, MachineState>();
  readonly #recent = new Map<string, string[]>();
  readonly #dirty = new Set<string>();
  readonly #saving = new Map<string, Promise<void>>();
  #timer: NodeJS.Timeout | undefined;

  constructor(dataDir: string) {
    this.dataDir = dataDir;
    this.machinesDir = join(dataDir, 'machines');
    this.stateDir = join(dataDir, 'state');
    this.defaultFile = join(dataDir, 'default.json');
  }

  async init(): Promise<void> {
    await mkdir(this.machinesDir, { recursive: true });
    await mkdir(this.stateDir, { recursive: true });
    for (const f of await readdir(this.stateDir)) {
      const mac = f.endsWith('.json') ? normalizeMac(f.slice(0, -5)) : undefined;
      if (mac === undefined) continue;
      try {
        const s = JSON.parse(await readFile(join(this.stateDir, f), 'utf8')) as MachineState;
        this.#states.set(mac, { ...s, mac });
      } catch { /* a damaged state file only loses history */ }
    }
  }

  actionFile(mac: string): string { return join(this.machinesDir, `${mac}.json`); }

  /**
   * The action for `mac`: its own file, else DIR/default.json, else undefined. A file that does
   * not validate throws BootyError (stage 'config') naming the file and the field, so a broken
   * action is never served.
   */
  async actionFor(mac: string): Promise<ActionLookup | undefined> {
    for (const [source, file] of [['machine', this.actionFile(mac)], ['default', this.defaultFile]] as const) {
      let text: string;
      try { text = await readFile(file, 'utf8'); } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw e;
      }
      try {
        return { source, file, action: parseAction(text) };
      } catch (e) {
        if (!isBootyError(e)) throw e;
        throw new BootyError({ stage: 'config', code: e.code, message: `${file}: ${e.message}`, hint: 'fix the file; the server will not serve a broken action' });
      }
    }
    return undefined;
  }

  /** Validate and store an action (normalized booty form). Throws BootyError naming the field. */
  async setAction(mac: string, input: unknown): Promise<Action> {
    const action = parseAction(input);
    const file = this.actionFile(mac);
    const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    await writeFile(tmp, JSON.stringify(action, null, 2) + '\n');
    await rename(tmp, file);
    return action;
  }

  async deleteAction(mac: string): Promise<boolean> {
    try { await unlink(this.actionFile(mac)); return true; } catch { return false; }
  }

  async #macsWithActions(): Promise<string[]> {
    const out: string[] = [];
    for (const f of await readdir(this.machinesDir)) {
      const mac = f.endsWith('.json') ? normalizeMac(f.slice(0, -5)) : undefined;
      if (mac !== undefined) out.push(mac);
    }
    return out;
  }

  /** Apply a batch of events from one agent: state in memory (saved soon), log lines appended now. */
  async record(mac: string, events: AgentEvent[]): Promise<MachineState> {
    const now = new Date().toISOString();
    const s = this.#states.get(mac) ?? { mac, firstSeen: now, events: 0 };
    const lines: string[] = [];
    let important = false;
    for (const e of events) {
      s.events++;
      switch (e.type) {
        case 'phase':
          if (s.phase !== e.phase) s.phaseSince = e.time;
          s.phase = e.phase;
          s.phaseDetail = e.detail;
          // a new run starts: the previous result and progress no longer describe it
          if (e.phase === 'booting') { s.result = undefined; s.progress = undefined; }
          important = true;
          break;
        case 'progress':
          s.progress = e;
          break;
        case 'result':
          s.result = e;
          s.phase = e.ok ? 'done' : 'failed';
          s.phaseSince = e.time;
          important = true;
          break;
        case 'log':
          break;
      }
      const line = logLineFor(e);
      if (line !== undefined) lines.push(line);
    }
    s.lastSeen = now;
    this.#states.set(mac, s);
    if (lines.length > 0) {
      const recent = await this.#recentOf(mac);
      recent.push(...lines);
      if (recent.length > RECENT_LINES) recent.splice(0, recent.length - RECENT_LINES);
      await appendFile(join(this.stateDir, `${mac}.log`), lines.join('\n') + '\n');
    }
    this.#dirty.add(mac);
    if (important) await this.#save(mac);
    else this.#timer ??= setTimeout(() => { this.#timer = undefined; void this.flush(); }, SAVE_DELAY_MS);
    return s;
  }

  async #recentOf(mac: string): Promise<string[]> {
    let r = this.#recent.get(mac);
    if (r !== undefined) return r;
    r = [];
    try {
      const fh = await open(join(this.stateDir, `${mac}.log`), 'r');
      try {
        const { size } = await fh.stat();
        const len = Math.min(size, LOG_TAIL_BYTES);
        const buf = Buffer.alloc(len);
        await fh.read(buf, 0, len, size - len);
        const lines = buf.toString('utf8').split('\n').filter((l) => l !== '');
        if (len < size) lines.shift(); // probably cut in the middle
        r = lines.slice(-RECENT_LINES);
      } finally { await fh.close(); }
    } catch { /* no log yet */ }
    this.#recent.set(mac, r);
    return r;
  }

  /** Write a machine's state file; writes for one machine are serialized so the last one wins. */
  #save(mac: string): Promise<void> {
    this.#dirty.delete(mac);
    const prev = this.#saving.get(mac) ?? Promise.resolve();
    const next = prev.then(async () => {
      const s = this.#states.get(mac);
      if (s === undefined) return;
      const file = join(this.stateDir, `${mac}.json`);
      const tmp = `${file}.tmp`;
      await writeFile(tmp, JSON.stringify(s) + '\n');
      await rename(tmp, file);
    }).catch((e: unknown) => { process.stderr.write(`booty server: warn: could not save state of ${mac}: ${(e as Error).message}\n`); });
    this.#saving.set(mac, next);
    return next;
  }

  async flush(): Promise<void> {
    if (this.#timer !== undefined) { clearTimeout(this.#timer); this.#timer = undefined; }
    await Promise.all([...this.#dirty].map((m) => this.#save(m)));
    await Promise.all(this.#saving.values());
  }

  async #summaryOf(mac: string, withAction: Set<string>): Promise<Record<string, unknown>> {
    const s = this.#states.get(mac) ?? { mac, events: 0 };
    let action: string | undefined;
    let actionError: string | undefined;
    let actionSource: string | undefined;
    try {
      const a = await this.actionFor(mac);
      if (a !== undefined) { action = summarizeAction(a.action); actionSource = a.source; }
    } catch (e) { actionError = (e as Error).message; }
    return { ...s, hasOwnAction: withAction.has(mac), action, actionSource, actionError };
  }

  /** Every machine that has an action file or has reported, with its last state. */
  async list(): Promise<Record<string, unknown>[]> {
    const withAction = new Set(await this.#macsWithActions());
    const macs = [...new Set([...withAction, ...this.#states.keys()])].sort();
    return Promise.all(macs.map((m) => this.#summaryOf(m, withAction)));
  }

  async get(mac: string, lines = 100): Promise<Record<string, unknown> | undefined> {
    const withAction = new Set(await this.#macsWithActions());
    if (!withAction.has(mac) && !this.#states.has(mac)) return undefined;
    const recent = await this.#recentOf(mac);
    return { ...(await this.#summaryOf(mac, withAction)), log: recent.slice(-lines) };
  }
}
