// What the API (GET /api/machines[/<mac>]), the dashboards' live stream and `booty machines`
// show of a machine: its reported state joined with its inventory entry. The one definition of
// that shape; the CLI reads the JSON through these types.

import type { Action } from '../../config/action.ts';
import { summarizeAction } from '../../config/parse.ts';
import type { InventoryRecord, ServedAction } from './action-source.ts';
import type { MachineState } from './run-recorder.ts';
import type { MachineInventory } from '../../config/inventory.ts';
import type { StoredInventory } from './inventory-store.ts';
import type { TrialRecord } from './trial-boot.ts';

/** The facts of a machine's last inventory, short enough for a list row and a dashboard card. */
export interface HardwareSummary {
  /** when the server received it */
  received: string;
  vendor?: string;
  product?: string;
  serial?: string;
  firmware: 'uefi' | 'bios';
  secureBoot?: boolean;
  cpus: number;
  memoryBytes: number;
  /** "nvme0n1 nvme 64 MiB", "sda sata 48 MiB 4Kn", ... */
  disks: string[];
  nics: string[];
}

export interface MachineSummary extends MachineState {
  name?: string;
  /** an action of its own (file or API), valid or not */
  hasOwnAction: boolean;
  /** the configured action, in words */
  action?: string;
  actionSource?: ServedAction['source'];
  /** why its action (file or default.json) is not served */
  actionError?: string;
  managedBy?: InventoryRecord['managedBy'];
  persistent: boolean;
  /** when a successful run consumed the one-shot action */
  oneShotDone?: string;
  /** what its next boot gets (after the one-shot rule), in words */
  next?: string;
  /** its latest run's id */
  run?: number;
  /** its last log lines (5) */
  recentLog: string[];
  /** what its agent last reported of the hardware (POST /api/machines/<mac>/inventory) */
  hardware?: HardwareSummary;
  /** its current trial boot (bootOrder "trial"), with the sentence operators read */
  trial?: TrialSummary;
}

export interface TrialSummary {
  state: TrialRecord['state'];
  started: string;
  deadline: string;
  confirmWithin: number;
  onFailure: TrialRecord['onFailure'];
  attempt: number;
  confirmedAt?: string;
  failedAt?: string;
  message: string;
}

/** GET /api/machines/<mac>: the summary, the action as configured, and the last log lines. */
export interface MachineDetail extends MachineSummary {
  configuredAction?: Action;
  log: string[];
  /** the whole inventory as the agent sent it */
  inventory?: MachineInventory;
}

export interface SummaryParts {
  mac: string;
  state: Readonly<MachineState> | undefined;
  inventory: Readonly<InventoryRecord> | undefined;
  served: ServedAction | undefined;
  servedError: string | undefined;
  runId: number | undefined;
  recentLog: readonly string[];
  hardware?: StoredInventory;
  trial?: TrialRecord & { message: string };
}

const size = (b: number) => (b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(1)} GiB` : `${Math.round(b / 2 ** 20)} MiB`);

export function hardwareSummary(s: StoredInventory): HardwareSummary {
  const inv = s.inventory;
  return {
    received: s.received,
    ...(inv.system.vendor === undefined ? {} : { vendor: inv.system.vendor }),
    ...(inv.system.product === undefined ? {} : { product: inv.system.product }),
    ...(inv.system.serial === undefined ? {} : { serial: inv.system.serial }),
    firmware: inv.firmware.mode,
    ...(inv.firmware.secureBoot === undefined ? {} : { secureBoot: inv.firmware.secureBoot }),
    cpus: inv.cpu.threads,
    memoryBytes: inv.memory.totalBytes,
    disks: inv.disks.map((d) => `${d.name} ${d.transport} ${size(d.sizeBytes)}${d.logicalSectorSize !== 512 ? ` ${d.logicalSectorSize === 4096 ? '4Kn' : `${d.logicalSectorSize}-byte sectors`}` : ''}`),
    nics: inv.nics.map((n) => `${n.name} ${n.mac}${n.driver === undefined ? '' : ` ${n.driver}`}`),
  };
}

export function summarize(p: SummaryParts): MachineSummary {
  const inv = p.inventory;
  return {
    ...(p.state ?? { mac: p.mac, events: 0 }),
    name: inv?.name,
    hasOwnAction: inv?.action !== undefined || inv?.actionError !== undefined,
    action: p.served === undefined ? undefined : summarizeAction(p.served.configured),
    actionSource: p.served?.source,
    actionError: p.servedError,
    managedBy: inv?.managedBy,
    persistent: inv?.persistent ?? false,
    oneShotDone: inv?.oneShotDone,
    next: p.served === undefined ? undefined : summarizeAction(p.served.action),
    run: p.runId,
    recentLog: p.recentLog.slice(-5),
    ...(p.hardware === undefined ? {} : { hardware: hardwareSummary(p.hardware) }),
    ...(p.trial === undefined ? {} : { trial: trialSummary(p.trial) }),
  };
}

function trialSummary(t: TrialRecord & { message: string }): TrialSummary {
  return {
    state: t.state, started: t.started, deadline: t.deadline, confirmWithin: t.confirmWithin, onFailure: t.onFailure, attempt: t.attempt,
    ...(t.confirmedAt === undefined ? {} : { confirmedAt: t.confirmedAt }), ...(t.failedAt === undefined ? {} : { failedAt: t.failedAt }),
    message: t.message,
  };
}
