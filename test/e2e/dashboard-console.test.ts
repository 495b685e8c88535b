// The operator's console in real headless Chromium against a real booty server: an operator
// logs in, registers three machines by MAC, sees a refused bulk change say why (the server's
// sentence), bulk-assigns an image from the catalog with a hostname pattern after checking the
// exact actions, a real `booty deploy --report` per machine runs and the table follows live to
// done; the fleet view counts them; an image uploaded from the browser (resumable parts, sha256
// computed in the page) lands in the catalog with node:crypto's sha256; deleting an image in
// use is refused naming its machines. Every page fails the test on a console error or page
// error. Screenshots of each page (and of the bulk change's check) at desktop (1280x800) and phone (390x844) width go to
// .cache/test-artifacts/console/ (BOOTY_UPDATE_SCREENSHOT=1 also refreshes test/screenshots/).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm, truncate, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { request } from 'undici';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { agentCredentialOf, startBootyServer } from '../helpers/booty-server-process.ts';
import type { BootyServerProcess } from '../helpers/booty-server-process.ts';
import { chromiumMissing, launchChromium, loginToDashboard } from '../helpers/headless-chromium.ts';

// evaluated in the page (the project's TypeScript has no DOM library)
declare const document: {
  documentElement: { scrollWidth: number; clientWidth: number };
  querySelectorAll(s: string): Iterable<{ tagName: string; id: string; className: string; textContent: string | null; getBoundingClientRect(): { right: number } }>;
};
declare const window: Record<string, unknown>;
declare const localStorage: { setItem(k: string, v: string): void };

const root = resolve(import.meta.dirname, '..', '..');
const artifacts = join(root, '.cache', 'test-artifacts', 'console');
const missing = chromiumMissing();
const TOKEN = `console-${randomBytes(8).toString('hex')}`;
const operator = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
const IMAGE_BYTES = 6 << 20;
const MACS = ['52-54-00-c0-00-01', '52-54-00-c0-00-02', '52-54-00-c0-00-03'];

/** Console errors and page errors of a page; `allowed` are the refusals a test provokes on purpose. */
function watchErrors(page: Page): { errors: string[]; allowed: RegExp[] } {
  const w = { errors: [] as string[], allowed: [] as RegExp[] };
  page.on('console', (m) => { if (m.type() === 'error' && !w.allowed.some((r) => r.test(m.text()))) w.errors.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => { w.errors.push(`pageerror: ${e.message}`); });
  return w;
}

async function shoot(page: Page, name: string): Promise<void> {
  await mkdir(artifacts, { recursive: true });
  const file = join(artifacts, `${name}.png`);
  await page.screenshot({ path: file });
  if (process.env.BOOTY_UPDATE_SCREENSHOT === '1') await copyFile(file, join(root, 'test', 'screenshots', `${name}.png`));
}

describe('the operator\'s console in Chromium', { skip: missing }, () => {
  let dataDir: string;
  let srv: BootyServerProcess;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let watch: ReturnType<typeof watchErrors>;
  const image = randomBytes(IMAGE_BYTES);

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'booty-console-'));
    await mkdir(join(dataDir, 'images'), { recursive: true });
    await writeFile(join(dataDir, 'images', 'ubuntu-24.04.img'), image);
    srv = await startBootyServer({ dataDir, args: ['--token', TOKEN] });
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    page = await context.newPage();
    watch = watchErrors(page);
    await loginToDashboard(page, srv.url, TOKEN);
  });
  after(async () => {
    await browser?.close();
    await srv?.close();
    await rm(dataDir, { recursive: true, force: true });
  });
  const noErrors = () => assert.deepEqual(watch.errors, [], 'no console errors or page errors');

  it('registers three machines by MAC', async () => {
    await page.goto(`${srv.url}/#/`);
    await page.locator('#live.on').waitFor();
    await page.locator('#register-open').click();
    await page.locator('#register-macs').fill(MACS.map((m, i) => `${m.replaceAll('-', ':')} rack7-u${i + 1}`).join('\n'));
    await page.locator('#register-save').click();
    await page.locator('#register-result', { hasText: 'Registered 3 machines' }).waitFor();
    for (const mac of MACS) await page.locator(`#machines-table tr[data-mac="${mac}"]`).waitFor();
    assert.equal(await page.locator('#summary').innerText(), '3 machines');
    assert.match(await page.locator(`tr[data-mac="${MACS[1]}"]`).innerText(), /rack7-u2/);
    noErrors();
  });

  it('a refused change shows the server\'s sentence and cannot be saved', async () => {
    // shift-click: the first row, then the third selects all three
    await page.locator(`tr[data-mac="${MACS[0]}"] td:nth-child(3)`).click();
    await page.locator(`tr[data-mac="${MACS[2]}"] td:nth-child(3)`).click({ modifiers: ['Shift'] });
    assert.equal(await page.locator('#summary').innerText(), '3 machines · 3 selected');
    await page.locator('#bulk-open').click();
    await page.locator('#bulk-action').selectOption('deploy');
    await page.locator('#bulk-image').selectOption('ubuntu-24.04.img');
    await page.locator('#bulk-disk').fill('vda');
    await page.locator('#bulk-check').click();
    const error = await page.locator('#bulk-error', { hasText: 'refused' }).innerText();
    assert.match(error, /^3 of 3 changes refused, nothing saved: 52-54-00-c0-00-01: .*"disk"/);
    assert.match(await page.locator('#bulk-preview li.error').first().innerText(), /"disk"/);
    assert.equal(await page.locator('#bulk-save').isDisabled(), true);
    noErrors();
  });

  it('bulk-assigns the image after showing the exact action each machine will be served', async () => {
    const sha = createHash('sha256').update(image).digest('hex');
    assert.equal(await page.locator('#bulk-sha256').inputValue(), sha, 'the sha256 comes from the catalog');
    await page.locator('#bulk-disk').fill('/dev/vda');
    await page.locator('#bulk-hostname').fill('web{n}');
    await page.locator('#bulk-check').click();
    await page.locator('#bulk-preview details').nth(2).waitFor();
    assert.equal(await page.locator('#bulk-error').innerText(), '');
    const served = JSON.parse(await page.locator(`#bulk-preview details[data-mac="${MACS[1]}"] pre`).innerText()) as { booty: Record<string, any> };
    assert.equal(served.booty.action, 'deploy');
    assert.equal(served.booty.image, `${srv.url}/images/ubuntu-24.04.img`);
    assert.equal(served.booty.sha256, sha);
    assert.equal(served.booty.post.hostname, 'web2', 'numbered in the table\'s order');
    await shoot(page, 'console-bulk-desktop');
    await page.locator('#bulk-save').click();
    await page.locator('#bulk-result', { hasText: 'Saved: 3 machines.' }).waitFor();
    for (const [i, mac] of MACS.entries()) {
      const r = await request(`${srv.url}/${mac}`, { headers: operator });
      const a = JSON.parse(await r.body.text()) as { booty: { post: { hostname: string }; disk: string } };
      assert.equal(a.booty.post.hostname, `web${i + 1}`);
      assert.equal(a.booty.disk, '/dev/vda');
      await page.locator(`tr[data-mac="${mac}"] td.next-cell`, { hasText: 'deploy' }).waitFor();
    }
    noErrors();
  });

  it('a real `booty deploy --report` per machine: the table follows each to done, live', async () => {
    await page.evaluate(() => { window.sameDocument = true; });
    const runs = MACS.map(async (mac) => {
      const disk = join(dataDir, `${mac}.disk`);
      await writeFile(disk, '');
      await truncate(disk, 8 << 20);
      const credential = await agentCredentialOf(srv.url, mac, TOKEN);
      const child = spawn(join(root, 'bin', 'booty'), ['deploy', '--image', `${srv.url}/images/ubuntu-24.04.img`, '--disk', disk, '--report', srv.url, '--mac', mac, '--token', credential, '-q'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (c) => { out += String(c); });
      child.stderr.on('data', (c) => { out += String(c); });
      const code = await new Promise<number | null>((ok) => child.once('exit', (c) => ok(c)));
      assert.equal(code, 0, out);
      assert.equal(createHash('sha256').update((await readFile(disk)).subarray(0, IMAGE_BYTES)).digest('hex'), createHash('sha256').update(image).digest('hex'));
    });
    await Promise.all(runs);
    for (const mac of MACS) {
      await page.locator(`tr[data-mac="${mac}"][data-phase="done"] .bar[aria-valuenow="100"]`).waitFor({ timeout: 60_000 });
      assert.match(await page.locator(`tr[data-mac="${mac}"] td.next-cell`).innerText(), /none \(boot from disk\)/, 'the one-shot deploy is consumed');
    }
    assert.equal(await page.evaluate(() => window.sameDocument), true, 'updated live, without reloading the page');
    await page.locator('#search').fill('web');
    await page.locator('#search').fill('rack7-u3');
    await page.locator('#summary', { hasText: '1 of 3 machines shown' }).waitFor();
    await page.locator('#search').fill('');
    await page.locator('#summary', { hasText: /^3 machines/ }).waitFor();
    noErrors();
  });

  it('the fleet view counts the machines by state and phase, each count a link to the table', async () => {
    await page.goto(`${srv.url}/#/fleet`);
    await page.locator('#phase-counts').waitFor();
    assert.equal(await page.locator('#phase-counts a[data-count-of="state:done"] strong').innerText(), '3');
    assert.match(await page.locator('#failures h2').innerText(), /Failures of the last day: 0/);
    await page.locator('#phase-counts a[data-count-of="state:done"]').click();
    await page.locator('#summary', { hasText: /^3 machines/ }).waitFor();
    assert.equal(await page.locator('#filter-phase').inputValue(), 'state:done');
    noErrors();
  });

  it('an image uploaded from the browser ends in the catalog with its sha256, resumed where it stopped', async () => {
    // 40 MiB: three parts of the server's 16 MiB
    const upload = randomBytes(40 << 20);
    const sha = createHash('sha256').update(upload).digest('hex');
    await page.goto(`${srv.url}/#/images`);
    // from a file (as a person picks one): a 40 MiB buffer through the DevTools protocol is slow on a loaded host
    const file = join(dataDir, 'debian-12.img');
    await writeFile(file, upload);
    // an upload that stopped after its first part (a lost connection, a closed tab): the session
    // and part 0 are on the server, and the browser remembers the session for this file
    const when = new Date('2026-12-01T10:00:00Z');
    await utimes(file, when, when);
    const session = await request(`${srv.url}/api/uploads`, { method: 'POST', headers: operator, body: JSON.stringify({ name: 'debian-12.img', size: upload.length }) });
    const { id, partSize } = JSON.parse(await session.body.text()) as { id: string; partSize: number };
    const part0 = upload.subarray(0, partSize);
    const put = await request(`${srv.url}/api/uploads/${id}/parts/0`, { method: 'PUT', headers: { authorization: operator.authorization, 'x-booty-sha256': createHash('sha256').update(part0).digest('hex') }, body: part0 });
    assert.equal(put.statusCode, 200, await put.body.text());
    await page.evaluate(([k, v]) => { localStorage.setItem(k, v); }, [`booty-upload:debian-12.img:${upload.length}:${when.getTime()}`, id]);
    await page.locator('#upload-file').setInputFiles(file);
    await page.locator('#upload-start').click();
    await page.locator('#upload-result', { hasText: 'Stored debian-12.img' }).waitFor({ timeout: 120_000 });
    assert.match(await page.locator('#upload-result').innerText(), /resumed: 1 part was already on the server/);
    assert.equal(await page.locator('#upload-result').getAttribute('data-sha256'), sha);
    assert.match(await page.locator('#upload-figures').innerText(), /part 3 of 3/);
    assert.equal(await page.locator('#upload-bar').getAttribute('aria-valuenow'), '100');
    await page.locator('#images tr[data-image="debian-12.img"]').waitFor();
    assert.equal(await page.locator('#images tr[data-image="debian-12.img"] td.hash').getAttribute('data-sha256'), sha);
    assert.equal(createHash('sha256').update(await readFile(join(dataDir, 'images', 'debian-12.img'))).digest('hex'), sha);
    noErrors();
  });

  it('deleting an image in use is refused, naming its machines; an unused one goes', async () => {
    watch.allowed.push(/status of 409/);
    const row = page.locator('#images tr[data-image="ubuntu-24.04.img"]');
    assert.match(await row.innerText(), /52-54-00-c0-00-01, 52-54-00-c0-00-02, 52-54-00-c0-00-03/);
    await row.locator('[data-delete]').click();
    await row.locator('[data-delete]', { hasText: 'really delete?' }).click();
    await page.locator('#images-error', { hasText: 'is used by the action of 52-54-00-c0-00-01, 52-54-00-c0-00-02, 52-54-00-c0-00-03' }).waitFor();
    const unused = page.locator('#images tr[data-image="debian-12.img"]');
    await unused.locator('[data-delete]').click();
    await unused.locator('[data-delete]').click();
    await unused.waitFor({ state: 'detached' });
    noErrors();
  });

  it('the fleet view follows deploys in progress, their MB/s and a failure, live', async () => {
    await page.goto(`${srv.url}/#/fleet`);
    await page.locator('#phase-counts').waitFor();
    await page.evaluate(() => { window.sameDocument = true; });
    // three more machines report as agents would: two writing, one failed
    const t = () => new Date().toISOString();
    const agents: [string, unknown[]][] = [
      ['52-54-00-c0-00-11', [{ type: 'phase', time: t(), phase: 'writing' }, { type: 'progress', time: t(), phase: 'writing', bytes: 4e9, total: 1e10, rate: 110e6 }]],
      ['52-54-00-c0-00-12', [{ type: 'phase', time: t(), phase: 'writing' }, { type: 'progress', time: t(), phase: 'writing', bytes: 7e9, total: 1e10, rate: 95e6 }]],
      ['52-54-00-c0-00-14', [{ type: 'phase', time: t(), phase: 'dhcp' }]],
      ['52-54-00-c0-00-13', [{ type: 'phase', time: t(), phase: 'writing' }, { type: 'result', time: t(), ok: false, action: 'deploy', code: 'CHECKSUM', message: 'deploy: image checksum mismatch (expected ab12…, got 9f3c…); disk left unbootable; see /tmp/booty.log' }, { type: 'phase', time: t(), phase: 'failed' }]],
    ];
    for (const [mac, events] of agents) {
      const credential = await agentCredentialOf(srv.url, mac, TOKEN);
      const r = await request(`${srv.url}/api/machines/${mac}/events`, { method: 'POST', headers: { ...operator, authorization: `Bearer ${credential}` }, body: JSON.stringify(events) });
      assert.equal(r.statusCode, 200, await r.body.text());
    }
    await page.locator('#aggregate-rate[data-rate="205000000"]').waitFor();
    assert.equal(await page.locator('#aggregate-rate').innerText(), '205 MB/s');
    assert.equal(await page.locator('#stacked .seg[data-stage="writing"]').getAttribute('data-count'), '2');
    assert.equal(await page.locator('#transfers li').count(), 2);
    await page.locator('#stacked .seg[data-stage="starting"][data-count="1"]').waitFor();
    const failure = page.locator('#failures li[data-mac="52-54-00-c0-00-13"]');
    await failure.waitFor();
    assert.match(await failure.innerText(), /image checksum mismatch \(expected ab12…, got 9f3c…\); disk left unbootable/);
    assert.equal(await page.locator('#phase-counts a[data-count-of="state:failed"] strong').innerText(), '1');
    assert.equal(await page.evaluate(() => window.sameDocument), true, 'updated live, without reloading the page');
    await failure.locator('a.mac').click();
    await page.waitForURL(/#\/m\/52-54-00-c0-00-13$/);
    noErrors();
  });

  it('screenshots of every page at desktop and phone width, none wider than the screen', async () => {
    const pages: [string, string][] = [['fleet', '#/fleet'], ['machines', '#/'], ['machine', `#/m/${MACS[0]}`], ['images', '#/images']];
    for (const [device, viewport] of [['desktop', { width: 1280, height: 800 }], ['phone', { width: 390, height: 844 }]] as const) {
      const ctx = await browser.newContext({ viewport, deviceScaleFactor: device === 'phone' ? 2 : 1, isMobile: device === 'phone' });
      const p = await ctx.newPage();
      const w = watchErrors(p);
      try {
        await p.goto(`${srv.url}/`);
        await p.locator('#login #token').waitFor();
        await shoot(p, `console-login-${device}`);
        await loginToDashboard(p, srv.url, TOKEN);
        for (const [name, hash] of pages) {
          await p.goto(`${srv.url}/${hash}`);
          await p.locator('main > h1').waitFor();
          await p.locator('#live.on').waitFor();
          if (name === 'machines') await p.locator('#machines-table tbody tr[data-mac]').first().waitFor();
          if (name === 'machine') await p.locator('#runs').waitFor();
          if (name === 'images') await p.locator('#images').waitFor();
          const overflow = await p.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
          const wide = overflow <= 0 ? '' : await p.evaluate(() => [...document.querySelectorAll('body *')]
            .filter((e) => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1).slice(0, 5)
            .map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.className}: ${(e.textContent ?? '').slice(0, 50)}`).join('; '));
          await shoot(p, `console-${name}-${device}`);
          assert.ok(overflow <= 0, `${name} on a ${device}: ${overflow}px wider than the screen (${wide})`);
        }
        assert.deepEqual(w.errors, [], `${device}: no console errors`);
      } finally { await ctx.close(); }
    }
  });
});
