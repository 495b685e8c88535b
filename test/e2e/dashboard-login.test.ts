// The dashboard's login in real headless Chromium against a real `booty server --token`: the
// form, a wrong token, the HttpOnly SameSite=Strict cookie (no token inside, unreadable by page
// scripts), changes with the cookie only from the dashboard's own origin, logout, an expired
// login (--login-ttl) and a revoked token bringing the form back with the reason.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startBootyServer } from '../helpers/booty-server-process.ts';
import type { BootyServerProcess } from '../helpers/booty-server-process.ts';
import { runBooty } from '../helpers/booty-cli.ts';
import { chromiumMissing, launchChromium, loginToDashboard } from '../helpers/headless-chromium.ts';

// evaluated in the page (the project's TypeScript has no DOM library)
declare const document: { cookie: string };

const TOKEN = 'dashboard-login-operator-token';
const MAC = '52-54-00-d0-10-01';
const LOGIN_TTL_S = 6;

describe('dashboard login in Chromium', { skip: chromiumMissing() }, () => {
  let srv: BootyServerProcess;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;

  before(async () => {
    srv = await startBootyServer({ args: ['--token', TOKEN, '--login-ttl', String(LOGIN_TTL_S)] });
    const put = await request(`${srv.url}/api/machines/${MAC}`, { method: 'PUT', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ name: 'rack2-u1', action: { action: 'wipe' } }) });
    assert.equal(put.statusCode, 200, await put.body.text());
    browser = await launchChromium();
    context = await browser.newContext();
    page = await context.newPage();
  });
  after(async () => { await browser?.close(); await srv?.close(); });

  const status = (path: string, init: Record<string, unknown> = {}) => page.evaluate(async ([p, i]) => (await fetch(p as string, i as RequestInit)).status, [path, init] as const);

  it('without a login: the form, and the data API refuses the page', async () => {
    await page.goto(srv.url + '/');
    await page.locator('#login #token').waitFor();
    assert.equal(await page.locator(`[data-mac="${MAC}"]`).count(), 0);
    assert.equal(await status('/api/machines'), 401);
    assert.equal(await status(`/api/machines/${MAC}/log`), 401);
  });

  it('a wrong token is refused on the form', async () => {
    await page.locator('#login #token').fill('not-the-token');
    await page.locator('#login button[type=submit]').click();
    await page.locator('#login-error', { hasText: 'not an operator token' }).waitFor();
    assert.equal((await context.cookies()).length, 0);
  });

  it('the right token logs in: an HttpOnly SameSite=Strict cookie without the token; the machines show', async () => {
    await loginToDashboard(page, srv.url, TOKEN);
    await page.locator(`[data-mac="${MAC}"]`).waitFor();
    assert.match(await page.locator('#who').innerText(), /server --token/);
    const [cookie] = await context.cookies();
    assert.equal(cookie.name, 'booty_session');
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, 'Strict');
    assert.ok(!cookie.value.includes(TOKEN), 'the cookie holds no token');
    assert.equal(await page.evaluate(() => document.cookie), '', 'page scripts cannot read it');
    assert.equal(await status('/api/machines'), 200);
    // a change from the dashboard's own page works with the cookie (the browser sends its Origin)
    assert.equal(await status('/api/reload', { method: 'POST' }), 200);
    // the same cookie without the dashboard's Origin (another program, a forged request) changes nothing
    const forged = await request(`${srv.url}/api/reload`, { method: 'POST', headers: { cookie: `booty_session=${cookie.value}` } });
    assert.equal(forged.statusCode, 401, await forged.body.text());
    const read = await request(`${srv.url}/api/machines`, { headers: { cookie: `booty_session=${cookie.value}` } });
    assert.equal(read.statusCode, 200, 'reads need no Origin');
    await read.body.dump();
  });

  it('logout deletes the cookie and shows the form', async () => {
    await page.locator('#logout').click();
    await page.locator('#login #token').waitFor();
    assert.equal((await context.cookies()).length, 0);
    assert.equal(await status('/api/machines'), 401);
  });

  it('an expired login brings the form back, saying so', async () => {
    await loginToDashboard(page, srv.url, TOKEN);
    const loggedInAt = Date.now();
    await page.locator(`[data-mac="${MAC}"]`).waitFor();
    // the browser keeps the cookie as long as the server said (Max-Age): hold on to it past that
    const [cookie] = await context.cookies();
    await new Promise((r) => setTimeout(r, LOGIN_TTL_S * 1000 + 500 - (Date.now() - loggedInAt)));
    await context.addCookies([{ ...cookie, expires: Math.floor(Date.now() / 1000) + 3600 }]);
    await page.reload();
    await page.locator('#login-error', { hasText: 'expired' }).waitFor();
    assert.equal(await status('/api/machines'), 401);
  });

  it('revoking the named token ends its logins', async () => {
    const made = await runBooty(['tokens', 'add', 'bob', '--data', srv.dataDir]);
    assert.equal(made.status, 0, made.err);
    await context.clearCookies();
    await loginToDashboard(page, srv.url, made.out.trim());
    assert.match(await page.locator('#who').innerText(), /bob/);
    assert.equal((await runBooty(['tokens', 'revoke', 'bob', '--data', srv.dataDir])).status, 0);
    await page.reload();
    await page.locator('#login-error', { hasText: 'revoked' }).waitFor();
  });
});
