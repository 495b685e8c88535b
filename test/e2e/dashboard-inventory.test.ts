// Enrollment on the dashboard, in real headless Chromium: a machine the server never heard of
// sends its inventory and asks for its action (the default `inspect`) with its own credential;
// its card appears live with the phase in words and its hardware in one line.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request } from 'undici';
import type { Browser, Page } from 'playwright-core';
import { agentCredentialOf, startBootyServer, type BootyServerProcess } from '../helpers/booty-server-process.ts';
import { chromiumMissing, launchChromium, loginToDashboard } from '../helpers/headless-chromium.ts';
import type { MachineInventory } from '../../src/config/inventory.ts';

const missing = chromiumMissing();
const TOKEN = `dashboard-${randomBytes(8).toString('hex')}`;

const inventory: MachineInventory = {
  version: 1, collected: new Date().toISOString(),
  system: { vendor: 'BootyLabs', product: 'Inventory Rig', serial: 'INV-SER-0042' },
  firmware: { mode: 'uefi', secureBoot: false },
  cpu: { threads: 8 }, memory: { totalBytes: 16e9 },
  disks: [
    { name: 'nvme0n1', sizeBytes: 512 * 2 ** 30, logicalSectorSize: 512, physicalSectorSize: 512, transport: 'nvme', removable: false, readOnly: false },
    { name: 'sda', sizeBytes: 4 * 2 ** 40, logicalSectorSize: 4096, physicalSectorSize: 4096, transport: 'sata', removable: false, readOnly: false },
  ],
  nics: [{ name: 'eth0', mac: '52:54:00:d0:17:01', driver: 'ixgbe', speedMbps: 10000, link: true }],
};

describe('dashboard in Chromium: an unknown machine enrolls', { skip: missing }, () => {
  let srv: BootyServerProcess;
  let browser: Browser;
  let page: Page;
  const mac = '52-54-00-d0-17-01';

  before(async () => {
    srv = await startBootyServer({ args: ['--token', TOKEN] });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
    await loginToDashboard(page, srv.url, TOKEN);
  });
  after(async () => {
    await browser?.close();
    await srv?.close();
  });

  it('shows the inspected machine with its hardware, live', async () => {
    await page.goto(srv.url + '/#/cards');
    await page.locator('#live.on').waitFor();
    const agent = { 'content-type': 'application/json', authorization: `Bearer ${await agentCredentialOf(srv.url, mac, TOKEN)}` };
    const action = await request(`${srv.url}/${mac}`, { headers: agent });
    assert.equal((JSON.parse(await action.body.text()) as { booty: { action: string } }).booty.action, 'inspect');
    const inv = await request(`${srv.url}/api/machines/${mac}/inventory`, { method: 'POST', headers: agent, body: JSON.stringify(inventory) });
    assert.equal(inv.statusCode, 200, await inv.body.text());
    const ev = await request(`${srv.url}/api/machines/${mac}/events`, { method: 'POST', headers: agent, body: JSON.stringify({ type: 'phase', time: new Date().toISOString(), phase: 'inspecting', detail: 'waiting for an operator' }) });
    assert.equal(ev.statusCode, 200, await ev.body.text());
    const card = page.locator(`[data-mac="${mac}"]`);
    await card.locator('.hardware').waitFor();
    const text = await card.innerText();
    assert.match(text, /inspected: waiting for an operator/);
    assert.match(text, /next boot: inspect \(report the hardware, wait for an operator\)/);
    assert.equal(await card.locator('.hardware').innerText(), 'BootyLabs Inventory Rig · serial INV-SER-0042 · uefi · 8 CPUs · 16.0 GB RAM · disks: nvme0n1 nvme 512.0 GiB, sda sata 4096.0 GiB 4Kn');
  });
});
