// 1,000 machines in a real booty server's database (registered through POST /api/machines/bulk
// in one request, 25 racks of 40, four images): the machines table in headless Chromium shows
// them all with only the rows in view in the DOM, filters, searches and sorts them, scrolls to
// the last, and follows a live change. Times are measured in the page (from the change to the
// frame after the table is redrawn) and printed; they are asserted only with a generous bound
// (10 s), since the machine running the tests is shared: figures, not a benchmark.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import type { Browser, Page } from 'playwright-core';
import { agentCredentialOf, startBootyServer } from '../helpers/booty-server-process.ts';
import type { BootyServerProcess } from '../helpers/booty-server-process.ts';
import { chromiumMissing, launchChromium, loginToDashboard } from '../helpers/headless-chromium.ts';

// evaluated in the page (the project's TypeScript has no DOM library)
declare const document: {
  getElementById(id: string): { textContent: string | null; value: string; scrollTop: number; scrollHeight: number; dispatchEvent(e: unknown): boolean; click(): void } | null;
  querySelector(s: string): { click(): void; textContent: string | null } | null;
  querySelectorAll(s: string): { length: number };
};
declare const location: { hash: string };
declare const performance: { now(): number };
declare function requestAnimationFrame(f: () => void): void;
declare class Event { constructor(type: string) }

const TOKEN = 'fleet-1000-operator';
const N = 1000;
const BOUND_MS = 10_000;
const macOf = (i: number) => `52-54-10-00-${(i >> 8).toString(16).padStart(2, '0')}-${(i & 255).toString(16).padStart(2, '0')}`;
const IMAGES = ['ubuntu-24.04.img.zst', 'debian-12.img.gz', 'rocky-9.qcow2', 'windows-2022.img'];

/** In the page: run `act`, then wait until `done()` holds, measured to the frame after. */
async function timed(page: Page, act: string, until: string): Promise<number> {
  return page.evaluate(async ([a, u]) => {
    const t0 = performance.now();
    new Function(a as string)();
    const done = new Function(`return (${u as string})`) as () => boolean;
    for (;;) {
      await new Promise<void>((r) => requestAnimationFrame(() => r()));
      if (done()) break;
      if (performance.now() - t0 > 60_000) throw new Error(`never: ${u as string}`);
    }
    await new Promise<void>((r) => requestAnimationFrame(() => r()));
    return performance.now() - t0;
  }, [act, until]);
}

describe(`the machines table with ${N} machines, in Chromium`, { skip: chromiumMissing() }, () => {
  let srv: BootyServerProcess;
  let browser: Browser;
  let page: Page;
  const figures: string[] = [];
  const errors: string[] = [];

  before(async () => {
    srv = await startBootyServer({ args: ['--token', TOKEN] });
    const changes = Array.from({ length: N }, (_, i) => ({
      mac: macOf(i), name: `rack${Math.floor(i / 40) + 1}-u${(i % 40) + 1}`,
      action: { action: 'deploy', image: `http://10.0.0.1:3000/images/${IMAGES[Math.floor(i / 40) % IMAGES.length]}`, disk: '/dev/sda', post: { hostname: `node${i + 1}` } },
    }));
    const t0 = performance.now();
    const r = await request(`${srv.url}/api/machines/bulk`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ create: true, changes }) });
    const text = await r.body.text();
    assert.equal(r.statusCode, 200, text);
    figures.push(`registered ${N} machines in one bulk request: ${(performance.now() - t0).toFixed(0)} ms`);
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    page.on('pageerror', (e) => errors.push(e.message));
    await loginToDashboard(page, srv.url, TOKEN);
    await page.locator('#live.on').waitFor();
  });
  after(async () => {
    const line = `fleet of ${N}: ${figures.join('; ')}`;
    process.stdout.write(`# ${line}\n`);
    await browser?.close();
    await srv?.close();
  });

  it('renders all of them with only the rows in view in the DOM', async () => {
    await page.goto(`${srv.url}/#/fleet`);
    await page.locator('#phase-counts').waitFor();
    const ms = await timed(page, "location.hash = '#/'", `document.getElementById('summary')?.textContent === '${N} machines' && document.querySelectorAll('#machines-table tbody tr[data-mac]').length > 0`);
    figures.push(`table drawn ${ms.toFixed(0)} ms`);
    assert.ok(ms < BOUND_MS, `${ms} ms`);
    // from scratch: the page loads, asks the session, fetches the ${N} summaries and draws
    const t0 = performance.now();
    await page.reload();
    await page.locator('#summary', { hasText: `${N} machines` }).waitFor();
    await page.locator('#machines-table tbody tr[data-mac]').first().waitFor();
    const load = performance.now() - t0;
    figures.push(`page load to table (wall clock, includes GET /api/machines) ${load.toFixed(0)} ms`);
    assert.ok(load < BOUND_MS, `${load} ms`);
    const rows = await page.locator('#machines-table tbody tr[data-mac]').count();
    assert.ok(rows > 10 && rows < 100, `${rows} rows in the DOM`);
    assert.deepEqual(errors, []);
  });

  it('filters by rack and image, searches as one types, sorts by a column', async () => {
    const rack = await timed(page, "const s = document.getElementById('filter-rack'); s.value = 'rack7'; s.dispatchEvent(new Event('change'))",
      `document.getElementById('summary').textContent === '40 of ${N} machines shown'`);
    figures.push(`filter by rack ${rack.toFixed(0)} ms`);
    assert.match(await page.locator('#machines-table tbody tr[data-mac]').first().innerText(), /rack7-u1\b/);
    await page.locator('#filter-rack').selectOption('');
    const rocky = Array.from({ length: N }, (_, i) => IMAGES[Math.floor(i / 40) % IMAGES.length]).filter((x) => x === 'rocky-9.qcow2').length;
    const image = await timed(page, "const s = document.getElementById('filter-image'); s.value = 'rocky-9.qcow2'; s.dispatchEvent(new Event('change'))",
      `document.getElementById('summary').textContent === '${rocky} of ${N} machines shown'`);
    figures.push(`filter by image ${image.toFixed(0)} ms`);
    await page.locator('#filter-image').selectOption('');
    // the search waits 60 ms after the last key: included
    const search = await timed(page, "const s = document.getElementById('search'); s.value = 'rack13-u2'; s.dispatchEvent(new Event('input'))",
      `document.getElementById('summary').textContent === '11 of ${N} machines shown'`); // u2, u20..u29
    figures.push(`search ${search.toFixed(0)} ms`);
    await page.locator('#search').fill('');
    await page.locator('#summary', { hasText: `${N} machines` }).waitFor();
    const sort = await timed(page, "document.querySelector('th[data-sort=name] button').click()",
      "document.querySelector('#machines-table tbody tr[data-mac] td:nth-child(3)')?.textContent === 'rack1-u1'");
    const desc = await timed(page, "document.querySelector('th[data-sort=name] button').click()",
      "document.querySelector('#machines-table tbody tr[data-mac] td:nth-child(3)')?.textContent === 'rack9-u9'");
    figures.push(`sort by name ${sort.toFixed(0)} ms, reversed ${desc.toFixed(0)} ms`);
    for (const ms of [rack, image, search, sort, desc]) assert.ok(ms < BOUND_MS, `${ms} ms`);
    assert.deepEqual(errors, []);
  });

  it('scrolls to the last machine and selects every machine shown', async () => {
    const scroll = await timed(page, "const s = document.getElementById('machines-scroll'); s.scrollTop = s.scrollHeight",
      "document.querySelector('#machines-table tbody tr[data-mac]:nth-last-child(2) td:nth-child(3)')?.textContent === 'rack1-u1'");
    figures.push(`scroll to the end ${scroll.toFixed(0)} ms`);
    await page.locator('#select-all').check();
    await page.locator('#summary', { hasText: `${N} machines · ${N} selected` }).waitFor();
    await page.locator('#select-none').click();
    assert.deepEqual(errors, []);
  });

  it('follows a live change of one machine among them', async () => {
    const mac = macOf(777);
    await page.locator('#search').fill('rack20-u18');
    await page.locator('#summary', { hasText: '1 of' }).waitFor();
    const credential = await agentCredentialOf(srv.url, mac, TOKEN);
    const r = await request(`${srv.url}/api/machines/${mac}/events`, {
      method: 'POST', headers: { authorization: `Bearer ${credential}`, 'content-type': 'application/json' },
      body: JSON.stringify([{ type: 'phase', time: new Date().toISOString(), phase: 'writing' }, { type: 'progress', time: new Date().toISOString(), phase: 'writing', bytes: 5e9, total: 1e10, rate: 2e8 }]),
    });
    assert.equal(r.statusCode, 200, await r.body.text());
    await page.locator(`tr[data-mac="${mac}"][data-phase="writing"] .bar[aria-valuenow="50"]`).waitFor();
    await page.locator('#search').fill('');
    const phase = await timed(page, "const s = document.getElementById('filter-phase'); s.value = 'state:active'; s.dispatchEvent(new Event('change'))",
      `document.getElementById('summary').textContent === '1 of ${N} machines shown'`);
    figures.push(`filter by phase ${phase.toFixed(0)} ms`);
    assert.ok(phase < BOUND_MS);
    assert.deepEqual(errors, []);
  });
});
