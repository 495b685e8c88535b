// A machine's page in real headless Chromium while a real `booty deploy --report` writes an image
// served by booty server (through a throttling proxy, so the run lasts a few reports): the
// throughput chart grows while the deploy runs, and at the end the timeline has one bar per
// phase the server recorded and the throughput series accounts for exactly the bytes written
// (read from the SVG's data attributes, compared with the disk and the run's samples). Then the
// settings are edited in place: a change the server refuses shows its sentence, a valid one
// shows the JSON action served before it can be saved; the log search filters; the hardware the
// agent reported is listed. Any console error or uncaught exception in the page fails the test.
// Screenshots go to .cache/test-artifacts/ (BOOTY_UPDATE_SCREENSHOT=1 also refreshes
// test/screenshots/machine-page.png).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { request } from 'undici';
import type { Browser, Page } from 'playwright-core';
import { agentCredentialOf, startBootyServer } from '../helpers/booty-server-process.ts';
import type { BootyServerProcess } from '../helpers/booty-server-process.ts';
import { chromiumMissing, launchChromium, loginToDashboard } from '../helpers/headless-chromium.ts';
import { startThrottledProxy } from '../helpers/throttled-proxy.ts';
import { startFaultProxy } from '../helpers/fault-proxy.ts';
import type { MachineInventory } from '../../src/config/inventory.ts';

// evaluated in the page (the project's TypeScript has no DOM library)
declare const document: {
  querySelector(s: string): { getAttribute(n: string): string | null; textContent: string | null } | null;
  querySelectorAll(s: string): ArrayLike<{ getAttribute(n: string): string | null; textContent: string | null }>;
};

const root = resolve(import.meta.dirname, '..', '..');
const artifacts = join(root, '.cache', 'test-artifacts');
const missing = chromiumMissing();
const IMAGE_BYTES = 24 << 20;
const RATE = 2_500_000;
const TOKEN = `machine-page-${randomBytes(8).toString('hex')}`;
const operator = { authorization: `Bearer ${TOKEN}` };

interface Run { id: number; phases: { phase: string; time: string }[]; bytes?: number; ok?: boolean }
interface Sample { time: string; bytes: number; wireBytes?: number }

async function api<T>(url: string): Promise<T> {
  const r = await request(url, { headers: operator });
  const text = await r.body.text();
  assert.equal(r.statusCode, 200, `${url}: ${text}`);
  return JSON.parse(text) as T;
}

describe('the machine page in Chromium: a real deploy as pictures, settings in place', { skip: missing }, () => {
  let dataDir: string;
  let srv: BootyServerProcess;
  let proxy: Awaited<ReturnType<typeof startThrottledProxy>>;
  let browser: Browser;
  let page: Page;
  const problems: string[] = [];
  const mac = '52-54-00-d0-20-01';
  const image = randomBytes(IMAGE_BYTES);

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'booty-machine-page-'));
    await mkdir(join(dataDir, 'images'), { recursive: true });
    await writeFile(join(dataDir, 'images', 'demo.img'), image);
    await mkdir(artifacts, { recursive: true });
    srv = await startBootyServer({ dataDir, args: ['--token', TOKEN] });
    proxy = await startThrottledProxy(srv.url, RATE);
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()} (${m.location().url})`); });
    page.on('pageerror', (e) => problems.push(`uncaught in the page: ${e.stack ?? e.message}`));
    await loginToDashboard(page, srv.url, TOKEN);
  });
  after(async () => {
    await browser?.close();
    await proxy?.close();
    await srv?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('draws a real deploy live; at the end one bar per phase and the bytes written, exactly', async () => {
    const put = await request(`${srv.url}/api/machines/${mac}`, { method: 'PUT', headers: { 'content-type': 'application/json', ...operator }, body: JSON.stringify({ name: 'rack2-u1', action: { action: 'deploy', image: `${proxy.url}/images/demo.img`, disk: '/dev/vda' } }) });
    assert.equal(put.statusCode, 200, await put.body.text());
    await page.goto(`${srv.url}/#/m/${mac}`);
    await page.locator('#settings-form').waitFor();
    await page.locator('#live.on').waitFor();

    const disk = join(dataDir, 'disk.img');
    await writeFile(disk, '');
    await truncate(disk, 32 << 20);
    const credential = await agentCredentialOf(srv.url, mac, TOKEN);
    const child = spawn(join(root, 'bin', 'booty'), ['deploy', '--image', `${proxy.url}/images/demo.img`, '--disk', disk, '--report', srv.url, '--mac', mac, '--token', credential, '-q'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c) => { out += String(c); });
    child.stderr.on('data', (c) => { out += String(c); });
    const exited = new Promise<number | null>((ok) => child.once('exit', (code) => ok(code)));

    // live: the disk series gains points while the card still says "writing" (nothing reloads the page)
    const seen: number[] = [];
    for (let i = 0; i < 2; i++) {
      const prev = seen.at(-1) ?? 0;
      const handle = await page.waitForFunction((p) => {
        const writing = document.querySelector('.machine[data-phase="writing"]') !== null;
        const n = Number(document.querySelector('svg[data-chart="throughput"] path[data-series="disk"]')?.getAttribute('data-points') ?? 0);
        return writing && n > p ? n : false;
      }, prev, { timeout: 120_000 });
      seen.push(await handle.jsonValue() as number);
      if (i === 0) await page.screenshot({ path: join(artifacts, 'machine-page-live.png'), fullPage: true });
    }
    assert.ok(seen[1] > seen[0] && seen[0] > 0, `points seen: ${seen.join(', ')}`);
    const live = await page.locator('svg[data-chart="timeline"] [data-phase="writing"]').count();
    assert.equal(live, 1, 'the timeline shows the phase in progress');

    assert.equal(await exited, 0, out);
    await page.locator(`.machine[data-mac="${mac}"][data-phase="done"]`).waitFor({ timeout: 60_000 });
    const written = (await readFile(disk)).subarray(0, IMAGE_BYTES);
    assert.equal(createHash('sha256').update(written).digest('hex'), createHash('sha256').update(image).digest('hex'));

    // the server's record of the run: its phases and its samples
    const { runs } = await api<{ runs: Run[] }>(`${srv.url}/api/machines/${mac}/runs`);
    const run = runs[0];
    assert.equal(run.ok, true);
    assert.equal(run.bytes, IMAGE_BYTES);
    const { samples } = await api<{ samples: Sample[] }>(`${srv.url}/api/machines/${mac}/runs/${run.id}/samples`);
    assert.ok(samples.length >= 2, `${samples.length} samples`);
    assert.equal(samples.at(-1)!.bytes, IMAGE_BYTES, 'the run\'s last sample is its result\'s byte count');

    // after the result the page re-reads the stored samples: the series adds up to the bytes written
    await page.waitForFunction((want) => document.querySelector('svg[data-chart="throughput"] path[data-series="disk"]')?.getAttribute('data-bytes') === String(want), IMAGE_BYTES, { timeout: 30_000 });
    const chart = await page.evaluate(() => {
      const attr = (sel: string, a: string) => document.querySelector(sel)?.getAttribute(a) ?? null;
      return {
        run: attr('#run-charts', 'data-run'),
        phases: Array.from(document.querySelectorAll('svg[data-chart="timeline"] [data-phase]')).map((e) => e.getAttribute('data-phase')),
        declared: attr('svg[data-chart="timeline"]', 'data-phases'),
        results: Array.from(document.querySelectorAll('svg[data-chart="timeline"] [data-result]')).map((e) => e.getAttribute('data-result')),
        diskPoints: Number(attr('svg[data-chart="throughput"] path[data-series="disk"]', 'data-points')),
        netBytes: Number(attr('svg[data-chart="throughput"] path[data-series="network"]', 'data-bytes')),
        ticks: Array.from(document.querySelectorAll('svg[data-chart="throughput"] .axis.time text')).map((e) => e.textContent),
        rateTicks: Array.from(document.querySelectorAll('svg[data-chart="throughput"] .axis.rate text')).map((e) => e.textContent),
        marks: document.querySelectorAll('svg[data-chart="throughput"] [data-mark]').length,
      };
    });
    assert.equal(chart.run, String(run.id), 'the latest run is shown');
    // one bar per recorded phase; done/failed are a mark, not a span of time
    // (a phase repeated right after itself, as "done" is by the agent and by its result, continues it)
    const phases = run.phases.map((p) => p.phase).filter((p, i, all) => i === 0 || all[i - 1] !== p);
    const spans = phases.filter((p) => p !== 'done' && p !== 'failed');
    assert.deepEqual(chart.phases, spans);
    assert.equal(chart.declared, String(spans.length));
    assert.deepEqual(chart.phases, ['preflight', 'writing']);
    assert.deepEqual(chart.results, ['done']);
    // one interval per stored sample, from the start of its phase (a report at the same instant as the one before adds to the next)
    const firstPhase = run.phases.find((p) => p.phase === 'writing')!;
    let prevT = Math.min(Date.parse(firstPhase.time), Date.parse(samples[0].time));
    const intervals = samples.filter((s) => { const t = Date.parse(s.time); const later = t > prevT; prevT = Math.max(prevT, t); return later; }).length;
    assert.ok(intervals >= samples.length - 2 && intervals >= 2, `${intervals} intervals of ${samples.length} samples`);
    assert.equal(chart.diskPoints, intervals);
    // the raw image crosses the network as is; the last report's figure is what is known of it
    const lastWire = samples.filter((s) => s.wireBytes !== undefined).at(-1)!.wireBytes!;
    assert.equal(chart.netBytes, lastWire);
    assert.ok(lastWire > 0 && lastWire <= IMAGE_BYTES, `network bytes ${lastWire}`);
    assert.equal(chart.marks, 0, 'no resume in an undisturbed run');
    assert.ok(chart.ticks.length >= 3 && chart.ticks.every((t) => t === '0' || / s$/.test(t ?? '')), `time ticks in seconds: ${chart.ticks.join(' | ')}`);
    assert.ok(chart.rateTicks.length >= 2 && chart.rateTicks.every((t) => / MB\/s$/.test(t ?? '')), `rate ticks: ${chart.rateTicks.join(' | ')}`);
    await page.screenshot({ path: join(artifacts, 'machine-page.png'), fullPage: true });
    if (process.env.BOOTY_UPDATE_SCREENSHOT === '1') await copyFile(join(artifacts, 'machine-page.png'), join(root, 'test', 'screenshots', 'machine-page.png'));
  });

  it('edits settings in place: a refused change says why, a valid one shows its JSON first, then saves', async () => {
    const auditBefore = (await api<{ entries: unknown[] }>(`${srv.url}/api/audit?mac=${mac}`)).entries.length;
    await page.locator('#set-disk').fill('sda');
    await page.locator('#settings-error', { hasText: 'field "disk" must be an absolute /dev path' }).waitFor();
    assert.equal(await page.locator('#settings-error').innerText(), 'The server refuses this change: field "disk" must be an absolute /dev path (e.g. /dev/sda), got "sda"');
    assert.equal(await page.locator('#settings-save').isDisabled(), true, 'a refused change cannot be saved');
    assert.equal(await page.locator('#settings-json').innerText(), '');

    await page.locator('#set-disk').fill('/dev/vdb');
    await page.locator('#settings-save:enabled').waitFor();
    assert.equal(await page.locator('#settings-error').innerText(), '');
    const shown = JSON.parse(await page.locator('#settings-json').innerText()) as { destinationDevice: string; booty: { action: string; disk: string; image: string } };
    // the action as an agent gets it (BOOTy's fields and booty's), from the server's own check
    assert.equal(shown.destinationDevice, '/dev/vdb');
    assert.deepEqual([shown.booty.action, shown.booty.disk, shown.booty.image], ['deploy', '/dev/vdb', `${proxy.url}/images/demo.img`]);
    assert.match(await page.locator('#settings-summary').innerText(), /Served at its next boot: deploy http:\/\/127\.0\.0\.1:\d+\/images\/demo\.img -> \/dev\/vdb\. the action changes/);
    // checks change nothing: the machine still has its disk, no audit entry was written
    const still = await api<{ configuredAction: { disk: string } }>(`${srv.url}/api/machines/${mac}`);
    assert.equal(still.configuredAction.disk, '/dev/vda');
    assert.equal((await api<{ entries: unknown[] }>(`${srv.url}/api/audit?mac=${mac}`)).entries.length, auditBefore);

    await page.locator('#settings-save').click();
    await page.locator('#audit tbody tr', { hasText: '/dev/vdb' }).first().waitFor();
    const saved = await api<{ configuredAction: { disk: string }; next: string; name: string }>(`${srv.url}/api/machines/${mac}`);
    assert.equal(saved.configuredAction.disk, '/dev/vdb');
    assert.equal(saved.name, 'rack2-u1');
    assert.match(saved.next, /^deploy .* -> \/dev\/vdb$/, 'a changed action runs again');
    assert.equal((await api<{ entries: unknown[] }>(`${srv.url}/api/audit?mac=${mac}`)).entries.length, auditBefore + 1, 'one change, one audit entry');

    // a new name alone leaves the action (and its one-shot state) alone
    await page.locator('#set-name').fill('rack2-u2');
    await page.locator('#settings-save:enabled').waitFor();
    assert.match(await page.locator('#settings-summary').innerText(), /the action is unchanged/);
    await page.locator('#settings-save').click();
    await page.locator('h1', { hasText: 'rack2-u2' }).waitFor();
    const renamed = await api<{ name: string; configuredAction: { disk: string } }>(`${srv.url}/api/machines/${mac}`);
    assert.equal(renamed.name, 'rack2-u2');
    assert.equal(renamed.configuredAction.disk, '/dev/vdb');
  });

  it('the log search keeps the matching lines and marks the matches', async () => {
    const all = Number(/^(\d+) lines$/.exec(await page.locator('#log-count').innerText())?.[1]);
    assert.ok(all > 3, `${all} log lines`);
    await page.locator('#log-search').fill('RESULT deploy');
    await page.locator('#log-count', { hasText: 'match' }).waitFor();
    assert.equal(await page.locator('#log-count').innerText(), `1 of ${all} lines match`);
    assert.match(await page.locator('#fulllog').innerText(), /^\S+ result deploy ok: 25165824 bytes; sha256 [0-9a-f]{64}\s*$/);
    assert.deepEqual(await page.locator('#fulllog mark').allInnerTexts(), ['result deploy']);
    await page.locator('#log-search').fill('');
    await page.locator('#log-count', { hasText: `${all} lines` }).waitFor();
  });

  it('lists the disks and NICs the agent reported', async () => {
    const inventory: MachineInventory = {
      version: 1, collected: new Date().toISOString(),
      system: { vendor: 'BootyLabs', product: 'Chart Rig', serial: 'CHART-0001' },
      firmware: { mode: 'uefi', secureBoot: true }, cpu: { threads: 4, model: 'Test CPU' }, memory: { totalBytes: 8 * 2 ** 30 },
      disks: [{ name: 'nvme0n1', sizeBytes: 512 * 2 ** 30, logicalSectorSize: 4096, physicalSectorSize: 4096, transport: 'nvme', rotational: false, removable: false, readOnly: false, model: 'Fast SSD', serial: 'NV-42' }],
      nics: [{ name: 'eth0', mac: '52:54:00:d0:20:01', driver: 'virtio_net', speedMbps: 10000, link: true }],
    };
    const credential = await agentCredentialOf(srv.url, mac, TOKEN);
    const r = await request(`${srv.url}/api/machines/${mac}/inventory`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${credential}` }, body: JSON.stringify(inventory) });
    assert.equal(r.statusCode, 200, await r.body.text());
    await page.reload();
    await page.locator('#disks').waitFor();
    assert.deepEqual(await page.locator('#disks tbody tr td').allInnerTexts(), ['nvme0n1', '512.0 GiB', '4096 / 4096', 'nvme', 'solid state', 'Fast SSD', 'NV-42', '']);
    assert.deepEqual(await page.locator('#nics tbody tr td').allInnerTexts(), ['eth0', '52:54:00:d0:20:01', 'virtio_net', '10 Gb/s', 'up']);
    assert.match(await page.locator('#hardware dl').innerText(), /UEFI, Secure Boot on/);
  });

  it('marks a real resume: a download cut mid-way by a fault proxy continues, the chart says where', async () => {
    const cutMac = '52-54-00-d0-20-02';
    // booty deploy -> fault proxy (cuts one response 8-12 MiB in) -> throttling proxy -> booty server
    const throttled = new URL(proxy.url);
    const faults = await startFaultProxy({
      target: { host: throttled.hostname, port: Number(throttled.port) }, seed: 20,
      faults: { probability: { cut: 1 }, offset: { min: 8 << 20, max: 12 << 20 }, maxFaults: 1 }, cutGraceMs: 200,
    });
    try {
      const imageUrl = `${faults.url}/images/demo.img`;
      const put = await request(`${srv.url}/api/machines/${cutMac}`, { method: 'PUT', headers: { 'content-type': 'application/json', ...operator }, body: JSON.stringify({ action: { action: 'deploy', image: imageUrl, disk: '/dev/vda' } }) });
      assert.equal(put.statusCode, 200, await put.body.text());
      await page.goto(`${srv.url}/#/m/${cutMac}`);
      // the page of this machine, not the one before (a hash change redraws when its data arrived)
      await page.locator('h1 .mac', { hasText: cutMac }).waitFor();
      await page.locator('#live.on').waitFor();
      const disk = join(dataDir, 'disk-cut.img');
      await writeFile(disk, '');
      await truncate(disk, 32 << 20);
      const credential = await agentCredentialOf(srv.url, cutMac, TOKEN);
      const child = spawn(join(root, 'bin', 'booty'), ['deploy', '--image', imageUrl, '--disk', disk, '--report', srv.url, '--mac', cutMac, '--token', credential, '-q'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (c) => { out += String(c); });
      child.stderr.on('data', (c) => { out += String(c); });
      assert.equal(await new Promise<number | null>((ok) => child.once('exit', (code) => ok(code))), 0, out);
      assert.equal(faults.stats().faults.cut, 1, 'the proxy cut one download');
      const written = (await readFile(disk)).subarray(0, IMAGE_BYTES);
      assert.equal(createHash('sha256').update(written).digest('hex'), createHash('sha256').update(image).digest('hex'));

      const { runs } = await api<{ runs: Run[] }>(`${srv.url}/api/machines/${cutMac}/runs`);
      const { samples } = await api<{ samples: (Sample & { resumes?: number })[] }>(`${srv.url}/api/machines/${cutMac}/runs/${runs[0].id}/samples`);
      await page.locator(`#run-charts[data-run="${runs[0].id}"]`).waitFor();
      const resumes = samples.at(-1)!.resumes ?? 0;
      assert.ok(resumes >= 1, `the run's samples count ${resumes} resumes\n${out}`);
      await page.waitForFunction((want) => document.querySelector('svg[data-chart="throughput"] path[data-series="disk"]')?.getAttribute('data-bytes') === String(want), IMAGE_BYTES, { timeout: 30_000 });
      const marks = await page.evaluate(() => Array.from(document.querySelectorAll('svg[data-chart="throughput"] [data-mark]')).map((e) => [e.getAttribute('data-mark'), Number(e.getAttribute('data-count'))] as const));
      assert.ok(marks.length >= 1 && marks.every(([kind]) => kind === 'resume'), JSON.stringify(marks));
      assert.equal(marks.reduce((n, [, c]) => n + c, 0), resumes, 'the marks add up to the resumes counted');
      await page.screenshot({ path: join(artifacts, 'machine-page-resume.png'), fullPage: true });
    } finally { await faults.close(); }
  });

  it('draws a 10-hour run from its thinned samples, with the time axis in hours', async () => {
    const longMac = '52-54-00-d0-20-03';
    const agent = { 'content-type': 'application/json', authorization: `Bearer ${await agentCredentialOf(srv.url, longMac, TOKEN)}` };
    const t0 = Date.now() - 11 * 3600_000;
    const at = (s: number) => new Date(t0 + s * 1000).toISOString();
    const hours = 10;
    const perSecond = 50e6;
    const events: unknown[] = [{ type: 'phase', time: at(0), phase: 'booting' }, { type: 'phase', time: at(20), phase: 'fetching-action' }, { type: 'phase', time: at(25), phase: 'writing' }];
    // a report every 2 s for 10 hours (18 000), one resume in the fifth hour
    for (let sec = 27; sec <= 25 + hours * 3600; sec += 2) {
      events.push({ type: 'progress', time: at(sec), phase: 'writing', bytes: (sec - 25) * perSecond, wireBytes: (sec - 25) * perSecond * 0.4, rate: perSecond, resumes: sec > 5 * 3600 ? 1 : 0 });
    }
    const end = 25 + hours * 3600;
    events.push({ type: 'phase', time: at(end + 1), phase: 'growing' }, { type: 'result', time: at(end + 30), ok: true, action: 'deploy', bytes: (end - 25) * perSecond, resumes: 1 });
    for (let i = 0; i < events.length; i += 5000) {
      const r = await request(`${srv.url}/api/machines/${longMac}/events`, { method: 'POST', headers: agent, body: JSON.stringify(events.slice(i, i + 5000)) });
      assert.equal(r.statusCode, 200, await r.body.text());
    }
    const { runs } = await api<{ runs: Run[] }>(`${srv.url}/api/machines/${longMac}/runs`);
    const kept = await api<{ resolutionSeconds: number; samples: Sample[] }>(`${srv.url}/api/machines/${longMac}/runs/${runs[0].id}/samples`);
    assert.ok(kept.samples.length >= 1000 && kept.samples.length <= 2000, `${kept.samples.length} samples kept of 18 000 reports`);
    assert.equal(kept.resolutionSeconds, 32);
    await page.goto(`${srv.url}/#/m/${longMac}`);
    await page.locator(`#run-charts[data-run="${runs[0].id}"] svg[data-chart="throughput"]`).waitFor();
    const chart = await page.evaluate(() => ({
      ticks: Array.from(document.querySelectorAll('svg[data-chart="throughput"] .axis.time text')).map((e) => e.textContent),
      bytes: document.querySelector('svg[data-chart="throughput"] path[data-series="disk"]')?.getAttribute('data-bytes'),
      points: Number(document.querySelector('svg[data-chart="throughput"] path[data-series="disk"]')?.getAttribute('data-points')),
      phases: Array.from(document.querySelectorAll('svg[data-chart="timeline"] [data-phase]')).map((e) => e.getAttribute('data-phase')),
      marks: Array.from(document.querySelectorAll('svg[data-chart="throughput"] [data-mark]')).map((e) => e.getAttribute('data-mark')),
      rateTicks: Array.from(document.querySelectorAll('svg[data-chart="throughput"] .axis.rate text')).map((e) => e.textContent),
    }));
    assert.deepEqual(chart.ticks, ['0', '1 h', '2 h', '3 h', '4 h', '5 h', '6 h', '7 h', '8 h', '9 h', '10 h']);
    assert.equal(chart.bytes, String((end - 25) * perSecond));
    assert.equal(chart.points, kept.samples.length);
    assert.deepEqual(chart.phases, ['booting', 'fetching-action', 'writing', 'growing']);
    assert.deepEqual(chart.marks, ['resume']);
    assert.deepEqual(chart.rateTicks, ['0 MB/s', '20 MB/s', '40 MB/s', '60 MB/s']);
    await page.screenshot({ path: join(artifacts, 'machine-page-10h.png'), fullPage: true });
  });

  it('fits a phone-sized screen: charts drawn at its width, no horizontal scrolling', async () => {
    const phone = await browser.newPage({ viewport: { width: 375, height: 740 }, deviceScaleFactor: 2, isMobile: true });
    phone.on('console', (m) => { if (m.type() === 'error') problems.push(`phone console error: ${m.text()} (${m.location().url})`); });
    phone.on('pageerror', (e) => problems.push(`phone, uncaught in the page: ${e.stack ?? e.message}`));
    try {
      await loginToDashboard(phone, srv.url, TOKEN);
      await phone.goto(`${srv.url}/#/m/${mac}`);
      await phone.locator('svg[data-chart="throughput"]').waitFor();
      const sizes = await phone.evaluate(() => {
        const d = (document as unknown as { documentElement: { scrollWidth: number; clientWidth: number } }).documentElement;
        const w = (sel: string) => Number(document.querySelector(sel)?.getAttribute('width'));
        return { overflow: d.scrollWidth - d.clientWidth, client: d.clientWidth, timeline: w('svg[data-chart="timeline"]'), throughput: w('svg[data-chart="throughput"]') };
      });
      assert.ok(sizes.overflow <= 0, `the page is ${sizes.overflow}px wider than the screen`);
      assert.ok(sizes.timeline > 250 && sizes.timeline < sizes.client && sizes.throughput === sizes.timeline, JSON.stringify(sizes));
      await phone.screenshot({ path: join(artifacts, 'machine-page-phone.png'), fullPage: true });
    } finally { await phone.close(); }
  });

  it('had no console error and no uncaught exception', () => {
    assert.deepEqual(problems, []);
  });
});
