// booty server as the operator's tool, against the real server process: the inventory through
// `booty machines` (real CLI), one-shot actions, declarative files with reload (SIGHUP and
// POST /api/reload), persistence of machines/runs/logs in booty.db across a restart, iPXE
// scripts (syntax-checked) and the boot files they load, /metrics, the image catalog (hashing
// of hand-placed images, capture provenance, refused deletes) and the live event stream.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { request } from 'undici';
import { startBootyServer } from '../helpers/booty-server-process.ts';
import type { BootyServerProcess } from '../helpers/booty-server-process.ts';
import { checkIpxeScript } from '../helpers/ipxe-script-check.ts';
import { parseAction } from '../../src/config/parse.ts';

const root = resolve(import.meta.dirname, '..', '..');
const run = promisify(execFile);

async function call(url: string, init: Parameters<typeof request>[1] = {}) {
  const res = await request(url, init);
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) as Record<string, any> };
}
async function machinesCli(server: string, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
  try {
    const r = await run(join(root, 'bin', 'booty'), ['machines', '--server', server, ...args]);
    return { code: 0, out: r.stdout, err: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, out: x.stdout, err: x.stderr };
  }
}
async function eventually(what: string, check: () => Promise<boolean> | boolean): Promise<void> {
  for (let i = 0; i < 200; i++) { if (await check()) return; await new Promise((r) => setTimeout(r, 50)); }
  assert.fail(`timed out waiting until ${what}`);
}
const t = () => new Date().toISOString();
/** Post events as an agent would; a refusal fails the test here, not later as a stream that never sees them. */
async function postEvents(srv: BootyServerProcess, mac: string, body: unknown) {
  const r = await call(`${srv.url}/api/machines/${mac}/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal(r.status, 200, `events for ${mac}: ${r.text}`);
  return r;
}
const servedKind = async (srv: BootyServerProcess, mac: string) => parseAction((await call(`${srv.url}/${mac}.bty`)).json()).action;

describe('booty server: operator tool', () => {
  let dataDir: string;
  let bootDir: string;
  let srv: BootyServerProcess;
  const kernel = randomBytes(300_000);
  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'booty-operator-'));
    bootDir = join(dataDir, 'boot');
    await mkdir(bootDir);
    await writeFile(join(bootDir, 'vmlinuz'), kernel);
    await writeFile(join(bootDir, 'booty.cpio.zst'), Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0]));
    srv = await startBootyServer({ dataDir, args: ['--boot-dir', bootDir, '--default-action', 'off'] });
  });
  after(async () => { await srv.close(); await rm(dataDir, { recursive: true, force: true }); });

  it('booty machines add/set/list/rm manage the inventory; the server validates', async () => {
    const mac = '52:54:00:10:00:01';
    let r = await machinesCli(srv.url, 'add', mac, '--image', 'http://10.0.0.1:3000/images/u.img.gz', '--disk', '/dev/sda', '--name', 'rack1-u1');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /added 52-54-00-10-00-01: deploy http:\/\/10\.0\.0\.1:3000\/images\/u\.img\.gz -> \/dev\/sda/);
    r = await machinesCli(srv.url, 'add', mac, '--action', 'shell');
    assert.equal(r.code, 1);
    assert.match(r.err, /409: machine 52-54-00-10-00-01 already exists/);
    r = await machinesCli(srv.url, 'set', mac, '--hostname', 'web1', '--after', 'poweroff');
    assert.equal(r.code, 0, r.err);
    const a = parseAction((await call(`${srv.url}/52-54-00-10-00-01.bty`)).json());
    assert.equal(a.action, 'deploy');
    assert.ok(a.action === 'deploy' && a.image.endsWith('/u.img.gz') && a.disk === '/dev/sda' && a.post?.hostname === 'web1' && a.after === 'poweroff', JSON.stringify(a));
    r = await machinesCli(srv.url, 'set', mac, '--disk', 'sda');
    assert.equal(r.code, 1);
    assert.match(r.err, /400: field "disk" must be an absolute \/dev path/);
    r = await machinesCli(srv.url, 'list');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^MAC\s+NAME\s+PHASE/);
    assert.match(r.out, /52-54-00-10-00-01\s+rack1-u1\s+-\s+deploy http:\/\/10\.0\.0\.1:3000\/images\/u\.img\.gz -> \/dev\/sda/);
    r = await machinesCli(srv.url, 'rm', mac);
    assert.equal(r.code, 0, r.err);
    assert.equal((await call(`${srv.url}/52-54-00-10-00-01.bty`)).status, 404);
    assert.equal((await machinesCli(srv.url, 'rm', mac)).code, 1);
    assert.match((await machinesCli('http://127.0.0.1:1', 'list')).err, /cannot reach the booty server at http:\/\/127\.0\.0\.1:1/);
  });

  it('one-shot: after a successful deploy the next fetch is "none" and iPXE exits; persistent and rearm', async () => {
    const mac = '52-54-00-10-00-02';
    assert.equal((await machinesCli(srv.url, 'add', mac, '--image', 'http://10.0.0.1:3000/images/u.img.gz')).code, 0);
    assert.equal(await servedKind(srv, mac), 'deploy');
    let ipxe = (await call(`${srv.url}/ipxe/${mac}`)).text;
    assert.deepEqual(checkIpxeScript(ipxe), []);
    assert.match(ipxe, /^kernel /m);
    // a failed run does not consume the action
    await postEvents(srv, mac, [{ type: 'phase', time: t(), phase: 'booting' }, { type: 'result', time: t(), ok: false, action: 'deploy', code: 'fetch-http', message: 'fetch failed' }]);
    assert.equal(await servedKind(srv, mac), 'deploy');
    await postEvents(srv, mac, [{ type: 'phase', time: t(), phase: 'booting' }, { type: 'phase', time: t(), phase: 'writing' },
      { type: 'progress', time: t(), phase: 'writing', bytes: 500, total: 1000, rate: 100 },
      { type: 'result', time: t(), ok: true, action: 'deploy', bytes: 1000, seconds: 10 }, { type: 'phase', time: t(), phase: 'rebooting' }]);
    assert.equal(await servedKind(srv, mac), 'none');
    ipxe = (await call(`${srv.url}/ipxe/${mac}`)).text;
    assert.deepEqual(checkIpxeScript(ipxe), []);
    assert.doesNotMatch(ipxe, /^kernel /m);
    assert.match(ipxe, /one-shot deploy done/);
    const m = (await call(`${srv.url}/api/machines/${mac}`)).json();
    assert.equal(m.next, 'none (boot from disk)');
    assert.match(m.action, /^deploy /);
    const runs = (await call(`${srv.url}/api/machines/${mac}/runs`)).json().runs;
    assert.equal(runs.length, 2, 'the "rebooting" after the result belongs to the same run');
    assert.equal(runs[0].ok, true);
    assert.equal(runs[0].bytes, 1000);
    assert.deepEqual(runs[0].phases.map((p: { phase: string }) => p.phase), ['booting', 'writing', 'done', 'rebooting']);
    assert.equal(runs[1].ok, false);
    assert.equal(runs[1].error, 'fetch failed');

    assert.equal((await machinesCli(srv.url, 'set', mac, '--rearm')).code, 0);
    assert.equal(await servedKind(srv, mac), 'deploy');
    assert.equal((await machinesCli(srv.url, 'set', mac, '--persistent')).code, 0);
    await postEvents(srv, mac, [{ type: 'phase', time: t(), phase: 'booting' }, { type: 'result', time: t(), ok: true, action: 'deploy' }]);
    assert.equal(await servedKind(srv, mac), 'deploy', 'a persistent machine re-images at every boot');
  });

  it('declarative files: picked up at fetch, SIGHUP and POST /api/reload; API changes go into the file', async () => {
    const mac = '52-54-00-10-00-03';
    const file = join(dataDir, 'machines', `${mac}.json`);
    await writeFile(file, JSON.stringify({ action: 'wipe', disk: '/dev/sdb' }));
    srv.child.kill('SIGHUP');
    await eventually('SIGHUP imports the file', async () => (await call(`${srv.url}/api/machines`)).json().machines.some((m: { mac: string; managedBy?: string }) => m.mac === mac && m.managedBy === 'file'));
    assert.equal(await servedKind(srv, mac), 'wipe');
    // the API writes into the file, so reload keeps it
    assert.equal((await call(`${srv.url}/api/machines/${mac}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ action: { action: 'shell' } }) })).status, 200);
    assert.equal(parseAction(await readFile(file, 'utf8')).action, 'shell');
    const rl = (await call(`${srv.url}/api/reload`, { method: 'POST' })).json();
    assert.deepEqual(rl.changed, []);
    assert.equal(await servedKind(srv, mac), 'shell');
    // a broken edit is reported by reload and never served
    await writeFile(file, '{"action": "wipe", "disk": "sdb"}');
    const bad = (await call(`${srv.url}/api/reload`, { method: 'POST' })).json();
    assert.equal(bad.ok, false);
    assert.ok(bad.errors.some((e: string) => e.includes(`${mac}.json`) && e.includes('"disk"')), JSON.stringify(bad));
    assert.equal((await call(`${srv.url}/${mac}.bty`)).status, 500);
    const ipxe = (await call(`${srv.url}/ipxe/${mac}`)).text;
    assert.match(ipxe, /action is invalid/);
    assert.deepEqual(checkIpxeScript(ipxe), []);
    await rm(file);
    assert.equal((await call(`${srv.url}/${mac}.bty`)).status, 404, 'a removed file removes the action');
  });

  it('iPXE: /ipxe chains by MAC; /ipxe/<mac> loads kernel and initramfs served from --boot-dir', async () => {
    const chain = await call(`${srv.url}/ipxe`, { headers: { host: '10.9.8.7:3000' } });
    assert.equal(chain.status, 200);
    assert.deepEqual(checkIpxeScript(chain.text), []);
    assert.match(chain.text, /chain --autofree http:\/\/10\.9\.8\.7:3000\/ipxe\/\$\{netX\/mac:hexhyp\}/);
    const mac = '52-54-00-10-00-04';
    assert.equal((await machinesCli(srv.url, 'add', mac, '--action', 'wipe')).code, 0);
    const s = await call(`${srv.url}/ipxe/${mac.replace(/-/g, ':')}`, { headers: { host: '10.9.8.7:3000' } });
    assert.deepEqual(checkIpxeScript(s.text), []);
    assert.match(s.text, /^kernel http:\/\/10\.9\.8\.7:3000\/boot\/vmlinuz initrd=booty\.cpio\.zst console=tty0 console=ttyS0,115200 panic=10 MYURL=http:\/\/10\.9\.8\.7:3000 BOOTIF=01-52-54-00-10-00-04 booty\.token=52-54-00-10-00-04\.[0-9a-f]{64} \|\| goto failed$/m);
    assert.match(s.text, /^initrd http:\/\/10\.9\.8\.7:3000\/boot\/booty\.cpio\.zst \|\| goto failed$/m);
    const unknown = await call(`${srv.url}/ipxe/52-54-00-10-00-ff`);
    assert.deepEqual(checkIpxeScript(unknown.text), []);
    assert.match(unknown.text, /no action for this machine; booting from the local disk\nexit/);
    // the kernel, with Range, byte-exact
    const full = await request(`${srv.url}/boot/vmlinuz`);
    assert.equal(createHash('sha256').update(Buffer.from(await full.body.arrayBuffer())).digest('hex'), createHash('sha256').update(kernel).digest('hex'));
    const part = await call(`${srv.url}/boot/vmlinuz`, { headers: { range: 'bytes=10-19' } });
    assert.equal(part.status, 206);
    assert.equal((await call(`${srv.url}/boot/booty.cpio.zst`, { method: 'HEAD' })).headers['content-length'], '8');
    assert.equal((await call(`${srv.url}/boot/..%2Fbooty.db`)).status, 404);
    assert.equal((await call(`${srv.url}/boot/other`)).status, 404);
  });

  it('images: hand-placed images get hashed; captures name their machine; deletes refused while used', async () => {
    const placed = randomBytes(100_000);
    await writeFile(join(dataDir, 'images', 'placed.img'), placed);
    assert.equal((await call(`${srv.url}/api/reload`, { method: 'POST' })).status, 200);
    await eventually('the placed image is hashed', async () => (await call(`${srv.url}/api/images`)).json().images.some((i: { name: string; sha256?: string }) => i.name === 'placed.img' && i.sha256 !== undefined));
    const img = (await call(`${srv.url}/api/images`)).json().images.find((i: { name: string }) => i.name === 'placed.img');
    assert.equal(img.sha256, createHash('sha256').update(placed).digest('hex'));
    assert.equal(img.format, 'raw');
    assert.equal(img.uncompressedSize, 100_000);
    assert.equal(img.via, 'import');

    // a capture into the name a machine's capture action targets is attributed to that machine
    const mac = '52-54-00-10-00-05';
    assert.equal((await machinesCli(srv.url, 'add', mac, '--upload', `${srv.url}/images/cap5.img.gz`)).code, 0);
    assert.equal((await call(`${srv.url}/images/cap5.img.gz`, { method: 'PUT', body: randomBytes(1000) })).status, 201);
    const cap = (await call(`${srv.url}/api/images`)).json().images.find((i: { name: string }) => i.name === 'cap5.img.gz');
    assert.equal(cap.machine, mac);
    assert.deepEqual(cap.usedBy, [mac]);

    assert.equal((await machinesCli(srv.url, 'add', '52-54-00-10-00-06', '--image', `${srv.url}/images/placed.img`)).code, 0);
    const refused = await call(`${srv.url}/api/images/placed.img`, { method: 'DELETE' });
    assert.equal(refused.status, 409);
    assert.match(refused.text, /used by the action of 52-54-00-10-00-06/);
    assert.equal((await call(`${srv.url}/images/placed.img`, { method: 'HEAD' })).status, 200);
    assert.equal((await machinesCli(srv.url, 'rm', '52-54-00-10-00-06')).code, 0);
    assert.equal((await call(`${srv.url}/api/images/placed.img`, { method: 'DELETE' })).status, 200);
    assert.equal((await call(`${srv.url}/images/placed.img`, { method: 'HEAD' })).status, 404);
    assert.equal((await call(`${srv.url}/api/images/placed.img`, { method: 'DELETE' })).status, 404);
  });

  it('/metrics counts runs by action and result, bytes and durations', async () => {
    const mac = '52-54-00-10-00-07';
    await postEvents(srv, mac, [{ type: 'phase', time: t(), phase: 'preflight' }, { type: 'result', time: t(), ok: true, action: 'capture', bytes: 4096, seconds: 42 }]);
    const r = await call(`${srv.url}/metrics`);
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    const get = (sample: string) => {
      const line = r.text.split('\n').find((l) => l.startsWith(sample + ' '));
      return line === undefined ? undefined : Number(line.slice(sample.length + 1));
    };
    assert.equal(get('booty_runs_total{action="capture",result="ok"}'), 1);
    assert.ok((get('booty_runs_total{action="deploy",result="ok"}') ?? 0) >= 2, r.text);
    assert.equal(get('booty_runs_total{action="deploy",result="failed"}'), 1);
    assert.equal(get('booty_run_bytes_total{action="capture"}'), 4096);
    assert.equal(get('booty_run_duration_seconds_bucket{action="capture",le="30"}'), 0);
    assert.equal(get('booty_run_duration_seconds_bucket{action="capture",le="60"}'), 1);
    assert.equal(get('booty_active_transfers{kind="download"}'), 0);
    assert.ok((get('booty_image_bytes_received_total') ?? 0) >= 1000);
  });

  it('the event stream pushes machine summaries and log lines', async () => {
    const mac = '52-54-00-10-00-08';
    const controller = new AbortController();
    const res = await request(`${srv.url}/api/events/stream`, { signal: controller.signal });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/event-stream/);
    let buf = '';
    const seen = (async () => {
      for await (const c of res.body) {
        buf += String(c);
        if (buf.includes('event: log') && buf.includes(`"phase":"writing"`)) return;
      }
    })();
    await postEvents(srv, mac, [{ type: 'phase', time: t(), phase: 'writing' }, { type: 'log', time: t(), level: 'info', message: 'hello dashboard' },
      { type: 'progress', time: t(), phase: 'writing', bytes: 10, total: 20, rate: 5 }]);
    await seen;
    controller.abort();
    const machineEvent = buf.split('\n\n').find((e) => e.startsWith('event: machine') && e.includes(mac));
    assert.ok(machineEvent !== undefined, buf);
    const data = JSON.parse(machineEvent.split('\n').find((l) => l.startsWith('data: '))!.slice(6));
    assert.equal(data.phase, 'writing');
    assert.equal(data.progress.bytes, 10);
    assert.match(buf, /event: log\ndata: \{"mac":"52-54-00-10-00-08","lines":\[[^\]]*hello dashboard/);
  });

  it('machines, runs, logs and one-shot state survive a restart (booty.db)', async () => {
    await srv.close({ keepData: true });
    srv = await startBootyServer({ dataDir, args: ['--boot-dir', bootDir, '--default-action', 'off'] });
    const m = (await call(`${srv.url}/api/machines/52-54-00-10-00-02`)).json();
    assert.equal(m.persistent, true);
    assert.equal(m.phase, 'done');
    assert.equal((await call(`${srv.url}/api/machines/52-54-00-10-00-02/runs`)).json().runs.length, 3);
    assert.match((await call(`${srv.url}/api/machines/52-54-00-10-00-08/log`)).text, /info hello dashboard/);
    const five = (await call(`${srv.url}/api/machines/52-54-00-10-00-05`)).json();
    assert.match(five.action, /^capture /);
    const img = (await call(`${srv.url}/api/images`)).json().images.find((i: { name: string }) => i.name === 'cap5.img.gz');
    assert.equal(img.machine, '52-54-00-10-00-05');
    // a one-shot done before the restart stays done
    const mac = '52-54-00-10-00-09';
    assert.equal((await machinesCli(srv.url, 'add', mac, '--action', 'wipe')).code, 0);
    await postEvents(srv, mac, [{ type: 'phase', time: t(), phase: 'booting' }, { type: 'result', time: t(), ok: true, action: 'wipe' }]);
    await srv.close({ keepData: true });
    srv = await startBootyServer({ dataDir, args: ['--boot-dir', bootDir, '--default-action', 'off'] });
    assert.equal(await servedKind(srv, mac), 'none');
  });
});
