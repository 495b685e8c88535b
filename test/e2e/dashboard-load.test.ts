// Load check: 50 simulated agents post phases, progress (twice a second each) and log lines to
// a real booty server while the dashboard is open in headless Chromium. The dashboard must end
// up showing all 50 done; the server's CPU time and RSS under that load are printed (figures,
// not assertions: the machine is shared).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { Agent, request } from 'undici';
import type { Browser } from 'playwright-core';
import { agentCredentialOf, startBootyServer } from '../helpers/booty-server-process.ts';
import type { BootyServerProcess } from '../helpers/booty-server-process.ts';
import { chromiumMissing, launchChromium, loginToDashboard } from '../helpers/headless-chromium.ts';

// evaluated in the page (the project's TypeScript has no DOM library)
declare const document: {
  querySelector(s: string): { getAttribute(n: string): string | null } | null;
  querySelectorAll(s: string): { length: number };
  documentElement: { scrollWidth: number; clientWidth: number };
};

const AGENTS = 50;
const STEPS = 40; // progress reports per agent
const STEP_MS = 500;
const TOTAL = 10_000_000_000;
const TOKEN = 'dashboard-load-operator-token';

async function procFigures(pid: number): Promise<{ cpuSeconds: number; rssMiB: number; hwmMiB: number }> {
  const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ');
  const ticks = Number(stat[11]) + Number(stat[12]); // utime + stime (fields 14, 15)
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { cpuSeconds: ticks / 100, rssMiB: kb('VmRSS') / 1024, hwmMiB: kb('VmHWM') / 1024 };
}

describe('dashboard under load: 50 simulated agents', { skip: chromiumMissing() }, () => {
  let srv: BootyServerProcess;
  let browser: Browser;
  before(async () => {
    srv = await startBootyServer({ args: ['--token', TOKEN] });
    browser = await launchChromium();
  });
  after(async () => { await browser?.close(); await srv?.close(); });

  it('the dashboard follows 50 agents to the end; server CPU and RSS are reported', async (t) => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await loginToDashboard(page, srv.url, TOKEN);
    await page.goto(srv.url + '/#/cards');
    await page.locator('#live.on').waitFor();
    const dispatcher = new Agent({ connections: AGENTS });
    // each agent reports with its own machine's credential, as from /ipxe/<mac>
    const credentials = new Map<string, string>();
    const post = async (mac: string, body: unknown) => {
      if (!credentials.has(mac)) credentials.set(mac, await agentCredentialOf(srv.url, mac, TOKEN));
      const r = await request(`${srv.url}/api/machines/${mac}/events`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${credentials.get(mac)}` }, body: JSON.stringify(body), dispatcher });
      await r.body.dump();
      assert.equal(r.statusCode, 200);
    };
    const pid = srv.child.pid!;
    const before0 = await procFigures(pid);
    const started = Date.now();
    let requests = 0;
    const agent = async (i: number) => {
      const mac = `52-54-01-00-00-${i.toString(16).padStart(2, '0')}`;
      const now = () => new Date().toISOString();
      await post(mac, [{ type: 'phase', time: now(), phase: 'booting' }, { type: 'phase', time: now(), phase: 'writing', detail: 'http://s/images/u.img.zst -> /dev/sda' }]);
      for (let s = 1; s <= STEPS; s++) {
        await new Promise((r) => setTimeout(r, STEP_MS));
        const bytes = Math.floor((TOTAL * s) / (STEPS + 1));
        const events: unknown[] = [{ type: 'progress', time: now(), phase: 'writing', bytes, total: TOTAL, rate: 200e6 + i * 1e6, etaSeconds: (TOTAL - bytes) / 200e6 }];
        if (s % 10 === 0) events.push({ type: 'log', time: now(), level: 'info', message: `wrote ${bytes} bytes` });
        await post(mac, events);
        requests++;
      }
      await post(mac, [{ type: 'result', time: now(), ok: true, action: 'deploy', bytes: TOTAL, seconds: 20 }, { type: 'phase', time: now(), phase: 'rebooting' }]);
      requests += 2;
    };
    await Promise.all(Array.from({ length: AGENTS }, (_, i) => agent(i)));
    const wall = (Date.now() - started) / 1000;
    const after0 = await procFigures(pid);
    await page.waitForFunction((n) => document.querySelectorAll('.machine[data-phase="rebooting"], .machine[data-phase="done"]').length === n, AGENTS, { timeout: 60_000 });
    assert.equal(await page.locator('.machine').count(), AGENTS);
    const cards = await page.locator('.machine.state-done .bar[aria-valuenow="100"]').count();
    assert.equal(cards, AGENTS, 'every card shows its finished deploy at 100%');
    await dispatcher.close();
    await page.close();
    const cpu = after0.cpuSeconds - before0.cpuSeconds;
    const line = `load: ${AGENTS} agents, ${requests} event posts in ${wall.toFixed(1)} s (${(requests / wall).toFixed(0)}/s), 1 dashboard open: ` +
      `server CPU ${cpu.toFixed(2)} s (${((cpu / wall) * 100).toFixed(0)}% of one core), RSS ${after0.rssMiB.toFixed(0)} MiB (peak ${after0.hwmMiB.toFixed(0)} MiB); ${cards} bars at 100%`;
    t.diagnostic(line);
    process.stdout.write(`# ${line}\n`);
  });
});
