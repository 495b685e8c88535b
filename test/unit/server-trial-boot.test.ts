// The trial boot at the server, on a virtual clock (test/helpers/fake-clock.ts): a successful
// deploy with bootOrder "trial" starts a pending trial; within confirmWithin a netboot gets
// `none` (iPXE exit) and the OS's confirmation ends it; past the deadline the next netboot finds
// it failed, logs the sentence and gets onTrialFailure (redeploy, capture, shell); an operator's
// change ends a trial. Both the pure state machine (trial-boot.ts) and the machine store over a
// real SQLite database (its `trials` table, kept over a reopen).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FakeClock } from '../helpers/fake-clock.ts';
import { parseAction } from '../../src/config/parse.ts';
import type { DeployAction } from '../../src/config/action.ts';
import type { AgentEvent } from '../../src/config/report.ts';
import { SqliteStore } from '../../src/server/store/sqlite-store.ts';
import { MachineStore } from '../../src/server/machines/machine-store.ts';
import { confirm, decide, describeTrial, expire, failureAction, startTrial } from '../../src/server/machines/trial-boot.ts';

const deploy = (over: Record<string, unknown> = {}) => parseAction({ action: 'deploy', image: 'http://s/images/a.img.zst', disk: '/dev/sda', bootOrder: 'trial', confirmWithin: 120, ...over }) as DeployAction;

describe('trial boot state machine (pure)', () => {
  it('pending -> confirmed within the deadline; the confirmation is idempotent', () => {
    const clock = new FakeClock(Date.parse('2026-12-06T12:00:00Z'));
    const a = deploy();
    const t = startTrial({ mac: 'm', nowMs: clock.now(), action: a, actionKey: 'k' });
    assert.equal(t.state, 'pending');
    assert.equal(t.deadline, '2026-12-06T12:02:00.000Z');
    assert.deepEqual(decide(t, a, clock.now() + 119_000), { kind: 'wait', secondsLeft: 1 });
    const c = confirm(t, clock.now() + 119_000, 'kernel 6.1');
    assert.ok(c.ok);
    assert.equal(c.trial.state, 'confirmed');
    assert.equal(c.trial.confirmedAt, '2026-12-06T12:01:59.000Z');
    assert.match(describeTrial(c.trial, clock.now()), /trial boot confirmed at 2026-12-06T12:01:59.000Z \(kernel 6\.1\), 119 s after the deploy/);
    assert.deepEqual(decide(c.trial, a, clock.now() + 10_000_000), { kind: 'normal' }, 'confirmed: the one-shot rule decides from then on');
    const again = confirm(c.trial, clock.now() + 10_000_000, undefined);
    assert.ok(again.ok && again.trial === c.trial, 'a second confirmation changes nothing');
  });

  it('pending -> failed once the deadline has passed (not at it); a late confirmation is refused', () => {
    const t0 = Date.parse('2026-12-06T12:00:00Z');
    const a = deploy({ confirmWithin: 30 });
    const t = startTrial({ mac: 'm', nowMs: t0, action: a, actionKey: 'k' });
    assert.equal(expire(t, t0 + 30_000), t, 'at the deadline it is still in time');
    const f = expire(t, t0 + 30_001);
    assert.equal(f.state, 'failed');
    assert.match(f.failure ?? '', /^trial boot not confirmed within 30 s \(deadline 2026-12-06T12:00:30.000Z\); what its console showed is unknown to booty .*running onTrialFailure: redeploy$/);
    const late = confirm(t, t0 + 45_000, 'kernel x');
    assert.ok(!late.ok);
    assert.equal(late.status, 409);
    assert.match(late.message, /not confirmed within 30 s .*15 s ago/);
    assert.equal(late.trial?.state, 'failed');
    assert.ok(!confirm(undefined, t0, undefined).ok, 'nothing pending: refused');
  });

  it('onTrialFailure: redeploy serves the deploy, capture a capture of the same disk to the named upload, shell a shell', () => {
    const t0 = 1_000_000;
    const redeploy = deploy();
    const failed = (a: DeployAction) => expire(startTrial({ mac: 'm', nowMs: t0, action: a, actionKey: 'k' }), t0 + 10_000_000);
    assert.deepEqual(decide(failed(redeploy), redeploy, t0 + 10_000_001), { kind: 'failure', action: redeploy });
    const cap = deploy({ onTrialFailure: 'capture', trialCaptureUpload: 'http://s/images/forensics-m.img.zst' });
    const c = failureAction(failed(cap), cap);
    assert.deepEqual(c, { action: 'capture', after: 'reboot', onError: 'shell', wipeOnError: false, dryRun: false, disk: '/dev/sda', upload: 'http://s/images/forensics-m.img.zst', format: 'zstd', protocol: 'put' });
    assert.deepEqual(parseAction(c), c, 'the capture is a valid action as agents parse it');
    const sh = deploy({ onTrialFailure: 'shell' });
    assert.equal(failureAction(failed(sh), sh).action, 'shell');
  });
});

describe('trial boot in the machine store (SQLite, virtual clock)', () => {
  const mac = '52-54-00-7a-00-01';
  const result = (clock: FakeClock, action: string, ok = true): AgentEvent[] => [
    { type: 'phase', time: new Date(clock.now()).toISOString(), phase: 'booting' },
    { type: 'result', time: new Date(clock.now()).toISOString(), ok, action },
  ];
  function open(dir: string, clock: FakeClock) {
    const state = SqliteStore.open(path.join(dir, 'booty.db'));
    const store = new MachineStore(dir, state, { now: () => clock.now() });
    return { db: { close: async () => { store.close(); await state.close(); } }, store };
  }

  it('pending: netboots get none; confirmed: done; after a reopen too', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-trial-'));
    const clock = new FakeClock(Date.parse('2026-12-06T12:00:00Z'));
    let { db, store } = open(dir, clock);
    await store.init();
    await store.actions.setAction(mac, { action: 'deploy', image: 'http://s/images/a.img.zst', bootOrder: 'trial', confirmWithin: 600 });
    assert.equal((await store.served(mac))?.action.action, 'deploy', 'before the deploy: the deploy');
    await store.record(mac, result(clock, 'deploy'));
    await clock.advance(60_000);
    const s = await store.served(mac);
    assert.equal(s?.action.action, 'none', 'pending: boot the disk');
    assert.match(s?.trial ?? '', /trial boot pending: the deployed OS must confirm by 2026-12-06T12:10:00.000Z \(540 s left of 600 s\)/);
    assert.equal((await store.summary(mac))?.trial?.state, 'pending');
    await db.close();
    ({ db, store } = open(dir, clock));
    await store.init();
    assert.equal((await store.served(mac))?.action.action, 'none', 'the trial survives a restart');
    await clock.advance(60_000);
    const c = await store.confirmTrial(mac, 'kernel 6.1.0-28-amd64');
    assert.ok(c.ok);
    const sum = await store.summary(mac);
    assert.equal(sum?.trial?.state, 'confirmed');
    assert.match(sum?.trial?.message ?? '', /confirmed at 2026-12-06T12:02:00.000Z \(kernel 6\.1\.0-28-amd64\), 120 s after the deploy/);
    await clock.advance(3600_000);
    assert.equal((await store.served(mac))?.action.action, 'none', 'confirmed: the one-shot deploy is consumed (exit)');
    assert.equal((await store.served(mac))?.trial, undefined);
    assert.ok((await store.recorder.log(mac)).some((l) => /info trial boot confirmed/.test(l)), 'the confirmation is in the machine\'s log');
    await db.close();
  });

  it('expired: the next netboot reports it failed (log, summary) and gets the redeploy; its success starts attempt 2', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-trial-'));
    const clock = new FakeClock(Date.parse('2026-12-06T12:00:00Z'));
    const { db, store } = open(dir, clock);
    await store.init();
    await store.actions.setAction(mac, { action: 'deploy', image: 'http://s/images/a.img.zst', bootOrder: 'trial', confirmWithin: 30 });
    await store.record(mac, result(clock, 'deploy'));
    await clock.advance(30_000);
    assert.equal((await store.served(mac))?.action.action, 'none', 'at the deadline: still waiting');
    await clock.advance(1);
    const s = await store.served(mac);
    assert.equal(s?.action.action, 'deploy', 'past it: onTrialFailure redeploy');
    assert.match(s?.trial ?? '', /^trial boot not confirmed within 30 s/);
    const failedLines = (await store.recorder.log(mac)).filter((l) => /error trial boot not confirmed within 30 s/.test(l));
    assert.equal(failedLines.length, 1, 'logged once');
    await store.served(mac);
    assert.equal((await store.recorder.log(mac)).filter((l) => /error trial boot not confirmed/.test(l)).length, 1, 'not again at the next look');
    const sum = await store.summary(mac);
    assert.equal(sum?.trial?.state, 'failed');
    assert.equal(sum?.next?.startsWith('deploy '), true);
    const late = await store.confirmTrial(mac, undefined);
    assert.ok(!late.ok && late.status === 409);
    // the redeploy succeeds: a new trial, attempt 2
    await clock.advance(300_000);
    await store.record(mac, result(clock, 'deploy'));
    const again = await store.summary(mac);
    assert.equal(again?.trial?.state, 'pending');
    assert.equal(again?.trial?.attempt, 2);
    assert.equal((await store.served(mac))?.action.action, 'none');
    await db.close();
  });

  it('capture: the forensic capture is served, and its success marks the trial handled (then the disk boots)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-trial-'));
    const clock = new FakeClock(Date.parse('2026-12-06T12:00:00Z'));
    const { db, store } = open(dir, clock);
    await store.init();
    await store.actions.setAction(mac, { action: 'deploy', image: 'http://s/images/a.img.zst', bootOrder: 'trial', confirmWithin: 30, onTrialFailure: 'capture', trialCaptureUpload: 'http://s/images/forensics.img.gz' });
    await store.record(mac, result(clock, 'deploy'));
    await clock.advance(31_000);
    const s = await store.served(mac);
    assert.equal(s?.action.action, 'capture');
    assert.equal(s?.action.action === 'capture' && s.action.upload, 'http://s/images/forensics.img.gz');
    await store.record(mac, result(clock, 'capture'));
    const sum = await store.summary(mac);
    assert.equal(sum?.trial?.state, 'handled');
    assert.match(sum?.trial?.message ?? '', /the disk was captured to http:\/\/s\/images\/forensics\.img\.gz/);
    assert.equal((await store.served(mac))?.action.action, 'none', 'handled: the one-shot state decides (boot the disk)');
    await db.close();
  });

  it('an operator\'s change (rearm, new action) ends the trial; a deploy without trial starts none', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-trial-'));
    const clock = new FakeClock(Date.parse('2026-12-06T12:00:00Z'));
    const { db, store } = open(dir, clock);
    await store.init();
    await store.actions.setAction(mac, { action: 'deploy', image: 'http://s/images/a.img.zst', bootOrder: 'trial', confirmWithin: 600 });
    await store.record(mac, result(clock, 'deploy'));
    assert.equal((await store.served(mac))?.action.action, 'none');
    await store.actions.update(mac, { rearm: true });
    assert.equal((await store.served(mac))?.action.action, 'deploy', 'rearmed: deploys again at once');
    assert.equal((await store.summary(mac))?.trial, undefined);
    await store.actions.setAction(mac, { action: 'deploy', image: 'http://s/images/a.img.zst' });
    await store.record(mac, result(clock, 'deploy'));
    assert.equal((await store.summary(mac))?.trial, undefined, 'network-first deploys start no trial');
    assert.ok(!(await store.confirmTrial(mac, undefined)).ok);
    await db.close();
  });
});
