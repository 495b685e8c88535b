// The action source: what each machine should do. A machine's own action (from the API/CLI or
// a file an operator edits), default.json for the others, and the one-shot rule.
//
//   DIR/machines/<aa-bb-cc-dd-ee-ff>.json   the machine's action (booty's, BOOTy's or combined form)
//   DIR/default.json                        optional action for MACs without one of their own
//
// Which wins: a MAC that has a file is managed by the file. The file is imported when the server
// starts, on reload (SIGHUP, POST /api/reload), and whenever an agent's fetch finds the file
// changed (a stat per fetch), so an edit applies at the next boot. API/CLI changes to such a
// machine are written into its file, so file and database never disagree. MACs without a file
// are managed through the API/CLI only (the database holds their action).
//
// One-shot: after a successful deploy, capture or wipe, the machine's next fetch gets `none`
// (boot from disk) instead of running the action again, unless the machine is persistent.
// Changing the action (API, CLI or an edited file) or `rearm` makes it run again.
//
// Persisted in the inventory columns of the `machines` table (the run recorder owns `state`),
// through the state store (src/server/store/): nothing is cached here, so every replica on one
// PostgreSQL reads the same machine, and a one-shot action consumed through one replica is never
// served again by another.

import { mkdir, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Action } from '../../config/action.ts';
import type { AgentEvent } from '../../config/report.ts';
import { parseAction, summarizeAction } from '../../config/parse.ts';
import { BootyError, isBootyError } from '../../util/errors.ts';
import { HttpError } from '../http/http-error.ts';
import { normalizeMac } from '../names.ts';
import type { MachineRow } from '../store/machine-rows.ts';
import type { StateStore, StoreTx } from '../store/state-store.ts';
import type { MachineChanges } from './changes.ts';

export interface ActionLookup {
  /** machine: its own; default: DIR/default.json; server: --default-action (inspect unless set) */
  source: 'machine' | 'default' | 'server';
  file: string;
  action: Action;
}

/** What an agent gets now: the action, or `none` because a one-shot action already ran. */
export interface ServedAction extends ActionLookup {
  /** set when the configured action was replaced by `none` (one-shot consumed at this time) */
  oneShotDone?: string;
  configured: Action;
}

export interface MachineSettings {
  /** the action (any accepted form); null removes the machine's own action */
  action?: unknown;
  persistent?: boolean;
  name?: string | null;
  /** run the (one-shot) action again */
  rearm?: boolean;
}

/** A machine's entry in the inventory (one row of `machines`, without its reported state). */
export interface InventoryRecord {
  mac: string;
  name?: string;
  action?: Action;
  managedBy?: 'file' | 'api';
  actionError?: string;
  fileSig?: string;
  persistent: boolean;
  oneShotDone?: string;
  created: string;
  updated: string;
}

/** results that consume a one-shot action */
const ONE_SHOT_ACTIONS = new Set(['deploy', 'deploy-rootfs', 'capture', 'wipe']);

function fileSigOf(st: { size: bigint; mtimeNs: bigint; ino: bigint }): string {
  return `${st.size}:${st.mtimeNs}:${st.ino}`;
}

async function sigOf(file: string): Promise<string | undefined> {
  try { return fileSigOf(await stat(file, { bigint: true })); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

async function writeAtomically(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  await writeFile(tmp, text);
  await rename(tmp, file);
}

function noneInsteadOf(a: Action): Action {
  return { action: 'none', after: a.after, onError: a.onError, wipeOnError: false, dryRun: false };
}

/** A machine's action file as it was before a change in progress (undefined: there was none). */
interface FileUndo { file: string; text: string | undefined }

export class ActionSource {
  readonly machinesDir: string;
  readonly defaultFile: string;
  readonly #store: StateStore;
  readonly #changes: MachineChanges;
  #default: { sig?: string; action?: Action; error?: string } = {};
  readonly #serverDefault: Action | undefined;

  /** `serverDefault`: what a machine without its own action and without default.json gets
   *  (--default-action; undefined: nothing, a 404) */
  constructor(dataDir: string, store: StateStore, changes: MachineChanges, serverDefault?: Action) {
    this.machinesDir = join(dataDir, 'machines');
    this.defaultFile = join(dataDir, 'default.json');
    this.#store = store;
    this.#changes = changes;
    this.#serverDefault = serverDefault;
  }

  async init(): Promise<void> {
    await mkdir(this.machinesDir, { recursive: true });
  }

  actionFile(mac: string): string { return join(this.machinesDir, `${mac}.json`); }

  async macs(): Promise<string[]> { return (await this.records()).map((r) => r.mac); }

  /** `db`: a transaction of the store to read in (default: the store itself) */
  async record(mac: string, db: StoreTx = this.#store): Promise<InventoryRecord | undefined> {
    const r = await db.machines.get(mac);
    return r === undefined ? undefined : recordOf(r);
  }

  /** Every machine's entry (rows that only hold a reported state included). */
  async records(): Promise<InventoryRecord[]> { return (await this.#store.machines.list()).map(recordOf); }

  static #fresh(mac: string): InventoryRecord {
    const now = new Date().toISOString();
    return { mac, persistent: false, created: now, updated: now };
  }

  async #save(rec: InventoryRecord, db: StoreTx = this.#store): Promise<void> {
    await db.machines.save({
      mac: rec.mac, name: rec.name, action: rec.action === undefined ? undefined : JSON.stringify(rec.action),
      managedBy: rec.managedBy, actionError: rec.actionError, fileSig: rec.fileSig,
      persistent: rec.persistent, created: rec.created, updated: rec.updated,
    });
  }

  // ---- declarative files ----------------------------------------------------------------------

  /** Import DIR/machines/<mac>.json when it changed since the last import (or vanished). */
  async syncFile(mac: string, db: StoreTx = this.#store): Promise<boolean> {
    const file = this.actionFile(mac);
    const sig = await sigOf(file);
    const rec = await this.record(mac, db);
    if (sig === undefined) {
      if (rec === undefined || rec.managedBy !== 'file') return false;
      // the file was removed: so is the machine's own action (its history stays)
      Object.assign(rec, { action: undefined, actionError: undefined, managedBy: undefined, fileSig: undefined, updated: new Date().toISOString() });
      await this.#save(rec, db);
      return true;
    }
    if (rec?.fileSig === sig) return false;
    let text: string;
    try { text = await readFile(file, 'utf8'); } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw e;
    }
    const r = rec ?? ActionSource.#fresh(mac);
    try {
      r.action = parseAction(text);
      r.actionError = undefined;
    } catch (e) {
      if (!isBootyError(e)) throw e;
      r.action = undefined;
      r.actionError = `${file}: ${e.message}`;
    }
    r.managedBy = 'file';
    r.fileSig = sig;
    r.updated = new Date().toISOString();
    await this.#save(r, db);
    await db.machines.rearm(mac, r.updated); // an edited file means: run it
    return true;
  }

  async #syncDefault(): Promise<void> {
    const sig = await sigOf(this.defaultFile);
    // a removed file clears the default also after reload() forgot the signature
    if (sig === undefined) { this.#default = {}; return; }
    if (sig === this.#default.sig) return;
    const text = await readFile(this.defaultFile, 'utf8').catch(() => undefined);
    if (text === undefined) { this.#default = {}; return; }
    try { this.#default = { sig, action: parseAction(text) }; } catch (e) {
      if (!isBootyError(e)) throw e;
      this.#default = { sig, error: `${this.defaultFile}: ${e.message}` };
    }
  }

  /** Re-read every action file and default.json; returns what changed. */
  async reload(): Promise<{ changed: string[]; errors: string[] }> {
    const macs = new Set<string>();
    for (const f of await readdir(this.machinesDir)) {
      const mac = f.endsWith('.json') ? normalizeMac(f.slice(0, -5)) : undefined;
      if (mac !== undefined && f === `${mac}.json`) macs.add(mac);
    }
    for (const r of await this.records()) if (r.managedBy === 'file') macs.add(r.mac);
    const changed: string[] = [];
    for (const mac of [...macs].sort()) {
      if (await this.syncFile(mac)) { changed.push(mac); this.#changes.emit({ type: 'machine', mac }); }
    }
    this.#default.sig = undefined;
    await this.#syncDefault();
    const errors = (await this.records()).filter((r) => r.actionError !== undefined).map((r) => r.actionError as string);
    if (this.#default.error !== undefined) errors.push(this.#default.error);
    return { changed, errors };
  }

  // ---- actions ----------------------------------------------------------------------------------

  /**
   * The configured action for `mac`: its own, else default.json, else undefined. An action file
   * that does not validate throws BootyError (stage 'config') naming the file and the field, so
   * a broken action is never served.
   */
  async actionFor(mac: string): Promise<ActionLookup | undefined> {
    await this.syncFile(mac);
    return this.#lookup(mac, await this.record(mac));
  }

  async #lookup(mac: string, rec: InventoryRecord | undefined): Promise<ActionLookup | undefined> {
    const broken = (message: string) => new BootyError({ stage: 'config', code: 'CONFIG_FIELD', message, hint: 'fix the file; the server will not serve a broken action' });
    if (rec?.actionError !== undefined) throw broken(rec.actionError);
    if (rec?.action !== undefined) return { source: 'machine', file: this.actionFile(mac), action: rec.action };
    await this.#syncDefault();
    if (this.#default.error !== undefined) throw broken(this.#default.error);
    if (this.#default.action !== undefined) return { source: 'default', file: this.defaultFile, action: this.#default.action };
    if (this.#serverDefault !== undefined) return { source: 'server', file: '--default-action', action: this.#serverDefault };
    return undefined;
  }

  /** What an agent fetching its action gets now (one-shot rule applied). */
  async servedActionFor(mac: string): Promise<ServedAction | undefined> {
    await this.syncFile(mac);
    return this.servedFrom(mac, await this.record(mac));
  }

  /** The same, from the machine's entry as just read (its file already synced: summaries). */
  async servedFrom(mac: string, rec: InventoryRecord | undefined): Promise<ServedAction | undefined> {
    const found = await this.#lookup(mac, rec);
    if (found === undefined) return undefined;
    if (rec?.oneShotDone !== undefined && !rec.persistent && ONE_SHOT_ACTIONS.has(found.action.action)) {
      return { ...found, action: noneInsteadOf(found.action), configured: found.action, oneShotDone: rec.oneShotDone };
    }
    return { ...found, configured: found.action };
  }

  /** What a run starting now does, in words, as the run history shows it (read in the recorder's transaction `tx`). */
  async runLabel(tx: StoreTx, mac: string, configured: Action | undefined): Promise<string | undefined> {
    const row = await tx.machines.get(mac);
    const rec = row === undefined ? undefined : recordOf(row);
    if (rec?.oneShotDone !== undefined && !rec.persistent && configured !== undefined && ONE_SHOT_ACTIONS.has(configured.action)) return 'none (one-shot action done)';
    return configured === undefined ? undefined : summarizeAction(configured);
  }

  /**
   * An agent reported a result: a successful deploy/capture/wipe of the configured action
   * consumes a one-shot action, in the recorder's transaction `tx`, by the store's conditional
   * statement (of two replicas recording it at once, one consumes it).
   */
  async resultReported(tx: StoreTx, mac: string, e: Extract<AgentEvent, { type: 'result' }>, configured: Action | undefined, now: string): Promise<void> {
    if (!e.ok || !ONE_SHOT_ACTIONS.has(e.action) || configured === undefined || configured.action !== e.action) return;
    await tx.machines.consumeOneShot(mac, e.time, now);
  }

  /** Validate and store an action (normalized booty form). Throws BootyError naming the field. */
  async setAction(mac: string, input: unknown): Promise<Action> {
    await this.update(mac, { action: input });
    return (await this.record(mac))!.action!;
  }

  async deleteAction(mac: string): Promise<boolean> {
    await this.syncFile(mac);
    const rec = await this.record(mac);
    if (rec === undefined || (rec.action === undefined && rec.actionError === undefined)) return false;
    await this.update(mac, { action: null });
    return true;
  }

  /** Create or change a machine. `create: true` refuses an existing one (409). */
  async update(mac: string, s: MachineSettings, opts: { create?: boolean } = {}): Promise<void> {
    await this.#updateIn(this.#store, mac, s, opts);
    this.#changes.emit({ type: 'machine', mac });
  }

  /**
   * Change many machines in one transaction of the store: all rows are saved, or none (the first
   * failure rolls back the others, and the files of file-managed machines already rewritten are
   * put back as they were). `each(tx, mac)` runs after each machine's change, in the transaction
   * (the bulk route audits there, so the audit log holds exactly the changes that were saved).
   */
  async updateMany(changes: { mac: string; settings: MachineSettings }[], opts: { create?: boolean } = {},
    each?: (tx: StoreTx, mac: string, index: number) => Promise<void>): Promise<void> {
    const undo: FileUndo[] = [];
    try {
      await this.#store.transaction(async (tx) => {
        for (const [i, c] of changes.entries()) {
          await this.#updateIn(tx, c.mac, c.settings, opts, undo);
          await each?.(tx, c.mac, i);
        }
      });
    } catch (e) {
      for (const u of undo.reverse()) {
        if (u.text === undefined) await unlink(u.file).catch(() => {});
        else await writeAtomically(u.file, u.text).catch(() => {});
      }
      throw e;
    }
    for (const c of changes) this.#changes.emit({ type: 'machine', mac: c.mac });
  }

  async #updateIn(db: StoreTx, mac: string, s: MachineSettings, opts: { create?: boolean }, undo?: FileUndo[]): Promise<void> {
    await this.syncFile(mac, db);
    const existing = await this.record(mac, db);
    if (opts.create === true && existing !== undefined && (existing.action !== undefined || existing.managedBy !== undefined || existing.name !== undefined)) {
      throw new HttpError(409, `machine ${mac} already exists; use "booty machines set" (PUT /api/machines/${mac}) to change it`);
    }
    // validate before touching anything
    const action = s.action === undefined || s.action === null ? undefined : parseAction(s.action);
    const rec = existing ?? ActionSource.#fresh(mac);
    const file = this.actionFile(mac);
    let rearm = s.rearm === true;
    if (s.action !== undefined) {
      if (rec.managedBy === 'file') {
        undo?.push({ file, text: await readFile(file, 'utf8').catch(() => undefined) });
        if (action === undefined) await unlink(file).catch(() => {});
        else await writeAtomically(file, JSON.stringify(action, null, 2) + '\n');
        rec.fileSig = action === undefined ? undefined : await sigOf(file);
        rec.managedBy = action === undefined ? undefined : 'file';
      } else {
        rec.managedBy = action === undefined ? undefined : 'api';
      }
      rec.action = action;
      rec.actionError = undefined;
      rearm = true;
    }
    if (s.persistent !== undefined) rec.persistent = s.persistent;
    if (s.name !== undefined) rec.name = s.name === null || s.name === '' ? undefined : s.name;
    rec.updated = new Date().toISOString();
    await this.#save(rec, db);
    if (rearm) await db.machines.rearm(mac, rec.updated);
  }

  /** Forget a machine's action and its file (its row goes with forget(), in the store's transaction). */
  async removeFile(mac: string): Promise<void> {
    if ((await this.record(mac))?.managedBy === 'file') await unlink(this.actionFile(mac)).catch(() => {});
  }

  async forget(tx: StoreTx, mac: string): Promise<void> {
    await tx.machines.remove(mac);
  }

  /** Machines whose own action (or default.json) names `imageName` (deploy or deploy-rootfs source, or capture target, by URL path /images/<name>). */
  async referencesTo(imageName: string, kinds: ('deploy' | 'capture')[] = ['deploy', 'capture']): Promise<string[]> {
    const uses = (a: Action | undefined) => {
      if (a === undefined) return false;
      // a rootfs tarball a deploy-rootfs action names is deployed like an image (immutable, not deletable)
      const url = a.action === 'deploy' && kinds.includes('deploy') ? a.image : a.action === 'deploy-rootfs' && kinds.includes('deploy') ? a.rootfs
        : a.action === 'capture' && kinds.includes('capture') ? a.upload : undefined;
      if (url === undefined) return false;
      try {
        const segs = new URL(url).pathname.split('/');
        return decodeURIComponent(segs[segs.length - 1]) === imageName && segs[segs.length - 2] === 'images';
      } catch { return false; }
    };
    const out = (await this.records()).filter((r) => uses(r.action)).map((r) => r.mac);
    if (uses(this.#default.action)) out.push('default.json');
    return out;
  }
}

/** A row of the store as the action source's entry (an action that no longer parses: none). */
function recordOf(r: MachineRow): InventoryRecord {
  let action: Action | undefined;
  try { action = r.action === undefined ? undefined : parseAction(r.action); } catch { action = undefined; }
  return {
    mac: r.mac, name: r.name, action, managedBy: r.managedBy, actionError: r.actionError, fileSig: r.fileSig,
    persistent: r.persistent, oneShotDone: r.oneShotDone, created: r.created, updated: r.updated,
  };
}
