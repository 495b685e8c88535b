// The `inspect` action: the inventory is already at the server (every boot sends it); the agent
// now waits for an operator, asking for its action every `pollSeconds`, and hands back the first
// action that is not `inspect`, which main.ts runs on this boot (no reboot in between).
import type { Action } from '../config/action.ts';
import type { Logger } from '../util/log.ts';
import { sleep } from '../util/backoff.ts';

export const DEFAULT_POLL_SECONDS = 10;

export async function waitForOperator(first: Action, fetchNext: () => Promise<Action>, log: Logger, onWaiting?: () => void): Promise<Action> {
  let action = first;
  let polls = 0;
  while (action.action === 'inspect') {
    const every = action.pollSeconds ?? DEFAULT_POLL_SECONDS;
    if (polls === 0) {
      log.info(`inspect: the inventory is at the server; waiting for an operator to give this machine an action (asking every ${every} s)`);
      onWaiting?.();
    }
    await sleep(every * 1000);
    polls++;
    action = await fetchNext();
  }
  if (polls > 0) log.info(`inspect: an operator set an action after ${polls} ${polls === 1 ? 'try' : 'tries'}: ${action.action}`);
  return action;
}
