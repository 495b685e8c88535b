// The dashboard in real headless Chromium while a real `booty deploy --report` writes an image
// served by booty server (through a throttling proxy so the bar has time to move): the progress
// bar moves, the final state shows, the machine page has the run and its log, the images page
// the catalog, and a phone-sized screen has no horizontal scrolling. Screenshots go to
// .cache/test-artifacts/ (BOOTY_UPDATE_SCREENSHOT=1 also refreshes test/screenshots/dashboard.png).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { request } from 'undici';
import type { Browser, Page } from 'playwright-core';
import { agentCredentialOf, startBootyServer } from '../helpers/booty-server-process.ts';
import type { BootyServerProcess } from '../helpers/booty-server-process.ts';
import { chromiumMissing, launchChromium, loginToDashboard } from '../helpers/headless-chromium.ts';
import { startThrottledProxy } from '../helpers/throttled-proxy.ts';

// evaluated in the page (the project's TypeScript has no DOM library)
declare const document: {
  querySelector(s: string): { getAttribute(n: string): string | null } | null;
  querySelectorAll(s: string): { length: number };
  documentElement: { scrollWidth: number; clientWidth: number };
};

const root = resolve(import.meta.dirname, '..', '..');
const artifacts = join(root, '.cache', 'test-artifacts');
const missing = chromiumMissing();
const IMAGE_BYTES = 24 << 20;
const RATE = 3_000_000;
const TOKEN = `dashboard-${randomBytes(8).toString('hex')}`;
const operator = { authorization: `Bearer ${TOKEN}` };

describe('dashboard in Chromium: a real deploy', { skip: missing }, () => {
  let dataDir: string;
  let srv: BootyServerProcess;
  let proxy: Awaited<ReturnType<typeof startThrottledProxy>>;
  let browser: Browser;
  let page: Page;
  const mac = '52-54-00-d0-00-01';
  const image = randomBytes(IMAGE_BYTES);

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'booty-dashboard-'));
    await mkdir(join(dataDir, 'images'), { recursive: true });
    await writeFile(join(dataDir, 'images', 'demo.img'), image);
    await mkdir(artifacts, { recursive: true });
    srv = await startBootyServer({ dataDir, args: ['--token', TOKEN] });
    proxy = await startThrottledProxy(srv.url, RATE);
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
    await loginToDashboard(page, srv.url, TOKEN);
  });
  after(async () => {
    await browser?.close();
    await proxy?.close();
    await srv?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('shows the progress bar moving and the final state of a real deploy', async () => {
    const put = await request(`${srv.url}/api/machines/${mac}`, { method: 'PUT', headers: { 'content-type': 'application/json', ...operator }, body: JSON.stringify({ name: 'rack1-u7', action: { action: 'deploy', image: `${proxy.url}/images/demo.img`, disk: '/dev/vda' } }) });
    assert.equal(put.statusCode, 200, await put.body.text());
    await page.goto(srv.url + '/#/cards');
    const card = page.locator(`[data-mac="${mac}"]`);
    await card.waitFor();
    assert.match(await card.innerText(), /next boot: deploy http:\/\/127\.0\.0\.1:\d+\/images\/demo\.img -> \/dev\/vda/);
    await page.locator('#live.on').waitFor();

    const disk = join(dataDir, 'disk.img');
    await writeFile(disk, '');
    await (await import('node:fs/promises')).truncate(disk, 32 << 20);
    // it reports as the machine's agent would: with that machine's credential
    const credential = await agentCredentialOf(srv.url, mac, TOKEN);
    const child = spawn(join(root, 'bin', 'booty'), ['deploy', '--image', `${proxy.url}/images/demo.img`, '--disk', disk, '--report', srv.url, '--mac', mac, '--token', credential, '-q'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c) => { out += String(c); });
    child.stderr.on('data', (c) => { out += String(c); });
    const exited = new Promise<number | null>((ok) => child.once('exit', (code) => ok(code)));

    // the bar moves: two different values strictly between 0 and 100 percent, seen in the page
    const bar = `[data-mac="${mac}"] .bar`;
    const seen: number[] = [];
    for (let i = 0; i < 2; i++) {
      const last = seen[seen.length - 1] ?? 0;
      const h = await page.waitForFunction(([sel, prev]) => {
        const b = document.querySelector(sel as string);
        const v = Number(b?.getAttribute('data-bytes') ?? NaN);
        const pct = Number(b?.getAttribute('aria-valuenow') ?? NaN);
        return v > (prev as number) && pct < 100 ? v : false;
      }, [bar, last], { timeout: 120_000 });
      seen.push(await h.jsonValue() as number);
      if (i === 0) await page.screenshot({ path: join(artifacts, 'dashboard-progress.png') });
    }
    assert.ok(seen[1] > seen[0] && seen[0] > 0, `bar values ${seen.join(', ')}`);
    const figures = await page.locator(`[data-mac="${mac}"] .figures`).innerText();
    assert.match(figures, /\d+% · [\d.]+ MB of 25\.2 MB · [\d.]+ MB\/s · ETA \d+:\d\d/);

    assert.equal(await exited, 0, out);
    await page.locator(`[data-mac="${mac}"][data-phase="done"]`).waitFor({ timeout: 60_000 });
    const done = await card.innerText();
    assert.match(done, /done/);
    assert.match(done, /100%/);
    assert.match(done, /next boot: none \(boot from disk\)/, 'the one-shot deploy is consumed');
    assert.equal(await page.locator(`${bar}`).getAttribute('aria-valuenow'), '100');
    const written = (await readFile(disk)).subarray(0, IMAGE_BYTES);
    assert.equal(createHash('sha256').update(written).digest('hex'), createHash('sha256').update(image).digest('hex'));
    await page.screenshot({ path: join(artifacts, 'dashboard.png') });
    if (process.env.BOOTY_UPDATE_SCREENSHOT === '1') await copyFile(join(artifacts, 'dashboard.png'), join(root, 'test', 'screenshots', 'dashboard.png'));
  });

  it('the machine page shows the run, the operator\'s change and the full log', async () => {
    await page.locator(`[data-mac="${mac}"] a.mac`).click();
    await page.locator('#runs').waitFor();
    const runs = await page.locator('#runs tbody tr').first().innerText();
    assert.match(runs, /deploy/);
    assert.match(runs, /\bok\b/);
    assert.match(runs, /25\.2 MB/);
    const change = await page.locator('#audit tbody tr').first().innerText();
    assert.match(change, /server --token/);
    assert.match(change, new RegExp(`PUT /api/machines/${mac}`));
    assert.match(change, /\(none\)[\s\S]*"action":"deploy"/, 'before: nothing; after: the deploy');
    assert.match(await page.locator('#fulllog').innerText(), /result deploy ok: 25165824 bytes; sha256 [0-9a-f]{64}/);
    await page.screenshot({ path: join(artifacts, 'dashboard-machine.png'), fullPage: true });
  });

  it('the images page lists the image with its sha256', async () => {
    await page.goto(srv.url + '/#/images');
    await page.locator('#images').waitFor();
    const row = await page.locator('#images tbody tr', { hasText: 'demo.img' }).innerText();
    assert.match(row, /25\.2 MB/);
    assert.match(row, /raw/);
    assert.ok(row.includes(createHash('sha256').update(image).digest('hex').slice(0, 12)), row);
  });

  it('works on a phone-sized screen (no horizontal scrolling)', async () => {
    const phone = await browser.newPage({ viewport: { width: 375, height: 740 }, deviceScaleFactor: 2, isMobile: true });
    try {
      await loginToDashboard(phone, srv.url, TOKEN);
      for (const hash of ['#/', `#/m/${mac}`, '#/images']) {
        await phone.goto(`${srv.url}/${hash}`);
        await phone.locator('main > h1').waitFor();
        // each page draws whole, heading included, once its data is in ('networkidle' never comes while the live stream is open)
        const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
        assert.ok(overflow <= 0, `${hash}: page is ${overflow}px wider than the screen`);
      }
      await phone.goto(`${srv.url}/#/`);
      await phone.locator(`[data-mac="${mac}"]`).waitFor();
      await phone.screenshot({ path: join(artifacts, 'dashboard-phone.png') });
    } finally { await phone.close(); }
  });
});
