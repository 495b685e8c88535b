// The trial boot's state machine at the server (README "Trial boot"). A deploy with bootOrder
// "trial" that reports success starts a trial: the deployed OS must confirm (POST
// /api/machines/<mac>/trial) within `confirmWithin` seconds of that result. Meanwhile a netboot
// gets `exit` (the disk, BootNext, boots); a netboot after the deadline finds the trial expired,
// reports it failed and gets the action's onTrialFailure (the same deploy, a capture of the disk,
// or booty's shell). Pure: the clock is passed in, so the tests drive it with a fake one.
import type { Action, DeployAction, TrialFailureAction } from '../../config/action.ts';
import { DEFAULT_CONFIRM_WITHIN } from '../../config/action.ts';

export type TrialState =
  /** waiting for the deployed OS to confirm, the deadline not yet passed */
  | 'pending'
  /** the deployed OS confirmed in time: done */
  | 'confirmed'
  /** not confirmed in time; onTrialFailure is served until it has run (redeploy: a new trial
   *  replaces this one; capture: its result makes it `handled`; shell: until an operator acts) */
  | 'failed'
  /** failed, and the forensic capture has been uploaded */
  | 'handled';

export interface TrialRecord {
  mac: string;
  state: TrialState;
  /** when the deploy's success reached the server (server clock, ISO) */
  started: string;
  /** started + confirmWithin */
  deadline: string;
  confirmWithin: number;
  onFailure: TrialFailureAction;
  /** onFailure capture: the upload URL */
  captureUpload?: string;
  /** 1 for the first trial of this action, +1 for each redeploy after a failed one */
  attempt: number;
  confirmedAt?: string;
  /** what the OS said when it confirmed (kernel, boot id) */
  confirmedBy?: string;
  failedAt?: string;
  /** the sentence operators read (machine summary, log) when it failed */
  failure?: string;
  /** the configured action (JSON) and one-shot stamp the trial belongs to: any operator change
   *  of the machine (new action, rearm, edited file) makes them differ, which ends the trial */
  actionKey: string;
  oneShot?: string;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** A trial starts: the deploy `a` reported success at `nowMs`. `previous`: the machine's last trial. */
export function startTrial(o: { mac: string; nowMs: number; action: DeployAction; actionKey: string; oneShot?: string; previous?: TrialRecord }): TrialRecord {
  const confirmWithin = o.action.confirmWithin ?? DEFAULT_CONFIRM_WITHIN;
  const again = o.previous !== undefined && o.previous.actionKey === o.actionKey && o.previous.state === 'failed';
  return {
    mac: o.mac, state: 'pending', started: iso(o.nowMs), deadline: iso(o.nowMs + confirmWithin * 1000), confirmWithin,
    onFailure: o.action.onTrialFailure ?? 'redeploy',
    ...(o.action.trialCaptureUpload === undefined ? {} : { captureUpload: o.action.trialCaptureUpload }),
    attempt: again ? o.previous!.attempt + 1 : 1,
    actionKey: o.actionKey, ...(o.oneShot === undefined ? {} : { oneShot: o.oneShot }),
  };
}

/** The sentence for a trial that was not confirmed in time. booty never sees the console of the
 *  trial boot (the OS runs without the agent), so it says so instead of guessing. */
export function failureSentence(t: Pick<TrialRecord, 'confirmWithin' | 'deadline' | 'onFailure' | 'attempt'>): string {
  return `trial boot not confirmed within ${t.confirmWithin} s (deadline ${t.deadline}${t.attempt > 1 ? `, attempt ${t.attempt}` : ''}); ` +
    'what its console showed is unknown to booty (the deployed OS ran without the agent; read the machine\'s serial console or BMC log); ' +
    `running onTrialFailure: ${t.onFailure}`;
}

/** pending past its deadline -> failed; anything else unchanged. */
export function expire(t: TrialRecord, nowMs: number): TrialRecord {
  if (t.state !== 'pending' || nowMs <= Date.parse(t.deadline)) return t;
  return { ...t, state: 'failed', failedAt: iso(nowMs), failure: failureSentence(t) };
}

export type ConfirmOutcome =
  | { ok: true; trial: TrialRecord }
  | { ok: false; status: 409; message: string; trial?: TrialRecord };

/** The deployed OS confirms at `nowMs`. A confirmation after the deadline is refused (and the
 *  trial fails then): the operator's confirmWithin is the contract. */
export function confirm(t: TrialRecord | undefined, nowMs: number, by: string | undefined): ConfirmOutcome {
  if (t === undefined) return { ok: false, status: 409, message: 'no trial boot is pending for this machine' };
  if (t.state === 'confirmed') return { ok: true, trial: t };
  const now = expire(t, nowMs);
  if (now.state !== 'pending') {
    const late = Math.round((nowMs - Date.parse(t.deadline)) / 1000);
    return { ok: false, status: 409, message: `the trial boot is ${now.state === 'failed' ? `over: not confirmed within ${t.confirmWithin} s (deadline ${t.deadline}${now !== t ? `, ${late} s ago` : ''})` : now.state}`, trial: now };
  }
  return { ok: true, trial: { ...t, state: 'confirmed', confirmedAt: iso(nowMs), ...(by === undefined ? {} : { confirmedBy: by }) } };
}

/** What a netboot (iPXE's script, the agent's action fetch) gets while a trial is current. */
export type TrialDecision =
  /** no trial in the way: the configured action with the one-shot rule */
  | { kind: 'normal' }
  /** pending, in time: boot the disk (iPXE `exit`, the agent gets `none`) */
  | { kind: 'wait'; secondsLeft: number }
  /** failed: run this instead */
  | { kind: 'failure'; action: Action };

/** The action that onTrialFailure runs for the configured deploy `a`. */
export function failureAction(t: TrialRecord, a: DeployAction): Action {
  const common = { after: a.after, onError: a.onError, wipeOnError: false, dryRun: false };
  const target = { ...(a.disk === undefined ? {} : { disk: a.disk }), ...(a.diskHints === undefined ? {} : { diskHints: a.diskHints }) };
  switch (t.onFailure) {
    case 'redeploy': return a;
    case 'shell': return { action: 'shell', ...common };
    case 'capture': {
      // the format follows the upload's name, as an operator naming it .img.zst expects
      const name = (t.captureUpload ?? '').toLowerCase();
      const format = /\.(zst|zstd)$/.test(name) ? 'zstd' : /\.img$|\.raw$/.test(name) ? 'raw' : 'gzip';
      return { action: 'capture', ...common, ...target, upload: t.captureUpload ?? '', format, protocol: 'put' };
    }
  }
}

export function decide(t: TrialRecord | undefined, a: Action, nowMs: number): TrialDecision {
  if (t === undefined || a.action !== 'deploy') return { kind: 'normal' };
  if (t.state === 'pending') return { kind: 'wait', secondsLeft: Math.max(0, Math.ceil((Date.parse(t.deadline) - nowMs) / 1000)) };
  if (t.state === 'failed') return { kind: 'failure', action: failureAction(t, a) };
  return { kind: 'normal' };
}

/** One line for the machine summary and the dashboard. */
export function describeTrial(t: TrialRecord, nowMs: number): string {
  switch (t.state) {
    case 'pending': return `trial boot pending: the deployed OS must confirm by ${t.deadline} (${Math.max(0, Math.ceil((Date.parse(t.deadline) - nowMs) / 1000))} s left of ${t.confirmWithin} s); netboots get exit meanwhile`;
    case 'confirmed': return `trial boot confirmed at ${t.confirmedAt}${t.confirmedBy === undefined ? '' : ` (${t.confirmedBy})`}, ${Math.round((Date.parse(t.confirmedAt ?? t.started) - Date.parse(t.started)) / 1000)} s after the deploy`;
    case 'failed': return t.failure ?? failureSentence(t);
    case 'handled': return `${t.failure ?? failureSentence(t)}; the disk was captured to ${t.captureUpload}`;
  }
}
