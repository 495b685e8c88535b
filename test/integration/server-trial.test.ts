// The trial boot between a real `booty server` and the confirmation script booty installs into
// the deployed OS (src/disk/trial-confirm.ts), run by the real sh/bash here: once through curl,
// once with neither curl nor wget on PATH (bash's /dev/tcp, what a minimal Debian has). Also the
// netboot side while the trial is pending (iPXE `exit`, the agent gets `none`) and a refusal the
// script must not retry (no trial pending: 409, then it forgets the credential).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { agentCredentialOf, startBootyServer, type BootyServerProcess } from '../helpers/booty-server-process.ts';
import { skipUnlessPresent } from '../helpers/prerequisite.ts';
import { trialConfirmFiles } from '../../src/disk/trial-confirm.ts';

const have = (cmd: string) => { try { execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }); return true; } catch { return false; } };
const skip = skipUnlessPresent(['bash', 'curl'].every(have), 'needs bash and curl (bash scripts/host-deps.sh)');

async function call(url: string, init: Parameters<typeof request>[1] = {}) {
  const res = await request(url, init);
  return { status: res.statusCode, text: await res.body.text() };
}
const json = (method: 'POST' | 'PUT', body: unknown, token?: string) => ({
  method, body: JSON.stringify(body),
  headers: { 'content-type': 'application/json', ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
});

/** The files of the unit, written under `dir` as the deployed OS would have them; runs the script. */
function runConfirm(dir: string, s: { serverUrl: string; mac: string; credential: string }, pathDirs: string) {
  const { writes, links } = trialConfirmFiles({ ...s, confirmWithin: 20 });
  const at = (p: string) => path.join(dir, p);
  for (const w of writes) { fs.mkdirSync(path.dirname(at(w.path)), { recursive: true }); fs.writeFileSync(at(w.path), w.content, { mode: w.mode }); }
  for (const l of links) { fs.mkdirSync(path.dirname(at(l.path)), { recursive: true }); fs.symlinkSync(at(l.target), at(l.path)); }
  const script = writes.find((w) => w.path.endsWith('/trial-confirm'))!.path;
  const r = spawnSync('/bin/sh', [at(script)], {
    encoding: 'utf8', timeout: 60_000,
    env: { PATH: pathDirs, BOOTY_CONFIRM_ENV: at(writes[0].path), BOOTY_CONFIRM_LINK: at(links[0].path) },
  });
  return { ...r, envLeft: fs.existsSync(at(writes[0].path)), linkLeft: fs.existsSync(at(links[0].path)) || fs.lstatSync(at(links[0].path), { throwIfNoEntry: false }) !== undefined };
}

/** A PATH with the tools a minimal Debian has, and neither curl nor wget. */
function minimalPath(dir: string): string {
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin, { recursive: true });
  for (const tool of ['sh', 'bash', 'cat', 'uname', 'mktemp', 'date', 'rm', 'sleep', 'tail', 'grep']) {
    const real = execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim();
    fs.symlinkSync(real, path.join(bin, tool));
  }
  return bin;
}

describe('booty server: trial boot confirmation', { skip }, () => {
  let srv: BootyServerProcess;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-trial-int-'));
  before(async () => { srv = await startBootyServer(); });
  after(async () => { await srv?.close(); fs.rmSync(work, { recursive: true, force: true }); });

  /** A machine whose trial deploy just reported success. */
  async function pendingTrial(mac: string): Promise<string> {
    const set = await call(`${srv.url}/api/machines/${mac}/action`, json('PUT', { action: 'deploy', image: `${srv.url}/images/a.img.zst`, bootOrder: 'trial', confirmWithin: 600 }));
    assert.equal(set.status, 200, set.text);
    const credential = await agentCredentialOf(srv.url, mac);
    const now = new Date().toISOString();
    const ev = await call(`${srv.url}/api/machines/${mac}/events`, json('POST', [
      { type: 'phase', time: now, phase: 'booting' }, { type: 'result', time: now, ok: true, action: 'deploy' },
    ], credential));
    assert.equal(ev.status, 200, ev.text);
    return credential;
  }

  it('pending: /ipxe answers exit and the agent gets none; the script (curl) confirms and forgets its credential', async () => {
    const mac = '52-54-00-7a-02-01';
    const credential = await pendingTrial(mac);
    const ipxe = await call(`${srv.url}/ipxe/${mac}`);
    assert.match(ipxe.text, /^exit$/m);
    assert.match(ipxe.text, /trial boot pending: the deployed OS must confirm by/);
    const action = JSON.parse((await call(`${srv.url}/${mac}`)).text) as { booty: { action: string } };
    assert.equal(action.booty.action, 'none');
    const list = execFileSync(path.join(import.meta.dirname, '..', '..', 'bin', 'booty'), ['machines', 'list', '--server', srv.url], { encoding: 'utf8' });
    assert.match(list.split('\n').find((l) => l.startsWith(mac)) ?? '', /none \(boot from disk\) \(trial pending until 20\d\d-/, 'booty machines list says it');
    const dir = path.join(work, 'curl');
    const r = runConfirm(dir, { serverUrl: srv.url, mac, credential }, process.env.PATH ?? '/usr/bin:/bin');
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /booty-trial-confirm: trial boot confirmed to http/);
    assert.ok(!r.envLeft && !r.linkLeft, 'the credential and the enablement link are gone');
    const m = JSON.parse((await call(`${srv.url}/api/machines/${mac}`)).text) as { trial: { state: string; message: string } };
    assert.equal(m.trial.state, 'confirmed');
    assert.match(m.trial.message, new RegExp(`\\(kernel ${os.release().replace(/[.+]/g, '\\$&')}, boot [0-9a-f-]{36}\\)`));
  });

  it('without curl and wget the script confirms through bash\'s /dev/tcp', async () => {
    const mac = '52-54-00-7a-02-02';
    const credential = await pendingTrial(mac);
    const dir = path.join(work, 'bash');
    const r = runConfirm(dir, { serverUrl: srv.url, mac, credential }, minimalPath(dir));
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /trial boot confirmed/);
    const m = JSON.parse((await call(`${srv.url}/api/machines/${mac}`)).text) as { trial: { state: string } };
    assert.equal(m.trial.state, 'confirmed');
  });

  it('nothing pending: the server refuses (409) and the script stops at once, forgetting the credential', async () => {
    const mac = '52-54-00-7a-02-03';
    const credential = await agentCredentialOf(srv.url, mac);
    const dir = path.join(work, 'refused');
    const started = Date.now();
    const r = runConfirm(dir, { serverUrl: srv.url, mac, credential }, minimalPath(dir));
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /the server refused the confirmation \(409\): .*no trial boot is pending for this machine/);
    assert.ok(Date.now() - started < 15_000, 'no retries after a refusal');
    assert.ok(!r.envLeft);
  });

  it('the route takes only that machine\'s credential', async () => {
    const mac = '52-54-00-7a-02-04';
    await pendingTrial(mac);
    const other = await agentCredentialOf(srv.url, '52-54-00-7a-02-05');
    assert.equal((await call(`${srv.url}/api/machines/${mac}/trial`, json('POST', {}, 'nope'))).status, 401);
    const wrong = await call(`${srv.url}/api/machines/${mac}/trial`, json('POST', {}, other));
    assert.equal(wrong.status, 403);
    const m = JSON.parse((await call(`${srv.url}/api/machines/${mac}`)).text) as { trial: { state: string } };
    assert.equal(m.trial.state, 'pending', 'still pending');
  });
});
