// What the API (GET /api/machines[/<mac>]), the dashboards' live stream and `booty machines`
// show of a machine: its reported state joined with its inventory entry. The one definition of
// that shape; the CLI reads the JSON through these types.

import type { Action } from '../../config/action.ts';
import { summarizeAction } from '../../config/parse.ts';
import type { InventoryRecord, ServedAction } from './action-source.ts';
import type { MachineState } from './run-recorder.ts';

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
}

/** GET /api/machines/<mac>: the summary, the action as configured, and the last log lines. */
export interface MachineDetail extends MachineSummary {
  configuredAction?: Action;
  log: string[];
}

export interface SummaryParts {
  mac: string;
  state: Readonly<MachineState> | undefined;
  inventory: Readonly<InventoryRecord> | undefined;
  served: ServedAction | undefined;
  servedError: string | undefined;
  runId: number | undefined;
  recentLog: readonly string[];
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
  };
}
