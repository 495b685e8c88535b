// Disk hints from the operator's CLI to what the agent is served, against the real server
// process: `booty machines add|set` with --disk-* flags, merged hint by hint; --disk and hints
// replace each other; the server refuses a bad hint naming it; the agent's fetch gets the hints
// (sizes in bytes) under "booty", and an unmodified BOOTy agent gets no destinationDevice.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { request } from 'undici';
import { startBootyServer } from '../helpers/booty-server-process.ts';
import type { BootyServerProcess } from '../helpers/booty-server-process.ts';
import { parseAction } from '../../src/config/parse.ts';

const root = resolve(import.meta.dirname, '..', '..');
const run = promisify(execFile);

async function machines(server: string, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
  try {
    const r = await run(join(root, 'bin', 'booty'), ['machines', '--server', server, ...args]);
    return { code: 0, out: r.stdout, err: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, out: x.stdout, err: x.stderr };
  }
}
async function getJson(url: string): Promise<Record<string, any>> {
  const res = await request(url);
  const text = await res.body.text();
  assert.equal(res.statusCode, 200, text);
  return JSON.parse(text) as Record<string, any>;
}

describe('disk hints through booty machines and the server', () => {
  let srv: BootyServerProcess;
  const mac = '52:54:00:aa:bb:07';
  before(async () => { srv = await startBootyServer(); });
  after(async () => { await srv.close(); });
  const configured = async () => (await getJson(`${srv.url}/api/machines/${mac}`)).configuredAction as Record<string, any>;

  it('add with hints, merge a hint, swap for --disk and back, clear', async () => {
    let r = await machines(srv.url, 'add', mac, '--image', 'http://10.0.0.1:3000/images/u.img.zst', '--disk-serial', 'S4EVNF0M', '--disk-min-size', '100G', '--disk-rotational', 'false');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /deploy http:\/\/10\.0\.0\.1:3000\/images\/u\.img\.zst -> \(disk with minSize=100\.0 GiB \(107374182400 bytes\), serial="S4EVNF0M", rotational=false\)/);
    assert.deepEqual((await configured()).diskHints, { minSize: 107374182400, serial: 'S4EVNF0M', rotational: false });

    // what the agent fetches: booty's action with the hints; BOOTy's fields without a device
    const served = await getJson(`${srv.url}/${mac.replaceAll(':', '-')}`);
    assert.equal('destinationDevice' in served, false);
    const action = parseAction(served);
    assert.ok(action.action === 'deploy');
    assert.deepEqual(action.diskHints, { minSize: 107374182400, serial: 'S4EVNF0M', rotational: false });

    r = await machines(srv.url, 'set', mac, '--disk-max-size', '2TB', '--disk-model', 'Samsung');
    assert.equal(r.code, 0, r.err);
    assert.deepEqual((await configured()).diskHints, { minSize: 107374182400, maxSize: 2e12, serial: 'S4EVNF0M', model: 'Samsung', rotational: false });

    r = await machines(srv.url, 'set', mac, '--disk', '/dev/sdb');
    assert.equal(r.code, 0, r.err);
    let c = await configured();
    assert.equal(c.disk, '/dev/sdb');
    assert.equal(c.diskHints, undefined);

    r = await machines(srv.url, 'set', mac, '--disk-wwn', '0x5000c500a1b2c3d4');
    assert.equal(r.code, 0, r.err);
    c = await configured();
    assert.equal(c.disk, undefined);
    assert.deepEqual(c.diskHints, { wwn: '0x5000c500a1b2c3d4' });
    assert.equal(c.image, 'http://10.0.0.1:3000/images/u.img.zst');

    r = await machines(srv.url, 'set', mac, '--clear-disk-hints');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /next boot: deploy http:\/\/10\.0\.0\.1:3000\/images\/u\.img\.zst -> \(first disk\)/);
    assert.equal((await configured()).diskHints, undefined);
  });

  it('bad hints are refused with the field named, by the server or the CLI', async () => {
    let r = await machines(srv.url, 'set', mac, '--disk-min-size', 'huge');
    assert.equal(r.code, 1);
    assert.match(r.err, /server answered 400: .*field "diskHints\.minSize" must be a size/);
    r = await machines(srv.url, 'set', mac, '--disk-min-size', '2T', '--disk-max-size', '1T');
    assert.equal(r.code, 1);
    assert.match(r.err, /"diskHints\.minSize" .* must not be above "diskHints\.maxSize"/);
    r = await machines(srv.url, 'set', mac, '--disk-hctl', '0:0:0');
    assert.match(r.err, /field "diskHints\.hctl" must be a SCSI address/);
    r = await machines(srv.url, 'set', mac, '--disk-rotational', 'maybe');
    assert.match(r.err, /--disk-rotational must be true \(spinning disks\) or false \(SSD\/NVMe\), got "maybe"/);
    r = await machines(srv.url, 'set', mac, '--disk', '/dev/sda', '--disk-serial', 'X');
    assert.match(r.err, /--disk names the disk; the --disk-\* hint flags find one/);
    // nothing of that reached the machine
    assert.equal((await configured()).diskHints, undefined);
  });
});
