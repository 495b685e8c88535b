// Zero-touch enrollment at the server: a MAC it has never seen gets the server's default action
// (`inspect` unless --default-action says otherwise; default.json still wins), its agent's
// inventory is accepted only with that machine's credential and only when it validates, it is
// stored (surviving a restart), and the machine shows with its facts in the API, in
// `booty machines list` and in the machine's detail; --default-action off gives the old 404
// and an iPXE `exit`.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { request } from 'undici';
import { agentCredentialOf, startBootyServer, type BootyServerProcess } from '../helpers/booty-server-process.ts';
import type { MachineInventory } from '../../src/config/inventory.ts';

async function call(url: string, init: Parameters<typeof request>[1] = {}) {
  const res = await request(url, init);
  return { status: res.statusCode, text: await res.body.text() };
}
const post = (url: string, body: unknown, token?: string) => call(url, {
  method: 'POST', body: JSON.stringify(body),
  headers: { 'content-type': 'application/json', ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
});

const inventory: MachineInventory = {
  version: 1, collected: '2026-12-06T10:00:00.000Z',
  system: { vendor: 'BootyLabs', product: 'Inventory Rig', serial: 'INV-SER-0042', uuid: 'c0ffee00-1717-4a4a-8b8b-000000000017' },
  firmware: { mode: 'uefi', secureBoot: true },
  cpu: { model: 'QEMU Virtual CPU', threads: 4, sockets: 1, cores: 4 },
  memory: { totalBytes: 8 * 2 ** 30 },
  disks: [
    { name: 'nvme0n1', sizeBytes: 64 * 2 ** 30, logicalSectorSize: 512, physicalSectorSize: 512, transport: 'nvme', rotational: false, removable: false, readOnly: false, serial: 'NVME-1', model: 'QEMU NVMe Ctrl' },
    { name: 'sda', sizeBytes: 2 ** 40, logicalSectorSize: 4096, physicalSectorSize: 4096, transport: 'sata', rotational: true, removable: false, readOnly: false, serial: 'SATA-2' },
  ],
  nics: [{ name: 'eth0', mac: '52:54:00:e1:17:11', driver: 'e1000', speedMbps: 1000, link: true }],
};

describe('booty server: inventory and the default action', () => {
  let srv: BootyServerProcess;
  const mac = '52-54-00-e1-17-11';
  before(async () => { srv = await startBootyServer(); });
  after(async () => { await srv?.close(); });

  it('an unknown MAC gets inspect from the server (and iPXE boots it); default.json wins over it', async () => {
    const r = await call(`${srv.url}/52-54-00-e1-17-99`);
    assert.equal(r.status, 200, r.text);
    assert.equal((JSON.parse(r.text) as { booty: { action: string } }).booty.action, 'inspect');
    const ipxe = await call(`${srv.url}/ipxe/52-54-00-e1-17-99`);
    assert.match(ipxe.text, /^kernel .*BOOTIF=01-52-54-00-e1-17-99/m);
    await writeFile(join(srv.dataDir, 'default.json'), JSON.stringify({ action: 'none' }));
    const d = await call(`${srv.url}/52-54-00-e1-17-99`);
    assert.equal((JSON.parse(d.text) as { booty: { action: string } }).booty.action, 'none');
    await rm(join(srv.dataDir, 'default.json'));
  });

  it('inventory: only with that machine\'s credential, only valid, then shown with its facts', async () => {
    const url = `${srv.url}/api/machines/${mac}/inventory`;
    const own = await agentCredentialOf(srv.url, mac);
    const other = await agentCredentialOf(srv.url, '52-54-00-e1-17-12');
    assert.equal((await post(url, inventory, 'not-a-credential')).status, 401);
    const wrong = await post(url, inventory, other);
    assert.equal(wrong.status, 403);
    assert.match(wrong.text, /this credential is for 52-54-00-e1-17-12, not 52-54-00-e1-17-11/);
    const bad = await post(url, { ...inventory, disks: [{ ...inventory.disks[0], transport: 'floppy' }] }, own);
    assert.equal(bad.status, 400);
    assert.match((JSON.parse(bad.text) as { error: string }).error, /inventory: field "disks\.0\.transport" must be one of nvme, sata, scsi, virtio, usb, mmc, unknown/);
    const extra = await post(url, { ...inventory, owner: 'me' }, own);
    assert.match((JSON.parse(extra.text) as { error: string }).error, /field "owner" is not a known field/);
    const ok = await post(url, inventory, own);
    assert.equal(ok.status, 200, ok.text);

    // operators read it back (loopback without a token is an operator here)
    const got = JSON.parse((await call(url)).text) as { inventory: MachineInventory };
    assert.deepEqual(got.inventory, inventory);
    const list = JSON.parse((await call(`${srv.url}/api/machines`)).text) as { machines: { mac: string; hardware?: unknown; next?: string }[] };
    const m = list.machines.find((x) => x.mac === mac);
    assert.ok(m !== undefined, 'a machine that only sent its inventory is listed');
    assert.deepEqual(m.hardware && { ...(m.hardware as Record<string, unknown>), received: 'x' }, {
      received: 'x', vendor: 'BootyLabs', product: 'Inventory Rig', serial: 'INV-SER-0042', firmware: 'uefi', secureBoot: true,
      cpus: 4, memoryBytes: 8 * 2 ** 30, disks: ['nvme0n1 nvme 64.0 GiB', 'sda sata 1024.0 GiB 4Kn'], nics: ['eth0 52:54:00:e1:17:11 e1000'],
    });
    assert.equal(m.next, 'inspect (report the hardware, wait for an operator)');
    const cli = execFileSync(resolve(import.meta.dirname, '..', '..', 'bin', 'booty'), ['machines', 'list', '--server', srv.url], { encoding: 'utf8' });
    assert.match(cli, /HARDWARE/);
    // the operator's answer, from the CLI: a secure wipe of the disk the inventory calls nvme
    const set = execFileSync(resolve(import.meta.dirname, '..', '..', 'bin', 'booty'), ['machines', 'set', mac, '--server', srv.url, '--wipe-method', 'secure', '--wipe-fallback', 'zero', '--disk-transport', 'nvme'], { encoding: 'utf8' });
    assert.equal(set, `${mac}: next boot: wipe (disk with transport="nvme") (secure, fallback zero)\n`);
    assert.match(cli, new RegExp(`${mac} .*inspect \\(report the hardware, wait for an operator\\).*BootyLabs Inventory Rig, serial INV-SER-0042, uefi secure boot, 4 CPUs, 8\\.0 GiB RAM, disks: nvme0n1 nvme 64\\.0 GiB, sda sata 1024\\.0 GiB 4Kn`));
  });

  it('the inventory survives a restart; --default-action off: unknown MACs get a 404 and iPXE exit', async () => {
    await srv.close({ keepData: true });
    srv = await startBootyServer({ dataDir: srv.dataDir, args: ['--default-action', 'off'] });
    const got = JSON.parse((await call(`${srv.url}/api/machines/${mac}/inventory`)).text) as { inventory: MachineInventory };
    assert.deepEqual(got.inventory, inventory);
    assert.equal((await call(`${srv.url}/52-54-00-e1-17-98`)).status, 404);
    assert.match((await call(`${srv.url}/ipxe/52-54-00-e1-17-98`)).text, /\nexit/);
    const bad = spawnSync(resolve(import.meta.dirname, '..', '..', 'bin', 'booty'), ['server', '--data', srv.dataDir, '--listen', '127.0.0.1:0', '--default-action', 'deploy'], { encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--default-action must be inspect, none or off/);
  });
});
